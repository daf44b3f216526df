"""The bundled default model (models/default.safetensors) on real, labelled PETS09 frames, run by
the Swift engine: its AP50 reaches the bar docs/models.md states, and its detections match the
PyTorch reference's. Needs the netnet binary ($NETNET, else .build/debug or .build/release),
samples/vtest.avi and ../shared/data; skipped where one is missing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from netnet_ref import data  # noqa: E402
from netnet_ref.model import load_model  # noqa: E402

MODEL = REPO / "models" / "default.safetensors"
# docs/models.md states AP50 on all of pets09-val through the engine; this test takes every 5th
# frame of it and asks for a few points less, so that it fails on a real regression only.
AP50_BAR = 70.0


def netnet_binary():
    for candidate in (os.environ.get("NETNET"), REPO / ".build/debug/netnet", REPO / ".build/release/netnet"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


NETNET = netnet_binary()
GT = data.SHARED / "pets09-s2l1" / "gt-frames-0001-0600.txt"
pytestmark = pytest.mark.skipif(NETNET is None or not data.VTEST.exists() or not GT.exists(),
                                reason="needs the netnet binary, samples/vtest.avi and ../shared/data")


def test_default_model_is_a_trained_person_detector():
    model = load_model(MODEL)
    assert model.cfg.classes == ["person"]
    assert "trained" in (model.cfg.description or "") and "untrained" not in model.cfg.description


def test_default_model_reaches_its_ap50_on_labelled_pets_frames(tmp_path):
    pytest.importorskip("pycocotools")
    from netnet_ref import evaluation
    frames = list(range(500, 600, 5))
    full = data.mot_sequence("pets09-val", data.VTEST, GT, 500, 100)
    samples, files = [], []
    for k, s in zip(full.frame_indices, full.samples):
        if k in frames:
            png = tmp_path / f"frame{k:03d}.png"
            subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
                            f"{s.width}x{s.height}", "-i", "-", str(png)], input=s.image.tobytes(), check=True)
            samples.append(s)
            files.append(str(png))
    subset = data.DetectionSet("pets09-val/5", ["person"], samples, files=files)
    results = evaluation.netnet_detections(NETNET, MODEL, subset, threshold=0.01)
    scores = evaluation.score(data.to_coco(subset), results)
    print(f"default model on {len(samples)} PETS09 frames (engine): {scores}")
    assert scores["AP50"] >= AP50_BAR, scores
    # bf16 (issue 6): AP50 within 0.5 points of fp32 on the same frames, where the CPU has bf16.
    probe = subprocess.run([NETNET, "bench", "--width", "0.125", "--frames", "1", "--warmup", "0",
                            "--precision", "bf16", "--json"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no bf16 on this CPU: {probe.stderr.strip()}")
    bf16 = evaluation.score(data.to_coco(subset),
                            evaluation.netnet_detections(NETNET, MODEL, subset, threshold=0.01, precision="bf16"))
    print(f"same frames, --precision bf16: {bf16}")
    assert abs(bf16["AP50"] - scores["AP50"]) <= 0.5, (scores, bf16)


def test_engine_detections_match_the_reference_on_real_frames():
    out = subprocess.run([sys.executable, str(HERE.parent / "check_detections.py"), "--netnet", NETNET,
                          "--model", str(MODEL), "--video", str(data.VTEST), "--frames", "0,300,520,599"],
                         capture_output=True, text=True, timeout=600)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
