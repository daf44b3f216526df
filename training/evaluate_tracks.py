#!/usr/bin/env python3
"""Score netnet's tracks on a MOT sequence with py-motmetrics, beside reference trackers fed the same detections.

    training/.venv-tracking/bin/python training/evaluate_tracks.py --sequence pets09 --frames 501-600
    training/.venv-tracking/bin/python training/evaluate_tracks.py --sequence tud-campus
    training/.venv-tracking/bin/python training/evaluate_tracks.py --self-check

Runs `netnet annotate VIDEO --json … --threshold T [--every N]` (tracking on) with the model,
takes every detection that has a `track_id` as netnet's hypothesis (`origin` detector or
tracker) with the tracker's box for it (`track_box`, its Kalman state after the detection; row
`netnet`) and, for comparison, with the detector's box (`box`; row `netnet/box`, what the
packaged trackers report: the input detections with ids), and feeds the detector's boxes of the inferred frames (all of them, scores included) to
the trackers of PyPI `trackers` (SORT, ByteTrack, OC-SORT, through `supervision.Detections`), each
at its defaults but for the sequence's frame rate. All of them track from the first frame; the
scores count only the ground-truth frames asked for (MOT frame k is decoded frame k-1).

Metrics (py-motmetrics, IoU ≥ 0.5 to match): MOTA, IDF1, ID switches, false positives, misses.
Ground-truth rows with conf 0 are ignore regions: a hypothesis whose box lies at least half inside
one (intersection over its own area ≥ 0.5) is dropped before scoring. py-motmetrics 1.4 calls
`np.asfarray`, which NumPy 2 removed: it is shimmed here. `--self-check` first reproduces the
example of py-motmetrics' README (3 frames: MOTA 0.5, MOTP 0.34) and exits non-zero if it differs.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if not hasattr(np, "asfarray"):   # py-motmetrics 1.4 on NumPy 2
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
import motmetrics as mm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netnet_ref import data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEQUENCES = {
    "pets09": (data.VTEST, data.SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt", 10.0, (1, 600)),
    "tud-campus": (data.SHARED / "tud-campus" / "TUD-Campus.mp4", data.SHARED / "tud-campus" / "gt.txt", 25.0, (1, 71)),
}
METRICS = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses", "num_objects"]


def self_check():
    """py-motmetrics' README example; returns the problems found (empty: the scorer agrees)."""
    acc = mm.MOTAccumulator(auto_id=True)
    acc.update([1, 2], [1, 2, 3], [[0.1, np.nan, 0.3], [0.5, 0.2, 0.3]])
    acc.update([1, 2], [1], [[0.2], [0.4]])
    acc.update([1, 2], [1, 3], [[0.6, 0.2], [0.1, 0.6]])
    summary = mm.metrics.create().compute(acc, metrics=["num_frames", "mota", "motp"], name="acc")
    got = (int(summary["num_frames"].iloc[0]), round(float(summary["mota"].iloc[0]), 2), round(float(summary["motp"].iloc[0]), 2))
    return [] if got == (3, 0.5, 0.34) else [f"README example: expected (3 frames, MOTA 0.5, MOTP 0.34), got {got}"]


def read_ground_truth(path):
    """{MOT frame: ([(id, x1, y1, x2, y2)], [ignore (x1, y1, x2, y2)])}."""
    rows = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        frame, ident, x, y, w, h, conf = (float(v) for v in line.split(",")[:7])
        good, ignore = rows.setdefault(int(frame), ([], []))
        if conf == 0:
            ignore.append((x, y, x + w, y + h))
        else:
            good.append((int(ident), x, y, x + w, y + h))
    return rows


def run_netnet(netnet, model, video, threshold, every, track_options=()):
    """netnet's frame lines for `video` (tracking on): list indexed by decoded frame; the run's
    wall-clock seconds and CPU seconds (user + system, all of netnet's threads)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tracks.jsonl"
        cmd = [netnet, "annotate", str(video), "--json", str(out), "--threshold", str(threshold), "--every", str(every), "--quiet"]
        if model:
            cmd += ["--model", str(model)]
        for option in track_options:
            cmd += ["--track-option", option]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        subprocess.run(cmd, check=True)
        seconds = time.time() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        lines = [json.loads(line) for line in out.read_text().splitlines()]
    return lines, seconds, cpu


def inside(box, region):
    """Intersection of `box` with `region` over the area of `box`."""
    w = min(box[2], region[2]) - max(box[0], region[0])
    h = min(box[3], region[3]) - max(box[1], region[1])
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    return w * h / area if w > 0 and h > 0 and area > 0 else 0.0


def score(hypotheses, ground_truth, frames):
    """hypotheses: {decoded frame: [(id, x1, y1, x2, y2)]}; MOT frames `frames` (inclusive range) scored."""
    acc = mm.MOTAccumulator(auto_id=True)
    for mot_frame in range(frames[0], frames[1] + 1):
        good, ignore = ground_truth.get(mot_frame, ([], []))
        hyp = [h for h in hypotheses.get(mot_frame - 1, []) if not any(inside(h[1:], r) >= 0.5 for r in ignore)]
        gt_boxes = np.array([[g[1], g[2], g[3] - g[1], g[4] - g[2]] for g in good], np.float64).reshape(-1, 4)
        hyp_boxes = np.array([[h[1], h[2], h[3] - h[1], h[4] - h[2]] for h in hyp], np.float64).reshape(-1, 4)
        distances = mm.distances.iou_matrix(gt_boxes, hyp_boxes, max_iou=0.5)
        acc.update([g[0] for g in good], [h[0] for h in hyp], distances)
    summary = mm.metrics.create().compute(acc, metrics=METRICS, name="s")
    row = {k: float(summary[k].iloc[0]) for k in METRICS}
    return {"MOTA": round(100 * row["mota"], 1), "IDF1": round(100 * row["idf1"], 1), "IDsw": int(row["num_switches"]),
            "FP": int(row["num_false_positives"]), "FN": int(row["num_misses"]), "GT": int(row["num_objects"])}


def reference_tracks(name, detections, frame_rate):
    """Runs one of `trackers`' trackers over {decoded frame: (xyxy [N,4], scores [N])} in frame order."""
    import supervision as sv
    import trackers
    make = {"SORT": trackers.SORTTracker, "ByteTrack": trackers.ByteTrackTracker, "OC-SORT": trackers.OCSORTTracker}[name]
    tracker = make(frame_rate=frame_rate)
    out = {}
    for frame in sorted(detections):
        xyxy, scores = detections[frame]
        result = tracker.update(sv.Detections(xyxy=xyxy.reshape(-1, 4).astype(np.float32), confidence=scores.astype(np.float32),
                                              class_id=np.zeros(len(scores), int)))
        ids = result.tracker_id if result.tracker_id is not None else []
        out[frame] = [(int(i), *map(float, b)) for i, b in zip(ids, result.xyxy) if i is not None and int(i) >= 0]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--sequence", choices=sorted(SEQUENCES), default="pets09")
    p.add_argument("--frames", default=None, help="MOT frames to score, FIRST-LAST (default: the whole labelled range)")
    p.add_argument("--model", default=None, help="model file (default: netnet's bundled model)")
    p.add_argument("--netnet", default=None, help="the netnet binary (default: .build/release/netnet, then debug)")
    p.add_argument("--threshold", type=float, default=0.1, help="netnet annotate --threshold (default: %(default)s)")
    p.add_argument("--every", type=int, default=1, help="netnet annotate --every (default: %(default)s)")
    p.add_argument("--track-option", action="append", default=[], metavar="NAME=VALUE",
                   help="netnet annotate --track-option (repeatable)")
    p.add_argument("--no-references", action="store_true", help="score netnet only")
    p.add_argument("--self-check", action="store_true", help="check the scorer on py-motmetrics' README example and exit")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    args = p.parse_args(argv)
    problems = self_check()
    if problems or args.self_check:
        print("\n".join(problems) or "scorer agrees with py-motmetrics' README example (MOTA 0.5, MOTP 0.34)",
              file=sys.stderr if problems else sys.stdout)
        return 1 if problems else 0
    video, gt_path, frame_rate, labelled = SEQUENCES[args.sequence]
    frames = tuple(int(v) for v in args.frames.split("-")) if args.frames else labelled
    netnet = args.netnet or next((str(b) for b in (REPO / ".build/release/netnet", REPO / ".build/debug/netnet") if b.exists()), None)
    if netnet is None:
        print("evaluate_tracks: no netnet binary; build it (swift build -c release) or pass --netnet", file=sys.stderr)
        return 1
    ground_truth = read_ground_truth(gt_path)
    lines, seconds, cpu = run_netnet(netnet, args.model, video, args.threshold, args.every, args.track_option)
    ours, ours_boxes, detections = {}, {}, {}
    for line in lines:
        frame = line["frame"]
        tracked = [d for d in line["detections"] if d["track_id"] is not None]
        ours[frame] = [(d["track_id"], *d["track_box"]) for d in tracked]
        ours_boxes[frame] = [(d["track_id"], *d["box"]) for d in tracked]
        if line["inferred"]:
            boxes = [d["box"] for d in line["detections"] if d["origin"] == "detector"]
            detections[frame] = (np.array(boxes, np.float32).reshape(-1, 4),
                                 np.array([d["score"] for d in line["detections"] if d["origin"] == "detector"], np.float32))
    rows = {"netnet": score(ours, ground_truth, frames), "netnet/box": score(ours_boxes, ground_truth, frames)}
    if not args.no_references:
        for name in ("SORT", "ByteTrack", "OC-SORT"):
            rows[name] = score(reference_tracks(name, detections, frame_rate), ground_truth, frames)
    result = {"sequence": args.sequence, "frames": f"{frames[0]}-{frames[1]}", "threshold": args.threshold,
              "every": args.every, "track_options": args.track_option, "annotate_seconds": round(seconds, 1),
              "cpu_ms_per_frame": round(1000 * cpu / max(len(lines), 1), 2), "netnet": netnet,
              "decoded_frames": len(lines), "trackers": rows}
    if args.json:
        print(json.dumps(result))
    else:
        options = "".join(f" --track-option {o}" for o in args.track_option)
        print(f"{args.sequence} MOT frames {frames[0]}-{frames[1]}, {netnet} annotate --threshold {args.threshold} "
              f"--every {args.every}{options} ({len(lines)} frames in {seconds:.1f} s, "
              f"{1000 * cpu / max(len(lines), 1):.2f} CPU ms a frame)")
        print(f"{'tracker':<10} {'IDF1':>6} {'MOTA':>6} {'IDsw':>5} {'FP':>5} {'FN':>5} {'GT':>5}")
        for name, r in rows.items():
            print(f"{name:<10} {r['IDF1']:>6.1f} {r['MOTA']:>6.1f} {r['IDsw']:>5} {r['FP']:>5} {r['FN']:>5} {r['GT']:>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
