#!/usr/bin/env python3
"""Score a model on labelled sequences or image sets with pycocotools (COCO-style AP), each set
on its own (scored by scene).

    training/.venv/bin/python training/evaluate.py --model models/default.safetensors \\
        --data pets09-val,yolo:../shared/data/retail-cctv@test [--limit 200] [--engine torch|netnet] \\
        [--results out.json] [--f1 0.25,0.5] [--errors 0.25] [--json]

--data takes the named sets and the specs of train.py (yolo:DIR[@SPLIT], coco:ANN.json:IMAGES,
voc:DIR[@SPLIT], mot:SEQDIR, pennfudan:DIR), comma-separated; each is scored separately, one row
each (--json: one JSON object a line, one line a set). Classes are matched to the model's by name
as in train.py (case-insensitive, pedestrian/people/persons/human -> person, --alias for more);
only the model classes a set labels are scored. --limit N keeps N images spread evenly over a
set (every k-th), chosen before decoding, so a large folder stays affordable.

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
    p.add_argument("--data", default="pets09-val",
                   help=f"comma-separated sets: {', '.join(data.NAMED)} or yolo:/coco:/voc:/mot:/pennfudan: specs "
                        "(default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="at most N images a set, spread evenly over it")
    p.add_argument("--alias", default="", help="extra class synonyms FROM=TO,... (e.g. 0=person)")
    p.add_argument("--engine", choices=("torch", "netnet"), default="torch")
    p.add_argument("--netnet", default=None, help="the netnet binary (default: .build/release/netnet, then debug)")
    p.add_argument("--threshold", type=float, default=0.01, help="score threshold (default: %(default)s)")
    p.add_argument("--results", default=None,
                   help="write the COCO results JSON here (with several sets: NAME.1.json, NAME.2.json, ...)")
    p.add_argument("--ground-truth", default=None, help="write the COCO ground-truth JSON here (numbered likewise)")
    p.add_argument("--sizes", choices=("image", "input"), default="image",
                   help="what small/medium/large measure: the image's pixels (COCO), or the network's "
                        "input pixels after resizing (default: %(default)s)")
    p.add_argument("--f1", default=None, metavar="T,T,...",
                   help="also F1, precision and recall of the detections scoring at least each T (IoU >= 0.5; "
                        "a detection on an ignore region not counted): what a user sees at a threshold")
    p.add_argument("--errors", type=float, default=None, metavar="T",
                   help="also sort the detections scoring at least T into hits, group boxes (one box over "
                        "two or more people), mislocalised, duplicates and background, and count the set's "
                        "overlapping labelled pairs (IoU > 0.2): why a set scores low")
    p.add_argument("--json", action="store_true", help="print one JSON object a set instead of a table")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="the Swift engine's arithmetic (--engine netnet only; default: %(default)s)")
    args = p.parse_args(argv)

    try:
        args.f1 = [float(t) for t in args.f1.split(",")] if args.f1 else []
    except ValueError:
        print(f"evaluate: --f1: expected score thresholds like 0.25,0.5, found {args.f1!r}", file=sys.stderr)
        return 1
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
    specs = data.split_specs(args.data)
    if not specs:
        print("evaluate: --data: expected at least one set", file=sys.stderr)
        return 1
    aliases = {}
    for item in [a for a in args.alias.split(",") if a.strip()]:
        src, eq, dst = item.partition("=")
        if not eq or not src.strip() or not dst.strip():
            print(f"evaluate: --alias: expected FROM=TO, found {item!r}", file=sys.stderr)
            return 1
        aliases[src.strip()] = dst.strip()
    model = None
    if args.engine == "torch":
        import torch
        from netnet_ref.model import load_model
        torch.set_num_threads(args.threads)
        try:
            model = load_model(model_path)
        except ValueError as e:
            print(f"evaluate: {e}", file=sys.stderr)
            return 1
    netnet = None
    if args.engine == "netnet":
        repo = Path(__file__).resolve().parents[1]
        netnet = args.netnet or next((str(b) for b in (repo / ".build/release/netnet", repo / ".build/debug/netnet")
                                      if b.exists()), None)
        if netnet is None:
            print("evaluate: no netnet binary; build it (swift build -c release) or pass --netnet", file=sys.stderr)
            return 1
    rows = []
    for n, spec in enumerate(specs, 1):
        try:
            ds = data.relabel(data.load_spec(spec, limit=args.limit), cfg.classes, aliases, compact=True)
        except (ValueError, FileNotFoundError) as e:
            print(f"evaluate: {e}", file=sys.stderr)
            return 1
        summary = score_set(args, model_path, cfg, model, netnet, ds)
        rows.append(summary)
        suffix = f".{n}" if len(specs) > 1 else ""
        for target, key in ((args.results, "_results"), (args.ground_truth, "_gt")):
            if target:
                t = Path(target)
                Path(str(t.with_suffix("")) + suffix + (t.suffix or ".json")).write_text(json.dumps(summary[key]))
        public = {k: v for k, v in summary.items() if not k.startswith("_")}
        if args.json:
            print(json.dumps(public), flush=True)
        elif len(specs) == 1:
            print(f"{spec}: {public['images']} images, {public['boxes']} boxes; {args.engine}: "
                  f"{public['detections']} detections above {args.threshold} in {public['seconds']:.1f}s")
            print(evaluation.format_scores(public) + (" (sizes at the network's input)" if args.sizes == "input" else ""))
        else:
            print(f"{spec}: {public['images']} images, {public['boxes']} boxes, {public['seconds']:.1f}s: "
                  + evaluation.format_scores(public), flush=True)
        if args.f1 and not args.json:
            print(f"{spec}: " + " | ".join(f"F1 {f:.2f} (P {p:.2f} R {r:.2f}) at {t}"
                                           for t, (f, p, r) in public["F1"].items()), flush=True)
        if args.errors is not None and not args.json:
            errors, (pairs, boxes) = public["errors"], public["overlapping_pairs"]
            print(f"{spec}: at {args.errors}: " + ", ".join(f"{k} {v}" for k, v in errors.items())
                  + f"; labelled pairs at IoU > 0.2: {pairs} ({100 * pairs / max(boxes, 1):.1f} per 100 boxes)", flush=True)
    if len(specs) > 1 and not args.json:
        print()
        print(markdown_table(rows, args.sizes))
    return 0


def score_set(args, model_path, cfg, model, netnet, ds):
    """Detections on one relabelled set and its scores -> the summary dict (with the COCO results
    and ground truth under "_results" and "_gt")."""
    gt = data.to_coco(ds)
    t0 = time.time()
    if model is not None:
        index = {c: i + 1 for i, c in enumerate(ds.classes)}
        results = []
        for r in evaluation.torch_detections(model, ds, threshold=args.threshold):
            name = model.cfg.classes[r["category_id"] - 1]
            if name in index:
                results.append({**r, "category_id": index[name]})
    else:
        results = evaluation.netnet_detections(netnet, model_path, ds, threshold=args.threshold,
                                               precision=args.precision)
    seconds = time.time() - t0
    area_scale = evaluation.input_area_scale(ds, cfg.input_size) if args.sizes == "input" else 1.0
    scores = evaluation.score(gt, results, area_scale=area_scale)
    if args.f1:
        scores["F1"] = {t: tuple(round(v, 4) for v in fpr) for t, fpr in evaluation.f1_at(gt, results, args.f1).items()}
    if args.errors is not None:
        scores["errors"] = evaluation.errors_at(gt, results, args.errors)
        scores["overlapping_pairs"] = evaluation.overlapping_pairs(gt)
    return {"model": str(model_path), "data": ds.name, "engine": args.engine, "images": len(ds.samples),
            "boxes": sum(len(s.boxes) for s in ds.samples), "ignore": sum(len(s.ignore) for s in ds.samples),
            "detections": len(results), "seconds": round(seconds, 1), "sizes": args.sizes, "limit": args.limit,
            **scores, "_results": results, "_gt": gt}


def markdown_table(rows, sizes):
    """The per-set rows as a Markdown table (what docs/models.md's "Scored by scene" holds)."""
    cell = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    lines = ["| set | images | boxes | " + " | ".join(evaluation.METRICS) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in evaluation.METRICS) + " |"]
    for r in rows:
        lines.append(f"| `{r['data']}` | {r['images']} | {r['boxes']} | "
                     + " | ".join(cell(r[k]) for k in evaluation.METRICS) + " |")
    if sizes == "input":
        lines.append("\n(small/medium/large measured at the network's input)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
