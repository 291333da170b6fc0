"""The ferry command line: run and inspect on small models, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from runtime import cli
from tests.conftest import ROOT


def test_run_builtin_prints_outputs_and_timing(capsys):
    assert cli.main(["run", "--builtin", "light_squeezenet", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "output" in out and "median" in out and "CPUExecutionProvider" in out


def test_run_profile_nodes_prints_the_slowest_plan_steps(capsys):
    assert cli.main(["run", "--builtin", "light_squeezenet", "--repeat", "2",
                     "--profile-nodes", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.split("per node, mean of 2 runs, slowest first:")[1].strip().splitlines()
    assert len(lines) == 3 and all(" us " in ln for ln in lines)
    times = [float(ln.split()[0]) for ln in lines]
    assert times == sorted(times, reverse=True)


def test_run_with_input_file_and_dims(tmp_path, chain_model, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(chain_model, path)
    np.save(tmp_path / "x.npy", np.ones((3, 4), np.float32))
    assert cli.main(["run", str(path), "--input", f"x={tmp_path / 'x.npy'}", "--repeat", "0"]) == 0
    assert "x: float32[3, 4]" in capsys.readouterr().out
    assert cli.main(["run", str(path), "--dim", "N=5", "--repeat", "0"]) == 0
    assert "x: float32[5, 4]" in capsys.readouterr().out


def test_inspect_json(tmp_path, chain_model, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(chain_model, path)
    assert cli.main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [n["op"] for n in info["nodes"]] == ["Add", "Relu", "Mul"]
    assert info["opsets"] == {"": 17}


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    assert cli.main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ferry: InvalidProtobuf")


def test_module_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "runtime", "run", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "examples:" in r.stdout


# ---- helpers for the commands added with bench/compare ----------------------------------------

def _save(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


def _static_model():
    from onnx import TensorProto, helper

    from tests.conftest import make_model

    return make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                      [("x", TensorProto.FLOAT, [2, 3])], [("y", TensorProto.FLOAT, [2, 3])])


def test_every_command_has_help_with_examples():
    for command in ("run", "bench", "inspect", "compare"):
        parser = cli.build_parser()
        sub = parser._subparsers._group_actions[0].choices[command]
        text = sub.format_help()
        assert "examples:" in text and f"ferry {command}" in text


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--warmup", "lots"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid int value" in err[0] and "--help" in err[0]


@pytest.mark.parametrize("argv,needle", [
    (["run", "missing.onnx"], "does not exist"),
    (["bench"], "give at least one MODEL"),
    (["inspect", "--builtin", "no_such_model"], "no built-in model"),
])
def test_command_errors_are_one_line_and_nonzero(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and err[0].startswith("ferry: ")


def test_run_rejects_unknown_dim_and_input(tmp_path, chain_model, capsys):
    path = _save(tmp_path, chain_model)
    assert cli.main(["run", path, "--dim", "Q=3"]) == 2
    assert "--dim symbols not in the model's inputs: Q; symbols: N" in capsys.readouterr().err
    np.save(tmp_path / "z.npy", np.ones(2, np.float32))
    assert cli.main(["run", path, "--input", f"z={tmp_path / 'z.npy'}"]) == 2
    assert "--input names not in the model: z" in capsys.readouterr().err


def test_run_prints_p90_and_providers(tmp_path, chain_model, capsys):
    path = _save(tmp_path, chain_model)
    assert cli.main(["run", path, "--repeat", "3", "--providers", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "p90" in out and "output     y: float32[1, 4]" in out


def test_bench_writes_json_markdown_and_plots(tmp_path, chain_model, capsys):
    path = _save(tmp_path, chain_model)
    out_dir = tmp_path / "out"
    assert cli.main(["bench", path, "--batch", "1,4", "--duration", "0.2", "--warmup", "1",
                     "--min-runs", "2", "--threads", "1", "--out", str(out_dir)]) == 0
    captured = capsys.readouterr()
    assert "ferry bench: [2/2]" in captured.err  # the progress (not a terminal: one line a step)
    report = json.loads((out_dir / "bench.json").read_text())
    assert set(report) >= {"machine", "settings", "results", "notes", "created",
                           "process_peak_rss_mb"}
    machine = report["machine"]
    assert machine["cpu_model"] and machine["ferry_isa"] and "gpu" in machine
    assert [r["batch"] for r in report["results"]] == [1, 4]
    for row in report["results"]:
        assert row["inputs"] == {"x": [row["batch"], 4]} and row["threads"] == 1
        for name in ("ferry", "onnxruntime"):
            m = row["runtimes"][name]
            assert m["runs"] >= 2 and m["min_ms"] <= m["median_ms"] <= m["p90_ms"]
            assert m["throughput_per_s"] == pytest.approx(row["batch"] / m["median_ms"] * 1e3)
            assert m["create_ms"] > 0 and m["peak_rss_delta_mb"] >= 0
        # measured side by side: as many runs each (interleaved rounds)
        assert row["runtimes"]["ferry"]["runs"] == row["runtimes"]["onnxruntime"]["runs"]
        assert row["ratios"]["onnxruntime"] == pytest.approx(
            row["runtimes"]["ferry"]["median_ms"] / row["runtimes"]["onnxruntime"]["median_ms"])
    md = (out_dir / "bench.md").read_text()
    assert "| m | 1 | 4 |" in md and "ratio ferry/onnxruntime" in md
    if cli._has_matplotlib():
        assert (out_dir / "latency.png").stat().st_size > 0
        assert (out_dir / "ratio.png").stat().st_size > 0
    else:
        assert "plots skipped" in md


def test_bench_static_batch_gives_a_clear_note(tmp_path, capsys):
    path = _save(tmp_path, _static_model(), "static.onnx")
    assert cli.main(["bench", path, "--batch", "8", "--duration", "0", "--min-runs", "1",
                     "--warmup", "0", "--baseline", "none", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "static (x: 2); batch 8 cannot apply, measuring batch 2 instead" in captured.err
    assert "| static | auto | 2 |" in captured.out


def test_bench_api_and_unavailable_baseline(tmp_path, chain_model, monkeypatch):
    path = _save(tmp_path, chain_model)

    # a baseline that cannot load is a note and an error entry, never a crash of the whole run
    monkeypatch.setitem(cli.BASELINES, "openvino", lambda threads: _Failing(threads))
    report = cli.bench([path], cli.BenchSettings(baselines=["openvino"], duration=0.0,
                                                 min_runs=1, warmup=0), progress=False,
                       quiet=True)
    row = report["results"][0]
    assert "error" in row["runtimes"]["openvino"] and row["ratios"] == {}
    assert "median_ms" in row["runtimes"]["ferry"]
    assert any("openvino failed" in n for n in report["notes"])
    assert "| m |" in cli.bench_markdown(report)


class _Failing(cli.Runner):
    name = "openvino"

    def __init__(self, threads):
        pass

    def create(self, path):
        raise RuntimeError("the device fell off")


def test_inspect_text_shows_providers_reasons_and_memory(tmp_path, chain_model, capsys):
    path = _save(tmp_path, chain_model)
    assert cli.main(["inspect", path, "--dim", "N=3"]) == 0
    out = capsys.readouterr().out
    assert "input      x: tensor(float) ['N', 4]" in out
    assert "ops        Add×1, Relu×1, Mul×1" in out or "ops        " in out
    assert "-> cpu" in out and "memory     " in out
    assert "nodes 3 -> " in out


def test_inspect_json_fields(tmp_path, chain_model, capsys):
    path = _save(tmp_path, chain_model)
    assert cli.main(["inspect", path, "--json", "--providers", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("opsets", "ops", "inputs", "outputs", "nodes", "partitions", "memory",
                "optimizations_applied", "nodes_before_optimization",
                "nodes_after_optimization", "not_run_by_first_provider"):
        assert key in info
    assert info["ops"] == {"Add": 1, "Relu": 1, "Mul": 1}
    assert info["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": ["N", 4]}]
    assert set(info["memory"]) >= {"planned_arena_bytes", "naive_bytes", "plans"}
    assert all(n["provider"] == "cpu" and n["reason"] for n in info["nodes"])


def test_inspect_lists_unsupported_ops(tmp_path, capsys):
    from onnx import TensorProto, helper

    from tests.conftest import make_model

    node = helper.make_node("FancyOp", ["x"], ["y"], name="fancy", domain="my.domain")
    model = make_model([node], [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])],
                       extra_opsets=[("my.domain", 1)])
    path = _save(tmp_path, model)
    assert cli.main(["inspect", path]) == 1
    out = capsys.readouterr().out
    assert "unsupported 1 node(s)" in out and "my.domain::FancyOp" in out


def test_inspect_reports_fallback_from_the_first_provider(tmp_path, chain_model, capsys):
    import warnings

    path = _save(tmp_path, chain_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(["inspect", path, "--providers", "cuda,cpu"]) == 0
    out = capsys.readouterr().out
    assert "provider   cuda unavailable" in out
    assert "not on cuda (fell back):" in out


def test_progress_bar_redraws_in_place_on_a_terminal():
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = cli.Progress(4, stream=stream)
    bar.update("model a", 0.5, force=True)
    bar.step("model a done")
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r[") and "12%" in text and "25%" in text and text.endswith("\n")
    assert "\n" not in text[:-1]  # one line, redrawn


def _load_benchmark(name):
    import importlib.util
    import os
    import sys

    spec = importlib.util.spec_from_file_location(f"_ferry_{name}",
                                                  os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_zoo_resolves_light_models_and_notes_missing_exports(tmp_path):
    zoo = _load_benchmark("zoo")
    got = {n: (p, note) for n, p, note in zoo.resolve(["light_squeezenet", "bert_base"],
                                                     str(tmp_path), build=False)}
    assert got["light_squeezenet"][0].endswith("light_squeezenet.onnx")
    assert got["bert_base"][0] is None and "not exported yet" in got["bert_base"][1]
    with pytest.raises(ValueError):
        zoo.resolve(["no_such_model"], str(tmp_path), build=False)


def test_suite_writes_latest_markdown_and_json(tmp_path, capsys):
    suite = _load_benchmark("suite")
    assert suite.main(["--models", "light_squeezenet,bert_base", "--no-export",
                       "--cache", str(tmp_path / "zoo"), "--threads", "1", "--duration",
                       "0", "--min-runs", "1", "--warmup", "0", "--quiet",
                       "--out", str(tmp_path)]) == 0
    md = (tmp_path / "latest.md").read_text()
    assert "| light_squeezenet | 1 | 1 |" in md and "bert_base: skipped" in md
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["zoo"]["bert_base"]["path"] is None
    assert report["results"][0]["ratios"]["onnxruntime"] > 0
