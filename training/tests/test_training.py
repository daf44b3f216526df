"""Tests of the training kit: data readers, augmentation, matching and loss, batch-norm folding,
scoring, and a short real training run with resume (on PETS09, skipped without ../shared)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from netnet_ref import augment, batchnorm, box_utils, data  # noqa: E402
from netnet_ref.config import DEFAULT_NORMALISATION, NetConfig  # noqa: E402
from netnet_ref.model import NETNet, init_weights  # noqa: E402
from netnet_ref.multibox import MultiBoxLoss, center_to_corner, encode, match  # noqa: E402
from netnet_ref.priors import prior_boxes  # noqa: E402

HAVE_SHARED = (data.SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt").exists() and data.VTEST.exists()
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason="needs ../shared/data and samples/vtest.avi "
                                  "(scripts/fetch-vtest.sh)")
try:
    import pycocotools  # noqa: F401
    HAVE_COCO = True
except ImportError:
    HAVE_COCO = False
needs_coco = pytest.mark.skipif(not HAVE_COCO, reason="needs pycocotools (bash training/setup-venv.sh)")


# ---- data -------------------------------------------------------------------------------------
def test_read_mot_separates_ignore_rows_and_names_bad_lines(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("1,1,10,20,30,40,1,-1,-1,-1\n1,2,0,0,5,5,0,-1,-1,-1\n3,1,1.5,2.5,3,4,1,-1,-1,-1\n")
    rows = data.read_mot(gt)
    assert sorted(rows) == [1, 3]
    boxes, ignore = rows[1]
    assert boxes.tolist() == [[10, 20, 40, 60]] and ignore.tolist() == [[0, 0, 5, 5]]
    assert rows[3][0].tolist() == [[1.5, 2.5, 4.5, 6.5]]
    gt.write_text("1,1,10,20,30,40,1\n2,x,1,1,1,1,1\n")
    with pytest.raises(ValueError, match=r"gt.txt:2:"):
        data.read_mot(gt)
    gt.write_text("1,1,10,20,0,40,1\n")
    with pytest.raises(ValueError, match=r"gt.txt:1: box width and height must be positive"):
        data.read_mot(gt)


def test_read_yolo_converts_to_pixel_corners(tmp_path):
    lab = tmp_path / "a.txt"
    lab.write_text("0 0.5 0.5 0.2 0.4\n3 0.1 0.2 0.2 0.2\n")
    ids, boxes = data.read_yolo(lab, 100, 50)
    assert ids.tolist() == [0, 3]
    assert np.allclose(boxes, [[40, 15, 60, 35], [0, 5, 20, 15]])
    lab.write_text("0 0.5 0.5\n")
    with pytest.raises(ValueError, match="a.txt:1"):
        data.read_yolo(lab, 100, 50)


def test_to_coco_marks_ignore_regions_as_crowd():
    s = data.Sample("k", np.zeros((10, 20, 3), np.uint8), np.array([[1, 2, 5, 8]], np.float32),
                    np.array([0]), np.array([[0, 0, 2, 2]], np.float32))
    gt = data.to_coco(data.DetectionSet("x", ["person"], [s]))
    assert gt["images"] == [{"id": 1, "file_name": "k", "width": 20, "height": 10}]
    assert [(a["bbox"], a["iscrowd"]) for a in gt["annotations"]] == [([1, 2, 4, 6], 0), ([0, 0, 2, 2], 1)]


@needs_shared
def test_pets_frames_match_their_ground_truth_index():
    ds = data.mot_sequence("pets", data.VTEST, data.SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt", 0, 2)
    assert [s.image.shape for s in ds.samples] == [(576, 768, 3)] * 2
    assert ds.frame_indices == [0, 1]
    rows = data.read_mot(data.SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt")
    assert np.array_equal(ds.samples[1].boxes, rows[2][0])


# ---- augmentation -----------------------------------------------------------------------------
def _rectangle_sample():
    img = np.zeros((120, 160, 3), np.uint8)
    img[30:90, 50:80] = 255
    return data.Sample("r", img, np.array([[50, 30, 80, 90]], np.float32), np.array([0]))


def test_augment_keeps_boxes_on_the_object():
    """Zoom-out, crop and flip move the box with the pixels: the white rectangle fills the box."""
    rng = np.random.default_rng(0)
    norm = {"order": "bgr", "mean": [0, 0, 0], "std": [1, 1, 1]}
    for _ in range(40):
        x, boxes, labels, ignore = augment.augment(_rectangle_sample(), 64, norm, rng, expand_max=3, distort=False)
        assert x.shape == (3, 64, 64) and len(boxes) == 1 and labels.tolist() == [0]
        assert (boxes >= -1e-6).all() and (boxes <= 1 + 1e-6).all()
        x1, y1, x2, y2 = (boxes[0] * 64).tolist()
        inner = x[0, int(math.ceil(y1)) + 1:int(y2) - 1, int(math.ceil(x1)) + 1:int(x2) - 1]
        if inner.numel():
            assert float(inner.min()) > 200, "box interior is not the white rectangle"
        bright = (x[0] > 128).nonzero()
        assert bright[:, 1].min() >= x1 - 1.5 and bright[:, 1].max() <= x2 + 1.5
        assert bright[:, 0].min() >= y1 - 1.5 and bright[:, 0].max() <= y2 + 1.5


def test_occlude_pastes_a_person_beside_a_person_at_feet_level():
    """The copy overlaps its target by 30-70 % of the target's width, feet level, its height
    within 10 %; its middle columns are the source's pixels; the person behind keeps the box or,
    more than half covered, becomes an ignore region; the input is not changed."""
    image = np.full((120, 200, 3), 100, np.uint8)
    image[40:100, 90:110] = (250, 30, 30)
    boxes = np.array([[90, 40, 110, 100]], np.float32)
    labels, ignore = np.array([0]), np.zeros((0, 4), np.float32)
    before = image.copy()
    pasted_seen = 0
    for seed in range(30):
        out, b, l, ig = augment.occlude(image, boxes, labels, ignore, np.random.default_rng(seed), max_pastes=1)
        assert (image == before).all() and boxes.tolist() == [[90, 40, 110, 100]]
        if len(b) + len(ig) == 1:
            continue  # the copy would have left the image: nothing pasted
        pasted_seen += 1
        copy = b[-1]
        assert l.tolist() == [0] * len(b)
        overlap = min(copy[2], 110) - max(copy[0], 90)
        assert 0.3 * 20 - 1 <= overlap <= 0.7 * 20 + 1
        assert abs(copy[3] - 100) <= 0.05 * 60 + 1 and 0.9 * 60 - 1 <= copy[3] - copy[1] <= 1.1 * 60 + 1
        middle = out[int(copy[1]) + 2:int(copy[3]) - 2, int((copy[0] + copy[2]) / 2)]
        assert (np.abs(middle.astype(int) - [250, 30, 30]) <= 2).all()
        covered = overlap * (min(copy[3], 100) - max(copy[1], 40)) / (20 * 60)
        behind_kept = any(np.allclose(x, boxes[0]) for x in b[:-1])
        behind_ignored = any(np.allclose(x, boxes[0]) for x in ig)
        assert behind_kept == (covered <= 0.5) and behind_ignored == (covered > 0.5)
    assert pasted_seen >= 10
    small = np.array([[90, 40, 110, 50]], np.float32)   # 10 px tall: under min_height, no paste
    out, b, _, _ = augment.occlude(image, small, labels, ignore, np.random.default_rng(0))
    assert (out == image).all() and b.tolist() == small.tolist()


def test_photometric_stays_in_range_and_hsv_round_trips():
    rng = np.random.default_rng(1)
    x = torch.rand(3, 16, 16) * 255
    for _ in range(20):
        y = augment.photometric(x, rng)
        assert y.min() >= 0 and y.max() <= 255
    rgb = torch.rand(3, 8, 8)
    assert torch.allclose(augment._hsv_to_rgb(*augment._rgb_to_hsv(rgb)), rgb, atol=1e-5)


# ---- matching and loss ------------------------------------------------------------------------
def test_match_encodes_a_box_equal_to_a_prior_as_zero_and_marks_ignore():
    cfg = NetConfig("ssd-vgg16-300", width=0.125, classes=["person"])
    priors = torch.tensor(prior_boxes(cfg), dtype=torch.float32)
    corner = center_to_corner(priors)
    k = 1234
    loc, conf = match(corner[k:k + 1], torch.tensor([0]), torch.zeros(0, 4), priors, corner)
    assert conf[k] == 1 and torch.allclose(loc[k], torch.zeros(4), atol=1e-5)
    assert (conf > 0).sum() >= 1 and set(conf.unique().tolist()) <= {0, 1}
    loc, conf = match(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), corner[k:k + 1], priors, corner)
    assert conf[k] == -1 and (conf >= 0).sum() == len(priors) - (conf < 0).sum()
    # encode is the inverse of the engine's decode
    box = torch.tensor([[0.2, 0.3, 0.5, 0.9]])
    t = encode(box.repeat(3, 1), priors[:3])
    back = box_utils.decode(t.numpy().astype(np.float64), prior_boxes(cfg)[:3])
    assert np.allclose(back, box.numpy().repeat(3, 0), atol=1e-5)


def test_hard_negative_mining_keeps_three_negatives_per_positive():
    P = 50
    priors = torch.rand(P, 4) * 0.5 + 0.25
    crit = MultiBoxLoss(priors)
    conf_t = torch.zeros(1, P, dtype=torch.long)
    conf_t[0, :4] = 1
    conf_t[0, 4:6] = -1
    loc_t = torch.zeros(1, P, 4)
    logits = torch.zeros(1, P, 2, requires_grad=True)
    with torch.no_grad():
        logits[0, :, 1] = torch.linspace(-3, 3, P)
    loss_l, loss_c = crit(torch.zeros(1, P, 4), logits, loc_t, conf_t)
    loss_c.backward()
    touched = (logits.grad[0].abs().sum(1) > 0).nonzero().flatten().tolist()
    assert len(touched) == 4 + 12
    assert not {4, 5} & set(touched), "ignored priors must not be mined"
    assert set(range(P - 12, P)) <= set(touched), "the hardest negatives are the highest-scoring ones"
    assert float(loss_l) == 0


# ---- batch norm -------------------------------------------------------------------------------
def test_folded_batchnorm_computes_the_same_function():
    cfg = NetConfig("netnet-vgg16-300", width=0.125, classes=["person", "car"])
    model = batchnorm.add_batchnorm(init_weights(NETNet(cfg), seed=3))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    model.eval()
    plain = batchnorm.fold(model)
    assert set(plain.state_dict()) == set(NETNet(cfg).state_dict())
    x = torch.randn(1, 3, 300, 300, generator=g) * 50
    with torch.no_grad():
        a, b = model(x), plain(x)
    for u, v in zip(a, b):
        assert torch.allclose(u, v, rtol=1e-4, atol=1e-4 * float(u.abs().max()))


# ---- post-processing as the engine's ----------------------------------------------------------
def test_detect_drops_boxes_without_area_and_caps_candidates():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [1.0, 0.2, 1.2, 0.4], [0.5, 0.5, 0.5, 0.9], [0.6, 0.6, np.nan, 0.8]])
    scores = np.array([[0.5, 0.5], [0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])
    assert [d[0:2] for d in box_utils.detect(boxes, scores)] == [(1, 0.5)]
    many = np.array([[i * 0.01, 0, i * 0.01 + 0.005, 0.005] for i in range(90)])
    s = np.stack([1 - np.linspace(0.2, 0.9, 90), np.linspace(0.2, 0.9, 90)], 1)
    assert len(box_utils.detect(many, s, candidates=10)) == 10


# ---- scoring ----------------------------------------------------------------------------------
@needs_coco
def test_score_is_100_for_perfect_and_0_for_wrong_detections():
    from netnet_ref import evaluation
    s = data.Sample("k", np.zeros((400, 400, 3), np.uint8), np.array([[10, 10, 110, 210], [200, 50, 260, 90]], np.float32),
                    np.array([0, 0]))
    gt = data.to_coco(data.DetectionSet("x", ["person"], [s]))
    perfect = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 200], "score": 0.9},
               {"image_id": 1, "category_id": 1, "bbox": [200, 50, 60, 40], "score": 0.8}]
    assert evaluation.score(gt, perfect)["AP50"] == 100.0
    wrong = [{"image_id": 1, "category_id": 1, "bbox": [300, 300, 50, 50], "score": 0.9}]
    assert evaluation.score(gt, wrong)["AP50"] == 0.0
    assert evaluation.score(gt, [])["AP"] == 0.0
    # boxes of 20,000 and 2,400 px²: large and medium in the image, medium and small at 1/5 the area
    image = evaluation.score(gt, perfect)
    assert image["APs"] is None and image["APm"] == 100.0 and image["APl"] == 100.0
    scaled = evaluation.score(gt, perfect, area_scale=0.2)
    assert scaled["APs"] == 100.0 and scaled["APm"] == 100.0 and scaled["APl"] is None
    assert "APs   n/a" in evaluation.format_scores(image) and "APm 100.0" in evaluation.format_scores(image)


# ---- a real, short training run ---------------------------------------------------------------
@needs_shared
@needs_coco
def test_training_runs_resumes_and_exports_a_loadable_model(tmp_path):
    train = HERE.parent / "train.py"
    common = [sys.executable, str(train), "--out", str(tmp_path), "--network", "ssd-vgg16-300", "--width", "0.125",
              "--train", "pets09-val", "--val", "pets09-val", "--batch", "8", "--epochs", "2", "--eval-every", "1",
              "--lr", "0.005"]
    first = subprocess.run(common + ["--max-minutes", "0.0001"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "continue with --resume" in first.stderr
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
    second = subprocess.run(common + ["--resume"], capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stderr
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("AP50" in r["val"] for r in log)
    assert all(math.isfinite(r["loss_conf"]) for r in log)
    from netnet_ref.model import load_model
    model = load_model(tmp_path / "model.safetensors")
    assert model.cfg.network == "ssd-vgg16-300" and model.cfg.classes == ["person"]


# ---- bad input: one clear line, non-zero exit ---------------------------------------------------
def _run(script, *args):
    return subprocess.run([sys.executable, str(HERE.parent / script), *args], capture_output=True, text=True,
                          timeout=300)


def test_train_refuses_bad_arguments_with_one_line(tmp_path):
    cases = [
        (["--network", "yolo-v9"], "network: expected one of"),
        (["--modules", "{nnfm"], "--modules: not valid JSON"),
        (["--modules", '{"fpn": true}'], "modules: unknown key 'fpn'"),
        (["--train", "pets09-train,imagenet"], "data set 'imagenet': expected one of"),
        (["--val", "nope"], "data set 'nope'"),
        (["--classes", ","], "--classes: expected at least one class name"),
        (["--occlude", "1.5"], "--occlude: expected a probability from 0 to 1"),
    ]
    for extra, message in cases:
        out = _run("train.py", "--out", str(tmp_path / "run"), *extra)
        assert out.returncode != 0, extra
        assert message in out.stderr and "Traceback" not in out.stderr, (extra, out.stderr)


def test_evaluate_refuses_missing_corrupt_and_unknown_inputs(tmp_path):
    missing = _run("evaluate.py", "--model", str(tmp_path / "none.safetensors"))
    assert missing.returncode == 1 and "none.safetensors: no such model file" in missing.stderr
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes((HERE.parents[1] / "models" / "default.safetensors").read_bytes()[:5000])
    cut = _run("evaluate.py", "--model", str(truncated), "--data", "pets09-val")
    assert cut.returncode == 1 and "cut.safetensors" in cut.stderr and "Traceback" not in cut.stderr, cut.stderr
    unknown = _run("evaluate.py", "--model", str(HERE.parents[1] / "models" / "default.safetensors"), "--data", "kitti")
    assert unknown.returncode == 1 and "data set 'kitti'" in unknown.stderr


def test_detection_comparison_reports_differences():
    sys.path.insert(0, str(HERE.parent))
    from check_detections import compare
    ref = [{"class": 0, "score": 0.9, "box": [10.0, 10.0, 50.0, 90.0]}, {"class": 0, "score": 0.31, "box": [0, 0, 5, 5]}]
    same = [dict(ref[0], score=0.90001, box=[10.1, 10.0, 50.0, 90.0])]
    problems, box, score = compare(same, ref, 0.3, 100, 100, 1e-3, 1e-4)
    assert problems == ["reference-only detection " + str(ref[1])]
    assert box == pytest.approx(1e-3) and score == pytest.approx(1e-5)
    assert compare(same, ref[:1], 0.3, 100, 100, 1e-3, 1e-4)[0] == []
    moved = [dict(ref[0], box=[12.0, 10.0, 50.0, 90.0])]
    assert len(compare(moved, ref[:1], 0.3, 100, 100, 1e-3, 1e-4)[0]) == 2
    near_threshold = [{"class": 0, "score": 0.30005, "box": [1, 1, 2, 2]}]
    assert compare(near_threshold, [], 0.3, 100, 100, 1e-3, 1e-4)[0] == []


def test_f1_counts_hits_misses_duplicates_and_ignore_regions():
    from netnet_ref import evaluation
    s = data.Sample("k", np.zeros((400, 400, 3), np.uint8), np.array([[10, 10, 110, 210], [200, 50, 260, 90]], np.float32),
                    np.array([0, 0]), np.array([[300, 300, 380, 380]], np.float32))
    gt = data.to_coco(data.DetectionSet("x", ["person"], [s]))
    results = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 200], "score": 0.9},   # hit
               {"image_id": 1, "category_id": 1, "bbox": [12, 10, 100, 200], "score": 0.8},   # duplicate: a miss
               {"image_id": 1, "category_id": 1, "bbox": [300, 300, 80, 80], "score": 0.7},   # on the ignore region
               {"image_id": 1, "category_id": 1, "bbox": [200, 50, 60, 40], "score": 0.3}]    # hit, weak
    f1 = evaluation.f1_at(gt, results, [0.2, 0.5, 0.95])
    assert f1[0.2] == pytest.approx((2 * (2 / 3) * 1 / (2 / 3 + 1), 2 / 3, 1.0))
    assert f1[0.5] == pytest.approx((2 * 0.5 * 0.5 / 1.0, 0.5, 0.5))
    assert f1[0.95] == (0.0, 0.0, 0.0)


def test_errors_sort_misses_into_group_boxes_duplicates_mislocalised_and_background():
    from netnet_ref import evaluation
    # Two people side by side (IoU 0.25 with each other), one alone, an ignore region.
    s = data.Sample("k", np.zeros((400, 400, 3), np.uint8),
                    np.array([[10, 10, 60, 110], [40, 10, 90, 110], [200, 200, 240, 300]], np.float32),
                    np.array([0, 0, 0]), np.array([[300, 300, 380, 380]], np.float32))
    gt = data.to_coco(data.DetectionSet("x", ["person"], [s]))
    box = lambda x, y, w, h, score: {"image_id": 1, "category_id": 1, "bbox": [x, y, w, h], "score": score}  # noqa: E731
    results = [box(0, 5, 100, 110, 0.95),    # one box over both (IoU 0.45 with each): a group box
               box(200, 200, 40, 100, 0.9),  # hit
               box(201, 200, 40, 100, 0.8),  # duplicate
               box(200, 260, 40, 60, 0.7),   # IoU 0.33 with the lone person: mislocalised
               box(150, 10, 30, 60, 0.6),    # background
               box(300, 300, 80, 80, 0.5),   # on the ignore region: not counted
               box(40, 10, 50, 100, 0.1)]    # a hit, under the threshold
    assert evaluation.errors_at(gt, results, 0.3) == {"hit": 1, "group": 1, "mislocalised": 1, "duplicate": 1,
                                                      "background": 1}
    assert evaluation.errors_at(gt, results, 0.05)["hit"] == 2
    assert evaluation.overlapping_pairs(gt) == (1, 3)
