#!/usr/bin/env python3
"""Export a netnet model file to ONNX.

    /usr/bin/python3 training/export.py MODEL.safetensors --onnx OUT.onnx [--opset 13]

The metadata gives network, width, classes and modules. The graph's input is `image` float32
[1,3,S,S] (already normalised: BGR minus mean, as the model file says); outputs are `loc`
[1,P,4] and `conf` [1,P,C+1], raw (no softmax, no decoding).
"""
import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netnet_ref.model import load_model  # noqa: E402


def export(model_path, onnx_path, opset=13):
    model = load_model(model_path).float().eval()
    S = model.cfg.input_size
    x = torch.zeros(1, 3, S, S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, onnx_path, input_names=["image"], output_names=["loc", "conf"],
                          opset_version=opset, do_constant_folding=True)
    return model.cfg


def main():
    ap = argparse.ArgumentParser(description="export a netnet model file to ONNX")
    ap.add_argument("model")
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--opset", type=int, default=13)
    a = ap.parse_args()
    torch.set_num_threads(2)
    cfg = export(a.model, a.onnx, a.opset)
    print(f"{a.onnx}: {cfg.network} width {cfg.width} classes {cfg.num_classes} priors {cfg.num_priors} "
          f"({os.path.getsize(a.onnx)} bytes, opset {a.opset})")


if __name__ == "__main__":
    main()
