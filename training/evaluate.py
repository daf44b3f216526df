#!/usr/bin/env python3
"""Score a model on a labelled sequence or image set with pycocotools (COCO-style AP).

    training/.venv/bin/python training/evaluate.py --model models/default.safetensors \\
        --data pets09-val [--engine torch|netnet] [--results out.json] [--json]

--engine torch runs the PyTorch reference; --engine netnet runs the Swift engine through the
`netnet` binary (`netnet annotate` on a sequence's video, `netnet detect` on an image set), so the
score includes the engine's own decoding and resizing. Prints AP, AP50, AP75, APs, APm, APl (in
percent, COCO's definitions: IoU 0.50:0.95, 0.50, 0.75; small < 32², medium < 96² pixels; n/a
where the set has no box of that size). --sizes input measures those sizes at the network's input
instead (a 30×80 person of a 768×576 frame is 12×42 pixels at a 300×300 input: small).
Ignore regions of MOT ground truth (conf 0) count as COCO crowd regions.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netnet_ref import data, evaluation  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", required=True, help="model file (safetensors, docs/model-format.md)")
    p.add_argument("--data", default="pets09-val", help=f"one of {', '.join(data.NAMED)} (default: %(default)s)")
    p.add_argument("--engine", choices=("torch", "netnet"), default="torch")
    p.add_argument("--netnet", default=None, help="the netnet binary (default: .build/release/netnet, then debug)")
    p.add_argument("--threshold", type=float, default=0.01, help="score threshold (default: %(default)s)")
    p.add_argument("--results", default=None, help="write the COCO results JSON here")
    p.add_argument("--ground-truth", default=None, help="write the COCO ground-truth JSON here")
    p.add_argument("--sizes", choices=("image", "input"), default="image",
                   help="what small/medium/large measure: the image's pixels (COCO), or the network's "
                        "input pixels after resizing (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="the Swift engine's arithmetic (--engine netnet only; default: %(default)s)")
    args = p.parse_args(argv)

    model_path = Path(args.model)
    if not model_path.is_file():
        print(f"evaluate: {model_path}: no such model file", file=sys.stderr)
        return 1
    from netnet_ref import safetensors_io
    from netnet_ref.config import NetConfig
    try:  # refuse a broken model file before spending a minute on decoding the data
        cfg = NetConfig.from_metadata(safetensors_io.read(model_path)[1])
    except ValueError as e:
        print(f"evaluate: {e}" if str(model_path) in str(e) else f"evaluate: {model_path}: {e}", file=sys.stderr)
        return 1
    try:
        ds = data.load_named(args.data)
    except (ValueError, FileNotFoundError) as e:
        print(f"evaluate: {e}", file=sys.stderr)
        return 1
    gt = data.to_coco(ds)
    t0 = time.time()
    if args.engine == "torch":
        import torch
        from netnet_ref.model import load_model
        torch.set_num_threads(args.threads)
        try:
            model = load_model(model_path)
        except ValueError as e:
            print(f"evaluate: {e}", file=sys.stderr)
            return 1
        missing = [c for c in ds.classes if c not in model.cfg.classes]
        if missing:
            print(f"evaluate: {model_path}: has no class {missing[0]!r} of {args.data}", file=sys.stderr)
            return 1
        index = {c: i + 1 for i, c in enumerate(ds.classes)}
        results = []
        for r in evaluation.torch_detections(model, ds, threshold=args.threshold):
            name = model.cfg.classes[r["category_id"] - 1]
            if name in index:
                results.append({**r, "category_id": index[name]})
    else:
        repo = Path(__file__).resolve().parents[1]
        netnet = args.netnet or next((str(b) for b in (repo / ".build/release/netnet", repo / ".build/debug/netnet")
                                      if b.exists()), None)
        if netnet is None:
            print("evaluate: no netnet binary; build it (swift build -c release) or pass --netnet", file=sys.stderr)
            return 1
        results = evaluation.netnet_detections(netnet, model_path, ds, threshold=args.threshold,
                                               precision=args.precision)
    seconds = time.time() - t0
    area_scale = 1.0
    if args.sizes == "input":
        area_scale = evaluation.input_area_scale(ds, cfg.input_size)
    scores = evaluation.score(gt, results, area_scale=area_scale)
    if args.results:
        Path(args.results).write_text(json.dumps(results))
    if args.ground_truth:
        Path(args.ground_truth).write_text(json.dumps(gt))
    summary = {"model": str(model_path), "data": args.data, "engine": args.engine, "images": len(ds.samples),
               "boxes": sum(len(s.boxes) for s in ds.samples), "detections": len(results),
               "seconds": round(seconds, 1), "sizes": args.sizes, **scores}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.data}: {summary['images']} images, {summary['boxes']} boxes; {args.engine}: "
              f"{len(results)} detections above {args.threshold} in {seconds:.1f}s")
        print(evaluation.format_scores(scores) + (" (sizes at the network's input)" if args.sizes == "input" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
