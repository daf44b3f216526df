#!/usr/bin/env python3
"""SSD's training augmentation (Liu et al. 2016, as ssd.pytorch), for one sample at a time.

Order: zoom-out (expand onto a mean-filled canvas) -> IoU-constrained random crop -> horizontal
flip -> resize to the network's square input -> photometric distortion -> mean subtraction.
The photometric step runs after the resize (it is per-pixel, so the order does not change what
it does, and at 300x300 it is ~6x cheaper than at 768x576).

Boxes are corner form in pixels on the way in; `augment` returns the input tensor [3, S, S]
(normalised as the model file says) and boxes relative to the output ([0, 1]).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


def iou_matrix(a, b):
    """IoU of corner boxes a [N,4] vs b [M,4] -> [N,M] (numpy)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def expand(image, boxes, ignore, rng, mean_bgr, max_ratio):
    """Zoom out: place the image at a random spot of a canvas up to max_ratio times its size."""
    ratio = rng.uniform(1, max_ratio)
    h, w, _ = image.shape
    H, W = int(h * ratio), int(w * ratio)
    left, top = int(rng.uniform(0, W - w)), int(rng.uniform(0, H - h))
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[...] = np.array(mean_bgr, np.uint8)
    canvas[top:top + h, left:left + w] = image
    shift = np.array([left, top, left, top], np.float32)
    return canvas, boxes + shift, ignore + shift


CROP_MODES = (None, 0.1, 0.3, 0.5, 0.7, 0.9, "any")


def random_crop(image, boxes, labels, ignore, rng, trials=50):
    """SSD's sampler: keep the whole image, or a crop (side 0.3-1 of the image's, aspect 1/2-2)
    whose IoU with some box is at least a randomly chosen minimum; boxes whose centre falls
    inside are kept and clipped. Returns the input unchanged when no trial succeeds."""
    h, w, _ = image.shape
    while True:
        mode = CROP_MODES[rng.integers(len(CROP_MODES))]
        if mode is None or len(boxes) == 0:
            return image, boxes, labels, ignore
        min_iou = -math.inf if mode == "any" else mode
        for _ in range(trials):
            cw, ch = rng.uniform(0.3 * w, w), rng.uniform(0.3 * h, h)
            if ch / cw < 0.5 or ch / cw > 2:
                continue
            x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
            rect = np.array([int(x0), int(y0), int(x0 + cw), int(y0 + ch)], np.float32)
            if iou_matrix(boxes, rect[None])[:, 0].max() < min_iou:
                continue
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            inside = ((centres > rect[:2]) & (centres < rect[2:])).all(1)
            if not inside.any():
                continue
            kept = boxes[inside].copy()
            kept[:, :2] = np.maximum(kept[:, :2], rect[:2]) - rect[:2]
            kept[:, 2:] = np.minimum(kept[:, 2:], rect[2:]) - rect[:2]
            ig = ignore.copy()
            if len(ig):
                ig[:, :2] = np.maximum(ig[:, :2], rect[:2]) - rect[:2]
                ig[:, 2:] = np.minimum(ig[:, 2:], rect[2:]) - rect[:2]
                ig = ig[((ig[:, 2:] - ig[:, :2]) > 1).all(1)]
            x1, y1, x2, y2 = (int(v) for v in rect)
            return image[y1:y2, x1:x2], kept, labels[inside], ig


def flip(image, boxes, ignore):
    w = image.shape[1]
    b = boxes.copy()
    b[:, [0, 2]] = w - boxes[:, [2, 0]]
    ig = ignore.copy()
    if len(ig):
        ig[:, [0, 2]] = w - ignore[:, [2, 0]]
    return image[:, ::-1], b, ig


def resize(image, size):
    """uint8 [H,W,3] BGR -> float32 tensor [3,S,S], bilinear with antialiasing when shrinking
    (close to libswscale's SWS_BILINEAR, whose filter widens with the scale factor)."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().unsqueeze(0)
    shrink = image.shape[0] > size or image.shape[1] > size
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink)[0].clamp_(0, 255)


def _rgb_to_hsv(rgb):
    r, g, b = rgb
    maxc, _ = rgb.max(0)
    minc, _ = rgb.min(0)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp(min=1e-6), torch.zeros_like(maxc))
    dc = delta.clamp(min=1e-6)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return h, s, v


def _hsv_to_rgb(h, s, v):
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = torch.stack([v, q, p, p, t, v])
    g = torch.stack([t, v, v, q, p, p])
    b = torch.stack([p, p, t, v, v, q])
    idx = i.unsqueeze(0)
    return torch.cat([r.gather(0, idx), g.gather(0, idx), b.gather(0, idx)])


def photometric(bgr, rng):
    """SSD's photometric distortion on a float BGR tensor in [0, 255] (each part with p=0.5):
    brightness +-32, contrast x[0.5, 1.5] (before or after the HSV part), saturation
    x[0.5, 1.5], hue +-18 degrees."""
    x = bgr
    if rng.random() < 0.5:
        x = x + float(rng.uniform(-32, 32))
    contrast_first = rng.random() < 0.5
    if contrast_first and rng.random() < 0.5:
        x = x * float(rng.uniform(0.5, 1.5))
    do_sat, do_hue = rng.random() < 0.5, rng.random() < 0.5
    if do_sat or do_hue:
        rgb = x.flip(0).clamp(0, 255) / 255.0
        h, s, v = _rgb_to_hsv(rgb)
        if do_sat:
            s = (s * float(rng.uniform(0.5, 1.5))).clamp(0, 1)
        if do_hue:
            h = (h + float(rng.uniform(-18, 18)) / 360.0) % 1.0
        x = (_hsv_to_rgb(h, s, v) * 255.0).flip(0)
    if not contrast_first and rng.random() < 0.5:
        x = x * float(rng.uniform(0.5, 1.5))
    return x.clamp(0, 255)


def normalise(bgr, normalisation):
    """Float BGR [3,S,S] in [0,255] -> the network's input per the model's normalisation."""
    x = bgr if normalisation["order"] == "bgr" else bgr.flip(0)
    mean = torch.tensor(normalisation["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(normalisation["std"], dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def prepare(image, size, normalisation):
    """Evaluation input: resize and normalise, no augmentation."""
    return normalise(resize(image, size), normalisation)


def augment(sample, size, normalisation, rng, expand_max=4.0, expand_p=0.5, distort=True):
    """One training input: (tensor [3,S,S], boxes [N,4] relative, labels [N], ignore [M,4] relative)."""
    img, boxes, labels, ignore = sample.image, sample.boxes, sample.labels, sample.ignore
    mean = normalisation["mean"] if normalisation["order"] == "bgr" else normalisation["mean"][::-1]
    if expand_max > 1 and rng.random() < expand_p:
        img, boxes, ignore = expand(img, boxes, ignore, rng, [int(round(m)) for m in mean], expand_max)
    img, boxes, labels, ignore = random_crop(img, boxes, labels, ignore, rng)
    if rng.random() < 0.5:
        img, boxes, ignore = flip(img, boxes, ignore)
    h, w, _ = img.shape
    scale = np.array([w, h, w, h], np.float32)
    x = resize(img, size)
    x = normalise(photometric(x, rng) if distort else x, normalisation)
    return x, boxes / scale, labels, ignore / scale
