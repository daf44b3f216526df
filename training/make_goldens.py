#!/usr/bin/env python3
"""Write a netnet model file and its golden file (docs/model-format.md "Golden files").

Run with Debian's torch interpreter, from anywhere:
    /usr/bin/python3 training/make_goldens.py --network netnet-vgg16-300 --width 0.125 \
        --num-classes 3 --classes person,car,dog --seed 1 --golden-biases \
        --out-dir Tests/NetnetEngineTests/Goldens

Writes DIR/<network>-w<W>.safetensors (the model, F32, metadata per the docs) and
DIR/<network>-w<W>.golden.safetensors with F32 tensors
    input [1,3,S,S]  seeded random pixels 0..255 minus the model's mean (already normalised)
    p1..pL [1,c,h,w] pyramid;  pf1..pf4 (when modules.nnfm);  out1..out4 (when modules.nem/ntm)
    loc [P,4], conf [P,C+1] (raw heads, batch dim dropped), priors [P,4] (centre form),
    boxes [P,4] (decoded, corner form, not clipped), scores [P,C+1] (softmax)
The golden forward runs in float64 (on the float32 weights and the float32 input, both widened),
then is stored as float32, so it is closer to the exact result than any float32 engine.

--golden-biases ("golden init"): biases uniform(+-0.05), L2Norm weights uniform(10, 30), and the
NETM gate / loc / conf head weights rescaled on the golden input (calibrate_for_goldens) so the
sigmoid gates are not saturated and decode/softmax stay in range. Without it: the model init
(He normal, zero biases, L2Norm 20). With --model FILE the model is loaded, not initialised.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netnet_ref import safetensors_io  # noqa: E402
from netnet_ref.box_utils import decode, softmax  # noqa: E402
from netnet_ref.config import GOLDEN_FORMAT, NetConfig, format_width  # noqa: E402
from netnet_ref.model import build, calibrate_for_goldens, load_model, save_model  # noqa: E402
from netnet_ref.priors import prior_boxes  # noqa: E402


def golden_input(cfg, seed):
    """A random image as the engine would feed it: integer pixels uniform in 0..255 (numpy
    default_rng(seed).integers), minus the model's normalisation mean, over its std, i.e. values
    in about [-123, 151] for SSD's BGR means (image-like magnitudes; integer-valued float32)."""
    rng = np.random.default_rng(seed)
    S = cfg.input_size
    pix = rng.integers(0, 256, size=(1, 3, S, S)).astype(np.float64)
    mean = np.array(cfg.normalisation["mean"], dtype=np.float64).reshape(1, 3, 1, 1)
    std = np.array(cfg.normalisation["std"], dtype=np.float64).reshape(1, 3, 1, 1)
    return ((pix - mean) / std).astype(np.float32)


def compute_golden(model, x32):
    """float64 forward of the (float32) model on x32; returns name -> float64 array."""
    cfg = model.cfg
    m = model.double().eval()
    with torch.no_grad():
        feats = m.forward_features(torch.from_numpy(x32.astype(np.float64)))
    g = {"input": x32.astype(np.float64)}
    for k, v in feats.items():
        if k in ("loc", "conf"):
            continue
        g[k] = v.numpy()
    loc = feats["loc"][0].numpy()
    conf = feats["conf"][0].numpy()
    priors = prior_boxes(cfg)
    g["loc"] = loc
    g["conf"] = conf
    g["priors"] = priors
    g["boxes"] = decode(loc, priors, cfg.priors["variances"])
    g["scores"] = softmax(conf, axis=1)
    model.float()
    return g


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", required=False)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--num-classes", type=int, default=80)
    ap.add_argument("--classes", help="comma-separated class names (default: the first N COCO names)")
    ap.add_argument("--modules", help='JSON, e.g. {"nnfm":false} (default: all on for netnet-*)')
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--normalisation", help='JSON, e.g. {"order":"bgr","mean":[104,117,123],"std":[58,57,57]} '
                    '(default SSD\'s, std 1; a std near the pixels\' own keeps the ablation goldens\' '
                    'max/mean gates, which have no weights to calibrate, out of saturation)')
    ap.add_argument("--name", help="file stem (default <network>-w<W>; the ablation variants use their own)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--model", help="load this model file instead of initialising one")
    ap.add_argument("--golden-biases", action="store_true",
                    help="golden init: random biases/L2Norm scales and calibrated gates/heads")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()

    if a.model:
        model = load_model(a.model)
        cfg = model.cfg
        if a.network and a.network != cfg.network:
            ap.error(f"--network {a.network} but {a.model} holds {cfg.network}")
        x = golden_input(cfg, a.seed)
    else:
        if not a.network:
            ap.error("--network is required without --model")
        classes = a.classes.split(",") if a.classes else None
        modules = json.loads(a.modules) if a.modules else None
        cfg = NetConfig(a.network, width=a.width, classes=classes, num_classes=a.num_classes,
                        modules=modules,
                        normalisation=json.loads(a.normalisation) if a.normalisation else None,
                        description=f"random {'golden' if a.golden_biases else 'He'} init, seed {a.seed}")
        model = build(cfg, seed=a.seed, golden=a.golden_biases)
        x = golden_input(cfg, a.seed)
        if a.golden_biases:
            model.double()
            calibrate_for_goldens(model, torch.from_numpy(x.astype(np.float64)))
            model.float()  # the file holds float32 weights; goldens use exactly these

    os.makedirs(a.out_dir, exist_ok=True)
    stem = a.name or f"{cfg.network}-w{format_width(cfg.width)}"
    model_path = os.path.join(a.out_dir, stem + ".safetensors")
    golden_path = os.path.join(a.out_dir, stem + ".golden.safetensors")
    if not (a.model and os.path.abspath(a.model) == os.path.abspath(model_path)):
        n_model = save_model(model_path, model)
    else:
        n_model = os.path.getsize(model_path)

    g = compute_golden(model, x)
    md = {
        "format": GOLDEN_FORMAT,
        "network": cfg.network,
        "width": format_width(cfg.width),
        "input_size": str(cfg.input_size),
        "num_classes": str(cfg.num_classes),
        "modules": json.dumps(cfg.modules, separators=(",", ":")),
        "model": os.path.basename(model_path),
        "seed": str(a.seed),
        "computed_in": "float64",
        "description": "input: (numpy default_rng(seed).integers(0,256,[1,3,S,S]) - mean) / std",
    }
    n_golden = safetensors_io.write(golden_path, {k: v.astype(np.float32) for k, v in g.items()}, md)
    print(f"{model_path}: {n_model} bytes")
    print(f"{golden_path}: {n_golden} bytes ({len(g)} tensors, P={g['loc'].shape[0]}) "
          f"in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
