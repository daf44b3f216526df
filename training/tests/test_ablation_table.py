"""training/ablation.sh --table: the tables of docs/models.md come from the per-run score files
(training/ablation/VARIANT/seedN.json), netnet's own run stands for the `channel` and `nem13+24`
rows, seeds are averaged, and a run without scores is a row saying so (issue #24, item 4).
"""
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def write_scores(root, variant, seed, ap50, aps):
    scores = {k: float(10 * i + seed) for i, k in enumerate(KEYS)}
    scores["AP50"] = ap50
    at_image = dict(scores, APs=None)
    at_input = dict(scores, APs=aps)
    path = root / variant / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"variant": variant, "seed": seed, "epochs": 12,
                                "sizes_at_image": at_image, "sizes_at_input": at_input}))


def table(number, scores):
    env = dict(os.environ, ABLATION_SCORES=str(scores))
    done = subprocess.run(["bash", "training/ablation.sh", str(number), "--table"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows(text, heading):
    """The table rows under the heading line that contains `heading`."""
    part = text.split(heading, 1)[1].split("Sizes measured", 1)[0]
    return [line for line in part.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_table_two_reads_scores_and_means(tmp_path):
    write_scores(tmp_path, "netnet", 1, 80.0, 40.0)
    write_scores(tmp_path, "netnet", 2, 84.0, 44.0)
    write_scores(tmp_path, "max", 1, 70.0, 30.0)
    text = table(2, tmp_path)
    image = rows(text, "image's pixels")
    net_input = rows(text, "input's pixels")
    # netnet's run is the channel gate's row; the mean of its two seeds is computed per column.
    assert image[0].startswith("| channel | 1 | ") and "| 80.0 |" in image[0]
    assert image[2] == "| channel | mean | 1.5 | 82.0 | 21.5 | n/a | 41.5 | 51.5 |"
    assert net_input[2] == "| channel | mean | 1.5 | 82.0 | 21.5 | 42.0 | 41.5 | 51.5 |"
    # One seed of max scored, the other not trained: no mean row for it.
    assert image[3].startswith("| max | 1 | 1.0 | 70.0 |")
    assert image[4].startswith("| max | 2 | not trained yet |")
    assert not any(r.startswith("| max | mean") for r in image)
    assert sum(r.startswith("| global |") for r in image) == 2


def test_table_three_shares_netnets_run(tmp_path):
    write_scores(tmp_path, "netnet", 1, 80.0, 40.0)
    text = table(3, tmp_path)
    image = rows(text, "image's pixels")
    assert image[0].startswith("| nem13+24 | 1 | 1.0 | 80.0 |")
    assert image[1].startswith("| nem13+24 | 2 | not trained yet |")
    assert [r.split(" | ")[0] for r in image].count("| nnem") == 2
