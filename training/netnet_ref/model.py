#!/usr/bin/env python3
"""NETNet / SSD (VGG16 or ResNet-101) as nn.Module; state_dict keys are exactly
docs/model-format.md's names.

forward(x) -> (loc [N,P,4], conf [N,P,C+1]) raw head outputs.
forward_features(x) -> dict with p1..pL, pf1..pf4 (when modules.nnfm), out1..out4 (when
modules.nem or modules.ntm), loc, conf.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import (CONV6, CONV7, NNFM_LEVELS, RESNET101_STAGES, RESNET_EXPANSION, RESNET_PYRAMID_STAGES,
                     RESNET_STEM, VGG_LAYERS, NetConfig)


class L2Norm(nn.Module):
    """SSD's L2Norm: x / (sqrt(sum_c x^2) + 1e-10) * weight[c]."""

    def __init__(self, channels, eps=1e-10):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), 20.0))
        self.eps = eps

    def forward(self, x):
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        return x / norm * self.weight.view(1, -1, 1, 1)


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck with biases (batch norm folded): ReLU(conv3(ReLU(conv2(
    ReLU(conv1(x))))) + shortcut(x)); the stride on conv2 (3x3) and on the projection shortcut
    `downsample` (1x1), which exists when the stride or the channel count changes."""

    def __init__(self, cin, mid, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(mid, cout, 1)
        if stride != 1 or cin != cout:
            self.downsample = nn.Conv2d(cin, cout, 1, stride=stride)
        else:
            self.downsample = None

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(self.conv3(y) + shortcut)


class ResNet101(nn.Module):
    """The ResNet-101 backbone: stem conv1 (7x7/2 pad 3) + ReLU, 3x3/2 pad 1 max pool, layer1..4
    (3, 4, 23, 3 bottlenecks); returns the outputs of layer2, layer3 and layer4 (p1, p2, p3)."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c(RESNET_STEM), 7, stride=2, padding=3)
        cin = c(RESNET_STEM)
        for name, mid, blocks, stride in RESNET101_STAGES:
            cout = c(RESNET_EXPANSION * mid)
            layer = nn.ModuleList()
            for b in range(blocks):
                layer.append(Bottleneck(cin, c(mid), cout, stride if b == 0 else 1))
                cin = cout
            setattr(self, name, layer)
        self.out_channels = cin

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 3, 2, 1)
        outs = []
        for name, *_r in RESNET101_STAGES:
            for block in getattr(self, name):
                x = block(x)
            if name in RESNET_PYRAMID_STAGES:
                outs.append(x)
        return outs


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class NETNet(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.c
        sizes = cfg.pyramid_sizes
        self.sizes = [(s, s) for s in sizes]

        # backbone
        if cfg.backbone == "resnet101":
            self.backbone = ResNet101(c)
            cin = self.backbone.out_channels
        else:
            bb = OrderedDict()
            cin = 3
            self.vgg_plan = []  # list of ('conv', name) or ('pool', ceil)
            for item in VGG_LAYERS:
                if isinstance(item, str):
                    self.vgg_plan.append(("pool", item == "C"))
                else:
                    name, cout = item
                    bb[name] = nn.Conv2d(cin, c(cout), 3, padding=1)
                    cin = c(cout)
                    self.vgg_plan.append(("conv", name))
            bb["conv6"] = nn.Conv2d(cin, c(CONV6), 3, padding=6, dilation=6)
            bb["conv7"] = nn.Conv2d(c(CONV6), c(CONV7), 1)
            self.backbone = nn.ModuleDict(bb)
            self.l2norm = L2Norm(c(512))
            cin = c(CONV7)

        ex = OrderedDict()
        for name, cout, k, s, p in cfg.extras:
            ex[name] = nn.Conv2d(cin, c(cout), k, stride=s, padding=p)
            cin = c(cout)
        self.extras = nn.ModuleDict(ex)

        ch = cfg.pyramid_channels
        self.ch = ch
        if cfg.modules["nnfm"]:
            nn_ = OrderedDict()
            for s in NNFM_LEVELS:
                if s > 1:
                    nn_[f"down{s}"] = nn.Conv2d(ch[s - 2], ch[s - 1], 1)
            for s in NNFM_LEVELS:
                nn_[f"up{s}"] = nn.Conv2d(ch[s], ch[s - 1], 1)
            self.nnfm = nn.ModuleDict(nn_)
        if cfg.netm_on:
            for s, t in cfg.netm_pairs:
                m = OrderedDict()
                b = cfg.bottleneck(s)
                if cfg.gate == "channel":
                    m["gate"] = nn.Conv2d(ch[t - 1], ch[s - 1], 1)
                elif cfg.gate == "max+mean":
                    m["gate"] = nn.Conv2d(2, 1, 1)
                elif cfg.gate == "global":
                    r = cfg.attention_inner(s)
                    m["query"] = nn.Conv2d(ch[t - 1], r, 1)
                    m["key"] = nn.Conv2d(ch[t - 1], r, 1)
                    m["value"] = nn.Conv2d(ch[t - 1], r, 1)
                    m["gate"] = nn.Conv2d(r, ch[s - 1], 1)
                m["reduce"] = nn.Conv2d(ch[s - 1], b, 1)
                m["conv"] = nn.Conv2d(b, b, 3, padding=1)
                m["expand"] = nn.Conv2d(b, ch[s - 1], 1)
                if cfg.modules["ntm"]:
                    m["transfer"] = nn.Conv2d(ch[s - 1], ch[t - 1], 1)
                setattr(self, f"netm{s}{t}", nn.ModuleDict(m))

        hd = OrderedDict()
        C1 = cfg.num_classes + 1
        for l, (cl, k) in enumerate(zip(ch, cfg.mbox), 1):
            hd[f"loc{l}"] = nn.Conv2d(cl, 4 * k, 3, padding=1)
        for l, (cl, k) in enumerate(zip(ch, cfg.mbox), 1):
            hd[f"conf{l}"] = nn.Conv2d(cl, C1 * k, 3, padding=1)
        self.heads = nn.ModuleDict(hd)

    # ------------------------------------------------------------------------------------
    def _check(self, name, x, l):
        if not torch.jit.is_tracing():
            exp = self.sizes[l - 1]
            if tuple(x.shape[-2:]) != exp:
                raise RuntimeError(f"{name}: spatial size {tuple(x.shape[-2:])}, expected {exp}")

    def pyramid(self, x):
        if self.cfg.backbone == "resnet101":
            ps = self.backbone(x)
            x = ps[-1]
        else:
            ps = self._vgg_pyramid(x)
            x = ps[-1]
        for name, *_r in self.cfg.extras:
            x = F.relu(self.extras[name](x))
            if name.endswith("_2"):
                ps.append(x)
        for l, p in enumerate(ps, 1):
            self._check(f"p{l}", p, l)
        return ps

    def _vgg_pyramid(self, x):
        bb = self.backbone
        for kind, arg in self.vgg_plan:
            if kind == "pool":
                x = F.max_pool2d(x, 2, 2, ceil_mode=arg)
            else:
                x = F.relu(bb[arg](x))
                if arg == "conv4_3":
                    p1 = self.l2norm(x)
        x = F.max_pool2d(x, 3, 1, 1)  # pool5
        x = F.relu(bb["conv6"](x))
        x = F.relu(bb["conv7"](x))
        return [p1, x]

    def fuse(self, ps):
        """NNFM: pf_s = ReLU(H_{s-1}(p_{s-1}) + p_s + H_{s+1}(p_{s+1})), s = 1..4, on un-fused p."""
        out = []
        for s in NNFM_LEVELS:
            size = self.sizes[s - 1]
            y = ps[s - 1]
            if s > 1:
                y = self.nnfm[f"down{s}"](F.max_pool2d(ps[s - 2], 2, 2, ceil_mode=True)) + y
            y = y + self.nnfm[f"up{s}"](_resize(ps[s], size))
            out.append(F.relu(y))
        return out

    def netm(self, s, t, ps_, pt_):
        """NETM on (p_s, p_t), t = s+2: returns (out_s, out_t)."""
        m = getattr(self, f"netm{s}{t}")
        mods = self.cfg.modules
        up = _resize(pt_, self.sizes[s - 1])
        gate = self.cfg.gate
        if gate == "channel":
            logits = m["gate"](up)
        elif gate == "max":
            logits = up.amax(dim=1, keepdim=True)
        elif gate == "mean":
            logits = up.mean(dim=1, keepdim=True)
        elif gate == "max+mean":
            logits = m["gate"](torch.cat([up.amax(dim=1, keepdim=True), up.mean(dim=1, keepdim=True)], 1))
        else:  # global: dot-product attention from p_s's positions to p_t's
            q = m["query"](up).flatten(2)                      # [n, r, Ns]
            k = m["key"](pt_).flatten(2)                       # [n, r, Nt]
            v = m["value"](pt_).flatten(2)                     # [n, r, Nt]
            weights = torch.softmax(torch.matmul(q.transpose(1, 2), k) / q.shape[1] ** 0.5, dim=-1)  # [n, Ns, Nt]
            attended = torch.matmul(v, weights.transpose(1, 2)).reshape(up.shape[0], -1, *up.shape[2:])
            logits = m["gate"](attended)
        g = torch.sigmoid(logits)   # one channel for max / mean / max+mean: broadcast over c_s
        pe = ps_ * g
        pt = ps_ - pe if mods["nem"] else ps_
        out_s = F.relu(pt + m["expand"](F.relu(m["conv"](F.relu(m["reduce"](pt))))))
        if mods["ntm"]:
            k = 2 ** (t - s)   # 4x4/4 for the skipped pairs, 2x2/2 for neighbours
            out_t = pt_ + m["transfer"](F.max_pool2d(pe, k, k, ceil_mode=True))
        else:
            out_t = pt_
        return out_s, out_t

    def forward_features(self, x):
        cfg = self.cfg
        feats = OrderedDict()
        ps = self.pyramid(x)
        for l, p in enumerate(ps, 1):
            feats[f"p{l}"] = p
        levels = list(ps)
        if cfg.modules["nnfm"]:
            pf = self.fuse(ps)
            for s, v in enumerate(pf, 1):
                feats[f"pf{s}"] = v
            levels[:4] = pf
        if cfg.netm_on:
            outs = list(levels[:4])
            for s, t in cfg.netm_pairs:
                outs[s - 1], outs[t - 1] = self.netm(s, t, outs[s - 1], outs[t - 1])
            for s, v in enumerate(outs, 1):
                feats[f"out{s}"] = v
            levels[:4] = outs
        loc, conf = self.heads_forward(levels)
        feats["loc"] = loc
        feats["conf"] = conf
        return feats

    def heads_forward(self, levels):
        n = levels[0].shape[0]
        C1 = self.cfg.num_classes + 1
        locs, confs = [], []
        for l, f in enumerate(levels, 1):
            locs.append(self.heads[f"loc{l}"](f).permute(0, 2, 3, 1).reshape(n, -1, 4))
            confs.append(self.heads[f"conf{l}"](f).permute(0, 2, 3, 1).reshape(n, -1, C1))
        return torch.cat(locs, 1), torch.cat(confs, 1)

    def forward(self, x):
        f = self.forward_features(x)
        return f["loc"], f["conf"]


# ---------------------------------------------------------------------------------------
def residual_branch_gain(cfg):
    """The factor on the He std of each ResNet bottleneck's last convolution (conv3): 1/sqrt(B),
    B = the network's bottleneck count (33 for ResNet-101). Each He-initialised branch adds about
    its input's variance, so 33 plain blocks would grow activations ~2^16.5 in std; with the gain
    the growth is bounded by (1 + 1/B)^B < e in variance (Fixup's idea, without batch norm, which
    the folded model file has not got). 1 for VGG16."""
    if cfg.backbone != "resnet101":
        return 1.0
    return 1.0 / sum(blocks for _n, _m, blocks, _s in RESNET101_STAGES) ** 0.5


def init_weights(model, seed=0, golden=False):
    """Model init: He normal (fan_in, ReLU gain: std = sqrt(2 / (cin*kh*kw))) conv weights, zero
    biases, L2Norm weight 20; ResNet bottlenecks' conv3 weights times residual_branch_gain.
    golden=True instead draws biases uniform(-0.05, 0.05) and L2Norm
    weights uniform(10, 30), so that bias and scale bugs show in golden comparisons.
    Deterministic for a seed (own torch.Generator, parameters visited in state_dict order)."""
    g = torch.Generator().manual_seed(int(seed))
    branch_gain = residual_branch_gain(model.cfg)
    # A residual branch's last convolution: the one whose output is added to the shortcut.
    branch_ends = {id(m.conv3.weight) for m in model.modules() if isinstance(m, Bottleneck)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "l2norm.weight":
                if golden:
                    p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64) * 20 + 10)
                else:
                    p.fill_(20.0)
            elif name.endswith(".weight"):
                fan_in = p.shape[1] * p.shape[2] * p.shape[3]
                std = (2.0 / fan_in) ** 0.5
                if id(p) in branch_ends:
                    std *= branch_gain
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)
            elif name.endswith(".bias"):
                if golden:
                    p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1) * 0.05)
                else:
                    p.zero_()
    return model


def build(cfg, seed=0, golden=False):
    return init_weights(NETNet(cfg), seed=seed, golden=golden)


def expected_tensors(cfg):
    """name -> shape for a config (from the module itself)."""
    return {k: tuple(v.shape) for k, v in NETNet(cfg).state_dict().items()}


def load_state(model, tensors):
    """Load name -> np.ndarray into model, refusing missing/extra tensors and wrong shapes."""
    sd = model.state_dict()
    for k in tensors:
        if k not in sd:
            raise ValueError(f"tensor '{k}': not used by {model.cfg.network} with modules "
                             f"{model.cfg.modules}")
    for k, v in sd.items():
        if k not in tensors:
            raise ValueError(f"tensor '{k}': missing (expected shape {list(v.shape)})")
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"tensor '{k}': expected shape {list(v.shape)}, found {list(tensors[k].shape)}")
    with torch.no_grad():
        for k, v in sd.items():
            v.copy_(torch.from_numpy(tensors[k]))
    return model


def save_model(path, model):
    from . import safetensors_io
    tensors = OrderedDict((k, v.detach().to(torch.float32).cpu().numpy()) for k, v in model.state_dict().items())
    return safetensors_io.write(path, tensors, model.cfg.metadata())


def load_model(path):
    from . import safetensors_io
    tensors, md = safetensors_io.read(path)
    cfg = NetConfig.from_metadata(md)
    model = NETNet(cfg)
    try:
        load_state(model, tensors)
    except ValueError as e:
        raise ValueError(f"{path}: {e}")
    return model.eval()


def calibrate_for_goldens(model, x, gate_std=2.0, loc_std=1.0, conf_std=2.0):
    """Golden-only, data-dependent rescaling of a few weights, so that a randomly initialised
    model exercises every part of the network on the golden input x:
      - each NETM gate conv (pre-sigmoid) gets std gate_std (else the He-initialised gate sees
        activations in the hundreds and the sigmoid is saturated to 0/1 almost everywhere);
      - each loc head gets std loc_std (else exp(0.2*dw) in decode overflows float32);
      - each conf head gets std conf_std (else the softmax is one-hot everywhere).
    Only weights are multiplied by a scalar per conv (biases kept); gates first, then heads."""
    def rescale(names, target):
        outs = {}
        hooks = [model.get_submodule(n).register_forward_hook(
            lambda mod, i, o, n=n: outs.__setitem__(n, o - mod.bias.view(1, -1, 1, 1)))
            for n in names]
        with torch.no_grad():
            model(x)
            for h in hooks:
                h.remove()
            for n in names:
                sd = float(outs[n].std())
                if sd > 0:
                    model.get_submodule(n).weight.mul_(target / sd)

    if model.cfg.netm_on:
        if model.cfg.gate in ("channel", "max+mean"):
            rescale([f"netm{s}{t}.gate" for s, t in model.cfg.netm_pairs], gate_std)
    L = model.cfg.num_levels
    rescale([f"heads.loc{l}" for l in range(1, L + 1)], loc_std)
    rescale([f"heads.conf{l}" for l in range(1, L + 1)], conf_std)
    return model
