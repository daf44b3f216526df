"""training/import_ssd.py: a checkpoint trained elsewhere becomes a netnet model whose raw heads
equal the source's own (issue #23, item 4). torchvision's SSD300-VGG16 with random weights
(`weights=None`) is the source; the engine is compared through `netnet parity` on a golden file
holding torchvision's float64 heads and default boxes, and the imported model runs in annotate.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
import import_ssd  # noqa: E402
from netnet_ref import safetensors_io  # noqa: E402
from netnet_ref.config import GOLDEN_FORMAT  # noqa: E402

torchvision = pytest.importorskip("torchvision")
from torchvision.models.detection import ssd300_vgg16  # noqa: E402
from torchvision.models.detection.image_list import ImageList  # noqa: E402


def netnet_binary():
    for candidate in (os.environ.get("NETNET"), REPO / ".build/debug/netnet", REPO / ".build/release/netnet"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


NETNET = netnet_binary()


def torchvision_model(num_classes=4, seed=0):
    torch.manual_seed(seed)
    model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes).eval()
    # torchvision initialises the heads' biases to zero and the scale to 20; random ones show
    # a bias or scale mapped to the wrong place.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.uniform_(-0.05, 0.05)
        model.backbone.scale_weight.uniform_(10, 30)
    return model


def golden_from_torchvision(model, path, seed=1):
    """A golden file of torchvision's own float64 heads and default boxes on an image-like input."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(1, 3, 300, 300)).astype(np.float64)   # RGB planes
    mean = np.array(import_ssd.TORCHVISION_NORMALISATION["mean"]).reshape(1, 3, 1, 1)
    x32 = (pixels - mean).astype(np.float32)          # what torchvision's transform gives (std 1/255 of /255)
    m = model.double()
    with torch.no_grad():
        x = torch.from_numpy(x32.astype(np.float64))
        features = list(m.backbone(x).values())
        heads = m.head(features)
        anchors = m.anchor_generator(ImageList(x, [(300, 300)]), features)[0] / 300.0   # xyxy, 0-1
    centre = torch.cat([(anchors[:, :2] + anchors[:, 2:]) / 2, anchors[:, 2:] - anchors[:, :2]], 1)
    tensors = {"input": x32, "loc": heads["bbox_regression"][0].numpy().astype(np.float32),
               "conf": heads["cls_logits"][0].numpy().astype(np.float32), "priors": centre.numpy().astype(np.float32)}
    md = {"format": GOLDEN_FORMAT, "network": "ssd-vgg16-300", "width": "1", "input_size": "300",
          "num_classes": str(heads["cls_logits"].shape[-1] - 1), "modules": json.dumps({"nnfm": False, "nem": False, "ntm": False}),
          "model": "imported.safetensors", "seed": str(seed), "computed_in": "float64",
          "description": "torchvision ssd300_vgg16 heads and default boxes"}
    safetensors_io.write(str(path), tensors, md)
    model.float()


def run_import(tmp_path, state, source="torchvision", classes="a,b,c"):
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save(state, checkpoint)
    output = tmp_path / "imported.safetensors"
    return subprocess.run([sys.executable, str(HERE.parent / "import_ssd.py"), str(checkpoint), "--from", source,
                           "--output", str(output), "--classes", classes], capture_output=True, text=True), output


@pytest.mark.skipif(NETNET is None, reason="needs the netnet binary")
def test_torchvision_heads_equal_the_engines(tmp_path):
    model = torchvision_model()
    result, output = run_import(tmp_path, model.state_dict())
    assert result.returncode == 0, result.stderr
    golden = tmp_path / "imported.golden.safetensors"
    golden_from_torchvision(model, golden)
    # loc, conf and the default boxes, each within 1e-4 of the largest value (the goldens' bound).
    parity = subprocess.run([NETNET, "parity", "--model", str(output), "--golden", str(golden)],
                            capture_output=True, text=True)
    assert parity.returncode == 0, parity.stdout + parity.stderr
    for name in ("loc", "conf", "priors"):
        assert name in parity.stdout, parity.stdout
    info = json.loads(subprocess.run([NETNET, "model", "info", str(output), "--json"], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["classes"] == ["a", "b", "c"] and info["normalisation"]["order"] == "rgb", info


@pytest.mark.skipif(NETNET is None, reason="needs the netnet binary")
def test_an_imported_model_annotates(tmp_path):
    _, output = run_import(tmp_path, torchvision_model().state_dict())
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10", "-t", "1",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    lines = tmp_path / "out.jsonl"
    run = subprocess.run([NETNET, "annotate", str(clip), "--model", str(output), "--json", str(lines)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert len(lines.read_text().splitlines()) == 10


def test_ssd_pytorch_layout_and_refusals(tmp_path):
    # An ssd.pytorch state dict, made from torchvision's tensors under ssd.pytorch's names (the
    # two layouts hold the same network), converts to the same netnet tensors.
    tv = torchvision_model().state_dict()
    tv_map, tv_scale = import_ssd.torchvision_mapping()
    sp_map, sp_scale = import_ssd.ssd_pytorch_mapping()
    renamed = {"module." + sp_scale: tv[tv_scale]}
    for ours, theirs in sp_map.items():
        for part in ("weight", "bias"):
            renamed[f"module.{theirs}.{part}"] = tv[f"{tv_map[ours]}.{part}"]
    a, _ = import_ssd.convert(tv, "torchvision", ["a", "b", "c"])
    b, cfg = import_ssd.convert(renamed, "ssd.pytorch", ["a", "b", "c"])
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert cfg.normalisation["order"] == "bgr" and cfg.priors["min_sizes"][0] == 30
    # A wrong class count, a foreign checkpoint and a stray tensor are refused with one line.
    result, _ = run_import(tmp_path, tv, classes="a,b")
    assert result.returncode != 0 and "--classes has 2 names, the checkpoint's heads have 3 classes" in result.stderr
    result, _ = run_import(tmp_path, {"fc.weight": torch.zeros(2, 2)})
    assert result.returncode != 0 and "not a torchvision SSD300-VGG16 state dict" in result.stderr
    stray = dict(tv, **{"head.extra.weight": torch.zeros(1)})
    result, _ = run_import(tmp_path, stray)
    assert result.returncode != 0 and "head.extra.weight" in result.stderr
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    run = subprocess.run([sys.executable, str(HERE.parent / "import_ssd.py"), str(garbage), "--from", "torchvision",
                          "--output", str(tmp_path / "x.safetensors")], capture_output=True, text=True)
    assert run.returncode != 0 and "not a PyTorch checkpoint" in run.stderr and run.stderr.count("\n") == 1
