#!/usr/bin/env python3
"""Training-time batch normalisation, folded away for export.

The spec's VGG16 has no batch normalisation (ResNet-101 has it, and model files hold it folded),
and a narrow VGG16-SSD trained from scratch (no ImageNet weights are reachable here) trains
slowly and unstably without it. So training puts a
BatchNorm2d after every backbone and extras convolution (before its ReLU) and `fold` writes it
into that convolution's weight and bias: w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta.
In evaluation mode the folded network computes the same function, so the exported model file is
exactly the spec's network (same tensors, same shapes) and the Swift engine needs nothing new.
"""
from collections import OrderedDict

import torch
import torch.nn as nn

from .model import NETNet


class ConvBN(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(conv.out_channels)

    def forward(self, x):
        return self.bn(self.conv(x))


def add_batchnorm(model):
    """Wraps every backbone and extras convolution of a NETNet in ConvBN (in place): VGG16's
    and the extras' flat ones, and every convolution of ResNet-101's bottlenecks (conv1, conv2,
    conv3 and the projection shortcut: as torchvision, a batch norm after each, the shortcut's
    before the residual add), so fold() writes them all back as plain convolutions."""
    for group in (model.backbone, model.extras):
        for parent in list(group.modules()):
            if isinstance(parent, ConvBN):
                continue
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Conv2d):
                    setattr(parent, name, ConvBN(child))
    return model


def has_batchnorm(model):
    return any(isinstance(m, ConvBN) for m in model.modules())


def fold(model):
    """A plain NETNet (same config) computing what `model` computes in evaluation mode."""
    plain = NETNet(model.cfg)
    state = OrderedDict()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, ConvBN):
                bn, conv = module.bn, module.conv
                k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                state[f"{name}.weight"] = conv.weight * k.view(-1, 1, 1, 1)
                b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                state[f"{name}.bias"] = (b - bn.running_mean) * k + bn.bias
        wrapped = tuple(f"{name}." for name, m in model.named_modules() if isinstance(m, ConvBN))
        for key, value in model.state_dict().items():
            if not key.startswith(wrapped):
                state[key] = value
        plain.load_state_dict(state)
    return plain.eval()
