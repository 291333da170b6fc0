"""The ferry command line: run and inspect on small models, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx

from runtime import cli
from tests.conftest import ROOT


def test_run_builtin_prints_outputs_and_timing(capsys):
    assert cli.main(["run", "--builtin", "light_squeezenet", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "output" in out and "median" in out and "CPUExecutionProvider" in out


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
