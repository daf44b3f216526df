#!/usr/bin/env python3
"""Multiply-accumulates per image: convolutions only, k_h*k_w*(c_in/groups)*c_out*H_out*W_out
(bias adds, pooling, resizes, L2Norm, sigmoid and element-wise ops are not counted).

    /usr/bin/python3 -m netnet_ref.macs            (from training/) prints the table.
"""
import torch
import torch.nn as nn

from .config import NETWORKS, NetConfig
from .model import NETNet


def count_macs(cfg, by_module=False):
    model = NETNet(cfg).eval()
    counts = {}

    def hook(name):
        def f(mod, inp, out):
            kh, kw = mod.kernel_size
            counts[name] = counts.get(name, 0) + kh * kw * (mod.in_channels // mod.groups) * \
                mod.out_channels * out.shape[2] * out.shape[3]
        return f

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            mod.register_forward_hook(hook(name))
    S = cfg.input_size
    with torch.no_grad():
        try:
            model.to("meta")(torch.zeros(1, 3, S, S, device="meta"))
        except Exception:  # meta kernels missing: run it for real
            counts.clear()
            model = model.to("cpu")
            model(torch.zeros(1, 3, S, S))
    total = sum(counts.values())
    return (total, counts) if by_module else total


def group(counts):
    g = {}
    for k, v in counts.items():
        top = k.split(".")[0]
        top = "netm" if top.startswith("netm") else top
        g[top] = g.get(top, 0) + v
    return g


def main():
    torch.set_num_threads(2)
    for net in NETWORKS:
        cfg = NetConfig(net, width=1.0, num_classes=80)
        total, counts = count_macs(cfg, by_module=True)
        parts = ", ".join(f"{k} {v / 1e9:.3f}" for k, v in group(counts).items())
        print(f"{net:18s} width 1, 81 scores: {total / 1e9:8.3f} GMAC  ({parts})")


if __name__ == "__main__":
    main()
