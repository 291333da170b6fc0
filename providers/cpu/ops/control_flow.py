"""Control flow: If, Loop, Scan. Bodies run through ``_ctx.run_subgraph(graph, feeds)``,
which binds the body's inputs by name (``graph.input_names``) and resolves outer-scope
values; it returns the body's outputs in ``graph.output_names`` order.

Values are numpy arrays, python lists (sequences) or None (empty optionals); loop-carried
values and If outputs may be any of them (opset 13 added sequences, 16 optionals). Scan
outputs must be tensors.
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import register


def _truth(value, what: str) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{what} must hold exactly one element, got shape {arr.shape}")
    return bool(arr.reshape(-1)[0])


def _scalar_like(info, value, dtype) -> np.ndarray:
    """A scalar for a body input declared as [] or [1] (rank taken from the body, as
    onnxruntime does)."""
    rank1 = info is not None and info.shape is not None and len(info.shape) == 1
    return np.full((1,) if rank1 else (), value, dtype=dtype)


def _empty_scan_output(info) -> np.ndarray:
    """Zero iterations: an empty tensor [0, *dims] of the body output's declared type;
    unknown dims count as 0 and an unknown shape gives [0]."""
    dtype = info.dtype if info is not None and info.elem_type else np.dtype(np.float32)
    dims = () if info is None or info.shape is None else tuple(
        d if isinstance(d, int) and d >= 0 else 0 for d in info.shape)
    return np.zeros((0,) + dims, dtype=dtype)


def _stack(per_iteration: list, what: str) -> np.ndarray:
    arrays = []
    for v in per_iteration:
        if v is None or isinstance(v, list):
            raise ValueError(f"{what}: scan outputs must be tensors")
        arrays.append(np.asarray(v))
    shape, dtype = arrays[0].shape, arrays[0].dtype
    for a in arrays[1:]:
        if a.shape != shape or a.dtype != dtype:
            raise ValueError(f"{what}: scan output changes from {shape} {dtype} to "
                             f"{a.shape} {a.dtype} across iterations")
    return np.stack(arrays, axis=0)


def _run(ctx, graph, feeds: dict) -> list:
    if ctx is None or ctx.run_subgraph is None:
        raise RuntimeError("control-flow ops need a context with run_subgraph")
    return list(ctx.run_subgraph(graph, feeds))


# --------------------------------------------------------------------------------------------
# If


@register("If", since=1, dynamic_shape=True)
def if_op(cond, *, then_branch=None, else_branch=None, _ctx=None):
    """Run then_branch or else_branch; their outputs are the node's outputs."""
    branch = then_branch if _truth(cond, "If condition") else else_branch
    return _run(_ctx, branch, {})


# --------------------------------------------------------------------------------------------
# Loop


@register("Loop", since=1, dynamic_shape=True)
def loop(m=None, cond=None, *v_initial, body=None, _ctx=None):
    """for (i = 0; (M absent or i < M) and cond; ++i) { cond, v... = body(i, cond, v...) }.
    Returns the final loop-carried values, then every scan output stacked on a new axis 0."""
    names = body.input_names
    n_carried = len(v_initial)
    if len(names) != 2 + n_carried:
        raise ValueError(f"Loop body takes {len(names)} inputs; expected 2 + {n_carried}")
    n_scan = len(body.output_names) - 1 - n_carried
    if n_scan < 0:
        raise ValueError("Loop body must output the condition and every loop-carried value")
    max_trip = None if m is None else int(np.asarray(m).reshape(-1)[0])
    keep_going = True if cond is None else _truth(cond, "Loop cond")
    carried = list(v_initial)
    scans: list[list] = [[] for _ in range(n_scan)]
    i = 0
    while keep_going and (max_trip is None or i < max_trip):
        feeds = {names[0]: _scalar_like(body.inputs[0], i, np.int64),
                 names[1]: _scalar_like(body.inputs[1], keep_going, np.bool_)}
        feeds.update(zip(names[2:], carried))
        outs = _run(_ctx, body, feeds)
        keep_going = _truth(outs[0], "Loop body condition")
        carried = outs[1:1 + n_carried]
        for k in range(n_scan):
            scans[k].append(outs[1 + n_carried + k])
        i += 1
    results = list(carried)
    for k in range(n_scan):
        if scans[k]:
            results.append(_stack(scans[k], "Loop"))
        else:
            results.append(_empty_scan_output(body.outputs[1 + n_carried + k]))
    return results


# --------------------------------------------------------------------------------------------
# Scan


def _norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


@register("Scan", since=9, dynamic_shape=True)
def scan(*inputs, body=None, num_scan_inputs=None, scan_input_axes=None,
         scan_input_directions=None, scan_output_axes=None, scan_output_directions=None,
         _ctx=None):
    """Scan 9+: N state variables then M scan inputs, each sliced along its scan axis
    (reversed for direction 1). Scan outputs are stacked along their output axis (in
    reverse iteration order for direction 1)."""
    m = int(num_scan_inputs)
    n = len(inputs) - m
    if n < 0:
        raise ValueError("Scan has fewer inputs than num_scan_inputs")
    states = list(inputs[:n])
    scan_in = [np.asarray(x) for x in inputs[n:]]
    in_axes = [_norm_axis(int(a), x.ndim) for a, x in
               zip(scan_input_axes or [0] * m, scan_in)]
    in_dirs = list(scan_input_directions or [0] * m)
    lengths = {x.shape[a] for x, a in zip(scan_in, in_axes)}
    if len(lengths) > 1:
        raise ValueError(f"Scan inputs disagree on the sequence length: {sorted(lengths)}")
    seq_len = lengths.pop() if lengths else 0
    k = len(body.output_names) - n
    names = body.input_names
    if len(names) != n + m or k < 0:
        raise ValueError(f"Scan body takes {len(names)} inputs and gives "
                         f"{len(body.output_names)} outputs for {n} states and {m} scan inputs")
    out_dirs = list(scan_output_directions or [0] * k)
    per_iter: list[list] = [[] for _ in range(k)]
    for t in range(seq_len):
        feeds = dict(zip(names[:n], states))
        for j, (x, axis) in enumerate(zip(scan_in, in_axes)):
            pos = seq_len - 1 - t if in_dirs[j] else t
            feeds[names[n + j]] = np.take(x, pos, axis=axis)
        outs = _run(_ctx, body, feeds)
        states = outs[:n]
        for j in range(k):
            per_iter[j].append(outs[n + j])
    results = list(states)
    for j in range(k):
        if per_iter[j]:
            values = per_iter[j][::-1] if out_dirs[j] else per_iter[j]
            stacked = _stack(values, "Scan")
        else:
            stacked = _empty_scan_output(body.outputs[n + j])
        axis = int(scan_output_axes[j]) if scan_output_axes else 0
        axis = _norm_axis(axis, stacked.ndim)
        results.append(np.moveaxis(stacked, 0, axis) if axis else stacked)
    return results


@register("Scan", since=8, dynamic_shape=True)
def scan_8(sequence_lens=None, *inputs, body=None, num_scan_inputs=None, directions=None,
           _ctx=None):
    """Scan 8: every input has a leading batch axis; scan inputs are [batch, seq, ...].
    Each batch row runs separately for its sequence_lens entry; scan outputs are
    [batch, max_seq, ...] with the steps past a row's length left as zeros."""
    m = int(num_scan_inputs)
    n = len(inputs) - m
    states_in = [np.asarray(s) for s in inputs[:n]]
    scan_in = [np.asarray(x) for x in inputs[n:]]
    dirs = list(directions or [0] * m)
    batch = (scan_in[0] if scan_in else states_in[0]).shape[0]
    max_seq = scan_in[0].shape[1] if scan_in else 0
    if sequence_lens is None or np.asarray(sequence_lens).size == 0:
        lens = np.full(batch, max_seq, np.int64)
    else:
        lens = np.asarray(sequence_lens).astype(np.int64).reshape(-1)
    if (lens < 0).any() or (lens > max_seq).any():
        raise ValueError("Scan sequence_lens must be in [0, sequence length]")
    k = len(body.output_names) - n
    names = body.input_names
    if len(names) != n + m or k < 0:
        raise ValueError(f"Scan body takes {len(names)} inputs and gives "
                         f"{len(body.output_names)} outputs for {n} states and {m} scan inputs")
    final_states: list[list] = [[] for _ in range(n)]
    outputs: list[list] = [[] for _ in range(k)]
    for b in range(batch):
        states = [s[b] for s in states_in]
        length = int(lens[b])
        steps: list[list] = [[] for _ in range(k)]
        for t in range(length):
            feeds = dict(zip(names[:n], states))
            for j, x in enumerate(scan_in):
                feeds[names[n + j]] = x[b, length - 1 - t if dirs[j] else t]
            outs = _run(_ctx, body, feeds)
            states = outs[:n]
            for j in range(k):
                steps[j].append(outs[n + j])
        for i in range(n):
            final_states[i].append(np.asarray(states[i]))
        for j in range(k):
            outputs[j].append(steps[j])
    results = [np.stack(s, axis=0) for s in final_states]
    for j in range(k):
        template = next((s[0] for s in outputs[j] if s), None)
        if template is None:
            empty = _empty_scan_output(body.outputs[n + j])
            results.append(np.zeros((batch, max_seq) + empty.shape[1:], empty.dtype))
            continue
        template = np.asarray(template)
        out = np.zeros((batch, max_seq) + template.shape, template.dtype)
        for b in range(batch):
            if outputs[j][b]:
                out[b, :len(outputs[j][b])] = _stack(outputs[j][b], "Scan")
        results.append(out)
    return results
