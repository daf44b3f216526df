#!/usr/bin/env python3
"""Time OpenVINO's CPU plugin on an exported netnet model (random input), fp32 or bf16.

    python3 training/openvino_bench.py MODEL.onnx [--precision f32|bf16] [--threads 2]
                                       [--frames 50] [--warmup 5] [--json]

(default python3, with `pip install openvino`.) One inference stream, `--threads` inference
threads, latency hint; `--precision` sets INFERENCE_PRECISION_HINT (bf16 runs OpenVINO's
oneDNN bf16 kernels where the CPU has AVX512_BF16 or AMX). Prints the median ms per frame; with
--json one line {"runtime":"openvino","precision":..,"median_ms":..,"fps":..,"threads":..,
"version":..}. Exits 2 with one line when openvino is missing or the model cannot be read.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description="time OpenVINO (CPU) on a netnet ONNX model")
    ap.add_argument("onnx")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    try:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints
    except ImportError:
        print("openvino_bench: openvino is not installed (python3 -m pip install openvino)", file=sys.stderr)
        sys.exit(2)
    core = ov.Core()
    try:
        model = core.read_model(a.onnx)
    except Exception as error:  # OpenVINO raises its own RuntimeError subclasses
        print(f"openvino_bench: cannot read {a.onnx}: {error}", file=sys.stderr)
        sys.exit(2)
    config = {
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        hints.inference_precision: ov.Type.bf16 if a.precision == "bf16" else ov.Type.f32,
        props.inference_num_threads: a.threads,
        props.num_streams: 1,
    }
    compiled = core.compile_model(model, "CPU", config)
    actual = compiled.get_property(hints.inference_precision)
    request = compiled.create_infer_request()
    port = compiled.inputs[0]
    shape = [d if d > 0 else 1 for d in port.get_partial_shape().get_min_shape()]
    x = np.random.default_rng(a.seed).uniform(-120, 120, size=shape).astype(np.float32)
    for _ in range(a.warmup):
        request.infer({0: x})
    times = []
    for _ in range(max(1, a.frames)):
        t0 = time.perf_counter()
        request.infer({0: x})
        times.append((time.perf_counter() - t0) * 1000.0)
    med = statistics.median(times)
    fps = 1000.0 / med if med > 0 else float("inf")
    if a.json:
        print(json.dumps({"runtime": "openvino", "precision": a.precision, "executed_precision": str(actual),
                          "median_ms": round(med, 3), "fps": round(fps, 2), "threads": a.threads,
                          "version": ov.__version__}))
    else:
        print(f"{a.onnx}: OpenVINO {ov.__version__} {a.precision} (runs {actual}), {a.frames} frames after "
              f"{a.warmup} warm-up, {a.threads} threads: median {med:.2f} ms, {fps:.1f} fps "
              f"(min {min(times):.2f}, max {max(times):.2f} ms)")


if __name__ == "__main__":
    main()
