#!/usr/bin/env python3
"""COCO-style scoring with pycocotools, and detections from the PyTorch model or the Swift engine.

Results are COCO results dicts: {"image_id", "category_id", "bbox": [x, y, w, h], "score"}, image
ids 1.. in the set's sample order and category ids 1.. in its class order (data.to_coco).
"""
import contextlib
import io
import json
import subprocess

import numpy as np
import torch

from . import augment, box_utils
from .priors import prior_boxes

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def score(gt, results, area_scale=1.0):
    """pycocotools bbox evaluation -> {AP, AP50, AP75, APs, APm, APl} in percent; None where the
    set has no box of that size (pycocotools' -1). area_scale multiplies box areas before COCO's
    small/medium/large bounds (32², 96²) apply: 1 for the image's pixels, (S/W)·(S/H) for the size
    the network sees at its S×S input."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {k: 0.0 for k in METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if area_scale != 1.0:
            ev.params.areaRng = [[0, 1e10], [0, 32 ** 2 / area_scale], [32 ** 2 / area_scale, 96 ** 2 / area_scale],
                                 [96 ** 2 / area_scale, 1e10]]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: (round(float(v) * 100, 2) if v >= 0 else None) for k, v in zip(METRICS, ev.stats[:6])}


def f1_at(gt, results, thresholds, iou_threshold=0.5):
    """{threshold: (F1, precision, recall)}: the detections scoring at least each threshold,
    matched greedily by score (per image and class) to unmatched boxes with IoU >= iou_threshold.
    An unmatched detection on a crowd (ignore) region counts neither way; `gt` and `results` are
    the COCO dicts of `score`. What a user sees at a product threshold, which AP does not show."""
    from torchvision.ops import box_iou
    truth, crowd = {}, {}
    for a in gt["annotations"]:
        (crowd if a.get("iscrowd") else truth).setdefault((a["image_id"], a["category_id"]), []).append(a["bbox"])
    total = sum(len(v) for v in truth.values())
    out = {}
    for threshold in thresholds:
        kept = {}
        for r in results:
            if r["score"] >= threshold:
                kept.setdefault((r["image_id"], r["category_id"]), []).append(r)
        hits = misses = 0
        for key, found in kept.items():
            found.sort(key=lambda r: -r["score"])
            boxes = _corners([r["bbox"] for r in found])
            overlap = box_iou(boxes, _corners(truth.get(key, [])))
            on_crowd = box_iou(boxes, _corners(crowd.get(key, []))).max(1).values >= iou_threshold \
                if key in crowd else torch.zeros(len(found), dtype=torch.bool)
            taken = torch.zeros(overlap.shape[1], dtype=torch.bool)
            for i in range(len(found)):
                free = overlap[i].masked_fill(taken, -1.0)
                if len(free) and free.max() >= iou_threshold:
                    taken[free.argmax()] = True
                    hits += 1
                elif not on_crowd[i]:
                    misses += 1
        precision = hits / (hits + misses) if hits + misses else 0.0
        recall = hits / total if total else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[threshold] = (f1, precision, recall)
    return out


def _corners(xywh):
    b = torch.as_tensor(xywh, dtype=torch.float64).reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def overlapping_pairs(gt, iou_threshold=0.2):
    """(pairs, boxes): how many pairs of labelled boxes of one image and class overlap at IoU >
    iou_threshold (people covering each other), and how many boxes there are; crowd regions are
    left out. `gt` is the COCO dict of `score`."""
    from torchvision.ops import box_iou
    truth = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd"):
            truth.setdefault((a["image_id"], a["category_id"]), []).append(a["bbox"])
    pairs = 0
    for boxes in truth.values():
        overlap = box_iou(_corners(boxes), _corners(boxes))
        pairs += int((torch.triu(overlap, diagonal=1) > iou_threshold).sum())
    return pairs, sum(len(v) for v in truth.values())


ERROR_KINDS = ("hit", "group", "mislocalised", "duplicate", "background")


def errors_at(gt, results, threshold, iou_threshold=0.5):
    """{kind: count} for the detections scoring at least `threshold`, matched as `f1_at` matches
    them. A detection that matches nothing is a `group` box when two or more labelled boxes
    each lie more than half inside it (one box over people side by side), `duplicate` when it
    overlaps an already matched box at iou_threshold or more, `mislocalised` when it overlaps a
    labelled box at IoU 0.1 or more, `background` otherwise; one on a crowd region is not
    counted."""
    from torchvision.ops import box_iou
    truth, crowd = {}, {}
    for a in gt["annotations"]:
        (crowd if a.get("iscrowd") else truth).setdefault((a["image_id"], a["category_id"]), []).append(a["bbox"])
    kept = {}
    for r in results:
        if r["score"] >= threshold:
            kept.setdefault((r["image_id"], r["category_id"]), []).append(r)
    counts = dict.fromkeys(ERROR_KINDS, 0)
    for key, found in kept.items():
        found.sort(key=lambda r: -r["score"])
        boxes, labelled = _corners([r["bbox"] for r in found]), _corners(truth.get(key, []))
        overlap = box_iou(boxes, labelled)
        lt = torch.maximum(boxes[:, None, :2], labelled[None, :, :2])
        rb = torch.minimum(boxes[:, None, 2:], labelled[None, :, 2:])
        inside = (rb - lt).clamp(min=0).prod(2) / (labelled[:, 2:] - labelled[:, :2]).prod(1).clamp(min=1e-9)[None]
        on_crowd = box_iou(boxes, _corners(crowd.get(key, []))).max(1).values >= iou_threshold \
            if key in crowd else torch.zeros(len(found), dtype=torch.bool)
        taken = torch.zeros(overlap.shape[1], dtype=torch.bool)
        for i in range(len(found)):
            free = overlap[i].masked_fill(taken, -1.0)
            if len(free) and free.max() >= iou_threshold:
                taken[free.argmax()] = True
                counts["hit"] += 1
            elif on_crowd[i]:
                continue
            elif int((inside[i] > 0.5).sum()) >= 2:
                counts["group"] += 1
            elif len(free) and overlap[i].max() >= iou_threshold:
                counts["duplicate"] += 1
            elif len(free) and overlap[i].max() >= 0.1:
                counts["mislocalised"] += 1
            else:
                counts["background"] += 1
    return counts


def input_area_scale(dataset, input_size):
    """(S/W)·(S/H) for a set whose images share one size (ValueError otherwise)."""
    sizes = {(s.width, s.height) for s in dataset.samples}
    if len(sizes) != 1:
        raise ValueError(f"{dataset.name}: images of {len(sizes)} sizes; --sizes input needs one")
    (w, h), = sizes
    return (input_size / w) * (input_size / h)


def format_scores(scores):
    return "  ".join(f"{k} {scores[k]:5.1f}" if scores[k] is not None else f"{k}   n/a" for k in METRICS)


def _result(image_id, cls, sc, box):
    x1, y1, x2, y2 = box
    return {"image_id": image_id, "category_id": int(cls), "score": round(float(sc), 5),
            "bbox": [round(float(x1), 2), round(float(y1), 2), round(float(x2 - x1), 2), round(float(y2 - y1), 2)]}


@torch.no_grad()
def torch_detections(model, dataset, threshold=0.01, batch=8):
    """Runs the PyTorch model (evaluation mode) over a DetectionSet with the engine's post-processing."""
    cfg = model.cfg
    was_training = model.training
    model.eval()
    priors = prior_boxes(cfg)
    variances = cfg.priors["variances"]
    results = []
    samples = dataset.samples
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        x = torch.stack([augment.prepare(s.image, cfg.input_size, cfg.normalisation) for s in chunk])
        loc, conf = model(x)
        for j, s in enumerate(chunk):
            boxes = box_utils.decode(loc[j].double().numpy(), priors, variances)
            scores = box_utils.softmax(conf[j].double().numpy())
            scale = np.array([s.width, s.height, s.width, s.height])
            for cls, sc, *box in box_utils.detect(boxes, scores, score_threshold=threshold):
                b = np.clip(np.array(box), 0, 1) * scale
                results.append(_result(start + j + 1, cls, sc, b))
    model.train(was_training)
    return results


def netnet_detections(netnet, model_path, dataset, threshold=0.01, precision="fp32"):
    """Runs the Swift engine (`netnet annotate` on a MOT sequence's video, `netnet detect` on an
    image set) in `precision` (fp32 or bf16) and maps its JSON lines to COCO results of the set."""
    names = {n: i + 1 for i, n in enumerate(dataset.classes)}
    results = []

    def add(image_id, detections):
        for d in detections:
            if d["label"] in names:
                results.append(_result(image_id, names[d["label"]], d["score"], d["box"]))

    if dataset.frame_indices is not None:
        wanted = {f: i + 1 for i, f in enumerate(dataset.frame_indices)}
        cmd = [netnet, "annotate", dataset.source, "--json", "-", "--model", str(model_path),
               "--threshold", str(threshold), "--precision", precision, "--quiet"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {out.returncode}: {out.stderr.strip()[-500:]}")
        for line in out.stdout.splitlines():
            rec = json.loads(line)
            if rec["frame"] in wanted:
                add(wanted[rec["frame"]], rec["detections"])
    else:
        cmd = [netnet, "detect", "--model", str(model_path), "--threshold", str(threshold),
               "--precision", precision, *dataset.files]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"netnet detect: exit {out.returncode}: {out.stderr.strip()[-500:]}")
        ids = {f: i + 1 for i, f in enumerate(dataset.files)}
        for line in out.stdout.splitlines():
            rec = json.loads(line)
            add(ids[rec["file"]], rec["detections"])
    return results
