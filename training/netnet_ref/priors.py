#!/usr/bin/env python3
"""SSD prior boxes (as ssd.pytorch's PriorBox), computed in float64.

For level k with feature size f (the pyramid's, e.g. 38) and step s_k:
  f_k = input_size / step_k             (e.g. 300/8 = 37.5: SSD's convention, not 38)
  for y in 0..f-1, for x in 0..f-1:     (row-major, y outer)
    cx = (x + 0.5) / f_k, cy = (y + 0.5) / f_k
    s  = min_size / input_size              -> (cx, cy, s, s)
    s' = sqrt(s * max_size / input_size)    -> (cx, cy, s', s')
    for r in aspect_ratios[k]:              -> (cx, cy, s*sqrt(r), s/sqrt(r)), (cx, cy, s/sqrt(r), s*sqrt(r))
All four centre-form values are then clipped to [0, 1] when clip is true (ssd.pytorch clamps the
centre-form tensor, so cx, cy, w and h are each clamped independently); with clip_centres false
only w and h are (torchvision's DefaultBoxGenerator, whose centres may pass 1).
"""
import math

import numpy as np


def prior_boxes(cfg):
    """[P, 4] float64 (cx, cy, w, h) for a NetConfig."""
    p = cfg.priors
    S = cfg.input_size
    out = []
    for k, f in enumerate(cfg.pyramid_sizes):
        f_k = S / p["steps"][k]
        s_k = p["min_sizes"][k] / S
        s_kp = math.sqrt(s_k * (p["max_sizes"][k] / S))
        for y in range(f):
            for x in range(f):
                cx = (x + 0.5) / f_k
                cy = (y + 0.5) / f_k
                out.append((cx, cy, s_k, s_k))
                out.append((cx, cy, s_kp, s_kp))
                for r in p["aspect_ratios"][k]:
                    sr = math.sqrt(r)
                    out.append((cx, cy, s_k * sr, s_k / sr))
                    out.append((cx, cy, s_k / sr, s_k * sr))
    pr = np.array(out, dtype=np.float64)
    if p["clip"]:
        if p.get("clip_centres", True):
            np.clip(pr, 0.0, 1.0, out=pr)
        else:
            np.clip(pr[:, 2:], 0.0, 1.0, out=pr[:, 2:])
    return pr
