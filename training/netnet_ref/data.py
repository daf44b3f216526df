#!/usr/bin/env python3
"""Detection data for training and evaluation: MOT-format sequences and YOLO-format image sets.

A *sample* is one labelled image:
    Sample(key, image, boxes, labels, ignore)
  key     str, unique in its set (e.g. "pets09-s2l1/000042" for decoded frame 42)
  image   uint8 [H, W, 3] in BGR order (the engine's and SSD's channel order)
  boxes   float32 [N, 4] corner form (x1, y1, x2, y2) in the image's pixels
  labels  int64 [N], 0-based index into the set's class list (0 = the first class, e.g. person)
  ignore  float32 [M, 4] regions not to be scored (MOT rows with conf 0): dropped as training
          targets, kept as COCO `iscrowd` regions in evaluation, so detections there count neither
          as hits nor as false positives.

Named sets (`load_named`), read from ../shared/data and the fetched sample video:
  pets09-train   PETS09-S2L1 decoded frames 0-499 (ground-truth frames 1-500), person
  pets09-val     PETS09-S2L1 decoded frames 500-599 (ground-truth frames 501-600), person
  tud-campus     TUD-Campus, all 71 frames, person
  coco128-person COCO128 train images, person boxes only (images without people included)
  coco128        COCO128 train images, 80 COCO classes

Images are decoded with the ffmpeg command-line tool (the same libavcodec the engine uses).
"""
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NETNET_SHARED", REPO.parent / "shared")) / "data"
VTEST = Path(os.environ.get("NETNET_VTEST", REPO / "samples" / "vtest.avi"))


@dataclass
class Sample:
    key: str
    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))

    @property
    def height(self):
        return int(self.image.shape[0])

    @property
    def width(self):
        return int(self.image.shape[1])


@dataclass
class DetectionSet:
    name: str
    classes: list
    samples: list
    source: str = ""          # video path for MOT sequences, image folder for image sets
    frame_indices: list = None  # decoded frame index per sample (MOT sequences)
    files: list = None        # image path per sample (image sets)


# ---- decoding ---------------------------------------------------------------------------------
def _probe_size(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height", "-of", "json", str(path)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise ValueError(f"{path}: ffprobe cannot read it: {out.stderr.strip().splitlines()[-1:] or ['?']}")
    s = json.loads(out.stdout)["streams"]
    if not s:
        raise ValueError(f"{path}: no video stream")
    return int(s[0]["width"]), int(s[0]["height"])


def decode_video(path, first=0, count=None):
    """Decoded frames first .. first+count-1 of a video as uint8 [N, H, W, 3] BGR."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video")
    w, h = _probe_size(path)
    vf = f"select=gte(n\\,{first})" if first else "null"
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-vf", vf, "-vsync", "0"]
    if count is not None:
        cmd += ["-frames:v", str(count)]
    cmd += ["-f", "rawvideo", "-pix_fmt", "bgr24", "-"]
    out = subprocess.run(cmd, capture_output=True)
    if out.returncode != 0:
        raise ValueError(f"{path}: ffmpeg failed: {out.stderr.decode(errors='replace').strip()[-300:]}")
    n = len(out.stdout) // (w * h * 3)
    return np.frombuffer(bytearray(out.stdout[: n * w * h * 3]), np.uint8).reshape(n, h, w, 3)


def decode_image(path):
    """One image file as uint8 [H, W, 3] BGR."""
    path = Path(path)
    w, h = _probe_size(path)
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "bgr24", "-"], capture_output=True)
    if out.returncode != 0 or len(out.stdout) != w * h * 3:
        raise ValueError(f"{path}: ffmpeg cannot decode it")
    return np.frombuffer(out.stdout, np.uint8).reshape(h, w, 3).copy()


# ---- labels -----------------------------------------------------------------------------------
def read_mot(path):
    """MOT ground truth -> {frame (1-based): (boxes [N,4] corners, ignore [M,4] corners)}.

    Rows with conf 0 are ignore regions. Raises ValueError naming file and line on a bad row."""
    path = Path(path)
    rows = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            try:
                frame, _id, x, y, w, h, conf = (float(v) for v in parts[:7])
            except ValueError:
                raise ValueError(f"{path}:{n}: expected frame,id,x,y,w,h,conf,..., found {line!r}")
            if w <= 0 or h <= 0:
                raise ValueError(f"{path}:{n}: box width and height must be positive, found {w} x {h}")
            good, ign = rows.setdefault(int(frame), ([], []))
            (good if conf != 0 else ign).append((x, y, x + w, y + h))
    return {k: (np.array(g, np.float32).reshape(-1, 4), np.array(i, np.float32).reshape(-1, 4))
            for k, (g, i) in rows.items()}


def read_yolo(path, width, height):
    """YOLO label file -> (class ids [N], boxes [N,4] corners in pixels)."""
    ids, boxes = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                c, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
            except (ValueError, IndexError):
                raise ValueError(f"{path}:{n}: expected 'class cx cy w h', found {line.strip()!r}")
            ids.append(c)
            boxes.append(((cx - w / 2) * width, (cy - h / 2) * height,
                          (cx + w / 2) * width, (cy + h / 2) * height))
    return np.array(ids, np.int64), np.array(boxes, np.float32).reshape(-1, 4)


def read_yaml_names(path):
    """COCO128's classes.yaml: `names:` as a list or as `i: name` lines (no yaml module needed)."""
    names = {}
    for line in Path(path).read_text().splitlines():
        s = line.strip()
        if ":" in s and s.split(":", 1)[0].strip().isdigit():
            k, v = s.split(":", 1)
            names[int(k)] = v.strip().strip("'\"")
    if names:
        return [names[i] for i in sorted(names)]
    for line in Path(path).read_text().splitlines():
        if line.strip().startswith("names:") and "[" in line:
            return [n.strip().strip("'\"") for n in line.split("[", 1)[1].rsplit("]", 1)[0].split(",")]
    raise ValueError(f"{path}: no class names found")


# ---- sets -------------------------------------------------------------------------------------
def mot_sequence(name, video, gt, first, count, classes=("person",)):
    """Decoded frames first..first+count-1 of `video`, labelled by MOT frame index+1."""
    labels = read_mot(gt)
    frames = decode_video(video, first, count)
    if len(frames) < count:
        raise ValueError(f"{video}: expected at least {first + count} frames, decoded {first + len(frames)}")
    samples = []
    for i, img in enumerate(frames):
        k = first + i
        boxes, ignore = labels.get(k + 1, (np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)))
        samples.append(Sample(f"{name}/{k:06d}", img, boxes, np.zeros(len(boxes), np.int64), ignore))
    return DetectionSet(name, list(classes), samples, source=str(video),
                        frame_indices=list(range(first, first + count)))


def yolo_images(name, folder, class_names, keep=None):
    """A YOLO-format set (images/, labels/). keep: YOLO class ids to keep, mapped to 0..; None all."""
    folder = Path(folder)
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    remap = {c: i for i, c in enumerate(keep)} if keep is not None else None
    classes = [class_names[c] for c in keep] if keep is not None else list(class_names)
    samples, files = [], []
    for p in images:
        img = decode_image(p)
        lab = folder / "labels" / (p.stem + ".txt")
        ids, boxes = read_yolo(lab, img.shape[1], img.shape[0]) if lab.exists() else \
            (np.zeros(0, np.int64), np.zeros((0, 4), np.float32))
        if remap is not None:
            m = np.array([c in remap for c in ids], bool)
            ids = np.array([remap[c] for c in ids[m]], np.int64)
            boxes = boxes[m]
        samples.append(Sample(f"{name}/{p.stem}", img, boxes, ids))
        files.append(str(p))
    return DetectionSet(name, classes, samples, source=str(folder), files=files)


NAMED = ("pets09-train", "pets09-val", "tud-campus", "coco128-person", "coco128")


def load_named(name):
    """One of NAMED (see the module's docstring)."""
    if name == "pets09-train":
        return mot_sequence(name, VTEST, SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt", 0, 500)
    if name == "pets09-val":
        return mot_sequence(name, VTEST, SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt", 500, 100)
    if name == "tud-campus":
        return mot_sequence(name, SHARED / "tud-campus" / "TUD-Campus.mp4", SHARED / "tud-campus" / "gt.txt", 0, 71)
    if name in ("coco128-person", "coco128"):
        names = read_yaml_names(SHARED / "coco128-train" / "classes.yaml")
        return yolo_images(name, SHARED / "coco128-train", names, keep=[0] if name == "coco128-person" else None)
    raise ValueError(f"data set '{name}': expected one of {', '.join(NAMED)}")


# ---- COCO -------------------------------------------------------------------------------------
def to_coco(dataset):
    """COCO ground-truth dict; image ids 1.. in sample order; ignore regions as iscrowd boxes."""
    images, anns = [], []
    for i, s in enumerate(dataset.samples, 1):
        images.append({"id": i, "file_name": s.key, "width": s.width, "height": s.height})
        for b, c in zip(s.boxes, s.labels):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
        for b in s.ignore:
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 1})
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(dataset.classes)]
    return {"images": images, "annotations": anns, "categories": cats}
