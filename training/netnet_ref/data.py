#!/usr/bin/env python3
"""Detection data for training and evaluation: MOT-format sequences and YOLO-format image sets.

A *sample* is one labelled image:
    Sample(key, image, boxes, labels, ignore)
  key     str, unique in its set (e.g. "pets09-s2l1/000042" for decoded frame 42)
  image   uint8 [H, W, 3] in BGR order (the engine's and SSD's channel order)
  boxes   float32 [N, 4] corner form (x1, y1, x2, y2) in the image's pixels
  labels  int64 [N], 0-based index into the set's class list (0 = the first class, e.g. person)
  ignore  float32 [M, 4] regions not to be scored (MOT rows with conf 0, VOC `difficult`, COCO
          `iscrowd`): dropped as training targets, kept as COCO `iscrowd` regions in evaluation,
          so detections there count neither as hits nor as false positives.
  ignore_labels  int64 [M], the class of each ignore region (0 when the source does not say)

Named sets (`load_named`), read from ../shared/data and the fetched sample video:
  pets09-train   PETS09-S2L1 decoded frames 0-499 (ground-truth frames 1-500), person
  pets09-val     PETS09-S2L1 decoded frames 500-599 (ground-truth frames 501-600), person
  tud-campus     TUD-Campus, all 71 frames, person
  coco128-person COCO128 train images, person boxes only (images without people included)
  coco128        COCO128 train images, 80 COCO classes

Data in a user's own layout (`load_spec`, see netnet_ref/sources.py): `yolo:DIR[@SPLIT]`,
`coco:ANN.json:IMAGES`, `voc:DIR[@SPLIT]`, `mot:SEQDIR`, `pennfudan:DIR`.

Images are decoded with the ffmpeg command-line tool (the same libavcodec the engine uses).
"""
import json
import os
import re
import struct
import subprocess
import tempfile
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
    ignore_labels: np.ndarray = None

    def __post_init__(self):
        if self.ignore_labels is None:  # sources without classes for their ignore regions
            self.ignore_labels = np.zeros(len(self.ignore), np.int64)

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
    return decode_images([path])[0]


# Images decoded by one ffmpeg process: its start-up, not the decoding, is most of the cost of a
# small image, so a batch is about ten times faster than a process an image.
IMAGES_PER_PROCESS = 64


def decode_images(paths):
    """Image files as a list of uint8 [H, W, 3] BGR arrays, in order, IMAGES_PER_PROCESS to an
    ffmpeg process. Each image leaves ffmpeg as a 24-bit BMP (bgr24, the size in its header), so
    the pixels are those of `-f rawvideo -pix_fmt bgr24`. A file that cannot be decoded raises
    ValueError naming it."""
    paths = [Path(p) for p in paths]
    images = []
    for start in range(0, len(paths), IMAGES_PER_PROCESS):
        images += _decode_batch(paths[start:start + IMAGES_PER_PROCESS])
    return images


def _decode_batch(paths):
    for path in paths:
        if not path.is_file():
            raise ValueError(f"{path}: ffmpeg cannot decode it: no such file")
    with tempfile.TemporaryDirectory(prefix="netnet-decode-") as tmp:
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-threads", "1"]
        for path in paths:
            cmd += ["-i", str(path)]
        outputs = [Path(tmp) / f"{i}.bmp" for i in range(len(paths))]
        for i, output in enumerate(outputs):
            cmd += ["-map", f"{i}:v:0", "-frames:v", "1", "-c:v", "bmp", "-pix_fmt", "bgr24", "-update", "1", str(output)]
        out = subprocess.run(cmd, capture_output=True)
        if out.returncode != 0:
            if len(paths) > 1:   # find and name the file that failed
                return [image for path in paths for image in _decode_batch([path])]
            raise ValueError(f"{paths[0]}: ffmpeg cannot decode it: "
                             f"{out.stderr.decode(errors='replace').strip()[-300:] or 'no picture'}")
        return [_read_bmp(output, path) for output, path in zip(outputs, paths)]


def _read_bmp(bmp, source):
    """ffmpeg's 24-bit BMP (rows bottom-up, each padded to 4 bytes) -> [H, W, 3] BGR."""
    b = bmp.read_bytes() if bmp.is_file() else b""
    if len(b) < 54 or b[:2] != b"BM":
        raise ValueError(f"{source}: ffmpeg cannot decode it: no picture")
    offset, = struct.unpack_from("<I", b, 10)
    w, h = struct.unpack_from("<ii", b, 18)
    stride = (w * 3 + 3) & ~3
    rows = np.frombuffer(b, np.uint8, count=stride * abs(h), offset=offset).reshape(abs(h), stride)
    image = rows[:, : w * 3].reshape(abs(h), w, 3)
    return np.ascontiguousarray(image[::-1] if h > 0 else image)


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
    """Class names of a YOLO/Ultralytics yaml (`names:` as a block list, a flow list
    `['person']` or a mapping `{0: person}` / `0: person` lines), read with PyYAML.

    Raises ValueError naming the file (and line, for a yaml syntax error)."""
    return names_from_yaml(read_yaml(path), path)


def read_yaml(path):
    """A yaml file as a dict; ValueError naming file and line when it is not valid yaml."""
    import yaml
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: not valid yaml: {getattr(e, 'problem', None) or e}")
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a yaml mapping (names:, train:, ...), found {type(doc).__name__}")
    return doc


def names_from_yaml(doc, path):
    """`names` of a parsed yaml as a list indexed by class id (numbers become strings)."""
    names = doc.get("names")
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    if isinstance(names, dict) and names:
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{path}: names: expected integer class ids as keys, found {list(names)!r}")
        if sorted(by_id) != list(range(len(by_id))):
            raise ValueError(f"{path}: names: class ids must be 0..{len(by_id) - 1}, found {sorted(by_id)}")
        return [by_id[i] for i in range(len(by_id))]
    raise ValueError(f"{path}: no class names found (expected `names:` as a list or an id: name mapping)")


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
    for p, img in zip(images, decode_images(images)):
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
    raise ValueError(f"data set '{name}': expected one of {', '.join(NAMED)}, or yolo:DIR[@SPLIT], "
                     f"coco:ANN.json:IMAGES, voc:DIR[@SPLIT], mot:SEQDIR, pennfudan:DIR")


@dataclass(frozen=True)
class Selection:
    """Which images of a set to decode: with `fold` (k, n) the images i with i % n == k (or, with
    `rest`, every other image), then `limit` of those spread evenly. `data.spaced` takes one
    wherever it takes a limit, so every reader selects before it decodes."""
    fold: tuple = None
    rest: bool = False
    limit: int = None

    def indices(self, count):
        picked = list(range(count))
        if self.fold is not None:
            k, n = self.fold
            picked = [i for i in picked if (i % n == k) != self.rest]
        return [picked[i] for i in spaced(len(picked), self.limit)]


FOLD = re.compile(r"^(?P<spec>.+)#(?P<rest>!?)(?P<k>\d+)/(?P<n>\d+)$")


def parse_fold(spec):
    """'SET#K/N' -> ('SET', ((K, N), False)); 'SET#!K/N' -> ('SET', ((K, N), True)): the images
    i of SET with i % N == K, or all the others; a spec without '#' -> (spec, None)."""
    if "#" not in spec:
        return spec, None
    m = FOLD.match(spec)
    if not m or int(m["n"]) < 2 or int(m["k"]) >= int(m["n"]):
        raise ValueError(f"data set '{spec}': expected SET#K/N or SET#!K/N with 0 <= K < N and N >= 2 "
                         f"(the images i with i % N == K, or all the others)")
    return m["spec"], ((int(m["k"]), int(m["n"])), bool(m["rest"]))


def load_spec(spec, limit=None):
    """A named set or a `kind:...` spec (netnet_ref/sources.py), optionally one fold of it
    (`SET#K/N`, `SET#!K/N`: parse_fold), thinned to `limit` images taken evenly across it (before
    decoding, so a large folder stays cheap). The set keeps the whole spec as its name."""
    from . import sources
    base, fold = parse_fold(spec)
    pick = limit if fold is None else Selection(fold=fold[0], rest=fold[1], limit=limit)
    if ":" in base:
        ds = sources.load(base, limit=pick)
    else:
        ds = thin(load_named(base), pick)
    if fold is not None:
        ds.name = spec
        for s in ds.samples:
            s.key = spec + s.key[len(base):] if s.key.startswith(base) else s.key
    return ds


def split_specs(text):
    """'a,yolo:d@valid,coco:x.json:imgs' -> the list of specs (empty items dropped)."""
    return [s.strip() for s in text.split(",") if s.strip()]


def spaced(n, limit):
    """Indices of `limit` items spread evenly over n (all of them when limit is None or >= n);
    `limit` may also be a Selection."""
    if isinstance(limit, Selection):
        return limit.indices(n)
    if limit is None or limit >= n:
        return list(range(n))
    if limit <= 0:
        raise ValueError(f"--limit must be positive, found {limit}")
    return sorted({int(i * n / limit) for i in range(limit)})


def thin(ds, limit):
    """A DetectionSet keeping `spaced(len, limit)` of its samples (and their frame/file entries)."""
    keep = spaced(len(ds.samples), limit)
    if len(keep) == len(ds.samples):
        return ds
    return DetectionSet(ds.name, ds.classes, [ds.samples[i] for i in keep], source=ds.source,
                        frame_indices=[ds.frame_indices[i] for i in keep] if ds.frame_indices is not None else None,
                        files=[ds.files[i] for i in keep] if ds.files is not None else None)


# Class names that mean the same as a model's class. Matching lower-cases and strips both sides
# first ("Person" is "person"); these are the only synonyms, on purpose: a short list a user can
# read, not a guess (a "rider" or a "mannequin" is not a person to every user).
CLASS_ALIASES = {"pedestrian": "person", "pedestrians": "person", "people": "person",
                 "persons": "person", "human": "person", "humans": "person"}


def canonical_class(name, aliases=None):
    """The name a class is matched by: lower case, trimmed, then CLASS_ALIASES (and `aliases`)."""
    key = str(name).strip().lower()
    table = {**CLASS_ALIASES, **{k.strip().lower(): v.strip().lower() for k, v in (aliases or {}).items()}}
    return table.get(key, key)


def relabel(ds, classes, aliases=None, compact=False):
    """ds with its labels mapped by name onto `classes` (a model's class list): boxes and ignore
    regions of classes that match none are dropped. The result's classes are `classes` (labels
    are model class indices: for training), or with compact=True only the matched model classes
    in the model's order (so scoring covers only what the set labels). ValueError when no class
    matches (a set that cannot score or train anything)."""
    wanted = {canonical_class(c, aliases): i for i, c in enumerate(classes)}
    to_model = {j: wanted[canonical_class(c, aliases)] for j, c in enumerate(ds.classes)
                if canonical_class(c, aliases) in wanted}
    if not to_model:
        raise ValueError(f"{ds.name}: none of its classes {ds.classes} matches {list(classes)} "
                         f"(aliases: {', '.join(f'{k}->{v}' for k, v in CLASS_ALIASES.items())}; add more with --alias)")
    used = sorted(set(to_model.values())) if compact else list(range(len(classes)))
    out_index = {m: k for k, m in enumerate(used)}

    def mapped(labels):
        keep = np.array([int(c) in to_model for c in labels], bool)
        return keep, np.array([out_index[to_model[int(c)]] for c in labels[keep]], np.int64)

    samples = []
    for s in ds.samples:
        keep, labels = mapped(s.labels)
        ikeep, ilabels = mapped(s.ignore_labels)
        samples.append(Sample(s.key, s.image, s.boxes[keep], labels, s.ignore[ikeep], ilabels))
    return DetectionSet(ds.name, [classes[m] for m in used], samples, source=ds.source,
                        frame_indices=ds.frame_indices, files=ds.files)


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
        for b, c in zip(s.ignore, s.ignore_labels):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1,
                         "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 1})
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(dataset.classes)]
    return {"images": images, "annotations": anns, "categories": cats}
