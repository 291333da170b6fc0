"""The benchmark zoo: the onnx package's light models and randomly initialised, torch-exported
ResNet-50, MobileNetV2, EfficientNet-B0, ViT-B/16, BERT-base (seq 128) and GPT-2 small.

    python benchmarks/zoo.py --list                 # what exists, what is cached, what is missing
    python benchmarks/zoo.py resnet50 bert_base     # export these (once; then cached)
    python benchmarks/zoo.py --all --cache /data/zoo

Exported models live outside git, in ``~/.cache/ferry/zoo`` (or ``$FERRY_ZOO_CACHE``, or
``--cache DIR``). Weights are random with a fixed seed, so a model is the same file for every
machine with the same torch/transformers versions; nothing is downloaded. The architectures
come from ``transformers`` model classes built from their configurations (torchvision's CPU
wheels are not on PyPI for every torch build, and transformers covers all six models). Every
exported model has a symbolic leading (batch) dimension. Needs ``torch`` and ``transformers``
(``pip install torch transformers``); without them the exported models are skipped with a note
and the light models remain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SEED = 0
OPSET = 17
SEQ = 128

LIGHT = ["light_squeezenet", "light_resnet50", "light_densenet121", "light_inception_v2",
         "light_inception_v1", "light_shufflenet", "light_bvlc_alexnet", "light_zfnet512",
         "light_vgg19"]


def default_cache() -> str:
    return os.environ.get("FERRY_ZOO_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "ferry", "zoo")


def light_path(name: str) -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        name + ".onnx")


@dataclass
class Exported:
    """A torch model to export: how to build it and its example inputs."""

    name: str
    description: str
    build: Callable[[], tuple[Any, tuple, list[str], list[str]]]  # module, args, in, out names
    dims: dict[str, int]  # symbolic dims (besides batch) the bench should know


def _needs() -> str | None:
    """Why the exported models cannot be built here (None when they can)."""
    missing = []
    for mod in ("torch", "transformers"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        return (f"{' and '.join(missing)} not installed (pip install {' '.join(missing)}): "
                "the torch-exported models are skipped")
    return None


def _vision(config_cls: str, model_cls: str, fix: Callable | None = None, **config
            ) -> Callable:
    def build():
        import torch
        import transformers

        cfg = getattr(transformers, config_cls)(**config)
        model = getattr(transformers, model_cls)(cfg).eval()
        if fix is not None:
            fix(model)

        class Logits(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, pixel_values):
                return self.m(pixel_values=pixel_values).logits

        x = torch.randn(1, 3, 224, 224)
        return Logits(model), (x,), ["pixel_values"], ["logits"]
    return build


def _global_pool(model) -> None:
    """transformers' EfficientNet pools with AvgPool2d(1280, ceil_mode=True) over a 7x7 map: the
    same numbers as a global average (torchvision's choice), but an AveragePool whose kernel
    exceeds its input, which OpenVINO refuses. Use the global average pool."""
    import torch

    model.efficientnet.pooler = torch.nn.AdaptiveAvgPool2d(1)


def _bert():
    import torch
    import transformers

    cfg = transformers.BertConfig()  # bert-base-uncased's shape: 12 layers, 768 wide, 30522 words
    cfg._attn_implementation = "eager"
    model = transformers.BertModel(cfg, add_pooling_layer=False).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    ids = torch.randint(0, cfg.vocab_size, (1, SEQ))
    return (Hidden(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            ["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state"])


def _gpt2():
    import torch
    import transformers

    cfg = transformers.GPT2Config(use_cache=False)  # gpt2 small: 12 layers, 768 wide
    cfg._attn_implementation = "eager"
    model = transformers.GPT2LMHeadModel(cfg).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            # An explicit all-ones mask keeps transformers off its packed-sequence detection,
            # which uses an op (aten::diff) the ONNX exporter lacks.
            return self.m(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                          use_cache=False).logits

    ids = torch.randint(0, cfg.vocab_size, (1, SEQ))
    return Logits(model), (ids,), ["input_ids"], ["logits"]


EXPORTED: dict[str, Exported] = {e.name: e for e in [
    Exported("resnet50", "ResNet-50 (transformers ResNet, 1000 classes), 224x224",
             _vision("ResNetConfig", "ResNetForImageClassification", num_labels=1000), {}),
    Exported("mobilenet_v2", "MobileNetV2 1.0 (transformers), 224x224",
             _vision("MobileNetV2Config", "MobileNetV2ForImageClassification", num_labels=1000,
                     tf_padding=False), {}),
    Exported("efficientnet_b0", "EfficientNet-B0 (transformers), 224x224",
             _vision("EfficientNetConfig", "EfficientNetForImageClassification",
                     fix=_global_pool, width_coefficient=1.0, depth_coefficient=1.0, image_size=224,
                     dropout_rate=0.2, hidden_dim=1280, num_labels=1000), {}),
    Exported("vit_b16", "ViT-B/16 (transformers ViT), 224x224",
             _vision("ViTConfig", "ViTForImageClassification", num_labels=1000), {}),
    Exported("bert_base", f"BERT-base encoder, sequence {SEQ}", _bert, {}),
    Exported("gpt2_small", f"GPT-2 small with LM head, sequence {SEQ}, no KV cache", _gpt2, {}),
]}

ALL = LIGHT + list(EXPORTED)


def export(name: str, cache: str | None = None, force: bool = False) -> str:
    """Path of the exported model ``name``, exporting it first unless it is cached."""
    entry = EXPORTED[name]
    cache = cache or default_cache()
    path = os.path.join(cache, f"{name}.onnx")
    if os.path.isfile(path) and not force:
        return path
    why = _needs()
    if why:
        raise RuntimeError(why)
    import warnings

    import torch

    os.makedirs(cache, exist_ok=True)
    torch.manual_seed(SEED)
    module, args, in_names, out_names = entry.build()
    dynamic = {n: {0: "batch"} for n in in_names + out_names}
    tmp = path + f".tmp{os.getpid()}"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            # The TorchScript exporter gives plain ONNX ops (no functions) with dynamic_axes.
            torch.onnx.export(module, args, tmp, input_names=in_names, output_names=out_names,
                              dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    os.replace(tmp, path)
    import transformers

    meta = {"name": name, "description": entry.description, "seed": SEED, "opset": OPSET,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "parameters": sum(p.numel() for p in module.parameters()),
            "export_s": round(time.perf_counter() - t0, 1), "dims": entry.dims}
    with open(os.path.join(cache, f"{name}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return path


def resolve(names: list[str] | None = None, cache: str | None = None, build: bool = True,
            log=None) -> list[tuple[str, str | None, str]]:
    """(name, path or None, note) for each model: light models from the onnx package, exported
    ones from the cache (exported first when ``build``). A model that cannot be had is
    returned with path None and the reason."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = []
    for name in names or ALL:
        if name in LIGHT:
            p = light_path(name)
            out.append((name, p, "") if os.path.isfile(p) else
                       (name, None, "not shipped by this onnx version"))
        elif name in EXPORTED:
            path = os.path.join(cache or default_cache(), f"{name}.onnx")
            if os.path.isfile(path):
                out.append((name, path, ""))
            elif not build:
                out.append((name, None, "not exported yet (python benchmarks/zoo.py " + name
                            + ")"))
            else:
                try:
                    log(f"zoo: exporting {name} (once; cached in {os.path.dirname(path)})")
                    out.append((name, export(name, cache), ""))
                except Exception as exc:  # noqa: BLE001 - a missing model is a note, not a crash
                    msg = str(exc).strip().splitlines()
                    out.append((name, None, f"{type(exc).__name__}: {msg[0] if msg else ''}"))
        else:
            raise ValueError(f"unknown zoo model '{name}'; known: {', '.join(ALL)}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("names", nargs="*", help=f"models to export (known: {', '.join(EXPORTED)})")
    p.add_argument("--all", action="store_true", help="export every model not yet cached")
    p.add_argument("--list", action="store_true", help="list the zoo and what is cached")
    p.add_argument("--cache", help=f"cache folder (default {default_cache()})")
    p.add_argument("--force", action="store_true", help="export again even if cached")
    args = p.parse_args(argv)
    if args.list or not (args.names or args.all):
        for name, path, note in resolve(None, args.cache, build=False):
            print(f"{name:20s} {path or '-'}  {note}")
        why = _needs()
        if why:
            print(f"note: {why}")
        return 0
    names = list(EXPORTED) if args.all else args.names
    bad = [n for n in names if n not in EXPORTED]
    if bad:
        print(f"zoo: unknown model(s) {', '.join(bad)}; exportable: {', '.join(EXPORTED)}",
              file=sys.stderr)
        return 2
    status = 0
    for name in names:
        try:
            t0 = time.perf_counter()
            path = export(name, args.cache, force=args.force)
            print(f"{name:20s} {path}  ({time.perf_counter() - t0:.0f} s)")
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).strip().splitlines()
            print(f"{name:20s} failed: {type(exc).__name__}: {msg[0] if msg else ''}",
                  file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
