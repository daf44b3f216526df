#!/usr/bin/env python3
"""Train an SSD / NETNet detector (any network of the spec, any width, any class list).

    training/.venv/bin/python training/train.py --out runs/person \\
        --network netnet-vgg16-300 --width 0.125 --classes person \\
        --train pets09-train,tud-campus,coco128-person --val pets09-val --epochs 60

SSD's recipe scaled to small data: the augmentation of netnet_ref.augment, the MultiBox loss with
hard negative mining (3:1), SGD with momentum, linear warm-up and step decay (x0.1 at the
--decay-at fractions of the run). Batch normalisation after the backbone and extras
convolutions during training (folded into them for export, see netnet_ref/batchnorm.py; turn it
off with --no-batchnorm).

Writes to --out: checkpoint.pt (every epoch; --resume continues from it, same arguments),
log.jsonl (one line an epoch: losses, learning rate, seconds, validation AP when scored),
model.safetensors (the folded model, after each validation and at the end) and args.json.
CPU by default (--threads); a CUDA GPU when one is present (--device auto). --init CKPT starts
from another run's weights on this run's own schedule (fine-tuning); --teacher FILE adds the
people a teacher found and the labels miss (training/teacher.py says how).

Data (--train, --val; comma-separated, mixed freely): the named sets of netnet_ref/data.py, or
a user's own folders: yolo:DIR[@SPLIT], coco:ANN.json:IMAGES, voc:DIR[@SPLIT], mot:SEQDIR,
pennfudan:DIR (netnet_ref/sources.py says how each is read). Classes are matched to --classes by
name, case-insensitively, with a short alias list (pedestrian, people, persons, human -> person;
--alias adds more, e.g. --alias 0=person for a set whose only class is named "0"); boxes of other
classes are dropped. With several --val sets, each is scored on its own as well (log.jsonl
"val_by_set") and "val" is the score over all of them together.
"""
import argparse
import json
import math
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netnet_ref import augment, batchnorm, data, evaluation  # noqa: E402
from netnet_ref.config import COCO_CLASSES, NetConfig  # noqa: E402
from netnet_ref.model import NETNet, init_weights, save_model  # noqa: E402
from netnet_ref.multibox import MultiBoxLoss  # noqa: E402
from netnet_ref.priors import prior_boxes  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, model)")
    p.add_argument("--network", default="netnet-vgg16-300", help="network name (default: %(default)s)")
    p.add_argument("--width", type=float, default=0.125, help="width multiplier (default: %(default)s)")
    p.add_argument("--classes", default="person", help="comma-separated class names (default: %(default)s)")
    p.add_argument("--modules", default=None, help='NETNet parts as JSON, e.g. \'{"ntm":false}\' (NEM only)')
    p.add_argument("--train", default="pets09-train,tud-campus,coco128-person",
                   help=f"training sets, comma-separated: {', '.join(data.NAMED)}, yolo:DIR[@SPLIT], "
                        "coco:ANN.json:IMAGES, voc:DIR[@SPLIT], mot:SEQDIR, pennfudan:DIR (default: %(default)s)")
    p.add_argument("--val", default="pets09-val",
                   help="validation sets, the same forms (default: %(default)s; '' for none)")
    p.add_argument("--alias", default="", help="extra class synonyms FROM=TO,... (e.g. 0=person)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=0.02, help="peak learning rate (default: %(default)s)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--clip-grad", type=float, default=10.0, help="gradient norm bound (default: %(default)s)")
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--decay-at", default="0.67,0.87", help="fractions of the run where lr drops x0.1")
    p.add_argument("--expand-max", type=float, default=2.0, help="zoom-out ratio bound (SSD: 4; small people here)")
    p.add_argument("--no-batchnorm", action="store_true", help="train the plain network, no batch norm")
    p.add_argument("--eval-every", type=int, default=5, help="validate every N epochs (and at the end)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init", default=None,
                   help="start from the weights of another run's checkpoint.pt (same network; a new "
                        "optimiser and schedule): fine-tuning")
    p.add_argument("--teacher", default=None,
                   help="a teacher file (training/teacher.py label): teacher people that the labels miss "
                        "become ignore regions")
    p.add_argument("--teacher-label-at", type=float, default=None,
                   help="with --teacher: missed people the teacher scores at least this high become "
                        "labelled boxes instead (default: none do)")
    p.add_argument("--occlude", type=float, default=0.0, metavar="P",
                   help="with probability P a training image gets people pasted in front of its people "
                        "(copy-paste occlusion, netnet_ref/augment.py occlude; default: %(default)s, off)")
    p.add_argument("--max-minutes", type=float, default=0, help="stop cleanly (checkpoint saved) after this long")
    return p.parse_args(argv)


def classes_of(names):
    out = [c.strip() for c in names.split(",") if c.strip()]
    if not out:
        raise SystemExit("train: --classes: expected at least one class name")
    return out


def aliases_of(text):
    """'0=person,worker=person' -> {'0': 'person', 'worker': 'person'}."""
    out = {}
    for item in [a for a in text.split(",") if a.strip()]:
        src, eq, dst = item.partition("=")
        if not eq or not src.strip() or not dst.strip():
            raise SystemExit(f"train: --alias: expected FROM=TO, found {item!r}")
        out[src.strip()] = dst.strip()
    return out


def check_specs(text):
    """SystemExit in one line for a spec that is neither a named set nor of a known kind."""
    from netnet_ref import sources
    for spec in data.split_specs(text):
        try:
            spec, _ = data.parse_fold(spec)
        except ValueError as e:
            raise SystemExit(f"train: {e}")
        kind = spec.split(":", 1)[0] if ":" in spec else None
        if kind is None and spec not in data.NAMED or kind is not None and kind not in sources.KINDS:
            raise SystemExit(f"train: data set '{spec}': expected one of {', '.join(data.NAMED)}, or "
                             f"{', '.join(k + ':...' for k in sources.KINDS)}")


def build_sets(names, classes, aliases=None):
    """Training samples relabelled to `classes` by name (boxes of other classes dropped)."""
    samples = []
    for spec in data.split_specs(names):
        samples += data.relabel(data.load_spec(spec), classes, aliases).samples
    return samples


def build_val(names, classes, aliases=None):
    """Validation sets, one DetectionSet per spec, relabelled to the classes they label."""
    return [data.relabel(data.load_spec(spec), classes, aliases, compact=True) for spec in data.split_specs(names)]


def score_sets(model, sets, classes):
    """{"all": scores over every set together, spec: scores of that set} (COCO AP via pycocotools).

    Category ids are those of the model's classes, so sets labelling different classes combine."""
    per, all_gt, all_results = {}, {"images": [], "annotations": [], "categories": []}, []
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
    for ds in sets:
        to_model = {i + 1: classes.index(c) + 1 for i, c in enumerate(ds.classes)}
        gt = data.to_coco(ds)
        for a in gt["annotations"]:
            a["category_id"] = to_model[a["category_id"]]
        gt["categories"] = cats
        results = evaluation.torch_detections(model, ds)
        per[ds.name] = evaluation.score(gt, results)
        offset, ann_offset = len(all_gt["images"]), len(all_gt["annotations"])
        all_gt["images"] += [{**im, "id": im["id"] + offset} for im in gt["images"]]
        all_gt["annotations"] += [{**a, "id": a["id"] + ann_offset, "image_id": a["image_id"] + offset}
                                  for a in gt["annotations"]]
        all_results += [{**r, "image_id": r["image_id"] + offset} for r in results]
    all_gt["categories"] = cats
    return {"all": per[sets[0].name] if len(sets) == 1 else evaluation.score(all_gt, all_results), **per}


def learning_rate(args, step, steps_per_epoch):
    warm = args.warmup_epochs * steps_per_epoch
    if step < warm:
        return args.lr * (0.001 + 0.999 * step / warm)
    total = args.epochs * steps_per_epoch
    drops = sum(step >= float(f) * total for f in args.decay_at.split(",") if f)
    return args.lr * (0.1 ** drops)


class Bar:
    """A one-line progress bar on stderr (a plain line per update when stderr is not a terminal)."""

    def __init__(self, total, prefix):
        self.total, self.prefix, self.start = total, prefix, time.time()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, n, text):
        now = time.time()
        if not self.tty and now - self.last < 30 and n < self.total:
            return
        self.last = now
        filled = int(20 * n / self.total)
        rate = n / max(now - self.start, 1e-9)
        eta = (self.total - n) / max(rate, 1e-9)
        line = f"{self.prefix} [{'#' * filled}{'.' * (20 - filled)}] {n}/{self.total} {text} eta {eta:4.0f}s"
        sys.stderr.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and n == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    # Denormal floats (tiny weights and gradients late in training) make x86 float math ~100x
    # slower; flushing them to zero changes nothing a detector can notice.
    torch.set_flush_denormal(True)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    classes = classes_of(args.classes)
    if not 0 <= args.occlude <= 1:
        raise SystemExit(f"train: --occlude: expected a probability from 0 to 1, found {args.occlude}")
    try:
        modules = json.loads(args.modules) if args.modules else None
    except json.JSONDecodeError as e:
        raise SystemExit(f"train: --modules: not valid JSON ({e}): {args.modules!r}")
    try:
        cfg = NetConfig(args.network, width=args.width, classes=classes, modules=modules,
                        description=f"trained by training/train.py on {args.train}")
    except ValueError as e:
        raise SystemExit(f"train: {e}")
    check_specs(args.train + "," + args.val)
    aliases = aliases_of(args.alias)

    torch.manual_seed(args.seed)
    model = init_weights(NETNet(cfg), seed=args.seed)
    with torch.no_grad():  # SSD heads start small, so the first steps are not dominated by them
        for name, p in model.heads.named_parameters():
            if name.endswith(".weight"):
                p.normal_(0, 0.01)
    if not args.no_batchnorm:
        batchnorm.add_batchnorm(model)
    model.to(device)

    t0 = time.time()
    try:
        train = build_sets(args.train, classes, aliases)
        val = build_val(args.val, classes, aliases) if args.val else None
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"train: {e}")
    if not train:
        raise SystemExit(f"train: --train {args.train!r}: no images")
    if args.teacher:
        import teacher
        if "person" not in classes:
            raise SystemExit(f"train: --teacher labels people, and --classes {args.classes!r} has no person")
        try:
            _, teacher_boxes = teacher.read_file(args.teacher)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"train: {e}")
        train, stats = teacher.complete(train, teacher_boxes, classes.index("person"), args.teacher_label_at)
        print(f"train: teacher {args.teacher}: {stats['ignored']} missed people as ignore regions, "
              f"{stats['labelled']} as labels; {stats['without']} images it did not label", file=sys.stderr)
    print(f"train: {len(train)} images ({sum(len(s.boxes) for s in train)} boxes) from {args.train}; "
          f"val: {sum(len(v.samples) for v in val) if val else 0} images from {args.val or '-'}; "
          f"loaded in {time.time() - t0:.0f}s; device {device}", file=sys.stderr)

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, momentum=args.momentum)
    criterion = MultiBoxLoss(prior_boxes(cfg), variances=cfg.priors["variances"])
    criterion.priors, criterion.priors_corner = criterion.priors.to(device), criterion.priors_corner.to(device)
    rng = np.random.default_rng(args.seed)
    steps_per_epoch = math.ceil(len(train) / args.batch)
    start_epoch = 0
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        start_epoch = state["epoch"]
        print(f"resumed from {ckpt} after epoch {start_epoch}", file=sys.stderr)
    elif args.resume and not args.init:
        print(f"train: --resume: no {ckpt}; starting afresh", file=sys.stderr)
    if args.init and start_epoch == 0:
        try:
            model.load_state_dict(torch.load(args.init, map_location=device)["model"])
        except (OSError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
            raise SystemExit(f"train: --init {args.init}: cannot be read as a checkpoint of this network ({e})")
        print(f"train: weights from {args.init}", file=sys.stderr)
    (out / "args.json").write_text(json.dumps(vars(args), indent=1) + "\n")

    def export():
        model.eval()
        plain = batchnorm.fold(model.cpu()) if batchnorm.has_batchnorm(model) else model.cpu()
        save_model(out / "model.safetensors", plain)
        model.to(device).train()
        return plain

    begun = time.time()
    for epoch in range(start_epoch, args.epochs):
        model.train()
        order = rng.permutation(len(train))
        t_epoch = time.time()
        sums = np.zeros(2)
        bar = Bar(steps_per_epoch, f"epoch {epoch + 1}/{args.epochs}")
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            lr = learning_rate(args, step, steps_per_epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            batch = [augment.augment(train[j], cfg.input_size, cfg.normalisation, rng, expand_max=args.expand_max,
                                     occlude_p=args.occlude)
                     for j in order[i * args.batch:(i + 1) * args.batch]]
            if len(batch) < 2:
                continue  # batch norm needs two samples
            x = torch.stack([b[0] for b in batch]).to(device)
            loc_t, conf_t = criterion.targets([(b[1], b[2], b[3]) for b in batch])
            loc, conf = model(x)
            loss_l, loss_c = criterion(loc, conf, loc_t.to(device), conf_t.to(device))
            loss = loss_l + loss_c
            if not torch.isfinite(loss):
                raise SystemExit(f"train: loss is {loss.item()} at epoch {epoch + 1} step {i + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            opt.step()
            sums += [loss_l.item(), loss_c.item()]
            bar.update(i + 1, f"loc {sums[0] / (i + 1):.3f} conf {sums[1] / (i + 1):.3f} lr {lr:.4f}")
        record = {"epoch": epoch + 1, "loss_loc": round(sums[0] / steps_per_epoch, 4),
                  "loss_conf": round(sums[1] / steps_per_epoch, 4), "lr": lr,
                  "seconds": round(time.time() - t_epoch, 1)}
        last = epoch + 1 == args.epochs
        out_of_time = args.max_minutes and (time.time() - begun) / 60 >= args.max_minutes
        if val and ((epoch + 1) % args.eval_every == 0 or last or out_of_time):
            plain = export()
            scores = score_sets(plain, val, classes)
            record["val"] = scores.pop("all")
            if len(val) > 1:
                record["val_by_set"] = scores
                for name, sc in scores.items():
                    print(f"epoch {epoch + 1}: val {name}: " + evaluation.format_scores(sc), file=sys.stderr)
            print(f"epoch {epoch + 1}: val {args.val}: " + evaluation.format_scores(record["val"]), file=sys.stderr)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                    "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, ckpt)
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if out_of_time and not last:
            print(f"train: --max-minutes {args.max_minutes} reached after epoch {epoch + 1}; "
                  f"continue with --resume", file=sys.stderr)
            return 0
    export()
    print(f"train: wrote {out / 'model.safetensors'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
