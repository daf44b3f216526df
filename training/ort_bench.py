#!/usr/bin/env python3
"""Time ONNX Runtime on an exported netnet model (random input).

    python3 training/ort_bench.py MODEL.onnx [--threads 2] [--frames 50] [--warmup 5] [--json]

(default python3, which has onnxruntime.) intra_op_num_threads = --threads, inter_op 1,
sequential execution, all graph optimisations. Prints the median ms per frame and fps; with
--json one line {"runtime":"onnxruntime","median_ms":..,"fps":..,"threads":..}.
"""
import argparse
import json
import statistics
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description="time ONNX Runtime on a netnet ONNX model")
    ap.add_argument("onnx")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(a.seed).uniform(-120, 120, size=shape).astype(np.float32)
    feed = {inp.name: x}
    for _ in range(a.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(max(1, a.frames)):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    med = statistics.median(times)
    fps = 1000.0 / med if med > 0 else float("inf")
    if a.json:
        print(json.dumps({"runtime": "onnxruntime", "median_ms": round(med, 3), "fps": round(fps, 2),
                          "threads": a.threads}))
    else:
        print(f"{a.onnx}: input {inp.name} {shape}, {a.frames} frames after {a.warmup} warm-up, "
              f"{a.threads} threads: median {med:.2f} ms, {fps:.1f} fps "
              f"(min {min(times):.2f}, max {max(times):.2f} ms)")


if __name__ == "__main__":
    main()
