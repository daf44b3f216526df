#!/usr/bin/env python3
"""Network definitions for netnet (docs/model-format.md, NETNET-SPEC).

Width scaling
-------------
Every channel count c of the backbone, extras and modules becomes

    scale(c) = max(8, round(c * width / 8) * 8)

with Python's built-in round() on the float64 value c * width / 8 (evaluated left to right:
(c * width) / 8), which rounds halves to even. The Swift engine uses the identical rule:

    max(8, Int((Double(c) * width / 8).rounded(.toNearestOrEven)) * 8)

The NETM bottleneck is scale(c_s_at_width_1 / 4) (not scale(c_s) / 4).
The class heads are never scaled (4·k and (C+1)·k outputs).
"""
import json
import math

FORMAT = "netnet.model/1"
GOLDEN_FORMAT = "netnet.golden/1"

COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]

DEFAULT_NORMALISATION = {"order": "bgr", "mean": [104, 117, 123], "std": [1, 1, 1]}

DEFAULT_PRIORS = {
    300: {
        "min_sizes": [21, 45, 99, 153, 207, 261],
        "max_sizes": [45, 99, 153, 207, 261, 315],
        "steps": [8, 16, 32, 64, 100, 300],
        "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
        "variances": [0.1, 0.2],
        "clip": True,
    },
    512: {
        "min_sizes": [20.48, 51.2, 133.12, 215.04, 296.96, 378.88, 460.8],
        "max_sizes": [51.2, 133.12, 215.04, 296.96, 378.88, 460.8, 542.72],
        "steps": [8, 16, 32, 64, 128, 256, 512],
        "aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]],
        "variances": [0.1, 0.2],
        "clip": True,
    },
}

# VGG16 conv1_1 ... conv5_3 (3x3 pad 1 + ReLU); 'M' = 2x2/2 max pool, 'C' = same with ceil mode.
VGG_LAYERS = [
    ("conv1_1", 64), ("conv1_2", 64), "M",
    ("conv2_1", 128), ("conv2_2", 128), "M",
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), "C",
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), "M",
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512),
]
CONV6, CONV7 = 1024, 1024

# ResNet-101 (torchvision's v1.5 bottleneck, the layout DSSD513 and RefineDet512 use at 512):
# a 7x7 stride-2 pad-3 stem convolution (64) and a 3x3 stride-2 pad-1 max pool, then four stages
# of bottlenecks [1x1 mid, 3x3 mid, 1x1 4*mid] + shortcut, ReLU after the add. The first block
# of each stage has a projection shortcut (1x1, with the stage's stride); the stride sits on the
# 3x3 (v1.5), not on the first 1x1 (v1). (stage name, mid channels at width 1, blocks, stride).
RESNET_STEM = 64
RESNET101_STAGES = [("layer1", 64, 3, 1), ("layer2", 128, 4, 2), ("layer3", 256, 23, 2), ("layer4", 512, 3, 2)]
RESNET_EXPANSION = 4
# The pyramid's first three levels are the outputs of layer2 (stride 8), layer3 (16), layer4 (32).
RESNET_PYRAMID_STAGES = ["layer2", "layer3", "layer4"]

# extras: (name, out channels at width 1, kernel, stride, padding); ReLU after each.
EXTRAS = {
    300: [
        ("conv8_1", 256, 1, 1, 0), ("conv8_2", 512, 3, 2, 1),
        ("conv9_1", 128, 1, 1, 0), ("conv9_2", 256, 3, 2, 1),
        ("conv10_1", 128, 1, 1, 0), ("conv10_2", 256, 3, 1, 0),
        ("conv11_1", 128, 1, 1, 0), ("conv11_2", 256, 3, 1, 0),
    ],
    512: [
        ("conv8_1", 256, 1, 1, 0), ("conv8_2", 512, 3, 2, 1),
        ("conv9_1", 128, 1, 1, 0), ("conv9_2", 256, 3, 2, 1),
        ("conv10_1", 128, 1, 1, 0), ("conv10_2", 256, 3, 2, 1),
        ("conv11_1", 128, 1, 1, 0), ("conv11_2", 256, 3, 2, 1),
        ("conv12_1", 128, 1, 1, 0), ("conv12_2", 256, 4, 1, 1),
    ],
}
# ResNet-101 at 512: four [1x1, 3x3 stride 2 pad 1] pairs after layer4 (16 -> 8 -> 4 -> 2 -> 1),
# SSD512's first four extras' channels; ReLU after each.
RESNET_EXTRAS_512 = [
    ("conv6_1", 256, 1, 1, 0), ("conv6_2", 512, 3, 2, 1),
    ("conv7_1", 128, 1, 1, 0), ("conv7_2", 256, 3, 2, 1),
    ("conv8_1", 128, 1, 1, 0), ("conv8_2", 256, 3, 2, 1),
    ("conv9_1", 128, 1, 1, 0), ("conv9_2", 256, 3, 2, 1),
]

NETWORKS = {
    "ssd-vgg16-300": {"arch": "ssd", "input_size": 300, "backbone": "vgg16"},
    "netnet-vgg16-300": {"arch": "netnet", "input_size": 300, "backbone": "vgg16"},
    "ssd-vgg16-512": {"arch": "ssd", "input_size": 512, "backbone": "vgg16"},
    "netnet-vgg16-512": {"arch": "netnet", "input_size": 512, "backbone": "vgg16"},
    "ssd-resnet101-512": {"arch": "ssd", "input_size": 512, "backbone": "resnet101"},
    "netnet-resnet101-512": {"arch": "netnet", "input_size": 512, "backbone": "resnet101"},
}

PYRAMID_SIZES = {300: [38, 19, 10, 5, 3, 1], 512: [64, 32, 16, 8, 4, 2, 1]}
MBOX = {300: [4, 6, 6, 6, 4, 4], 512: [4, 6, 6, 6, 6, 4, 4]}
NETM_PAIRS = [(1, 3), (2, 4)]
# The paper's Table 3: where the erasing modules sit (pairs run in this order, each reading the
# outputs of the ones before it; the skipped pairs are disjoint, so order does not matter there).
NEM_PLACEMENTS = {"nem13+24": [(1, 3), (2, 4)], "nem13": [(1, 3)], "nem24": [(2, 4)],
                  "nnem": [(1, 2), (2, 3), (3, 4)]}
# The paper's Table 2: how the erasing gate is made from U(p_t). "channel" is Eq. 6 (a 1x1 conv
# to c_s channels); "max"/"mean" Eq. 5 (one channel over U(p_t)'s channels); "max+mean" both,
# combined by a 1x1 conv to one channel.
# "global" is the paper's simplified non-local gate: queries C1x1(U(p_t)) at p_s's positions,
# keys and values C1x1(p_t), inner channels scale(c_s at width 1 / 8), softmax(q.k / sqrt(inner)),
# then a 1x1 conv to c_s gates.
NEM_GATES = ["channel", "max", "mean", "max+mean", "global"]
DEFAULT_GATE = "channel"
DEFAULT_PLACEMENT = "nem13+24"
NNFM_LEVELS = [1, 2, 3, 4]


def scale_channels(c, width):
    """max(8, round(c*width/8)*8), Python round (half to even) on float64 c*width/8."""
    return max(8, int(round(c * width / 8)) * 8)


def format_width(width):
    s = repr(float(width))
    return s[:-2] if s.endswith(".0") else s


def _json(obj):
    return json.dumps(obj, separators=(",", ":"))


def _intify(v):
    if isinstance(v, list):
        return [_intify(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


class NetConfig:
    """Everything needed to build, run and describe one model."""

    def __init__(self, network, width=1.0, classes=None, num_classes=None, modules=None,
                 priors=None, normalisation=None, description=None):
        if network not in NETWORKS:
            raise ValueError(f"network: expected one of {', '.join(NETWORKS)}, found '{network}'")
        width = float(width)
        if not (0.0 < width <= 4.0) or math.isnan(width):
            raise ValueError(f"width: expected a number in (0, 4], found {width}")
        if classes is None:
            if num_classes is None:
                num_classes = len(COCO_CLASSES)
            if num_classes <= len(COCO_CLASSES):
                classes = COCO_CLASSES[:num_classes]
            else:
                classes = [f"class{i}" for i in range(1, num_classes + 1)]
        classes = list(classes)
        if num_classes is not None and num_classes != len(classes):
            raise ValueError(f"classes: expected {num_classes} names, found {len(classes)}")
        if len(classes) < 1:
            raise ValueError("classes: expected at least one class name")
        self.network = network
        self.arch = NETWORKS[network]["arch"]
        self.backbone = NETWORKS[network]["backbone"]
        self.input_size = NETWORKS[network]["input_size"]
        self.width = width
        self.classes = classes
        self.num_classes = len(classes)
        default_on = self.arch == "netnet"
        m = {"nnfm": default_on, "nem": default_on, "ntm": default_on}
        gate, placement = DEFAULT_GATE, DEFAULT_PLACEMENT
        if modules is not None:
            for k, v in modules.items():
                if k == "gate":
                    if v not in NEM_GATES:
                        raise ValueError(f"modules.gate: expected one of {', '.join(NEM_GATES)}, found {v!r}")
                    gate = v
                    continue
                if k == "placement":
                    if v not in NEM_PLACEMENTS:
                        raise ValueError(f"modules.placement: expected one of {', '.join(NEM_PLACEMENTS)}, found {v!r}")
                    placement = v
                    continue
                if k not in m:
                    raise ValueError(f"modules: unknown key '{k}' (expected nnfm, nem, ntm, gate, placement)")
                if not isinstance(v, bool):
                    raise ValueError(f"modules.{k}: expected true or false, found {v!r}")
                m[k] = v
        if self.arch == "ssd" and (any(m.values()) or gate != DEFAULT_GATE or placement != DEFAULT_PLACEMENT):
            raise ValueError(f"modules: {network} has no NETNet modules, found {_json(m)}")
        # Written only when not the default, so the default models' metadata stays as it was.
        if gate != DEFAULT_GATE:
            m["gate"] = gate
        if placement != DEFAULT_PLACEMENT:
            m["placement"] = placement
        self.modules = m
        self.priors = _intify(priors if priors is not None else DEFAULT_PRIORS[self.input_size])
        self.normalisation = _intify(normalisation if normalisation is not None else DEFAULT_NORMALISATION)
        self.description = description
        self._check_priors()

    # ---- shapes --------------------------------------------------------------------------
    def c(self, c1):
        return scale_channels(c1, self.width)

    @property
    def num_levels(self):
        return len(PYRAMID_SIZES[self.input_size])

    @property
    def pyramid_sizes(self):
        return list(PYRAMID_SIZES[self.input_size])

    @property
    def mbox(self):
        return list(MBOX[self.input_size])

    @property
    def extras(self):
        return RESNET_EXTRAS_512 if self.backbone == "resnet101" else EXTRAS[self.input_size]

    @property
    def backbone_channels_width1(self):
        """The backbone's pyramid levels' channels at width 1: conv4_3, conv7 (VGG16) or the
        outputs of layer2, layer3, layer4 (ResNet-101: 512, 1024, 2048)."""
        if self.backbone == "resnet101":
            mids = {name: mid for name, mid, _b, _s in RESNET101_STAGES}
            return [RESNET_EXPANSION * mids[name] for name in RESNET_PYRAMID_STAGES]
        return [512, CONV7]

    @property
    def pyramid_channels_width1(self):
        return self.backbone_channels_width1 + [c for (name, c, *_r) in self.extras if name.endswith("_2")]

    @property
    def pyramid_channels(self):
        """c_1..c_L (scaled): conv4_3, conv7, conv8_2, conv9_2, ... (VGG16); layer2, layer3,
        layer4, conv6_2 ... conv9_2 (ResNet-101)."""
        return [self.c(c) for c in self.pyramid_channels_width1]

    def bottleneck(self, s):
        """NETM fusion bottleneck width for level s: scale(c_s at width 1 / 4)."""
        return self.c(self.pyramid_channels_width1[s - 1] // 4)

    def attention_inner(self, s):
        """Inner channels of the global gate at level s: scale(c_s at width 1 / 8)."""
        return self.c(self.pyramid_channels_width1[s - 1] // 8)

    @property
    def gate(self):
        return self.modules.get("gate", DEFAULT_GATE)

    @property
    def netm_pairs(self):
        return NEM_PLACEMENTS[self.modules.get("placement", DEFAULT_PLACEMENT)]

    @property
    def netm_on(self):
        return self.modules["nem"] or self.modules["ntm"]

    @property
    def num_priors(self):
        return sum(s * s * k for s, k in zip(self.pyramid_sizes, self.mbox))

    def _check_priors(self):
        p = self.priors
        L = self.num_levels
        for key in ("min_sizes", "max_sizes", "steps", "aspect_ratios", "variances", "clip"):
            if key not in p:
                raise ValueError(f"priors: missing '{key}'")
        for key in ("min_sizes", "max_sizes", "steps", "aspect_ratios"):
            if not isinstance(p[key], list) or len(p[key]) != L:
                raise ValueError(f"priors.{key}: expected {L} entries (one per level), found "
                                 f"{len(p[key]) if isinstance(p[key], list) else p[key]!r}")
        for l, (ars, k) in enumerate(zip(p["aspect_ratios"], self.mbox), 1):
            if 2 + 2 * len(ars) != k:
                raise ValueError(f"priors.aspect_ratios[{l - 1}]: level {l} has {k} anchors, "
                                 f"so expected {(k - 2) // 2} ratios, found {len(ars)}")
        if not isinstance(p["variances"], list) or len(p["variances"]) != 2:
            raise ValueError(f"priors.variances: expected 2 numbers, found {p['variances']!r}")
        if not isinstance(p["clip"], bool):
            raise ValueError(f"priors.clip: expected true or false, found {p['clip']!r}")
        if not isinstance(p.get("clip_centres", True), bool):
            raise ValueError(f"priors.clip_centres: expected true or false, found {p['clip_centres']!r}")
        unknown = sorted(set(p) - {"min_sizes", "max_sizes", "steps", "aspect_ratios", "variances", "clip", "clip_centres"})
        if unknown:
            raise ValueError(f"priors: unknown key '{unknown[0]}'")

    # ---- metadata ------------------------------------------------------------------------
    def metadata(self):
        md = {
            "format": FORMAT,
            "network": self.network,
            "width": format_width(self.width),
            "input_size": str(self.input_size),
            "classes": json.dumps(self.classes, separators=(",", ":"), ensure_ascii=False),
            "normalisation": _json(self.normalisation),
            "priors": _json(self.priors),
            "modules": _json(self.modules),
        }
        if self.description:
            md["description"] = self.description
        return md

    @classmethod
    def from_metadata(cls, md):
        """Parse a model file's __metadata__ (all values strings); ValueError naming the key."""
        def need(key):
            if key not in md:
                raise ValueError(f"metadata: missing required key '{key}'")
            return md[key]

        def js(key):
            try:
                return json.loads(need(key))
            except json.JSONDecodeError as e:
                raise ValueError(f"metadata '{key}': not valid JSON ({e}): {md[key]!r}")

        fmt = need("format")
        if fmt != FORMAT:
            raise ValueError(f"metadata 'format': expected {FORMAT}, found {fmt}")
        network = need("network")
        if network not in NETWORKS:
            raise ValueError(f"metadata 'network': expected one of {', '.join(NETWORKS)}, found {network}")
        try:
            width = float(need("width"))
        except ValueError:
            raise ValueError(f"metadata 'width': expected a number, found {md['width']!r}")
        try:
            input_size = int(need("input_size"))
        except ValueError:
            raise ValueError(f"metadata 'input_size': expected an integer, found {md['input_size']!r}")
        if input_size != NETWORKS[network]["input_size"]:
            raise ValueError(f"metadata 'input_size': expected {NETWORKS[network]['input_size']} for "
                             f"{network}, found {input_size}")
        classes = js("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not classes:
            raise ValueError(f"metadata 'classes': expected a non-empty JSON array of strings, found {md['classes']!r}")
        norm = js("normalisation")
        if (not isinstance(norm, dict) or norm.get("order") not in ("bgr", "rgb")
                or len(norm.get("mean", [])) != 3 or len(norm.get("std", [])) != 3):
            raise ValueError(f"metadata 'normalisation': expected {{\"order\":\"bgr|rgb\",\"mean\":[3],"
                             f"\"std\":[3]}}, found {md['normalisation']!r}")
        priors = js("priors")
        if not isinstance(priors, dict):
            raise ValueError(f"metadata 'priors': expected a JSON object, found {md['priors']!r}")
        modules = json.loads(md["modules"]) if "modules" in md else None
        if modules is not None and not isinstance(modules, dict):
            raise ValueError(f"metadata 'modules': expected a JSON object, found {md['modules']!r}")
        try:
            return cls(network, width=width, classes=classes, modules=modules, priors=priors,
                       normalisation=norm, description=md.get("description"))
        except ValueError as e:
            raise ValueError(f"metadata: {e}")

    def __repr__(self):
        return (f"NetConfig({self.network}, width={format_width(self.width)}, classes={self.num_classes}, "
                f"modules={_json(self.modules)})")
