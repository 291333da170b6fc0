"""The openvino execution provider."""
