#!/usr/bin/env python3
"""The Swift engine's detections vs the PyTorch reference's, on real frames.

For each frame: `netnet detect --dump-heads` gives the engine's detections (JSON) and the exact
network input it used (input.npy); the reference runs the same model on that input with the same
post-processing. Passes when both find the same detections: same classes, boxes within --box-tol
of the image's size, scores within --score-tol. A detection whose score lies within --score-tol
of the threshold may be on one side only.

    training/.venv/bin/python training/check_detections.py --netnet .build/debug/netnet \\
        --model models/default.safetensors --video samples/vtest.avi --frames 520,560,599
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netnet_ref import box_utils  # noqa: E402
from netnet_ref.model import load_model  # noqa: E402
from netnet_ref.priors import prior_boxes  # noqa: E402


def reference(model, x, threshold, width, height):
    with torch.no_grad():
        loc, conf = model(torch.from_numpy(x))
    boxes = box_utils.decode(loc[0].double().numpy(), prior_boxes(model.cfg), model.cfg.priors["variances"])
    scores = box_utils.softmax(conf[0].double().numpy())
    out = []
    for cls, sc, *box in box_utils.detect(boxes, scores, score_threshold=threshold):
        b = np.clip(np.array(box), 0, 1) * [width, height, width, height]
        out.append({"class": cls - 1, "label": model.cfg.classes[cls - 1], "score": sc, "box": b.tolist()})
    return out


def compare(engine, ref, threshold, width, height, box_tol, score_tol):
    """-> (problems, largest box difference over the matched pairs as a fraction of the image's
    larger side, largest score difference); no problems when they agree."""
    problems = []
    size = max(width, height)
    worst_box = worst_score = 0.0
    unmatched = list(ref)
    for d in engine:
        best = None
        for r in unmatched:
            if r["class"] != d["class"] or abs(r["score"] - d["score"]) > score_tol:
                continue
            err = max(abs(a - b) for a, b in zip(r["box"], d["box"])) / size
            if err <= box_tol and (best is None or err < best[0]):
                best = (err, r)
        if best is None:
            if d["score"] - threshold > score_tol:
                problems.append(f"engine-only detection {d}")
        else:
            unmatched.remove(best[1])
            worst_box = max(worst_box, best[0])
            worst_score = max(worst_score, abs(best[1]["score"] - d["score"]))
    problems += [f"reference-only detection {r}" for r in unmatched if r["score"] - threshold > score_tol]
    return problems, worst_box, worst_score


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--netnet", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--video", required=True)
    p.add_argument("--frames", default="520,560,599", help="decoded frame indices (0-based)")
    p.add_argument("--threshold", type=float, default=0.3)
    p.add_argument("--box-tol", type=float, default=1e-3, help="fraction of the image's larger side")
    p.add_argument("--score-tol", type=float, default=1e-4)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model(args.model)
    failed = 0
    total = 0
    with tempfile.TemporaryDirectory() as work:
        for k in [int(f) for f in args.frames.split(",")]:
            png = Path(work) / f"frame{k}.png"
            subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", args.video, "-vf", f"select=eq(n\\,{k})",
                            "-vsync", "0", "-frames:v", "1", str(png)], check=True)
            heads = Path(work) / f"heads{k}"
            out = subprocess.run([args.netnet, "detect", "--model", args.model, "--threshold", str(args.threshold),
                                  "--dump-heads", str(heads), str(png)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"frame {k}: netnet detect failed: {out.stderr.strip()}", file=sys.stderr)
                return 1
            rec = json.loads(out.stdout.splitlines()[-1])
            x = np.load(heads / "input.npy")
            ref = reference(model, x, args.threshold, rec["width"], rec["height"])
            problems, worst_box, worst_score = compare(rec["detections"], ref, args.threshold, rec["width"],
                                                       rec["height"], args.box_tol, args.score_tol)
            total += len(rec["detections"])
            status = "ok" if not problems else "FAILED"
            print(f"frame {k}: engine {len(rec['detections'])} detections, reference {len(ref)}; "
                  f"largest box difference {worst_box:.2e} of the image, score {worst_score:.2e}: {status}")
            for pr in problems:
                print(f"  {pr}")
            failed += bool(problems)
    if total == 0:
        print("no detections above the threshold on any frame: nothing was compared", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
