"""Sequence and optional ops. A sequence is a python list of arrays (never mutated in place:
every op returns a new list); an empty optional is None.

A compute function's list or tuple result is read as one value per output, so every op here
returns its single output wrapped in a 1-tuple (the value itself may be a list)."""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import register


def _position(position, length: int, inclusive_end: bool) -> int:
    """A position in [-length, length) (or up to ``length`` when inserting), made >= 0."""
    p = np.asarray(position)
    if p.size != 1:
        raise ValueError(f"position must be a scalar, got shape {p.shape}")
    p = int(p.reshape(-1)[0])
    high = length if inclusive_end else length - 1
    if not -length <= p <= high:
        raise IndexError(f"position {p} is out of range for a sequence of length {length}")
    return p + length if p < 0 else p


def _check_sequence(seq) -> list:
    if not isinstance(seq, list):
        raise TypeError(f"expected a sequence, got {type(seq).__name__}")
    return seq


@register("SequenceEmpty", since=11, dynamic_shape=True)
def sequence_empty(*, dtype=1):
    """An empty sequence; a python list carries no element type, so ``dtype`` is unused."""
    return ([],)


@register("SequenceConstruct", since=11, dynamic_shape=True)
def sequence_construct(*inputs):
    return ([np.asarray(x) for x in inputs],)


@register("SequenceInsert", since=11, dynamic_shape=True)
def sequence_insert(seq, tensor, position=None):
    """Inserts at ``position`` (default: the end)."""
    out = list(_check_sequence(seq))
    if position is None:
        out.append(np.asarray(tensor))
    else:
        out.insert(_position(position, len(out), True), np.asarray(tensor))
    return (out,)


@register("SequenceAt", since=11, dynamic_shape=True)
def sequence_at(seq, position):
    seq = _check_sequence(seq)
    return (seq[_position(position, len(seq), False)],)


@register("SequenceErase", since=11, dynamic_shape=True)
def sequence_erase(seq, position=None):
    """Removes the tensor at ``position`` (default: the last)."""
    out = list(_check_sequence(seq))
    if not out:
        raise IndexError("SequenceErase on an empty sequence")
    pos = len(out) - 1 if position is None else _position(position, len(out), False)
    del out[pos]
    return (out,)


@register("SequenceLength", since=11, dynamic_shape=True)
def sequence_length(seq):
    return np.asarray(len(_check_sequence(seq)), dtype=np.int64)


@register("SplitToSequence", since=11, dynamic_shape=True)
def split_to_sequence(x, split=None, *, axis=0, keepdims=1):
    """No ``split``: pieces of size 1 (squeezed unless keepdims). A scalar ``split``: chunks
    of that size, the last one possibly shorter. A 1-D ``split``: the chunk lengths."""
    x = np.asarray(x)
    axis = int(axis)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for rank {x.ndim}")
    axis += x.ndim if axis < 0 else 0
    dim = x.shape[axis]
    if split is None:
        pieces = np.split(x, dim, axis=axis) if dim else []
        return ([p if keepdims else np.squeeze(p, axis=axis) for p in pieces],)
    split = np.asarray(split).astype(np.int64)
    if split.ndim == 0:
        size = int(split)
        if size <= 0:
            raise ValueError(f"split size must be positive, got {size}")
        lengths = [size] * (dim // size) + ([dim % size] if dim % size else [])
    else:
        lengths = split.tolist()
        if any(n < 0 for n in lengths) or sum(lengths) != dim:
            raise ValueError(f"split lengths {lengths} do not add up to {dim}")
    bounds = np.cumsum([0] + lengths)
    return ([np.take(x, np.arange(bounds[i], bounds[i + 1]), axis=axis)
             for i in range(len(lengths))],)


@register("ConcatFromSequence", since=11, dynamic_shape=True)
def concat_from_sequence(seq, *, axis=None, new_axis=0):
    """Concatenates along ``axis``, or stacks along a new one when ``new_axis`` is 1 (then
    ``axis`` may also be -rank-1 .. rank)."""
    seq = _check_sequence(seq)
    if axis is None:
        raise ValueError("ConcatFromSequence needs the 'axis' attribute")
    if not seq:
        raise ValueError("ConcatFromSequence of an empty sequence")
    rank = np.ndim(seq[0]) + (1 if new_axis else 0)
    axis = int(axis)
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    if new_axis:
        return np.stack(seq, axis=axis)
    return np.concatenate(seq, axis=axis)


@register("Optional", since=15, dynamic_shape=True)
def optional(x=None, *, type=None):
    """The input as an optional; absent, an empty one (None, whatever ``type`` says)."""
    return (x,)


@register("OptionalHasElement", since=15, dynamic_shape=True)
def optional_has_element(x=None):
    """True for a present value; from opset 18 the input may also be left absent."""
    return np.asarray(x is not None)


@register("OptionalGetElement", since=15, dynamic_shape=True)
def optional_get_element(x):
    """The optional's value (from opset 18 a plain tensor or sequence passes through)."""
    if x is None:
        raise ValueError("OptionalGetElement of an empty optional")
    return (x,)


@register("SequenceMap", since=17, dynamic_shape=True)
def sequence_map(seq, *additional, body=None, _ctx=None):
    """Runs ``body`` once per element of ``seq``: its i-th input is the i-th node input, taken
    element by element when it is a sequence (all of the same length) and whole when it is a
    tensor. Each body output is collected into one output sequence."""
    if body is None:
        raise ValueError("SequenceMap needs the 'body' attribute")
    if _ctx is None or _ctx.run_subgraph is None:
        raise RuntimeError("SequenceMap needs a context with run_subgraph")
    seq = _check_sequence(seq)
    inputs = [seq] + list(additional)
    names = body.input_names
    if len(names) != len(inputs):
        raise ValueError(f"SequenceMap body takes {len(names)} inputs; the node has "
                         f"{len(inputs)}")
    for v in inputs:
        if isinstance(v, list) and len(v) != len(seq):
            raise ValueError(f"SequenceMap: sequences of lengths {len(seq)} and {len(v)}")
    outputs: list[list] = [[] for _ in body.output_names]
    for i in range(len(seq)):
        feeds = {name: (v[i] if isinstance(v, list) else v) for name, v in zip(names, inputs)}
        outs = _ctx.run_subgraph(body, feeds)
        for k, value in enumerate(outs):
            outputs[k].append(np.asarray(value))
    return tuple(outputs)
