"""Test helpers: run the CPU provider's numpy ops on the onnx node conformance cases and on
single-node models compared with onnxruntime.

``run_graph`` is a tiny, test-only interpreter: it runs a graph's nodes in order with the
implementations from providers.cpu.opset, and gives control-flow ops a ``run_subgraph`` that
interprets their bodies the same way (outer-scope values visible). Nodes of a body whose op
has no ferry implementation yet run on the onnx reference evaluator, so that control-flow
tests do not depend on other op families being finished.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import helper

from providers.cpu import opset
from runtime import ir


@functools.lru_cache(maxsize=1)
def _all_cases():
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(collect_testcases(None))


def node_cases(op_types) -> list:
    """The onnx node test cases whose graph contains one of ``op_types`` at top level."""
    op_types = set(op_types)
    out = []
    for case in _all_cases():
        if case.model is None:
            continue
        if "_expanded" in case.name:  # function bodies of other ops' families
            continue
        if any(n.op_type in op_types and n.domain in ("", "ai.onnx")
               for n in case.model.graph.node):
            out.append(case)
    return out


def _model_opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}


def _reference_node(node: ir.Node, inputs: list, opset_version: int):
    """Run one node on onnx's reference evaluator (fallback for ops not written yet)."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if n else "" for i, n in enumerate(node.inputs)]
    outs = [f"out{i}" for i in range(len(node.outputs))]
    proto = helper.make_node(node.op_type, names, outs, domain=node.domain or None)
    proto.attribute.extend(ir.make_attribute(k, v) for k, v in node.attrs.items())
    # A one-node model, so that the node's opset version is honoured.
    graph = helper.make_graph(
        [proto], "fallback", [onnx.ValueInfoProto(name=n) for n in names if n],
        [onnx.ValueInfoProto(name=o) for o in outs])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid(node.domain or "", opset_version)])
    ev = ReferenceEvaluator(model)
    feeds = {n: v for n, v in zip(names, inputs) if n}
    return ev.run(None, feeds)


def run_graph(graph: ir.Graph, feeds: dict, outer: dict | None = None,
              rng: np.random.Generator | None = None, fallback: bool = True) -> list:
    """Interpret ``graph`` with the registered numpy ops; returns its outputs in order."""
    env: dict = dict(outer or {})
    env.update(graph.initializers)
    env.update(feeds)
    rng = rng if rng is not None else np.random.default_rng(0)
    for node in graph.nodes:
        inputs = [env[n] if n else None for n in node.inputs]
        version = graph.opset(node.domain)
        impl = opset.get(node.op_type, node.domain, version)
        if impl is None:
            if not fallback:
                raise NotImplementedError(f"{node.op_type} (opset {version}) is not registered")
            outs = _reference_node(node, inputs, version)
        else:
            scope = env

            def run_subgraph(g, sub_feeds, _scope=scope):
                return run_graph(g, sub_feeds, _scope, rng, fallback)

            ctx = opset.OpContext(node_name=node.name, op_type=node.op_type,
                                  domain=node.domain, opset=version,
                                  num_outputs=len(node.outputs), run_subgraph=run_subgraph,
                                  outer_scope=env, rng=rng)
            outs = impl.call(inputs, impl.attrs_with_defaults(node.attrs), ctx)
        for name, value in zip(node.outputs, outs):
            if name:
                env[name] = value
    return [env[n] for n in graph.output_names]


def run_model(model: onnx.ModelProto, inputs, rng=None, fallback: bool = True) -> list:
    """Run a ModelProto; ``inputs`` is a list in graph-input order or a dict."""
    graph = ir.graph_from_onnx(model.graph, opsets=_model_opsets(model))
    if not isinstance(inputs, dict):
        names = [n for n in graph.input_names if n not in graph.initializers]
        inputs = dict(zip(names, inputs))
    return run_graph(graph, inputs, rng=rng, fallback=fallback)


def assert_value_close(expected, got, rtol=1e-5, atol=1e-7, where="output"):
    """Compare values of any runtime kind: tensor, sequence (list) or empty optional (None)."""
    if expected is None:
        assert got is None, f"{where}: expected an empty optional, got {type(got)}"
        return
    if isinstance(expected, list):
        assert isinstance(got, list), f"{where}: expected a sequence, got {type(got)}"
        assert len(expected) == len(got), f"{where}: sequence length {len(got)} != {len(expected)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_value_close(e, g, rtol, atol, f"{where}[{i}]")
        return
    expected = np.asarray(expected)
    assert isinstance(got, np.ndarray), f"{where}: expected an ndarray, got {type(got)}"
    assert got.dtype == expected.dtype, f"{where}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{where}: shape {got.shape} != {expected.shape}"
    if expected.dtype == object:
        assert got.tolist() == expected.tolist(), f"{where}: {got!r} != {expected!r}"
    elif (expected.dtype.kind in "iu" and atol < 1) or expected.dtype == bool:
        np.testing.assert_array_equal(got, expected, err_msg=where)
    elif expected.dtype.kind in "iu":  # integers compared with a tolerance of units
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64),
                                   rtol=0, atol=atol, err_msg=where)
    else:
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64),
                                   rtol=rtol, atol=atol, err_msg=where)


def _to_value(v):
    """Test data as runtime values (types numpy lacks come as TensorProto)."""
    if isinstance(v, onnx.TensorProto):
        return ir.tensor_to_numpy(v)
    if isinstance(v, list):
        return [_to_value(x) for x in v]
    return v


def check_case(case, fallback: bool = True):
    """Run one onnx node test case and compare every output."""
    for inputs, expected in case.data_sets:
        inputs = [_to_value(v) for v in inputs]
        expected = [_to_value(v) for v in expected]
        got = run_model(case.model, inputs, fallback=fallback)
        assert len(got) >= len(expected)
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_value_close(e, g, case.rtol, case.atol, f"{case.name} output {i}")


def ort_run(model: onnx.ModelProto, feeds: dict) -> list:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {k: np.asarray(v) for k, v in feeds.items()})


def _is_ml_dtype(value) -> bool:
    return np.asarray(value).dtype.type.__module__ == "ml_dtypes"


def _elem_type(value) -> int:
    return ir.numpy_dtype_to_onnx(np.asarray(value).dtype)


def single_node_model(op_type: str, inputs: dict, outputs: list[str], opset_version: int,
                      domain: str = "", output_types: dict | None = None, **attrs):
    """A model of one node. ``inputs`` maps names to values (None: absent optional input,
    left as ''); each becomes a graph input. Outputs are declared with unknown type unless
    ``output_types`` gives an elem_type."""
    in_names = [n if v is not None else "" for n, v in inputs.items()]
    node = helper.make_node(op_type, in_names, outputs, domain=domain or None, **attrs)
    # onnxruntime's Python API cannot feed ml_dtypes arrays (float8, int4...): those inputs
    # become initializers.
    g_inputs = [helper.make_tensor_value_info(n, _elem_type(v), np.asarray(v).shape)
                for n, v in inputs.items() if v is not None and not _is_ml_dtype(v)]
    inits = [ir.numpy_to_tensor(np.asarray(v), n) for n, v in inputs.items()
             if v is not None and _is_ml_dtype(v)]
    output_types = output_types or {}
    g_outputs = [helper.make_tensor_value_info(n, output_types.get(n, 0), None)
                 for n in outputs if n]
    graph = helper.make_graph([node], "single", g_inputs, g_outputs, initializer=inits)
    opsets = [helper.make_opsetid(domain, opset_version)]
    if domain:
        opsets.append(helper.make_opsetid("", 21))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = min(model.ir_version, 10)
    # Declare the outputs' types from onnx shape inference where the caller gave none.
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {vi.name: vi.type for vi in inferred.graph.output}
    for vi in model.graph.output:
        if vi.name not in output_types and vi.name in known:
            vi.type.CopyFrom(known[vi.name])
    return model


def compare_with_ort(op_type: str, inputs: dict, outputs: list[str], opset_version: int,
                     rtol=1e-5, atol=1e-6, output_types: dict | None = None, **attrs):
    """Run a single-node model on ferry's numpy op and on onnxruntime; compare outputs."""
    model = single_node_model(op_type, inputs, outputs, opset_version,
                              output_types=output_types, **attrs)
    feeds = {n: np.asarray(v) for n, v in inputs.items()
             if v is not None and not _is_ml_dtype(v)}
    expected = ort_run(model, feeds)
    got = run_model(model, feeds, fallback=False)
    for i, name in enumerate(n for n in outputs if n):
        exp = expected[i]
        if (_is_ml_dtype(got[i]) and isinstance(exp, np.ndarray)
                and exp.dtype.itemsize == got[i].dtype.itemsize):
            exp = exp.view(got[i].dtype)  # onnxruntime returns float8 as raw bytes
        assert_value_close(exp, got[i], rtol, atol, f"{op_type} {name}")
    return got


def compare_model_with_ort(model: onnx.ModelProto, feeds: dict, rtol=1e-5, atol=1e-6,
                           fallback: bool = True) -> list:
    """Run a whole model on onnxruntime and on the test interpreter; compare every output."""
    expected = ort_run(model, feeds)
    got = run_model(model, dict(feeds), fallback=fallback)
    assert len(got) == len(expected)
    for i, (e, g) in enumerate(zip(expected, got)):
        assert_value_close(e, g, rtol, atol, f"output {model.graph.output[i].name}")
    return got
