#!/usr/bin/env python3
"""Compare an ONNX export with heads dumped by the Swift engine (`netnet detect --dump-heads DIR`).

    python3 training/check_heads_onnx.py --onnx M.onnx --heads DIR [--tolerance 1e-4]

(default python3, which has onnxruntime.) Runs ONNX Runtime on DIR/input.npy ([1,3,S,S] float32),
compares with DIR/loc.npy [P,4] and DIR/conf.npy [P,C+1]; prints, per tensor, max |error| and
max |value| and their ratio; exits 1 if either ratio exceeds the tolerance.
"""
import argparse
import os
import sys

import numpy as np


def run_onnx(onnx_path, x, threads=2):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    loc, conf = sess.run(["loc", "conf"], {"image": x})
    return loc, conf


def compare(name, got, want):
    got = np.asarray(got, dtype=np.float64).reshape(np.asarray(want).shape)
    want = np.asarray(want, dtype=np.float64)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    ref = float(np.max(np.abs(want))) if want.size else 0.0
    rel = err / ref if ref > 0 else err
    return err, ref, rel


def main():
    ap = argparse.ArgumentParser(description="compare ONNX Runtime heads with dumped heads")
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--heads", required=True, help="directory with input.npy, loc.npy, conf.npy")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |err| / max |value| (default 1e-4)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    x = np.load(os.path.join(a.heads, "input.npy")).astype(np.float32)
    want_loc = np.load(os.path.join(a.heads, "loc.npy"))
    want_conf = np.load(os.path.join(a.heads, "conf.npy"))
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        sys.exit(f"input.npy: expected [1,3,S,S], found {list(x.shape)}")
    loc, conf = run_onnx(a.onnx, x, a.threads)
    ok = True
    for name, got, want in (("loc", loc, want_loc), ("conf", conf, want_conf)):
        if got.size != want.size or got.shape[-1] != want.shape[-1]:
            print(f"{name}: shape mismatch: onnx {list(got.shape)} vs dumped {list(want.shape)}")
            ok = False
            continue
        err, ref, rel = compare(name, got, want)
        bad = rel > a.tolerance
        ok &= not bad
        print(f"{name:5s} {list(want.shape)}: max-abs-error {err:.3e} / max-abs-value {ref:.3e} = "
              f"{rel:.3e} {'FAIL' if bad else 'ok'} (tolerance {a.tolerance:g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
