"""One hierarchy of typed errors, with onnxruntime's categories.

Every error ferry raises on purpose derives from :class:`FerryError`. The subclasses mirror
onnxruntime's status codes so that code written against ORT's exception names keeps working:
``InvalidArgument``, ``InvalidGraph``, ``NoSuchFile``, ``NotImplemented``, ``Fail``,
``RuntimeException``. Several also derive from the matching Python built-in (``ValueError``,
``FileNotFoundError``, ``NotImplementedError``) so that generic handlers catch them too.
"""

from __future__ import annotations


class FerryError(Exception):
    """Base of every error raised by ferry."""

    code = "FAIL"


class Fail(FerryError):
    """Generic failure (ORT: FAIL)."""

    code = "FAIL"


class InvalidArgument(FerryError, ValueError):
    """A caller-supplied argument is wrong: input name, dtype, shape, option (ORT: INVALID_ARGUMENT)."""

    code = "INVALID_ARGUMENT"


class InvalidGraph(FerryError, ValueError):
    """The model is malformed: cycles, dangling names, bad protobuf (ORT: INVALID_GRAPH)."""

    code = "INVALID_GRAPH"


class InvalidProtobuf(InvalidGraph):
    """The model bytes do not parse as an ONNX ModelProto (ORT: INVALID_PROTOBUF)."""

    code = "INVALID_PROTOBUF"


class NoSuchFile(FerryError, FileNotFoundError):
    """A model or external-data file does not exist (ORT: NO_SUCHFILE)."""

    code = "NO_SUCHFILE"


class NotImplemented(FerryError, NotImplementedError):  # noqa: A001 - ORT's name, on purpose
    """No provider can run an op, or a feature is not implemented (ORT: NOT_IMPLEMENTED)."""

    code = "NOT_IMPLEMENTED"


class RuntimeException(FerryError, RuntimeError):
    """A failure while running a model: a kernel error, a cancelled run (ORT: RUNTIME_EXCEPTION)."""

    code = "RUNTIME_EXCEPTION"


class ProviderUnavailable(Fail):
    """An execution provider cannot be used on this machine (missing library, no device)."""


class ProviderOptionError(InvalidArgument):
    """An unknown provider name, option or option value; never a reason to fall back."""


class UnsafeModel(InvalidGraph):
    """The model asks for something we refuse: external data outside its folder, absurd sizes."""


class MemoryLimitExceeded(RuntimeException):
    """A tensor would exceed the configured memory cap; raised before allocating."""


class RunCancelled(RuntimeException):
    """RunOptions.terminate was set while the run was in progress."""


def suggest(name: str, choices) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    import difflib

    choices = [str(c) for c in choices]
    same_case = [c for c in choices if c.lower() == str(name).lower()]
    close = same_case or difflib.get_close_matches(str(name), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
