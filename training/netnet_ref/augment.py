#!/usr/bin/env python3
"""SSD's training augmentation (Liu et al. 2016, as ssd.pytorch), for one sample at a time.

Order: copy-paste occlusion (`occlude`, off by default) -> zoom-out (expand onto a mean-filled
canvas) -> IoU-constrained random crop -> horizontal flip -> resize to the network's square
input -> photometric distortion -> mean subtraction.
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


def occlude(image, boxes, labels, ignore, rng, max_pastes=2, min_height=24):
    """Copy-paste occlusion (after Dwibedi et al. 2017, "Cut, Paste and Learn"): paste a copy of
    one of the image's labelled people in front of another, overlapping 30-70 % of its width,
    feet level, scaled to its height. People walking side by side cover each other this way on
    street cameras; the training sources rarely show it (about 3 pairs at IoU > 0.2 per 100
    boxes, against 30 on TUD-Campus), so the network learns one wide box over a pair. The
    pasted copy is a new label; the person behind keeps the whole box (as MOT's ground truth
    draws occluded people), and a label more than half covered by the copy becomes an ignore
    region. The copy's left and right edges fade over a sixth of its width each, so the
    background it brings does not end in a hard vertical edge. Returns new arrays; the input is
    not changed."""
    tall = [i for i, b in enumerate(boxes) if b[3] - b[1] >= min_height and b[2] - b[0] >= 4]
    if not tall:
        return image, boxes, labels, ignore
    image, boxes, labels, ignore = image.copy(), boxes.copy(), labels.copy(), ignore.copy()
    h, w, _ = image.shape
    for _ in range(int(rng.integers(1, max_pastes + 1))):
        source_index = tall[int(rng.integers(len(tall)))]
        source = boxes[source_index]
        target = boxes[tall[int(rng.integers(len(tall)))]]
        sx1, sy1, sx2, sy2 = (int(round(v)) for v in source)
        patch = image[max(sy1, 0):min(sy2, h), max(sx1, 0):min(sx2, w)]
        if patch.shape[0] < 4 or patch.shape[1] < 4:
            continue
        tw, th = target[2] - target[0], target[3] - target[1]
        ph = th * rng.uniform(0.9, 1.1)
        pw = ph * patch.shape[1] / patch.shape[0]
        overlap = rng.uniform(0.3, 0.7) * tw
        left = target[0] - pw + overlap if rng.random() < 0.5 else target[2] - overlap
        bottom = target[3] + rng.uniform(-0.05, 0.05) * th
        x1, y1 = int(round(left)), int(round(bottom - ph))
        x2, y2 = x1 + max(int(round(pw)), 2), int(round(bottom))
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h or y2 - y1 < 4:
            continue
        t = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float().unsqueeze(0)
        scaled = F.interpolate(t, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)[0]
        scaled = scaled.permute(1, 2, 0).numpy()
        fade = np.clip(np.minimum(np.arange(x2 - x1) + 0.5, x2 - x1 - np.arange(x2 - x1) - 0.5)
                       / max((x2 - x1) / 6, 1), 0, 1)[None, :, None]
        region = image[y1:y2, x1:x2].astype(np.float32)
        image[y1:y2, x1:x2] = np.clip(region * (1 - fade) + scaled * fade + 0.5, 0, 255).astype(np.uint8)
        pasted = np.array([[x1, y1, x2, y2]], np.float32)
        lt = np.maximum(boxes[:, :2], pasted[:, :2])
        rb = np.minimum(boxes[:, 2:], pasted[:, 2:])
        covered = np.clip(rb - lt, 0, None).prod(1) / np.maximum((boxes[:, 2:] - boxes[:, :2]).prod(1), 1e-9)
        hidden = covered > 0.5
        if hidden.any():
            ignore = np.concatenate([ignore.reshape(-1, 4), boxes[hidden]]).astype(np.float32)
        keep = ~hidden
        boxes = np.concatenate([boxes[keep], pasted]).astype(np.float32)
        labels = np.concatenate([labels[keep], labels[source_index:source_index + 1]])
        tall = [i for i, b in enumerate(boxes) if b[3] - b[1] >= min_height and b[2] - b[0] >= 4]
        if not tall:
            break
    return image, boxes, labels, ignore


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


def augment(sample, size, normalisation, rng, expand_max=4.0, expand_p=0.5, distort=True, occlude_p=0.0):
    """One training input: (tensor [3,S,S], boxes [N,4] relative, labels [N], ignore [M,4] relative).
    `occlude_p` > 0 first pastes people in front of people (`occlude`) with that probability;
    at 0 no random draw is spent on it, so runs without it are as before."""
    img, boxes, labels, ignore = sample.image, sample.boxes, sample.labels, sample.ignore
    mean = normalisation["mean"] if normalisation["order"] == "bgr" else normalisation["mean"][::-1]
    if occlude_p > 0 and len(boxes) and rng.random() < occlude_p:
        img, boxes, labels, ignore = occlude(img, boxes, labels, ignore, rng)
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
