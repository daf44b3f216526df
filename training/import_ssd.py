#!/usr/bin/env python3
"""Convert an SSD300-VGG16 checkpoint trained elsewhere into a netnet `ssd-vgg16-300` model file.

    /usr/bin/python3 training/import_ssd.py CHECKPOINT --from torchvision|ssd.pytorch \
        --output model.safetensors [--classes a,b,...] [--description TEXT]

torchvision: a state dict of `torchvision.models.detection.ssd300_vgg16` (`torch.save(model.state_dict())`,
  or the file torchvision downloads for `SSD300_VGG16_Weights.COCO_V1`). Its input is RGB,
  pixels / 255 minus [0.48235, 0.45882, 0.40784], over 1/255: in netnet's terms order rgb, mean
  255 x those, std 1. Its default boxes are scales 0.07 ... 1.05 (min sizes 21 ... 261, max sizes
  45 ... 315 at 300), their sizes clipped but not their centres (`clip_centres: false`); box coding weights (10, 10, 5, 5) are
  variances 0.1 and 0.2. Class 0 is the background in both.
ssd.pytorch: a `ssd300_*.pth` state dict of amdegroot/ssd.pytorch (keys `vgg.N`, `L2Norm.weight`,
  `extras.N`, `loc.N`, `conf.N`, optionally prefixed `module.`): BGR, mean (104, 117, 123), std 1,
  min sizes 30, 60, 111, 162, 213, 264, max sizes 60 ... 315 (its VOC/COCO configuration).
Class names: --classes, else COCO's 90 category names (torchvision, with its `N/A` gaps) or
`class1 ...` for other counts. The conversion is exact: tensors are copied, not retrained.
"""
import argparse
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netnet_ref import safetensors_io  # noqa: E402
from netnet_ref.config import NetConfig  # noqa: E402
from netnet_ref.model import NETNet, load_state  # noqa: E402

VGG_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
VGG_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
EXTRA_NAMES = ["conv8_1", "conv8_2", "conv9_1", "conv9_2", "conv10_1", "conv10_2", "conv11_1", "conv11_2"]

# torchvision's COCO_V1 categories (index 0 is the background, "N/A" marks unused ids).
COCO_TORCHVISION = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A", "handbag", "tie",
    "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet", "N/A", "tv",
    "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
]

TORCHVISION_NORMALISATION = {"order": "rgb", "mean": [255 * 0.48235, 255 * 0.45882, 255 * 0.40784], "std": [1.0, 1.0, 1.0]}
SSD_PYTORCH_NORMALISATION = {"order": "bgr", "mean": [104, 117, 123], "std": [1, 1, 1]}
TORCHVISION_PRIORS = {"min_sizes": [21, 45, 99, 153, 207, 261], "max_sizes": [45, 99, 153, 207, 261, 315],
                      "steps": [8, 16, 32, 64, 100, 300], "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                      "variances": [0.1, 0.2], "clip": True, "clip_centres": False}
SSD_PYTORCH_PRIORS = dict(TORCHVISION_PRIORS, min_sizes=[30, 60, 111, 162, 213, 264], max_sizes=[60, 111, 162, 213, 264, 315],
                          clip_centres=True)


class ImportError_(Exception):
    pass


def torchvision_mapping():
    """netnet tensor stem -> torchvision state-dict stem."""
    m = OrderedDict()
    for name, index in zip(VGG_NAMES[:10], VGG_INDICES[:10]):
        m[f"backbone.{name}"] = f"backbone.features.{index}"
    for name, index in zip(VGG_NAMES[10:], [1, 3, 5]):
        m[f"backbone.{name}"] = f"backbone.extra.0.{index}"
    m["backbone.conv6"] = "backbone.extra.0.7.1"
    m["backbone.conv7"] = "backbone.extra.0.7.3"
    for i, name in enumerate(EXTRA_NAMES):
        m[f"extras.{name}"] = f"backbone.extra.{i // 2 + 1}.{0 if i % 2 == 0 else 2}"
    for level in range(6):
        m[f"heads.loc{level + 1}"] = f"head.regression_head.module_list.{level}"
        m[f"heads.conf{level + 1}"] = f"head.classification_head.module_list.{level}"
    return m, "backbone.scale_weight"


def ssd_pytorch_mapping():
    m = OrderedDict()
    for name, index in zip(VGG_NAMES, VGG_INDICES):
        m[f"backbone.{name}"] = f"vgg.{index}"
    m["backbone.conv6"] = "vgg.31"
    m["backbone.conv7"] = "vgg.33"
    for i, name in enumerate(EXTRA_NAMES):
        m[f"extras.{name}"] = f"extras.{i}"
    for level in range(6):
        m[f"heads.loc{level + 1}"] = f"loc.{level}"
        m[f"heads.conf{level + 1}"] = f"conf.{level}"
    return m, "L2Norm.weight"


def convert(state, source, classes=None, description=None):
    """(model, cfg) from a state dict of `source` ('torchvision' or 'ssd.pytorch')."""
    state = OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in state.items())
    mapping, scale = torchvision_mapping() if source == "torchvision" else ssd_pytorch_mapping()
    conf_key = mapping["heads.conf1"] + ".weight"
    if conf_key not in state:
        raise ImportError_(f"no tensor '{conf_key}': not a {source} SSD300-VGG16 state dict "
                           f"(its first keys: {', '.join(list(state)[:3])})")
    count = state[conf_key].shape[0] // 4 - 1   # level 1 has 4 anchors
    if classes is None:
        classes = COCO_TORCHVISION[:count] if source == "torchvision" and count == len(COCO_TORCHVISION) \
            else [f"class{i}" for i in range(1, count + 1)]
    if len(classes) != count:
        raise ImportError_(f"--classes has {len(classes)} names, the checkpoint's heads have {count} classes")
    cfg = NetConfig("ssd-vgg16-300", width=1.0, classes=classes,
                    priors=TORCHVISION_PRIORS if source == "torchvision" else SSD_PYTORCH_PRIORS,
                    normalisation=TORCHVISION_NORMALISATION if source == "torchvision" else SSD_PYTORCH_NORMALISATION,
                    description=description or f"imported from a {source} SSD300-VGG16 checkpoint")
    tensors = {"l2norm.weight": state[scale].detach().float().numpy().reshape(-1)}
    used = {scale}
    for ours, theirs in mapping.items():
        for part in ("weight", "bias"):
            key = f"{theirs}.{part}"
            if key not in state:
                raise ImportError_(f"no tensor '{key}' (for {ours}.{part})")
            tensors[f"{ours}.{part}"] = state[key].detach().float().numpy()
            used.add(key)
    unused = [k for k in state if k not in used and not k.endswith("num_batches_tracked")]
    if unused:
        raise ImportError_(f"tensors netnet's ssd-vgg16-300 has no place for: {', '.join(unused[:5])}")
    model = NETNet(cfg)
    try:
        load_state(model, tensors)
    except ValueError as e:
        raise ImportError_(str(e))
    return model.eval(), cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--from", dest="source", required=True, choices=["torchvision", "ssd.pytorch"])
    ap.add_argument("--output", "-o", required=True)
    ap.add_argument("--classes", help="comma-separated class names, background excluded")
    ap.add_argument("--description")
    a = ap.parse_args()
    try:
        state = torch.load(a.checkpoint, map_location="cpu")
    except Exception as e:  # torch raises many kinds for a file that is not a checkpoint
        sys.exit(f"import_ssd: {a.checkpoint}: not a PyTorch checkpoint ({type(e).__name__}: {e})")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        sys.exit(f"import_ssd: {a.checkpoint}: expected a state dict, found {type(state).__name__}")
    try:
        model, cfg = convert(state, a.source, a.classes.split(",") if a.classes else None, a.description)
    except ImportError_ as e:
        sys.exit(f"import_ssd: {a.checkpoint}: {e}")
    tensors = OrderedDict((k, v.detach().float().numpy()) for k, v in model.state_dict().items())
    n = safetensors_io.write(a.output, tensors, cfg.metadata())
    print(f"wrote {a.output}: ssd-vgg16-300, {cfg.num_classes} classes ({a.source}), {n} bytes")


if __name__ == "__main__":
    main()
