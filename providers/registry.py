"""Provider names -> provider classes.

Built-in providers are imported lazily (an optional dependency missing never breaks
``import runtime``). Third-party providers register under the ``ferry.providers`` entry-point
group; names are matched case-insensitively and ORT's names are aliases of ours.
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata

from runtime.errors import ProviderOptionError, suggest

log = logging.getLogger("ferry")

ENTRY_POINT_GROUP = "ferry.providers"

# short name -> (module:class, ORT name), in ORT's priority order
_BUILTIN: dict[str, tuple[str, str]] = {
    "tensorrt": ("providers.tensorrt.provider:TensorRTProvider", "TensorrtExecutionProvider"),
    "cuda": ("providers.cuda.provider:CUDAProvider", "CUDAExecutionProvider"),
    "openvino": ("providers.openvino.provider:OpenVINOProvider", "OpenVINOExecutionProvider"),
    "cpu": ("providers.cpu.provider:CPUProvider", "CPUExecutionProvider"),
}

_extra: dict[str, object] = {}  # name -> class, registered at run time (tests, plugins)
_entry_points_loaded = False


def register_provider(cls, name: str | None = None) -> None:
    """Make a provider class available under its name (and ORT name) at run time."""
    _extra[(name or cls.name).lower()] = cls


def unregister_provider(name: str) -> None:
    _extra.pop(name.lower(), None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken distribution's metadata must not break sessions
        return
    for ep in eps:
        if ep.name.lower() in _BUILTIN or ep.name.lower() in _extra:
            continue
        try:
            _extra[ep.name.lower()] = ep.load()
        except Exception as exc:
            log.warning("provider plugin '%s' (%s) failed to load: %s", ep.name, ep.value, exc)


def _import(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def canonical_name(name: str) -> str:
    """'CPUExecutionProvider' / 'CPU' / 'cpu' -> 'cpu'. Unknown names raise with suggestions."""
    if not isinstance(name, str):
        raise ProviderOptionError(f"a provider name must be a string, got {name!r}")
    _load_entry_points()
    low = name.strip().lower()
    if low in _BUILTIN or low in _extra:
        return low
    for short, (_, ort) in _BUILTIN.items():
        if low == ort.lower():
            return short
    for short, cls in _extra.items():
        if low == str(getattr(cls, "ort_name", "")).lower():
            return short
    choices = all_provider_names() + [ort for _, ort in _BUILTIN.values()]
    raise ProviderOptionError(
        f"unknown execution provider '{name}'{suggest(name, choices)}; "
        f"known providers: {', '.join(all_provider_names())}")


def provider_class(name: str):
    short = canonical_name(name)
    if short in _extra:
        return _extra[short]
    return _import(_BUILTIN[short][0])


def all_provider_names() -> list[str]:
    _load_entry_points()
    return list(_BUILTIN) + [n for n in _extra if n not in _BUILTIN]


def ort_name(short: str) -> str:
    if short in _BUILTIN:
        return _BUILTIN[short][1]
    return getattr(_extra.get(short), "ort_name", "") or short


def availability(name: str) -> tuple[bool, str]:
    """(available, reason) for a provider name, never raising for optional libraries."""
    try:
        cls = provider_class(name)
    except ProviderOptionError:
        raise
    except Exception as exc:
        return False, f"cannot import the provider: {exc}"
    try:
        return cls.availability()
    except Exception as exc:
        return False, f"availability check failed: {exc}"


def available_providers() -> list[str]:
    return [n for n in all_provider_names() if availability(n)[0]]
