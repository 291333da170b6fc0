"""The OpenVINO execution provider (``providers=["openvino"]``, ORT name
``OpenVINOExecutionProvider``; needs ``pip install ferry[openvino]``).

- ``provider.py``: options (ORT's OpenVINO EP names), availability, capability, compile.
- ``capability.py``: ``Core.query_model`` answers mapped back to ONNX nodes.
- ``known_issues.py``: nodes OpenVINO would compute differently from ONNX, refused by name.
- ``partition.py``: a partition as an ONNX model compiled by OpenVINO; infer-request pool,
  per-shape compiles, the compiled-blob cache.
- ``config.py``: device strings and compile properties. ``export.py``: ferry graph -> ONNX.
"""
