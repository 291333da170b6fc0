"""Pure logic of the TensorRT provider, testable without TensorRT: optimization-profile
option parsing, profiles from the session's declared input shape ranges, and the engine
cache key.

The cache key is a hash of what decides an engine's content: the serialized subgraph, the
input shapes it is built for (or its profile ranges), the precision flags, the TensorRT
version and the GPU's name. It never includes the model's path: the same model copied
elsewhere reuses its engines, and two different models at one path never collide.
"""

from __future__ import annotations

import hashlib
import re

from runtime.errors import ProviderOptionError

_NAME_SHAPE = re.compile(r"^(?P<name>.+):(?P<dims>\d+(?:x\d+)*)?$")


def parse_profile_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """ORT's ``trt_profile_*_shapes`` syntax: ``"in1:1x3x224x224,in2:1x128"`` -> dict.
    A scalar input is written ``name:`` (no dims)."""
    out: dict[str, tuple[int, ...]] = {}
    if text is None:
        return out
    text = str(text).strip()
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        m = _NAME_SHAPE.match(item)
        if not m:
            raise ProviderOptionError(
                f"provider 'tensorrt': bad profile shape '{item}'; write name:d0xd1x..., "
                "e.g. input:1x3x224x224")
        name = m.group("name").strip()
        if name in out:
            raise ProviderOptionError(f"provider 'tensorrt': input '{name}' appears twice in "
                                      "a profile shape option")
        dims = m.group("dims")
        out[name] = tuple(int(d) for d in dims.split("x")) if dims else ()
    return out


def validate_profiles(min_s: dict, opt_s: dict, max_s: dict) -> None:
    """The three profile options name the same inputs with the same ranks, min <= opt <= max."""
    given = [bool(min_s), bool(opt_s), bool(max_s)]
    if any(given) and not all(given):
        raise ProviderOptionError(
            "provider 'tensorrt': trt_profile_min_shapes, trt_profile_opt_shapes and "
            "trt_profile_max_shapes must be given together")
    if not any(given):
        return
    if not (set(min_s) == set(opt_s) == set(max_s)):
        raise ProviderOptionError(
            "provider 'tensorrt': the profile shape options must name the same inputs "
            f"(min: {sorted(min_s)}, opt: {sorted(opt_s)}, max: {sorted(max_s)})")
    for name in min_s:
        lo, mid, hi = min_s[name], opt_s[name], max_s[name]
        if not len(lo) == len(mid) == len(hi):
            raise ProviderOptionError(
                f"provider 'tensorrt': profile shapes of '{name}' have different ranks")
        for a, b, c in zip(lo, mid, hi):
            if not a <= b <= c:
                raise ProviderOptionError(
                    f"provider 'tensorrt': profile of '{name}' needs min <= opt <= max in "
                    f"every dimension, got {lo} / {mid} / {hi}")


def profile_from_ranges(inputs, ranges: dict) -> dict | None:
    """An optimization profile (name -> (min, opt, max)) for a subgraph's ``inputs``
    (``(name, shape)`` pairs; shape: ints, strings for symbolic dims, or None) from the
    session's declared shape ranges (name -> object with ``min``/``opt``/``max``). Static
    inputs get (s, s, s). None when a dynamic input has no declared range, or its range does
    not fit the input's rank or fixed dims."""
    spec = {}
    for name, shape in inputs:
        static = shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)
        rng = ranges.get(name)
        if rng is None:
            if not static:
                return None
            s = tuple(int(d) for d in shape)
            spec[name] = (s, s, s)
            continue
        lo, mid, hi = (tuple(int(d) for d in x) for x in (rng.min, rng.opt, rng.max))
        if shape is not None:
            if len(shape) != len(lo):
                return None
            fixed = [(i, d) for i, d in enumerate(shape) if isinstance(d, int) and d >= 0]
            if any(not lo[i] <= d <= hi[i] for i, d in fixed):
                return None
            # A fixed dim of the subgraph must be exact in the profile.
            lo, mid, hi = (tuple(shape[i] if isinstance(shape[i], int) and shape[i] >= 0
                                 else x[i] for i in range(len(x))) for x in (lo, mid, hi))
        spec[name] = (lo, mid, hi)
    return spec


def precision_tag(fp16: bool, int8: bool) -> str:
    return "+".join(p for p, on in (("fp32", True), ("fp16", fp16), ("int8", int8)) if on)


def engine_cache_key(subgraph_bytes: bytes, input_shapes: dict, precision: str,
                     trt_version: str, gpu_name: str) -> str:
    """Hex SHA-256 of everything that decides the engine. ``input_shapes``: name -> shape
    tuple, or name -> (min, opt, max) for profiles; order-insensitive."""
    h = hashlib.sha256()

    def put(tag: str, data: bytes) -> None:
        # Length-prefixed fields: no two different inputs hash the same byte stream.
        h.update(tag.encode())
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    put("graph", bytes(subgraph_bytes))
    shapes = ";".join(f"{n}={_shape_text(s)}" for n, s in sorted(input_shapes.items()))
    put("shapes", shapes.encode())
    put("precision", precision.encode())
    put("trt", str(trt_version).encode())
    put("gpu", str(gpu_name).encode())
    return h.hexdigest()


def _shape_text(s) -> str:
    if s and isinstance(s[0], (tuple, list)):
        return "/".join(_shape_text(p) for p in s)
    return "x".join(str(int(d)) for d in s) if s else "scalar"


def engine_file_name(key: str) -> str:
    return f"ferry_trt_{key[:40]}.engine"


def timing_cache_file_name(trt_version: str, gpu_name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{trt_version}_{gpu_name}")
    return f"ferry_trt_timing_{safe}.cache"
