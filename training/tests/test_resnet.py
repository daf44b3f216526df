"""The ResNet-101 networks of the reference (netnet-resnet101-512, ssd-resnet101-512) against
torchvision's ResNet-101, which is written independently of netnet_ref: same layout (v1.5, the
stride on the 3x3), same stage outputs once its batch norms are folded, and the multiply-
accumulate count of its convolutions.

    /usr/bin/python3 -m pytest -q training/tests/test_resnet.py
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
torch.set_num_threads(2)

from netnet_ref import batchnorm  # noqa: E402
from netnet_ref.config import NetConfig  # noqa: E402
from netnet_ref.macs import count_macs  # noqa: E402
from netnet_ref.model import NETNet, build, init_weights, residual_branch_gain  # noqa: E402

torchvision = pytest.importorskip("torchvision")

RESNETS = ["ssd-resnet101-512", "netnet-resnet101-512"]


def _randomise_batchnorm(module, generator):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) * 0.5 + 0.25)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


def _fold_torchvision(tv, backbone):
    """Copy torchvision resnet101 `tv` (eval mode) into our backbone, folding each batch norm
    into the convolution before it (w' = w·g/√(v+ε), b' = β − m·g/√(v+ε))."""
    def fold(conv, bn, target):
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        target.weight.copy_(conv.weight * k.view(-1, 1, 1, 1))
        target.bias.copy_(bn.bias - bn.running_mean * k)

    with torch.no_grad():
        fold(tv.conv1, tv.bn1, backbone.conv1)
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            for ours, theirs in zip(getattr(backbone, stage), getattr(tv, stage)):
                fold(theirs.conv1, theirs.bn1, ours.conv1)
                fold(theirs.conv2, theirs.bn2, ours.conv2)
                fold(theirs.conv3, theirs.bn3, ours.conv3)
                assert (ours.downsample is None) == (theirs.downsample is None)
                if theirs.downsample is not None:
                    fold(theirs.downsample[0], theirs.downsample[1], ours.downsample)


def test_backbone_is_torchvision_resnet101_with_batchnorm_folded():
    cfg = NetConfig("ssd-resnet101-512", width=1.0, num_classes=3)
    ours = NETNet(cfg).eval().double()
    g = torch.Generator().manual_seed(5)
    tv = torchvision.models.resnet101().eval()
    _randomise_batchnorm(tv, g)
    tv = tv.double()
    _fold_torchvision(tv, ours.backbone)
    x = torch.randn(1, 3, 256, 256, generator=g, dtype=torch.float64) * 50
    with torch.no_grad():
        c3, c4, c5 = ours.backbone(x)
        y = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        y = tv.layer1(y)
        t3 = tv.layer2(y)
        t4 = tv.layer3(t3)
        t5 = tv.layer4(t4)
    for name, a, b in (("layer2", c3, t3), ("layer3", c4, t4), ("layer4", c5, t5)):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        # float64 both: only the folding's rounding differs (~1e-16 per op over ~100 layers)
        err = float((a - b).abs().max()) / float(b.abs().max())
        assert err < 1e-10, (name, err)
    # the strides: layer2, layer3, layer4 at 1/8, 1/16, 1/32 of the input
    assert [t.shape[-1] for t in (c3, c4, c5)] == [32, 16, 8]


@pytest.mark.parametrize("network", RESNETS)
def test_pyramid_levels_sizes_channels_and_priors(network):
    cfg = NetConfig(network, width=0.125, num_classes=3)
    assert cfg.pyramid_channels_width1 == [512, 1024, 2048, 512, 256, 256, 256]
    assert cfg.pyramid_channels == [64, 128, 256, 64, 32, 32, 32]
    assert cfg.num_priors == 24564 and cfg.priors["steps"] == [8, 16, 32, 64, 128, 256, 512]
    model = build(cfg, seed=1).eval()
    with torch.no_grad():
        f = model.forward_features(torch.randn(1, 3, 512, 512) * 50)
    for level, (size, channels) in enumerate(zip([64, 32, 16, 8, 4, 2, 1], cfg.pyramid_channels), 1):
        assert tuple(f[f"p{level}"].shape) == (1, channels, size, size)
    assert tuple(f["loc"].shape) == (1, 24564, 4) and tuple(f["conf"].shape) == (1, 24564, 4)
    netnet = network.startswith("netnet")
    assert ("pf1" in f) == netnet and ("out4" in f) == netnet


def test_netnet_module_channels_follow_the_resnet_stages():
    sd = NETNet(NetConfig("netnet-resnet101-512", width=1.0, num_classes=80)).state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["nnfm.down2.weight"] == (1024, 512, 1, 1)
    assert shapes["nnfm.down3.weight"] == (2048, 1024, 1, 1)
    assert shapes["nnfm.down4.weight"] == (512, 2048, 1, 1)
    assert shapes["nnfm.up1.weight"] == (512, 1024, 1, 1)
    assert shapes["nnfm.up3.weight"] == (2048, 512, 1, 1)
    assert shapes["nnfm.up4.weight"] == (512, 256, 1, 1)
    assert shapes["netm13.gate.weight"] == (512, 2048, 1, 1)
    assert shapes["netm13.reduce.weight"] == (128, 512, 1, 1)
    assert shapes["netm13.transfer.weight"] == (2048, 512, 1, 1)
    assert shapes["netm24.gate.weight"] == (1024, 512, 1, 1)
    assert shapes["netm24.conv.weight"] == (256, 256, 3, 3)
    assert shapes["netm24.transfer.weight"] == (512, 1024, 1, 1)
    assert shapes["heads.conf3.weight"] == (81 * 6, 2048, 3, 3)
    assert shapes["backbone.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["backbone.layer3.0.downsample.weight"] == (1024, 512, 1, 1)
    assert "backbone.layer3.1.downsample.weight" not in shapes and "l2norm.weight" not in shapes
    assert sum(1 for k in shapes if k.endswith(".conv3.weight")) == 3 + 4 + 23 + 3
    assert shapes["extras.conv6_1.weight"] == (256, 2048, 1, 1)
    assert shapes["extras.conv9_2.weight"] == (256, 128, 3, 3)


def test_macs_backbone_equals_torchvision_and_totals_are_pinned():
    """The backbone's count is torchvision resnet101's convolutions at 512 (counted by hooks on
    its own modules, fc excluded); the totals are what docs/model-format.md and `model info` say."""
    tv = torchvision.models.resnet101().eval()
    count = [0]

    def hook(mod, _inp, out):
        count[0] += mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels * mod.out_channels * out.shape[2] * out.shape[3]

    for m in tv.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        tv(torch.zeros(1, 3, 512, 512))
    _total, by_module = count_macs(NetConfig("ssd-resnet101-512", width=1.0, num_classes=80), by_module=True)
    ours = sum(v for k, v in by_module.items() if k.startswith("backbone."))
    assert ours == count[0]
    assert count_macs(NetConfig("ssd-resnet101-512", width=1.0, num_classes=80)) == 54_778_274_816
    assert count_macs(NetConfig("netnet-resnet101-512", width=1.0, num_classes=80)) == 67_906_446_336


def test_batchnorm_folds_every_resnet_convolution():
    cfg = NetConfig("netnet-resnet101-512", width=0.0625, classes=["person", "car"])
    model = batchnorm.add_batchnorm(init_weights(NETNet(cfg), seed=3))
    wrapped = [n for n, m in model.named_modules() if isinstance(m, batchnorm.ConvBN)]
    # stem + 3 per bottleneck + 4 projections + 8 extras
    assert len(wrapped) == 1 + 3 * 33 + 4 + 8
    g = torch.Generator().manual_seed(0)
    _randomise_batchnorm(model, g)
    model.eval()
    plain = batchnorm.fold(model)
    assert set(plain.state_dict()) == set(NETNet(cfg).state_dict())
    x = torch.randn(1, 3, 512, 512, generator=g) * 50
    with torch.no_grad():
        a, b = model(x), plain(x)
    for u, v in zip(a, b):
        assert torch.allclose(u, v, rtol=1e-4, atol=1e-4 * float(u.abs().max()))


def test_residual_branch_gain_keeps_activations_bounded():
    cfg = NetConfig("ssd-resnet101-512", width=0.125, num_classes=3)
    assert residual_branch_gain(cfg) == pytest.approx(1 / 33 ** 0.5)
    assert residual_branch_gain(NetConfig("ssd-vgg16-512", width=0.125, num_classes=3)) == 1.0
    model = build(cfg, seed=2).eval()
    sd = model.state_dict()
    w = sd["backbone.layer3.5.conv3.weight"]
    he = (2.0 / w.shape[1]) ** 0.5
    assert float(w.std()) == pytest.approx(he / 33 ** 0.5, rel=0.1)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, 512, 512)).astype(np.float32) - 117)
    with torch.no_grad():
        c3, c4, c5 = model.backbone(x)
    # (1 + 1/33)^33 < e in variance per stage: each stage's output within ~10x of the input's
    for c in (c3, c4, c5):
        assert float(c.std()) < 10 * float(x.std())
