#!/usr/bin/env python3
"""Readers for data in the layouts users have, as `DetectionSet`s (netnet_ref/data.py).

Specs (what `train.py --train/--val` and `evaluate.py --data` take beside the named sets):

  yolo:DIR[@SPLIT]      Roboflow / Ultralytics export. DIR/data.yaml (or DIR/classes.yaml) names
                        the classes (`names:` block list, flow list or `{0: person}` mapping).
                        SPLIT is a key of the yaml (`train`, `val`, `test`; `valid` and
                        `validation` mean `val`): its folder is resolved relative to the yaml
                        (Ultralytics' optional `path:` first), then with the leading `../` that
                        Roboflow writes dropped, then as DIR/<split>/images (Roboflow's folders:
                        also when the yaml holds another machine's absolute path). Labels are the
                        sibling `labels/` folder of each `images/` folder. Without @SPLIT, DIR
                        must hold `images/` + `labels/` itself, or the yaml exactly one split.
  coco:ANN.json:IMAGES  COCO instances JSON; `file_name`s relative to the IMAGES folder;
                        `iscrowd` boxes are ignore regions. The JSON path must end in `.json`
                        (that is how the spec is split at the right colon).
  voc:DIR[@SPLIT]       PASCAL VOC: DIR/Annotations/*.xml and DIR/JPEGImages/; with @SPLIT only
                        the ids in DIR/ImageSets/Main/SPLIT.txt. `difficult` objects are ignore
                        regions. VOC's 1-based inclusive pixels become corners (xmin-1, ymin-1,
                        xmax, ymax).
  mot:SEQDIR            a MOTChallenge sequence: images in SEQDIR/img1/ (or `imDir` of
                        seqinfo.ini; frame = the number in the file name) or one video file in
                        SEQDIR (decoded frame k = ground-truth frame k+1), labels in
                        SEQDIR/gt/gt.txt (or SEQDIR/gt.txt). Rows with conf 0 are ignore regions.
                        The class is `person`.
  pennfudan:DIR         PASCAL "Annotation Version 1.00" text files in DIR/Annotation/*.txt
                        (Penn-Fudan); the image is the annotation's `Image filename`, else the
                        file of the same stem in DIR/images/ or DIR/PNGImages/. Class from the
                        label: "PASpersonWalking" -> person. Same pixel rule as VOC.

Every reader raises ValueError / FileNotFoundError with one line naming the file (and line where
the format has lines) on broken input. `limit` thins a set evenly before its images are decoded.
"""
import configparser
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from . import data

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")
SPLIT_KEYS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
KINDS = ("yolo", "coco", "voc", "mot", "pennfudan")


def load(spec, limit=None):
    """One `kind:...` spec (see the module docstring) -> DetectionSet named by the spec."""
    kind, _, rest = spec.partition(":")
    if kind not in KINDS:
        raise ValueError(f"data set '{spec}': unknown kind '{kind}:', expected one of "
                         f"{', '.join(k + ':' for k in KINDS)}")
    if not rest:
        raise ValueError(f"data set '{spec}': expected a path after '{kind}:'")
    if kind == "coco":
        m = re.match(r"^(.*?\.json):(.+)$", rest, re.IGNORECASE)
        if not m:
            raise ValueError(f"data set '{spec}': expected coco:ANN.json:IMAGES")
        return coco_set(spec, Path(m.group(1)), Path(m.group(2)), limit)
    path, split = _split_suffix(rest)
    if kind == "yolo":
        return yolo_set(spec, Path(path), split, limit)
    if kind == "voc":
        return voc_set(spec, Path(path), split, limit)
    if split is not None:
        raise ValueError(f"data set '{spec}': '{kind}:' takes no @SPLIT")
    if kind == "mot":
        return mot_set(spec, Path(path), limit)
    return pennfudan_set(spec, Path(path), limit)


def _split_suffix(rest):
    """'DIR@valid' -> ('DIR', 'valid'); an '@' inside a folder name (followed by '/') stays."""
    head, at, tail = rest.rpartition("@")
    if at and tail and "/" not in tail:
        return head, tail
    return rest, None


def _need_dir(path, what):
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{path}: no such folder ({what})")
    return Path(path)


def _images_in(folder):
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _empty():
    return np.zeros((0, 4), np.float32)


def _decoded(name, classes, records, limit, source):
    """records: (key, image path, boxes, labels, ignore, ignore_labels) -> DetectionSet, decoding
    only the images `limit` keeps."""
    records = [records[i] for i in data.spaced(len(records), limit)]
    samples, files = [], []
    images = data.decode_images([record[1] for record in records])
    for (key, path, boxes, labels, ignore, ignore_labels), img in zip(records, images):
        samples.append(data.Sample(f"{name}/{key}", img, np.asarray(boxes, np.float32).reshape(-1, 4),
                                   np.asarray(labels, np.int64), np.asarray(ignore, np.float32).reshape(-1, 4),
                                   np.asarray(ignore_labels, np.int64)))
        files.append(str(path))
    return data.DetectionSet(name, list(classes), samples, source=str(source), files=files)


# ---- YOLO -------------------------------------------------------------------------------------
def yolo_set(name, folder, split=None, limit=None):
    """A YOLO-format set (see `yolo:` in the module docstring)."""
    folder = _need_dir(folder, "yolo: data set")
    yaml_path = next((folder / n for n in ("data.yaml", "data.yml", "classes.yaml") if (folder / n).is_file()), None)
    doc = data.read_yaml(yaml_path) if yaml_path else {}
    if yaml_path is None and (folder / "classes.txt").is_file():  # darknet-style names, one a line
        classes = [n.strip() for n in (folder / "classes.txt").read_text().splitlines() if n.strip()]
    elif yaml_path is None:
        raise FileNotFoundError(f"{folder}: no data.yaml (or classes.txt) naming the classes")
    else:
        classes = data.names_from_yaml(doc, yaml_path)
    image_dirs = _yolo_image_dirs(folder, yaml_path, doc, split)
    records = []
    for images in image_dirs:
        labels_dir = images.parent / "labels" if images.name == "images" else images
        for p in _images_in(images):
            lab = labels_dir / (p.stem + ".txt")
            records.append((p, lab))
    if not records:
        raise ValueError(f"{', '.join(map(str, image_dirs))}: no images")
    records = [records[i] for i in data.spaced(len(records), limit)]
    samples, files = [], []
    for (p, lab), img in zip(records, data.decode_images([p for p, _lab in records])):
        ids, boxes = data.read_yolo(lab, img.shape[1], img.shape[0]) if lab.exists() else \
            (np.zeros(0, np.int64), _empty())
        bad = [int(c) for c in ids if not 0 <= c < len(classes)]
        if bad:
            raise ValueError(f"{lab}: class id {bad[0]} out of range: {yaml_path or folder} names {len(classes)} classes")
        samples.append(data.Sample(f"{name}/{p.stem}", img, boxes, ids))
        files.append(str(p))
    return data.DetectionSet(name, classes, samples, source=str(folder), files=files)


def _yolo_image_dirs(folder, yaml_path, doc, split):
    """The image folders of a YOLO set's split (rules in the module docstring)."""
    if split is None:
        if (folder / "images").is_dir():
            return [folder / "images"]
        present = [k for k in ("train", "val", "test") if doc.get(k)] or \
                  [k for k in ("train", "valid", "val", "test") if (folder / k / "images").is_dir()]
        if len(present) == 1:
            split = present[0]
        else:
            raise ValueError(f"{folder}: has splits {', '.join(present) or 'none'} and no images/ folder; "
                             f"pick one with yolo:{folder}@SPLIT (e.g. @{present[0] if present else 'train'})")
    key = SPLIT_KEYS.get(split.lower())
    if key is None:
        raise ValueError(f"yolo:{folder}@{split}: unknown split, expected one of {', '.join(SPLIT_KEYS)}")
    root = folder
    if doc.get("path"):
        root = (folder / str(doc["path"])) if not Path(str(doc["path"])).is_absolute() else Path(str(doc["path"]))
        if not root.is_dir():
            root = folder
    entries = doc.get(key)
    entries = entries if isinstance(entries, list) else ([entries] if entries else [])
    dirs = []
    for e in entries:
        e = str(e)
        stripped = re.sub(r"^(\.\./)+", "", e.replace("\\", "/"))
        for cand in (root / e, folder / stripped):
            if cand.is_dir():
                dirs.append(cand)
                break
            if cand.suffix == ".txt" and cand.is_file():
                raise ValueError(f"{yaml_path}: {key}: {e}: image-list files are not supported, give a folder")
    if not dirs:  # Roboflow's own folders, also when the yaml names another machine's paths
        names = [split] + [n for n in ("valid", "val") if key == "val" and n != split] + \
                ([key] if key != split else [])
        dirs = [folder / n / "images" for n in names if (folder / n / "images").is_dir()][:1]
    if not dirs:
        where = f"{yaml_path}: {key}: {entries}" if entries else f"{folder}"
        raise FileNotFoundError(f"{where}: no image folder for split '{split}' (tried the yaml's paths and "
                                f"{folder / split / 'images'})")
    return dirs


# ---- COCO -------------------------------------------------------------------------------------
def coco_set(name, ann_path, images_dir, limit=None):
    """A COCO instances JSON with its image folder (see `coco:` in the module docstring)."""
    if not ann_path.is_file():
        raise FileNotFoundError(f"{ann_path}: no such file (coco: annotations)")
    _need_dir(images_dir, "coco: images")
    try:
        doc = json.loads(ann_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{ann_path}:{e.lineno}: not valid JSON: {e.msg}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise ValueError(f"{ann_path}: expected a list '{key}' (a COCO instances file)")
    try:
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        classes = [str(c["name"]) for c in cats]
        cat_index = {int(c["id"]): i for i, c in enumerate(cats)}
        images = {int(im["id"]): im for im in doc["images"]}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{ann_path}: categories/images need 'id' and 'name'/'file_name': {e!r}")
    per_image = {i: ([], [], [], []) for i in images}
    for n, a in enumerate(doc["annotations"]):
        try:
            image_id, cat, (x, y, w, h) = int(a["image_id"]), int(a["category_id"]), (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{ann_path}: annotations[{n}]: expected image_id, category_id and bbox [x, y, w, h]")
        if image_id not in per_image or cat not in cat_index:
            raise ValueError(f"{ann_path}: annotations[{n}]: unknown image_id {image_id} or category_id {cat}")
        if w <= 0 or h <= 0:
            continue  # COCO has a few zero-size boxes; they can neither be matched nor scored
        boxes, labels, ignore, ignore_labels = per_image[image_id]
        if a.get("iscrowd"):
            ignore.append((x, y, x + w, y + h))
            ignore_labels.append(cat_index[cat])
        else:
            boxes.append((x, y, x + w, y + h))
            labels.append(cat_index[cat])
    records = []
    for i in sorted(images):
        path = images_dir / images[i]["file_name"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such image (file_name of image {i} in {ann_path})")
        records.append((Path(images[i]["file_name"]).stem, path, *per_image[i]))
    return _decoded(name, classes, records, limit, images_dir)


# ---- PASCAL VOC -------------------------------------------------------------------------------
def read_voc_xml(path):
    """A VOC annotation -> (file name, [(class, (x1, y1, x2, y2), difficult)]), corners 0-based."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}:{e.position[0]}: not valid XML: {e}")
    objects = []
    for n, obj in enumerate(root.iter("object"), 1):
        try:
            cls = obj.findtext("name").strip()
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{path}: object {n}: expected <name> and <bndbox> with numeric xmin, ymin, xmax, ymax")
        if x2 < x1 or y2 < y1:
            raise ValueError(f"{path}: object {n}: xmax/ymax below xmin/ymin ({x1}, {y1}, {x2}, {y2})")
        difficult = (obj.findtext("difficult") or "0").strip() in ("1", "true")
        objects.append((cls, (x1 - 1, y1 - 1, x2, y2), difficult))
    return (root.findtext("filename") or "").strip(), objects


def voc_set(name, folder, split=None, limit=None):
    """A PASCAL VOC folder (see `voc:` in the module docstring); classes in order of appearance."""
    ann_dir = _need_dir(Path(folder) / "Annotations", "voc: annotations")
    img_dir = _need_dir(Path(folder) / "JPEGImages", "voc: images")
    if split is not None:
        listing = Path(folder) / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise FileNotFoundError(f"{listing}: no such file (voc: split '{split}')")
        xmls = [ann_dir / f"{line.split()[0]}.xml" for line in listing.read_text().splitlines() if line.strip()]
    else:
        xmls = sorted(ann_dir.glob("*.xml"))
    if not xmls:
        raise ValueError(f"{ann_dir}: no .xml annotations")
    xmls = [xmls[i] for i in data.spaced(len(xmls), limit)]
    classes, records = [], []
    for x in xmls:
        if not x.is_file():
            raise FileNotFoundError(f"{x}: no such annotation (listed in the split file)")
        file_name, objects = read_voc_xml(x)
        path = img_dir / file_name if file_name else None
        if path is None or not path.is_file():
            path = next((img_dir / (x.stem + s) for s in IMAGE_SUFFIXES if (img_dir / (x.stem + s)).is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{x}: its image {file_name or x.stem} is not in {img_dir}")
        boxes, labels, ignore, ignore_labels = [], [], [], []
        for cls, box, difficult in objects:
            if cls not in classes:
                classes.append(cls)
            (ignore if difficult else boxes).append(box)
            (ignore_labels if difficult else labels).append(classes.index(cls))
        records.append((x.stem, path, boxes, labels, ignore, ignore_labels))
    return _decoded(name, classes, records, None, folder)


# ---- MOTChallenge sequences -------------------------------------------------------------------
def mot_set(name, seq, limit=None):
    """A MOT sequence folder (see `mot:` in the module docstring)."""
    seq = _need_dir(seq, "mot: sequence")
    gt = next((p for p in (seq / "gt" / "gt.txt", seq / "gt.txt") if p.is_file()), None)
    if gt is None:
        raise FileNotFoundError(f"{seq}: no gt/gt.txt (or gt.txt)")
    labels = data.read_mot(gt)
    im_dir = seq / "img1"
    ini = seq / "seqinfo.ini"
    if ini.is_file():
        cp = configparser.ConfigParser()
        try:
            cp.read(ini)
        except configparser.Error as e:
            raise ValueError(f"{ini}: not a valid seqinfo.ini: {e}")
        if cp.has_option("Sequence", "imDir"):
            im_dir = seq / cp.get("Sequence", "imDir")
    empty = (_empty(), _empty())
    if im_dir.is_dir() and _images_in(im_dir):
        records = []
        for k, p in enumerate(_images_in(im_dir)):
            frame = int(p.stem) if p.stem.isdigit() else k + 1
            boxes, ignore = labels.get(frame, empty)
            records.append((f"{frame:06d}", p, boxes, np.zeros(len(boxes)), ignore, np.zeros(len(ignore))))
        return _decoded(name, ["person"], records, limit, im_dir)
    videos = sorted(p for p in seq.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if len(videos) != 1:
        raise FileNotFoundError(f"{seq}: expected an img1/ folder of images or exactly one video, "
                                f"found {len(videos)} videos")
    frames = data.decode_video(videos[0])
    keep = data.spaced(len(frames), limit)
    samples = []
    for k in keep:
        boxes, ignore = labels.get(k + 1, empty)
        samples.append(data.Sample(f"{name}/{k:06d}", frames[k], boxes, np.zeros(len(boxes), np.int64), ignore))
    return data.DetectionSet(name, ["person"], samples, source=str(videos[0]), frame_indices=keep)


# ---- PASCAL annotation text (Penn-Fudan) -------------------------------------------------------
_PAS_BOX = re.compile(r'^Bounding box for object (\d+) "([^"]*)" \(Xmin, Ymin\) - \(Xmax, Ymax\) : '
                      r'\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\) - \(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)\s*$')
_PAS_FILE = re.compile(r'^Image filename : "([^"]*)"')
_PAS_SIZE = re.compile(r'^Image size \(X x Y x C\) : (\d+) x (\d+)')


def pas_class(label):
    """A PASCAL v1.00 label -> class name: 'PASpersonWalking' -> 'person', 'PAScarRear' -> 'car'."""
    m = re.match(r"^(?:PAS)?([a-z]+)", label)
    return m.group(1) if m else label


def read_pascal_text(path):
    """A PASCAL "Annotation Version 1.00" text file -> (image file name, (width, height) or None,
    [(class, (x1, y1, x2, y2))]) with 1-based inclusive pixels made 0-based corners."""
    file_name, size, objects = None, None, []
    for n, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
        s = line.strip()
        if s.startswith("Bounding box for object"):
            m = _PAS_BOX.match(s)
            if not m:
                raise ValueError(f"{path}:{n}: expected 'Bounding box for object N \"LABEL\" (Xmin, Ymin) - "
                                 f"(Xmax, Ymax) : (x1, y1) - (x2, y2)', found {s!r}")
            x1, y1, x2, y2 = (float(v) for v in m.groups()[2:])
            if x2 < x1 or y2 < y1:
                raise ValueError(f"{path}:{n}: Xmax/Ymax below Xmin/Ymin: {s!r}")
            objects.append((pas_class(m.group(2)), (x1 - 1, y1 - 1, x2, y2)))
        elif _PAS_FILE.match(s):
            file_name = _PAS_FILE.match(s).group(1)
        elif _PAS_SIZE.match(s):
            size = tuple(int(v) for v in _PAS_SIZE.match(s).groups())
    if file_name is None and not objects:
        raise ValueError(f"{path}: not a PASCAL annotation text (no 'Image filename' and no 'Bounding box' line)")
    return file_name, size, objects


def pennfudan_set(name, folder, limit=None):
    """A folder of PASCAL annotation text files (see `pennfudan:` in the module docstring)."""
    folder = Path(folder)
    ann_dir = _need_dir(folder / "Annotation", "pennfudan: annotations")
    txts = sorted(ann_dir.glob("*.txt"))
    if not txts:
        raise ValueError(f"{ann_dir}: no .txt annotations")
    txts = [txts[i] for i in data.spaced(len(txts), limit)]
    classes, records = [], []
    for t in txts:
        file_name, size, objects = read_pascal_text(t)
        stem = Path(file_name).stem if file_name else t.stem
        candidates = ([folder / file_name, folder.parent / file_name] if file_name else []) + \
            [d / (stem + s) for d in (folder / "images", folder / "PNGImages", folder) for s in IMAGE_SUFFIXES]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"{t}: its image {file_name or stem} is in neither {folder / 'images'} "
                                    f"nor {folder / 'PNGImages'}")
        boxes, labels = [], []
        for cls, box in objects:
            if cls not in classes:
                classes.append(cls)
            boxes.append(box)
            labels.append(classes.index(cls))
        records.append((t.stem, path, boxes, labels, _empty(), []))
    ds = _decoded(name, classes or ["person"], records, None, folder)
    for t, s in zip(txts, ds.samples):  # a stored image of another size would misplace every box
        _, size, _ = read_pascal_text(t)
        if size is not None and size != (s.width, s.height):
            raise ValueError(f"{t}: says the image is {size[0]}x{size[1]}, the image file is {s.width}x{s.height}")
    return ds
