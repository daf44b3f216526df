#!/usr/bin/env python3
"""SSD's MultiBox loss: prior matching, box encoding, smooth-L1 + cross-entropy with hard
negative mining (negatives:positives = 3:1), normalised by the number of positives.

Matching (as SSD): each ground-truth box takes its best prior; every other prior takes the box it
overlaps most when that IoU is >= 0.5. Priors overlapping an ignore region by >= 0.5 (and matched
to no box) are neither positives nor negatives.
"""
import torch
import torch.nn.functional as F


def center_to_corner(p):
    return torch.cat([p[:, :2] - p[:, 2:] / 2, p[:, :2] + p[:, 2:] / 2], 1)


def iou(a, b):
    """Corner boxes a [N,4], b [M,4] -> [N,M]."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def encode(matched, priors, variances=(0.1, 0.2)):
    """Corner boxes matched to priors [P,4] (centre form) -> regression targets [P,4]."""
    cxcy = ((matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]) / (variances[0] * priors[:, 2:])
    wh = ((matched[:, 2:] - matched[:, :2]).clamp(min=1e-6) / priors[:, 2:]).log() / variances[1]
    return torch.cat([cxcy, wh], 1)


def match(boxes, labels, ignore, priors, priors_corner, threshold=0.5, variances=(0.1, 0.2)):
    """One image -> (loc targets [P,4], class targets [P]: 0 background, c+1 class c, -1 ignore)."""
    P = priors.shape[0]
    conf = torch.zeros(P, dtype=torch.long)
    loc = torch.zeros(P, 4)
    if len(ignore):
        ign = iou(ignore, priors_corner).max(0).values >= threshold
        conf[ign] = -1
    if len(boxes) == 0:
        return loc, conf
    overlaps = iou(boxes, priors_corner)              # [G, P]
    best_prior = overlaps.argmax(1)                   # [G]
    best_truth_overlap, best_truth = overlaps.max(0)  # [P]
    best_truth_overlap.index_fill_(0, best_prior, 2.0)
    for g in range(len(boxes)):
        best_truth[best_prior[g]] = g
    pos = best_truth_overlap >= threshold
    conf[pos] = labels[best_truth[pos]] + 1
    loc[pos] = encode(boxes[best_truth[pos]], priors[pos], variances)
    return loc, conf


class MultiBoxLoss:
    def __init__(self, priors, variances=(0.1, 0.2), threshold=0.5, neg_pos=3):
        self.priors = torch.as_tensor(priors, dtype=torch.float32)
        self.priors_corner = center_to_corner(self.priors)
        self.variances = variances
        self.threshold = threshold
        self.neg_pos = neg_pos

    def targets(self, batch):
        """batch: list of (boxes [N,4] relative, labels [N], ignore [M,4] relative) numpy/tensors."""
        locs, confs = [], []
        for boxes, labels, ignore in batch:
            l, c = match(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                         torch.as_tensor(labels, dtype=torch.long),
                         torch.as_tensor(ignore, dtype=torch.float32).reshape(-1, 4),
                         self.priors, self.priors_corner, self.threshold, self.variances)
            locs.append(l)
            confs.append(c)
        return torch.stack(locs), torch.stack(confs)

    def __call__(self, loc_pred, conf_pred, loc_t, conf_t):
        """-> (localisation loss, confidence loss), each summed and divided by the positives."""
        pos = conf_t > 0
        num_pos = pos.sum(1, keepdim=True)
        n = max(int(num_pos.sum()), 1)
        loss_l = F.smooth_l1_loss(loc_pred[pos], loc_t[pos], reduction="sum")

        C = conf_pred.shape[-1]
        ce = F.cross_entropy(conf_pred.reshape(-1, C), conf_t.clamp(min=0).reshape(-1),
                             reduction="none").view(conf_t.shape)
        with torch.no_grad():
            mining = ce.clone()
            mining[pos] = 0
            mining[conf_t < 0] = 0
            _, order = mining.sort(1, descending=True)
            _, rank = order.sort(1)
            available = (conf_t == 0).sum(1, keepdim=True)
            num_neg = torch.min(self.neg_pos * num_pos.clamp(min=1), available)
            neg = (rank < num_neg) & (conf_t == 0)
        loss_c = ce[pos | neg].sum()
        return loss_l / n, loss_c / n
