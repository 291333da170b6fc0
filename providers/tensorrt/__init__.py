"""The TensorRT execution provider (engines from claimed subgraphs; engine/timing caches)."""
