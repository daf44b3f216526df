#!/usr/bin/env python3
"""Decoding, softmax and per-class NMS (numpy), SSD conventions."""
import numpy as np


def decode(loc, priors, variances=(0.1, 0.2)):
    """loc [P,4] (dcx, dcy, dw, dh), priors [P,4] centre form -> boxes [P,4] corner form (x1,y1,x2,y2).

    cx = pcx + dcx*v0*pw, cy = pcy + dcy*v0*ph, w = pw*exp(dw*v1), h = ph*exp(dh*v1);
    x1 = cx - w/2, y1 = cy - h/2, x2 = x1 + w, y2 = y1 + h  (as ssd.pytorch; no clipping).
    """
    loc = np.asarray(loc)
    priors = np.asarray(priors, dtype=loc.dtype)
    cxcy = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    wh = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    x1y1 = cxcy - wh / 2
    return np.concatenate([x1y1, x1y1 + wh], axis=1)


def softmax(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def iou_one_to_many(box, boxes):
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = a + b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, iou_threshold=0.45):
    """Greedy NMS; indices kept, highest score first (ties: lower index first)."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if order.size == 1:
            break
        ious = iou_one_to_many(boxes[i], boxes[order[1:]])
        order = order[1:][ious <= iou_threshold]
    return keep


def has_area(boxes):
    """Finite boxes that keep some area inside the image once clipped to [0, 1] (as the engine's
    NonMaximumSuppression.hasArea: width and height > 1e-4); boxes [N,4] relative corner form."""
    b = np.asarray(boxes)
    finite = np.isfinite(b).all(axis=1)
    with np.errstate(invalid="ignore"):
        w = np.minimum(b[:, 2], 1) - np.maximum(b[:, 0], 0)
        h = np.minimum(b[:, 3], 1) - np.maximum(b[:, 1], 0)
    return finite & (w > 1e-4) & (h > 1e-4)


def detect(boxes, scores, score_threshold=0.01, iou_threshold=0.45, top_k=200, candidates=400):
    """The engine's post-processing: per class 1..C (0 is background) the boxes scoring above
    score_threshold that keep some area inside the image, the best `candidates` of them, greedy
    NMS; then the top_k overall by score (ties: lower prior index first).

    boxes [P,4] relative corner form, scores [P,C+1] softmax. Returns a list of
    (class_index (1-based, 0 = background excluded), score, x1, y1, x2, y2), best first.
    """
    dets = []
    usable = has_area(boxes)
    for c in range(1, scores.shape[1]):
        sc = scores[:, c]
        idx = np.nonzero((sc > score_threshold) & usable)[0]
        if idx.size == 0:
            continue
        idx = idx[np.argsort(-sc[idx], kind="stable")[:candidates]]
        for j in nms(boxes[idx], sc[idx], iou_threshold):
            i = idx[j]
            dets.append((c, float(sc[i]), int(i), *[float(v) for v in boxes[i]]))
    dets.sort(key=lambda d: (-d[1], d[2], d[0]))
    return [(d[0], d[1], *d[3:]) for d in dets[:top_k]]
