#!/usr/bin/env python3
"""Count line crossings on MOT ground truth and on netnet's tracks, by the same rule, and print a table.

    python3 training/count_lines.py                       # PETS09-S2L1 frames 1-600 and TUD-Campus
    python3 training/count_lines.py --sequence pets09 --events-dir /tmp/counts

For each sequence, with its scene file from training/scenes/:
  ground truth: `netnet scene count GT --scene S --rate FPS --first 1 --last N`, which runs the
    product's rule code (SceneRules, SceneCounts; position = box bottom-centre) on the MOT rows
    (rows with conf 0 skipped; every track a confirmed person);
  netnet: `netnet annotate VIDEO --scene S --counts FILE --events FILE --quiet` at annotate's
    defaults (the bundled model, its default threshold, tracking on) on the sequence's first N
    frames: for PETS09 `samples/vtest.avi` cut to frames 1-N with `ffmpeg -frames:v N -c copy`
    (MSMPEG4v3, no B-frames: the copy decodes to the same first N frames; MOT frame k is decoded
    frame k-1), for TUD-Campus its whole clip.
It prints the commands, then a Markdown table: per line the ground truth's and netnet's `in` and
`out` and whether both of netnet's are within the bar (15 % of the ground truth's count, or 2,
whichever is larger). Exit status 1 when a command fails. The default model was trained on
PETS09-S2L1 frames 1-500 and TUD-Campus: these sequences are not held out.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NETNET_SHARED", REPO.parent / "shared")) / "data"
VTEST = Path(os.environ.get("NETNET_VTEST", REPO / "samples" / "vtest.avi"))
SCENES = REPO / "training" / "scenes"
# name: (video, MOT ground truth, frame rate, last MOT frame to count, the video's frame count, scene)
SEQUENCES = {
    "pets09": (VTEST, SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt", 10.0, 600, 795, SCENES / "pets09-s2l1.scene"),
    "tud-campus": (SHARED / "tud-campus" / "TUD-Campus.mp4", SHARED / "tud-campus" / "gt.txt", 25.0, 71, 71,
                   SCENES / "tud-campus.scene"),
}


def within(ours, truth):
    """The bar: within 15 % of the ground truth's count, or 2, whichever is larger."""
    return abs(ours - truth) <= max(2, 0.15 * truth)


def show(cmd):
    """`cmd` as a shell line, paths inside the repository relative to its root."""
    def word(part):
        text = str(part)
        if isinstance(part, Path) and part.is_relative_to(REPO.parent):
            text = os.path.relpath(part, REPO)
        return shlex.quote(text)
    return " ".join(word(part) for part in cmd)


def run(cmd, log, **kwargs):
    log.append(show(cmd))
    print("$ " + show(cmd), file=sys.stderr)
    return subprocess.run([str(part) for part in cmd], check=True, **kwargs)


def totals(document):
    """{line: (in, out)} of a netnet.counts/1 document, all labels together."""
    return {name: (sum(line["in"].values()), sum(line["out"].values())) for name, line in document["lines"].items()}


def count(netnet, name, last, model, events_dir, work, log):
    """Ground truth's and netnet's {line: (in, out)}, and the frames annotate decoded."""
    video, gt, rate, labelled, length, scene = SEQUENCES[name]
    last = last or labelled
    events = Path(events_dir).resolve() if events_dir else work
    gt_cmd = [netnet, "scene", "count", gt, "--scene", scene, "--rate", rate, "--first", 1, "--last", last,
              "--events", events / f"{name}-gt-events.jsonl"]
    truth = totals(json.loads(run(gt_cmd, log, stdout=subprocess.PIPE).stdout))
    if last < length:
        clip = work / f"{name}-1-{last}{video.suffix}"
        run(["ffmpeg", "-v", "error", "-y", "-i", video, "-frames:v", last, "-c", "copy", clip], log)
        video = clip
    counts = work / f"{name}-counts.json"
    cmd = [netnet, "annotate", video, "--scene", scene, "--counts", counts, "--events", events / f"{name}-netnet-events.jsonl",
           "--quiet"] + (["--model", model] if model else [])
    run(cmd, log)
    document = json.loads(counts.read_text())
    return truth, totals(document), document["frames"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--sequence", choices=sorted(SEQUENCES), action="append", help="a sequence (repeatable; default: both)")
    p.add_argument("--last", type=int, default=None, help="last MOT frame (default: PETS09 600, TUD-Campus 71)")
    p.add_argument("--model", default=None, help="model file (default: netnet's bundled model)")
    p.add_argument("--netnet", default=None, help="the netnet binary (default: .build/release/netnet, then debug)")
    p.add_argument("--events-dir", default=None, help="keep both sides' netnet.event/1 lines here (NAME-gt-events.jsonl, NAME-netnet-events.jsonl)")
    args = p.parse_args(argv)
    netnet = Path(args.netnet) if args.netnet else next((b for b in (REPO / ".build/release/netnet", REPO / ".build/debug/netnet") if b.exists()), None)
    if netnet is None:
        print("count_lines: no netnet binary; build it (swift build -c release --product netnet) or pass --netnet", file=sys.stderr)
        return 1
    if args.events_dir:
        Path(args.events_dir).mkdir(parents=True, exist_ok=True)
    rows, log = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sequence or ["pets09", "tud-campus"]:
            try:
                truth, ours, frames = count(netnet, name, args.last, args.model, args.events_dir, Path(tmp), log)
            except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as error:
                print(f"count_lines: {name}: {error}", file=sys.stderr)
                return 1
            last = args.last or SEQUENCES[name][3]
            if frames != last:
                print(f"count_lines: {name}: annotate decoded {frames} frames, expected {last}", file=sys.stderr)
                return 1
            for line, (gt_in, gt_out) in truth.items():
                nn_in, nn_out = ours.get(line, (0, 0))
                rows.append((f"{name} 1–{last}", line, gt_in, nn_in, gt_out, nn_out,
                             "yes" if within(nn_in, gt_in) and within(nn_out, gt_out) else "no"))
    print("Commands:\n")
    print("\n".join(f"    {cmd}" for cmd in log))
    print()
    print("| sequence (MOT frames) | line | GT in | netnet in | GT out | netnet out | within bar |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
