"""The tensorrt execution provider."""
