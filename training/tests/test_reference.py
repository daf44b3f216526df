#!/usr/bin/env python3
"""Tests for the netnet PyTorch reference.

    /usr/bin/python3 training/tests/test_reference.py        (plain runner; ends "N passed, N failed")
    /usr/bin/python3 -m pytest training/tests -q              (if pytest is installed there)

The ONNX Runtime check runs ORT in a separate `python3` (the default interpreter, which has
onnxruntime); it is skipped when that is not available.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
TRAINING = os.path.dirname(HERE)
sys.path.insert(0, TRAINING)
torch.set_num_threads(2)

from netnet_ref import safetensors_io as st  # noqa: E402
from netnet_ref.box_utils import decode, detect, nms, softmax  # noqa: E402
from netnet_ref.config import COCO_CLASSES, NetConfig, scale_channels  # noqa: E402
from netnet_ref.macs import count_macs  # noqa: E402
from netnet_ref.model import NETNet, build, load_model, load_state, save_model  # noqa: E402
from netnet_ref.priors import prior_boxes  # noqa: E402

NETWORKS = ["ssd-vgg16-300", "netnet-vgg16-300", "ssd-vgg16-512", "netnet-vgg16-512"]


def raises(exc, fn, *a, match=None, **kw):
    try:
        fn(*a, **kw)
    except exc as e:
        if match is not None and match not in str(e):
            raise AssertionError(f"expected message containing {match!r}, got {e}")
        return str(e)
    raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")


# ---------------------------------------------------------------------------------------------
# The tensor table of docs/model-format.md, written out independently of netnet_ref.
def docs_table(network, width, n_classes, modules=None):
    def sc(c):
        return max(8, int(round(c * width / 8)) * 8)

    size = int(network[-3:])
    netnet = network.startswith("netnet")
    mods = {"nnfm": netnet, "nem": netnet, "ntm": netnet}
    mods.update(modules or {})
    t = {}

    def conv(name, cout, cin, k):
        t[name + ".weight"] = (cout, cin, k, k)
        t[name + ".bias"] = (cout,)

    vgg = [("conv1_1", 64), ("conv1_2", 64), ("conv2_1", 128), ("conv2_2", 128), ("conv3_1", 256),
           ("conv3_2", 256), ("conv3_3", 256), ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512),
           ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)]
    cin = 3
    for n, c in vgg:
        conv("backbone." + n, sc(c), cin, 3)
        cin = sc(c)
    conv("backbone.conv6", sc(1024), sc(512), 3)
    conv("backbone.conv7", sc(1024), sc(1024), 1)
    t["l2norm.weight"] = (sc(512),)
    n_extra = 4 if size == 300 else 5
    ex = [(256, 512)] + [(128, 256)] * (n_extra - 1)
    cin = sc(1024)
    for i, (a, b) in enumerate(ex):
        conv(f"extras.conv{8 + i}_1", sc(a), cin, 1)
        k = 4 if (size == 512 and i == 4) else 3
        conv(f"extras.conv{8 + i}_2", sc(b), sc(a), k)
        cin = sc(b)
    c1 = [512, 1024] + [b for _, b in ex]
    c = [sc(v) for v in c1]
    if mods["nnfm"]:
        for s in (2, 3, 4):
            conv(f"nnfm.down{s}", c[s - 1], c[s - 2], 1)
        for s in (1, 2, 3, 4):
            conv(f"nnfm.up{s}", c[s - 1], c[s], 1)
    if mods["nem"] or mods["ntm"]:
        for s in (1, 2):
            b = sc(c1[s - 1] // 4)
            p = f"netm{s}{s + 2}"
            conv(p + ".gate", c[s - 1], c[s + 1], 1)
            conv(p + ".reduce", b, c[s - 1], 1)
            conv(p + ".conv", b, b, 3)
            conv(p + ".expand", c[s - 1], b, 1)
            if mods["ntm"]:
                conv(p + ".transfer", c[s + 1], c[s - 1], 1)
    ks = [4, 6, 6, 6, 4, 4] if size == 300 else [4, 6, 6, 6, 6, 4, 4]
    for l, k in enumerate(ks, 1):
        conv(f"heads.loc{l}", 4 * k, c[l - 1], 3)
        conv(f"heads.conf{l}", (n_classes + 1) * k, c[l - 1], 3)
    return t


def model_table(cfg):
    return {k: tuple(v.shape) for k, v in NETNet(cfg).state_dict().items()}


def test_state_dict_matches_docs_table():
    for net in NETWORKS:
        for width in (1.0, 0.125, 0.25, 0.5):
            for n in (80, 3):
                cfg = NetConfig(net, width=width, num_classes=n)
                got, want = model_table(cfg), docs_table(net, width, n)
                assert set(got) == set(want), (net, width, sorted(set(got) ^ set(want)))
                for k in want:
                    assert got[k] == want[k], (net, width, k, got[k], want[k])


def test_docs_literal_shapes_width1_300():
    t = model_table(NetConfig("netnet-vgg16-300", width=1, num_classes=80))
    assert t["backbone.conv1_1.weight"] == (64, 3, 3, 3)
    assert t["backbone.conv5_3.weight"] == (512, 512, 3, 3)
    assert t["backbone.conv6.weight"] == (1024, 512, 3, 3)
    assert t["backbone.conv7.weight"] == (1024, 1024, 1, 1)
    assert t["l2norm.weight"] == (512,)
    assert t["extras.conv8_1.weight"] == (256, 1024, 1, 1)
    assert t["extras.conv8_2.weight"] == (512, 256, 3, 3)
    assert t["nnfm.down2.weight"] == (1024, 512, 1, 1)
    assert t["nnfm.up1.weight"] == (512, 1024, 1, 1)
    assert t["netm13.gate.weight"] == (512, 512, 1, 1)
    assert t["netm13.reduce.weight"] == (128, 512, 1, 1)
    assert t["netm13.conv.weight"] == (128, 128, 3, 3)
    assert t["netm13.expand.weight"] == (512, 128, 1, 1)
    assert t["netm13.transfer.weight"] == (512, 512, 1, 1)
    assert t["netm24.gate.weight"] == (1024, 256, 1, 1)
    assert t["netm24.transfer.weight"] == (256, 1024, 1, 1)
    assert t["heads.loc1.weight"] == (16, 512, 3, 3)
    assert t["heads.conf1.weight"] == (324, 512, 3, 3)
    assert t["heads.conf6.weight"] == (324, 256, 3, 3)
    assert "extras.conv12_1.weight" not in t
    t5 = model_table(NetConfig("ssd-vgg16-512", width=1, num_classes=80))
    assert t5["extras.conv12_2.weight"] == (256, 128, 4, 4)
    assert t5["heads.loc7.weight"] == (16, 256, 3, 3)
    assert not any(k.startswith(("nnfm", "netm")) for k in t5)


def test_width_rule():
    assert scale_channels(64, 0.125) == 8 and scale_channels(512, 0.125) == 64
    assert scale_channels(64, 0.0625) == 8          # 0.5 -> 0 (half to even), then max(8, .)
    assert scale_channels(64, 0.1875) == 16          # 1.5 -> 2 (half to even)
    assert scale_channels(64, 0.3125) == 16          # 2.5 -> 2 (half to even)
    assert scale_channels(1024, 0.3) == 304          # 38.4 -> 38
    assert NetConfig("netnet-vgg16-300", width=0.125).bottleneck(1) == 16
    raises(ValueError, NetConfig, "netnet-vgg16-300", width=0)
    raises(ValueError, NetConfig, "netnet-vgg16-300", width=4.5)
    raises(ValueError, NetConfig, "vgg", width=1)


def test_module_flags_change_parameters():
    full = set(model_table(NetConfig("netnet-vgg16-300", width=0.125)))
    variants = {
        "nem_only": {"nnfm": True, "nem": True, "ntm": False},
        "ntm_only": {"nnfm": True, "nem": False, "ntm": True},
        "netm_no_nnfm": {"nnfm": False, "nem": True, "ntm": True},
        "nnfm_only": {"nnfm": True, "nem": False, "ntm": False},
        "none": {"nnfm": False, "nem": False, "ntm": False},
    }
    for name, m in variants.items():
        got = set(model_table(NetConfig("netnet-vgg16-300", width=0.125, modules=m)))
        want = set(docs_table("netnet-vgg16-300", 0.125, 80, m))
        assert got == want, (name, sorted(got ^ want))
    nem = set(model_table(NetConfig("netnet-vgg16-300", width=0.125, modules=variants["nem_only"])))
    assert full - nem == {f"netm{p}.transfer.{w}" for p in (13, 24) for w in ("weight", "bias")}
    ntm = set(model_table(NetConfig("netnet-vgg16-300", width=0.125, modules=variants["ntm_only"])))
    assert ntm == full
    no_nnfm = set(model_table(NetConfig("netnet-vgg16-300", width=0.125, modules=variants["netm_no_nnfm"])))
    assert full - no_nnfm == {k for k in full if k.startswith("nnfm.")}
    none = set(model_table(NetConfig("netnet-vgg16-300", width=0.125, modules=variants["none"])))
    assert none == set(model_table(NetConfig("ssd-vgg16-300", width=0.125)))
    raises(ValueError, NetConfig, "ssd-vgg16-300", modules={"nnfm": True})
    raises(ValueError, NetConfig, "netnet-vgg16-300", modules={"tdp": True})


def _manual_netm(m, s, t, ps, pt, mods):
    """NETM written out from NETNET-SPEC, independently of model.netm."""
    q = lambda n: getattr(m, f"netm{s}{t}")[n]  # noqa: E731
    up = F.interpolate(pt, size=ps.shape[-2:], mode="bilinear", align_corners=False)
    g = torch.sigmoid(F.conv2d(up, q("gate").weight, q("gate").bias))
    pe = ps * g
    pt_ = ps - pe if mods["nem"] else ps
    r = F.relu(F.conv2d(pt_, q("reduce").weight, q("reduce").bias))
    r = F.relu(F.conv2d(r, q("conv").weight, q("conv").bias, padding=1))
    out_s = F.relu(pt_ + F.conv2d(r, q("expand").weight, q("expand").bias))
    if mods["ntm"]:
        d = F.max_pool2d(pe, 4, 4, ceil_mode=True)
        out_t = pt + F.conv2d(d, q("transfer").weight, q("transfer").bias)
    else:
        out_t = pt
    return out_s, out_t


def _manual_nnfm(m, ps):
    out = []
    for s in range(1, 5):
        y = ps[s - 1].clone()
        if s > 1:
            d = F.max_pool2d(ps[s - 2], 2, 2, ceil_mode=True)
            y = y + F.conv2d(d, m.nnfm[f"down{s}"].weight, m.nnfm[f"down{s}"].bias)
        u = F.interpolate(ps[s], size=ps[s - 1].shape[-2:], mode="bilinear", align_corners=False)
        y = y + F.conv2d(u, m.nnfm[f"up{s}"].weight, m.nnfm[f"up{s}"].bias)
        out.append(F.relu(y))
    return out


def test_module_variants_forward_semantics():
    x = torch.from_numpy(np.random.default_rng(3).uniform(-120, 120, (1, 3, 300, 300)))
    for mods in ({"nnfm": True, "nem": True, "ntm": True}, {"nnfm": True, "nem": True, "ntm": False},
                 {"nnfm": True, "nem": False, "ntm": True}, {"nnfm": False, "nem": True, "ntm": True},
                 {"nnfm": True, "nem": False, "ntm": False}):
        cfg = NetConfig("netnet-vgg16-300", width=0.125, num_classes=3, modules=mods)
        m = build(cfg, seed=2, golden=True).double().eval()
        with torch.no_grad():
            f = m.forward_features(x)
            ps = [f[f"p{l}"] for l in range(1, 7)]
            lv = list(ps)
            if mods["nnfm"]:
                pf = _manual_nnfm(m, ps)
                for s in range(4):
                    assert torch.allclose(pf[s], f[f"pf{s + 1}"], rtol=1e-12, atol=1e-9)
                lv[:4] = pf
            else:
                assert "pf1" not in f
            if mods["nem"] or mods["ntm"]:
                o1, o3 = _manual_netm(m, 1, 3, lv[0], lv[2], mods)
                o2, o4 = _manual_netm(m, 2, 4, lv[1], lv[3], mods)
                for s, o in enumerate((o1, o2, o3, o4), 1):
                    assert torch.allclose(o, f[f"out{s}"], rtol=1e-12, atol=1e-9), (mods, s)
                lv[:4] = [o1, o2, o3, o4]
            else:
                assert "out1" not in f
            loc, conf = m.heads_forward(lv)
            assert torch.allclose(loc, f["loc"]) and torch.allclose(conf, f["conf"])


def test_forward_shapes_and_layout():
    for net, P in (("ssd-vgg16-300", 8732), ("netnet-vgg16-512", 24564)):
        cfg = NetConfig(net, width=0.125, num_classes=3)
        m = build(cfg, seed=0).eval()
        S = cfg.input_size
        with torch.no_grad():
            f = m.forward_features(torch.randn(1, 3, S, S) * 50)
        for l, (s, c) in enumerate(zip(cfg.pyramid_sizes, cfg.pyramid_channels), 1):
            assert tuple(f[f"p{l}"].shape) == (1, c, s, s), (net, l)
        assert tuple(f["loc"].shape) == (1, P, 4) and tuple(f["conf"].shape) == (1, P, 4)
        # layout: prior i of level l at (y, x) is offset_l + (y*W + x)*k + a
        lv = [f[f"out{l}"] if f"out{l}" in f else f[f"p{l}"] for l in range(1, cfg.num_levels + 1)]
        l, y, x, a = 2, 3, 5, 4
        off = sum(s * s * k for s, k in zip(cfg.pyramid_sizes[:l - 1], cfg.mbox[:l - 1]))
        k = cfg.mbox[l - 1]
        W = cfg.pyramid_sizes[l - 1]
        i = off + (y * W + x) * k + a
        with torch.no_grad():
            raw_loc = m.heads[f"loc{l}"](lv[l - 1])[0, :, y, x]
            raw_conf = m.heads[f"conf{l}"](lv[l - 1])[0, :, y, x]
        assert torch.allclose(f["loc"][0, i], raw_loc[a * 4:(a + 1) * 4])
        assert torch.allclose(f["conf"][0, i], raw_conf[a * 4:(a + 1) * 4])


def test_l2norm():
    m = build(NetConfig("ssd-vgg16-300", width=0.125), seed=0, golden=True)
    x = torch.randn(2, 64, 5, 5, dtype=torch.float64)
    m = m.double()
    want = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) * m.l2norm.weight.view(1, -1, 1, 1)
    assert torch.allclose(m.l2norm(x), want)
    m2 = build(NetConfig("ssd-vgg16-300", width=0.125), seed=0)
    assert torch.all(m2.l2norm.weight == 20)
    assert all(float(v.abs().max()) == 0 for k, v in m2.state_dict().items() if k.endswith(".bias"))
    w = m.l2norm.weight
    assert float(w.min()) >= 10 and float(w.max()) <= 30
    b = m.backbone["conv1_1"].bias
    assert float(b.abs().max()) <= 0.05 and float(b.abs().max()) > 0


def test_init_deterministic_and_he_std():
    cfg = NetConfig("netnet-vgg16-300", width=0.25)
    a, b = build(cfg, seed=5).state_dict(), build(cfg, seed=5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build(cfg, seed=6).state_dict()
    assert not torch.equal(a["backbone.conv1_1.weight"], c["backbone.conv1_1.weight"])
    w = a["backbone.conv5_1.weight"]
    assert abs(float(w.std()) / math.sqrt(2 / (w.shape[1] * 9)) - 1) < 0.02


# ---------------------------------------------------------------------------------------------
def test_priors():
    for net, P in (("ssd-vgg16-300", 8732), ("netnet-vgg16-300", 8732), ("ssd-vgg16-512", 24564),
                   ("netnet-vgg16-512", 24564)):
        cfg = NetConfig(net)
        pr = prior_boxes(cfg)
        assert pr.shape == (P, 4) and cfg.num_priors == P
        assert pr.min() >= 0 and pr.max() <= 1
    pr = prior_boxes(NetConfig("ssd-vgg16-300"))
    f = 300 / 8
    s, sp = 21 / 300, math.sqrt(21 / 300 * 45 / 300)
    r = math.sqrt(2)
    want = [(0.5 / f, 0.5 / f, s, s), (0.5 / f, 0.5 / f, sp, sp), (0.5 / f, 0.5 / f, s * r, s / r),
            (0.5 / f, 0.5 / f, s / r, s * r), (1.5 / f, 0.5 / f, s, s)]
    assert np.allclose(pr[:5], want, rtol=0, atol=1e-15)
    # level 2, y=1, x=2, anchor 4 = ratio 3 (w = s*sqrt 3)
    i = 38 * 38 * 4 + (1 * 19 + 2) * 6 + 4
    s2 = 45 / 300
    assert np.allclose(pr[i], (2.5 / (300 / 16), 1.5 / (300 / 16), s2 * math.sqrt(3), s2 / math.sqrt(3)))
    # last level: 1x1, 4 anchors; the ratio-2 wide box is clipped to w = 1
    s6, s6p = 261 / 300, math.sqrt(261 * 315) / 300
    assert np.allclose(pr[-4:], [(0.5, 0.5, s6, s6), (0.5, 0.5, s6p, s6p), (0.5, 0.5, 1.0, s6 / r),
                                 (0.5, 0.5, s6 / r, 1.0)])
    pr5 = prior_boxes(NetConfig("netnet-vgg16-512"))
    assert np.allclose(pr5[0], (0.5 / 64, 0.5 / 64, 20.48 / 512, 20.48 / 512))
    assert np.allclose(pr5[1], (0.5 / 64, 0.5 / 64, math.sqrt(20.48 * 51.2) / 512, math.sqrt(20.48 * 51.2) / 512))


def test_decode_softmax_nms():
    pr = np.array([[0.5, 0.5, 0.2, 0.4]])
    b = decode(np.zeros((1, 4)), pr)
    assert np.allclose(b, [[0.4, 0.3, 0.6, 0.7]])
    b = decode(np.array([[1.0, -1.0, 1.0, 0.0]]), pr)
    w = 0.2 * math.exp(0.2)
    assert np.allclose(b, [[0.5 + 0.02 - w / 2, 0.5 - 0.04 - 0.2, 0.5 + 0.02 + w / 2, 0.5 - 0.04 + 0.2]])
    s = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, 0.0]]))
    assert np.allclose(s.sum(1), 1) and np.allclose(s[1], [1, 0, 0])
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.9], [0.5, 0.5, 1.5, 1.5], [2, 2, 3, 3.0]])
    assert nms(boxes, np.array([0.9, 0.8, 0.7, 0.6])) == [0, 2, 3]
    scores = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.0, 0.7], [0.99, 0.005, 0.005]])
    d = detect(boxes, scores, score_threshold=0.01)
    assert [(c, round(sc, 2)) for c, sc, *_ in d] == [(1, 0.9), (2, 0.7)]
    assert len(detect(boxes, scores, score_threshold=0.01, top_k=1)) == 1


def test_macs_match_spec():
    spec = {"ssd-vgg16-300": 34.4, "netnet-vgg16-300": 36.9, "ssd-vgg16-512": 98.6,
            "netnet-vgg16-512": 105.7}
    for net, g in spec.items():
        got = count_macs(NetConfig(net, width=1.0, num_classes=80)) / 1e9
        assert round(got, 1) == g, (net, got, g)


# ---------------------------------------------------------------------------------------------
def test_safetensors_round_trip_and_refusals():
    d = tempfile.mkdtemp()
    try:
        p = os.path.join(d, "a.safetensors")
        t = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.array(3.5, dtype=np.float32),
             "e": np.zeros((0, 4), np.float32), "z": np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)}
        md = {"format": "x", "classes": '["a","b"]'}
        n = st.write(p, t, md)
        buf = open(p, "rb").read()
        assert n == len(buf)
        (hl,) = struct.unpack("<Q", buf[:8])
        assert hl % 8 == 0
        t2, md2 = st.read(p)
        assert md2 == md and set(t2) == set(t)
        for k in t:
            assert t2[k].dtype == np.float32 and t2[k].shape == t[k].shape and np.array_equal(t2[k], t[k])

        def header_variant(fn):
            h = json.loads(buf[8:8 + hl])
            fn(h)
            hb = json.dumps(h).encode()
            return struct.pack("<Q", len(hb)) + hb + buf[8 + hl:]

        raises(ValueError, st.parse, buf[:5], match="truncated")
        raises(ValueError, st.parse, buf[:-4], match="beyond the data")
        raises(ValueError, st.parse, buf + b"\0\0\0\0", match="trailing")
        raises(ValueError, st.parse, struct.pack("<Q", 4) + b"{x}y", match="JSON")
        raises(ValueError, st.parse, struct.pack("<Q", 999) + b"{}", match="truncated header")
        raises(ValueError, st.parse, header_variant(lambda h: h["b"].update(dtype="F16")), match="'b': dtype")
        raises(ValueError, st.parse, header_variant(lambda h: h["b"].update(shape=[3, 3])), match="'b'")
        raises(ValueError, st.parse, header_variant(lambda h: h["z"].update(data_offsets=[0, 80])),
               match="overlap")
        raises(ValueError, st.parse, header_variant(lambda h: h["__metadata__"].update(x=3)), match="'x'")
        raises(ValueError, st.parse, header_variant(lambda h: h["b"].pop("shape")), match="'shape'")
        raises(ValueError, st.write, p, {"a": np.zeros(1)}, {"k": 1})
    finally:
        shutil.rmtree(d)


def test_metadata_round_trip_and_refusals():
    cfg = NetConfig("netnet-vgg16-512", width=0.25, classes=["person", "car"],
                    modules={"nem": True, "ntm": False, "nnfm": True})
    md = cfg.metadata()
    assert all(isinstance(v, str) for v in md.values())
    assert md["format"] == "netnet.model/1" and md["width"] == "0.25" and md["input_size"] == "512"
    assert md["classes"] == '["person","car"]'
    assert md["normalisation"] == '{"order":"bgr","mean":[104,117,123],"std":[1,1,1]}'
    assert json.loads(md["priors"])["min_sizes"][0] == 20.48
    c2 = NetConfig.from_metadata(md)
    assert c2.metadata() == md
    assert NetConfig("netnet-vgg16-300", width=1).metadata()["width"] == "1"
    assert NetConfig("netnet-vgg16-300").metadata()["priors"] == (
        '{"min_sizes":[21,45,99,153,207,261],"max_sizes":[45,99,153,207,261,315],'
        '"steps":[8,16,32,64,100,300],"aspect_ratios":[[2],[2,3],[2,3],[2,3],[2],[2]],'
        '"variances":[0.1,0.2],"clip":true}')
    no_mod = dict(md)
    no_mod.pop("modules")
    assert NetConfig.from_metadata(no_mod).modules == {"nnfm": True, "nem": True, "ntm": True}
    for key, val, msg in (("format", "netnet.model/2", "'format'"), ("network", "yolo", "'network'"),
                          ("input_size", "300", "'input_size'"), ("width", "wide", "'width'"),
                          ("classes", "person", "'classes'"), ("width", "0", "width"),
                          ("priors", '{"min_sizes":[1]}', "priors")):
        bad = dict(md)
        bad[key] = val
        raises(ValueError, NetConfig.from_metadata, bad, match=msg)
    bad = dict(md)
    bad.pop("network")
    raises(ValueError, NetConfig.from_metadata, bad, match="'network'")


def test_model_file_round_trip_and_refusals():
    d = tempfile.mkdtemp()
    try:
        cfg = NetConfig("netnet-vgg16-300", width=0.125, classes=["a", "b", "c"])
        m = build(cfg, seed=1, golden=True)
        p = os.path.join(d, "m.safetensors")
        save_model(p, m)
        m2 = load_model(p)
        assert m2.cfg.metadata() == cfg.metadata()
        sd, sd2 = m.state_dict(), m2.state_dict()
        assert all(torch.equal(sd[k], sd2[k]) for k in sd)
        t, md = st.read(p)
        extra = dict(t)
        extra["nnfm.down1.weight"] = np.zeros((8, 8, 1, 1), np.float32)
        raises(ValueError, load_state, NETNet(cfg), extra, match="nnfm.down1.weight")
        miss = dict(t)
        miss.pop("heads.conf3.bias")
        raises(ValueError, load_state, NETNet(cfg), miss, match="heads.conf3.bias")
        wrong = dict(t)
        wrong["netm13.gate.weight"] = np.zeros((64, 32, 1, 1), np.float32)
        raises(ValueError, load_state, NETNet(cfg), wrong, match="netm13.gate.weight")
        md2 = dict(md)
        md2["modules"] = '{"nnfm":true,"nem":true,"ntm":false}'
        st.write(p, t, md2)
        raises(ValueError, load_model, p, match="transfer")
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------------------------------------
def _default_python_with_ort():
    for cand in ("python3",):
        exe = shutil.which(cand)
        if not exe or os.path.realpath(exe) == os.path.realpath(sys.executable):
            continue
        r = subprocess.run([exe, "-c", "import onnxruntime"], capture_output=True)
        if r.returncode == 0:
            return exe
    return None


def test_goldens_export_and_onnxruntime():
    d = tempfile.mkdtemp()
    try:
        r = subprocess.run([sys.executable, os.path.join(TRAINING, "make_goldens.py"), "--network",
                            "netnet-vgg16-300", "--width", "0.125", "--num-classes", "3", "--seed", "1",
                            "--golden-biases", "--out-dir", d], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        mp = os.path.join(d, "netnet-vgg16-300-w0.125.safetensors")
        g, gmd = st.read(os.path.join(d, "netnet-vgg16-300-w0.125.golden.safetensors"))
        names = (["input"] + [f"p{l}" for l in range(1, 7)] + [f"pf{s}" for s in range(1, 5)]
                 + [f"out{s}" for s in range(1, 5)] + ["loc", "conf", "priors", "boxes", "scores"])
        assert list(g) == names
        assert g["input"].shape == (1, 3, 300, 300) and g["loc"].shape == (8732, 4)
        assert g["conf"].shape == (8732, 4) and g["scores"].shape == (8732, 4)
        assert all(np.isfinite(v).all() for v in g.values())
        m = load_model(mp)
        assert m.cfg.classes == COCO_CLASSES[:3]
        # a float32 forward agrees with the float64 golden to well inside the engine's 1e-4
        with torch.no_grad():
            f = m.float().forward_features(torch.from_numpy(g["input"]))
        for k in names[1:16]:
            want = g[k] if k not in ("loc", "conf") else g[k][None]
            err = float(np.abs(f[k].numpy() - want).max()) / float(np.abs(want).max())
            assert err < 1e-5, (k, err)
        assert np.allclose(g["priors"], prior_boxes(m.cfg).astype(np.float32))
        assert np.allclose(g["boxes"], decode(g["loc"].astype(np.float64), prior_boxes(m.cfg)), atol=1e-5)
        assert np.allclose(g["scores"], softmax(g["conf"].astype(np.float64), 1), atol=1e-6)
        # export, then ONNX Runtime (in the default python3) against the golden heads
        onnx = os.path.join(d, "m.onnx")
        r = subprocess.run([sys.executable, os.path.join(TRAINING, "export.py"), mp, "--onnx", onnx],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert os.path.getsize(onnx) > 100000
        py = _default_python_with_ort()
        if py is None:
            raise unittest.SkipTest("no python3 with onnxruntime: ONNX Runtime comparison skipped")
        hd = os.path.join(d, "heads")
        os.makedirs(hd)
        for k in ("input", "loc", "conf"):
            np.save(os.path.join(hd, k + ".npy"), g[k])
        r = subprocess.run([py, os.path.join(TRAINING, "check_heads_onnx.py"), "--onnx", onnx,
                            "--heads", hd], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        shutil.rmtree(d)


# ---------------------------------------------------------------------------------------------
def _main():
    import time
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = skipped = 0
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
        except unittest.SkipTest as e:
            skipped += 1
            print(f"SKIP {name}: {e}")
            continue
        except Exception:
            import traceback
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
            continue
        passed += 1
        print(f"ok   {name} ({time.time() - t0:.1f} s)")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
