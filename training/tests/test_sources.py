"""Tests of the readers of users' own data (netnet_ref/sources.py) on tiny fixtures made here:
boxes in pixels, labels, ignore regions, class matching and one-line errors; then train.py
training on yolo:, coco:, voc: and mot: inputs, and evaluate.py scoring several sets apart."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from netnet_ref import data, sources  # noqa: E402

try:
    import pycocotools  # noqa: F401
    HAVE_COCO = True
except ImportError:
    HAVE_COCO = False
needs_coco = pytest.mark.skipif(not HAVE_COCO, reason="needs pycocotools (bash training/setup-venv.sh)")


def write_image(path, width, height, seed=0):
    """A small noisy image file (format from the suffix), written by ffmpeg from raw BGR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
                    f"{width}x{height}", "-i", "-", "-frames:v", "1", str(path)], input=pixels.tobytes(), check=True)
    return path


# ---- decoding ---------------------------------------------------------------------------------
def rawvideo_bgr24(path):
    """The pixels of one ffmpeg process an image (`-f rawvideo -pix_fmt bgr24`): decode_images' twin."""
    w, h = data._probe_size(path)
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "bgr24", "-"], capture_output=True, check=True)
    return np.frombuffer(out.stdout, np.uint8).reshape(h, w, 3)


def test_batched_decoding_gives_the_pixels_of_one_process_an_image(tmp_path, monkeypatch):
    # Odd sizes (BMP rows are padded to 4 bytes), lossy and lossless, more files than one batch.
    monkeypatch.setattr(data, "IMAGES_PER_PROCESS", 3)
    files = [write_image(tmp_path / f"{i}.{'jpg' if i % 2 else 'png'}", 17 + 6 * i, 9 + 5 * i, seed=i) for i in range(7)]
    images = data.decode_images(files)
    assert len(images) == len(files)
    for path, image in zip(files, images):
        expected = rawvideo_bgr24(path)
        assert image.shape == expected.shape and image.dtype == np.uint8
        assert np.array_equal(image, expected), path
    # files[0] is a PNG, lossless: the very pixels written.
    assert np.array_equal(images[0], np.random.default_rng(0).integers(0, 256, (9, 17, 3), dtype=np.uint8))


def test_a_file_that_does_not_decode_is_named_in_its_batch(tmp_path):
    good = write_image(tmp_path / "good.png", 8, 8)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a picture at all")
    with pytest.raises(ValueError, match="bad.jpg: ffmpeg cannot decode it"):
        data.decode_images([good, bad, good])
    with pytest.raises(ValueError, match="missing.png: ffmpeg cannot decode it: no such file"):
        data.decode_images([good, tmp_path / "missing.png"])


# ---- YOLO -------------------------------------------------------------------------------------
@pytest.mark.parametrize("names", ["names:\n  - Person\n  - car\n", "names:\n- Person\n- car\n",
                                   "names: {0: Person, 1: car}\n", "names:\n  0: Person\n  1: car\n",
                                   "names: ['Person', 'car']\n"])
def test_yaml_names_parse_in_list_dict_and_flow_forms(tmp_path, names):
    y = tmp_path / "data.yaml"
    y.write_text("nc: 2\n" + names + "train: ../train/images\n")
    assert data.read_yaml_names(y) == ["Person", "car"]


def test_yaml_errors_name_the_file_and_line(tmp_path):
    y = tmp_path / "data.yaml"
    y.write_text("nc: 1\nnames: [person\ntrain: x\n")
    with pytest.raises(ValueError, match=r"data.yaml:\d+: not valid yaml"):
        data.read_yaml_names(y)
    y.write_text("nc: 1\n")
    with pytest.raises(ValueError, match="data.yaml: no class names found"):
        data.read_yaml_names(y)
    y.write_text("names: {0: a, 2: b}\n")
    with pytest.raises(ValueError, match=r"class ids must be 0..1"):
        data.read_yaml_names(y)


def roboflow_fixture(root, yaml_paths="relative"):
    """Roboflow's layout: data.yaml beside train/ valid/ folders, paths written as '../train/images'."""
    paths = {"relative": "train: ../train/images\nval: ../valid/images\n",
             "windows": "train: 'C:\\Users\\x\\train\\images'\nval: 'C:\\Users\\x\\valid\\images'\n"}[yaml_paths]
    (root).mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text("nc: 2\nnames:\n- Pedestrian\n- car\n" + paths)
    write_image(root / "train" / "images" / "a.jpg", 64, 48, 1)
    write_image(root / "train" / "images" / "b.png", 64, 48, 2)
    (root / "train" / "labels").mkdir()
    (root / "train" / "labels" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.125 0.25")
    (root / "train" / "labels" / "b.txt").write_text("")
    write_image(root / "valid" / "images" / "c.jpg", 32, 32, 3)
    (root / "valid" / "labels").mkdir()
    (root / "valid" / "labels" / "c.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    return root


@pytest.mark.parametrize("yaml_paths", ["relative", "windows"])
def test_yolo_reads_roboflow_splits_in_pixels(tmp_path, yaml_paths):
    root = roboflow_fixture(tmp_path / "rf", yaml_paths)
    ds = data.load_spec(f"yolo:{root}@train")
    assert ds.classes == ["Pedestrian", "car"] and [s.key for s in ds.samples] == [f"yolo:{root}@train/a",
                                                                                 f"yolo:{root}@train/b"]
    a, b = ds.samples
    assert a.image.shape == (48, 64, 3)
    assert np.allclose(a.boxes, [[24, 12, 40, 36], [12, 6, 20, 18]]) and a.labels.tolist() == [0, 1]
    assert len(b.boxes) == 0 and len(b.ignore) == 0
    for split in ("valid", "val"):
        v = data.load_spec(f"yolo:{root}@{split}")
        assert np.allclose(v.samples[0].boxes, [[8, 8, 24, 24]])


def test_yolo_plain_images_labels_folder_and_errors(tmp_path):
    root = tmp_path / "plain"
    write_image(root / "images" / "x.jpg", 40, 20)
    (root / "labels").mkdir()
    (root / "labels" / "x.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with pytest.raises(FileNotFoundError, match=r"plain: no data.yaml"):
        data.load_spec(f"yolo:{root}")
    (root / "data.yaml").write_text("names: {0: person}\n")
    ds = data.load_spec(f"yolo:{root}")
    assert ds.classes == ["person"] and np.allclose(ds.samples[0].boxes, [[10, 5, 30, 15]])
    (root / "labels" / "x.txt").write_text("0 0.5 0.5 0.5 0.5\n3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=r"x.txt: class id 3 out of range"):
        data.load_spec(f"yolo:{root}")
    (root / "labels" / "x.txt").write_text("0 0.5 0.5 0.5 0.5\n0 0.5 half 0.1 0.1\n")
    with pytest.raises(ValueError, match=r"x.txt:2: expected 'class cx cy w h'"):
        data.load_spec(f"yolo:{root}")
    rf = roboflow_fixture(tmp_path / "rf")
    with pytest.raises(ValueError, match=r"has splits train, val .*pick one with yolo:.*@SPLIT"):
        data.load_spec(f"yolo:{rf}")
    with pytest.raises(FileNotFoundError, match=r"no image folder for split 'test'"):
        data.load_spec(f"yolo:{rf}@test")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        data.load_spec(f"yolo:{tmp_path / 'nowhere'}")


# ---- COCO -------------------------------------------------------------------------------------
def coco_fixture(root):
    images = root / "imgs"
    write_image(images / "p1.jpg", 50, 40, 4)
    write_image(images / "p2.jpg", 50, 40, 5)
    ann = {"images": [{"id": 7, "file_name": "p1.jpg", "width": 50, "height": 40},
                      {"id": 9, "file_name": "p2.jpg", "width": 50, "height": 40}],
           "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "person"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [5, 6, 10, 20], "iscrowd": 0},
                           {"id": 2, "image_id": 7, "category_id": 3, "bbox": [30, 10, 8, 8], "iscrowd": 0},
                           {"id": 3, "image_id": 9, "category_id": 1, "bbox": [0, 0, 20, 30], "iscrowd": 1},
                           {"id": 4, "image_id": 9, "category_id": 1, "bbox": [25, 5, 10, 30]}]}
    path = root / "ann.json"
    path.write_text(json.dumps(ann, indent=1))
    return path, images


def test_coco_reads_boxes_crowds_and_parses_the_spec_with_colons(tmp_path):
    ann, images = coco_fixture(tmp_path)
    specs = data.split_specs(f"pets09-val, coco:{ann}:{images}")
    assert specs == ["pets09-val", f"coco:{ann}:{images}"]
    ds = data.load_spec(specs[1])
    assert ds.classes == ["person", "dog"]  # in category-id order
    one, two = ds.samples
    assert np.allclose(one.boxes, [[5, 6, 15, 26], [30, 10, 38, 18]]) and one.labels.tolist() == [0, 1]
    assert np.allclose(two.boxes, [[25, 5, 35, 35]]) and np.allclose(two.ignore, [[0, 0, 20, 30]])
    assert two.ignore_labels.tolist() == [0]
    person = data.relabel(ds, ["person"])
    assert [len(s.boxes) for s in person.samples] == [1, 1] and person.classes == ["person"]


def test_coco_errors_name_file_and_line(tmp_path):
    ann, images = coco_fixture(tmp_path)
    ann.write_text('{"images": [],\n "annotations": [\n oops]}')
    with pytest.raises(ValueError, match=r"ann.json:3: not valid JSON"):
        data.load_spec(f"coco:{ann}:{images}")
    with pytest.raises(ValueError, match=r"expected coco:ANN.json:IMAGES"):
        data.load_spec(f"coco:{ann}")
    with pytest.raises(FileNotFoundError, match=r"none.json: no such file"):
        data.load_spec(f"coco:{tmp_path / 'none.json'}:{images}")


# ---- PASCAL VOC -------------------------------------------------------------------------------
VOC_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>60</width><height>40</height><depth>3</depth></size>
  <object><name>person</name><difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>35</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult>
    <bndbox><xmin>41</xmin><ymin>1</ymin><xmax>50</xmax><ymax>20</ymax></bndbox></object>
  <object><name>dog</name><difficult>1</difficult>
    <bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>
"""


def voc_fixture(root):
    (root / "Annotations").mkdir(parents=True)
    for i, name in enumerate(("v1", "v2")):
        write_image(root / "JPEGImages" / f"{name}.jpg", 60, 40, 10 + i)
        (root / "Annotations" / f"{name}.xml").write_text(VOC_XML.format(name=name))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("v2\n")
    return root


def test_voc_reads_one_based_boxes_and_difficult_as_ignore(tmp_path):
    root = voc_fixture(tmp_path / "voc")
    ds = data.load_spec(f"voc:{root}")
    assert ds.classes == ["person", "dog"] and len(ds.samples) == 2
    s = ds.samples[0]
    assert np.allclose(s.boxes, [[10, 5, 30, 35]]) and s.labels.tolist() == [0]
    assert np.allclose(s.ignore, [[40, 0, 50, 20], [0, 0, 5, 5]]) and s.ignore_labels.tolist() == [0, 1]
    person = data.relabel(ds, ["person"], compact=True)  # the dog's ignore region is no person's
    assert np.allclose(person.samples[0].ignore, [[40, 0, 50, 20]])
    gt = data.to_coco(person)
    assert [(a["iscrowd"], a["category_id"]) for a in gt["annotations"] if a["image_id"] == 1] == [(0, 1), (1, 1)]
    val = data.load_spec(f"voc:{root}@val")
    assert [s.key for s in val.samples] == [f"voc:{root}@val/v2"]


def test_voc_errors_name_the_file(tmp_path):
    root = voc_fixture(tmp_path / "voc")
    (root / "Annotations" / "v2.xml").write_text("<annotation>\n<object><name>person</name>\n</annotation>")
    with pytest.raises(ValueError, match=r"v2.xml:3: not valid XML"):
        data.load_spec(f"voc:{root}")
    (root / "Annotations" / "v2.xml").write_text(VOC_XML.format(name="v2").replace("<xmax>30</xmax>", "<xmax>x</xmax>"))
    with pytest.raises(ValueError, match=r"v2.xml: object 1: expected <name> and <bndbox>"):
        data.load_spec(f"voc:{root}")
    with pytest.raises(FileNotFoundError, match=r"Main/test.txt: no such file"):
        data.load_spec(f"voc:{root}@test")
    with pytest.raises(FileNotFoundError, match=r"Annotations: no such folder"):
        data.load_spec(f"voc:{tmp_path}")


# ---- MOT --------------------------------------------------------------------------------------
MOT_GT = "1,1,10,5,20,30,1,-1,-1,-1\n1,2,40,2,10,10,0,-1,-1,-1\n3,1,12,6,20,30,1,-1,-1,-1\n"


def test_mot_reads_an_image_folder_with_ignore_rows(tmp_path):
    seq = tmp_path / "SEQ-01"
    for k in (1, 2, 3):
        write_image(seq / "img1" / f"{k:06d}.jpg", 64, 48, k)
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text(MOT_GT)
    ds = data.load_spec(f"mot:{seq}")
    assert ds.classes == ["person"] and [len(s.boxes) for s in ds.samples] == [1, 0, 1]
    assert np.allclose(ds.samples[0].boxes, [[10, 5, 30, 35]]) and np.allclose(ds.samples[0].ignore, [[40, 2, 50, 12]])
    assert np.allclose(ds.samples[2].boxes, [[12, 6, 32, 36]])
    assert ds.files and ds.frame_indices is None
    (seq / "gt" / "gt.txt").write_text(MOT_GT + "4,1,1,1,oops,1,1\n")
    with pytest.raises(ValueError, match=r"gt.txt:4: expected frame,id,x,y,w,h,conf"):
        data.load_spec(f"mot:{seq}")


def test_mot_reads_a_video_frame_k_as_ground_truth_frame_k_plus_1(tmp_path):
    seq = tmp_path / "cam"
    seq.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5",
                    "-frames:v", "3", "-pix_fmt", "yuv420p", str(seq / "cam.mp4")], check=True)
    (seq / "gt.txt").write_text(MOT_GT)
    ds = data.load_spec(f"mot:{seq}")
    assert ds.frame_indices == [0, 1, 2] and ds.source.endswith("cam.mp4")
    assert ds.samples[0].image.shape == (48, 64, 3) and [len(s.boxes) for s in ds.samples] == [1, 0, 1]
    assert data.load_spec(f"mot:{seq}", limit=2).frame_indices == [0, 1]
    (seq / "other.avi").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"cam: expected an img1/ folder .* found 2 videos"):
        data.load_spec(f"mot:{seq}")


# ---- PASCAL annotation text (Penn-Fudan) -------------------------------------------------------
PAS_TEXT = '''# Compatible with PASCAL Annotation Version 1.00
Image filename : "PennFudanPed/PNGImages/Ped01.png"
Image size (X x Y x C) : 80 x 60 x 3
Objects with ground truth : 2 { "PASpersonWalking" "PASpersonWalking" }
# Top left pixel co-ordinates : (1, 1)
Bounding box for object 1 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (11, 6) - (30, 55)
Bounding box for object 2 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (41, 1) - (80, 60)
'''


def test_pennfudan_reads_pascal_text_in_pixels(tmp_path):
    root = tmp_path / "pf"
    (root / "Annotation").mkdir(parents=True)
    (root / "Annotation" / "Ped01.txt").write_text(PAS_TEXT)
    write_image(root / "images" / "Ped01.jpg", 80, 60)
    ds = data.load_spec(f"pennfudan:{root}")
    assert ds.classes == ["person"] and np.allclose(ds.samples[0].boxes, [[10, 5, 30, 55], [40, 0, 80, 60]])
    (root / "Annotation" / "Ped01.txt").write_text(PAS_TEXT.replace("(41, 1)", "(41 1)"))
    with pytest.raises(ValueError, match=r"Ped01.txt:7: expected 'Bounding box for object N"):
        data.load_spec(f"pennfudan:{root}")
    (root / "Annotation" / "Ped01.txt").write_text(PAS_TEXT.replace("80 x 60", "81 x 60"))
    with pytest.raises(ValueError, match=r"Ped01.txt: says the image is 81x60, the image file is 80x60"):
        data.load_spec(f"pennfudan:{root}")
    (root / "images" / "Ped01.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"Ped01.txt: its image .*Ped01.png is in neither"):
        data.load_spec(f"pennfudan:{root}")


# ---- class matching, limit, spec errors -------------------------------------------------------
def test_classes_match_case_insensitively_with_the_alias_list_only():
    img = np.zeros((10, 10, 3), np.uint8)
    box = np.array([[1, 1, 5, 5], [2, 2, 6, 6], [3, 3, 7, 7]], np.float32)
    ds = data.DetectionSet("d", ["Pedestrian", "Car", "rider"], [data.Sample("k", img, box, np.array([0, 1, 2]))])
    out = data.relabel(ds, ["person", "car"])
    assert out.classes == ["person", "car"] and out.samples[0].labels.tolist() == [0, 1]
    assert np.allclose(out.samples[0].boxes, box[:2])  # "rider" is not a person unless the user says so
    assert data.relabel(ds, ["person", "car"], aliases={"Rider": "person"}).samples[0].labels.tolist() == [0, 1, 0]
    assert data.relabel(ds, ["dog", "car"], compact=True).classes == ["car"]
    with pytest.raises(ValueError, match=r"d: none of its classes .* matches \['dog'\]"):
        data.relabel(ds, ["dog"])


def test_limit_keeps_images_spread_evenly_and_unknown_kinds_fail(tmp_path):
    assert data.spaced(10, 3) == [0, 3, 6] and data.spaced(4, None) == [0, 1, 2, 3] and data.spaced(2, 5) == [0, 1]
    with pytest.raises(ValueError, match=r"unknown kind 'kitti:'"):
        data.load_spec("kitti:/x")
    with pytest.raises(ValueError, match=r"'mot:' takes no @SPLIT"):
        data.load_spec(f"mot:{tmp_path}@train")


# ---- train.py and evaluate.py on these inputs -------------------------------------------------
def test_train_trains_on_yolo_coco_voc_and_mot_inputs(tmp_path):
    rf = roboflow_fixture(tmp_path / "rf")
    ann, images = coco_fixture(tmp_path / "coco")
    voc = voc_fixture(tmp_path / "voc")
    seq = tmp_path / "seq"
    for k in (1, 2, 3):
        write_image(seq / "img1" / f"{k:06d}.jpg", 64, 48, k)
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text(MOT_GT)
    train = f"yolo:{rf}@train,coco:{ann}:{images},voc:{voc},mot:{seq}"
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, str(HERE.parent / "train.py"), "--out", str(out), "--network", "ssd-vgg16-300",
                          "--width", "0.125", "--train", train, "--val", "", "--batch", "4", "--epochs", "1",
                          "--lr", "0.001"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    # 2 yolo + 2 coco + 2 voc + 3 mot images; person boxes: 1 (Pedestrian) + 2 + 2 + 2
    assert "train: 9 images (7 boxes)" in run.stderr, run.stderr
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and np.isfinite(log[0]["loss_conf"]) and log[0]["loss_conf"] > 0
    assert (out / "model.safetensors").stat().st_size > 100_000
    bad = subprocess.run([sys.executable, str(HERE.parent / "train.py"), "--out", str(out), "--train",
                          f"yolo:{rf}", "--val", ""], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "pick one with yolo:" in bad.stderr and "Traceback" not in bad.stderr


@needs_coco
def test_evaluate_scores_each_set_on_its_own(tmp_path):
    rf = roboflow_fixture(tmp_path / "rf")
    voc = voc_fixture(tmp_path / "voc")
    model = REPO / "models" / "default.safetensors"
    run = subprocess.run([sys.executable, str(HERE.parent / "evaluate.py"), "--model", str(model), "--data",
                          f"yolo:{rf}@train,voc:{voc}", "--json", "--results", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(r["data"], r["images"], r["boxes"], r["ignore"]) for r in rows] == [
        (f"yolo:{rf}@train", 2, 1, 0), (f"voc:{voc}", 2, 2, 2)]
    assert all("AP50" in r and "APs" in r for r in rows)
    assert (tmp_path / "r.1.json").exists() and (tmp_path / "r.2.json").exists()
    broken = subprocess.run([sys.executable, str(HERE.parent / "evaluate.py"), "--model", str(model), "--data",
                             f"yolo:{rf}@nope"], capture_output=True, text=True, timeout=300)
    assert broken.returncode == 1 and "unknown split" in broken.stderr and "Traceback" not in broken.stderr


def test_folds_split_a_set_into_disjoint_parts(tmp_path):
    root = tmp_path / "folds"
    (root / "labels").mkdir(parents=True)
    for i in range(7):
        write_image(root / "images" / f"{i}.jpg", 16, 16, i)
        (root / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("names: [person]\n")
    spec = f"yolo:{root}"
    held = data.load_spec(spec + "#1/3")
    rest = data.load_spec(spec + "#!1/3")
    assert [s.key.rsplit("/", 1)[1] for s in held.samples] == ["1", "4"]
    assert [s.key.rsplit("/", 1)[1] for s in rest.samples] == ["0", "2", "3", "5", "6"]
    assert held.name == spec + "#1/3" and all(s.key.startswith(spec + "#1/3/") for s in held.samples)
    assert len(data.load_spec(spec + "#!1/3", limit=2).samples) == 2
    assert len(data.load_spec("pets09-val#0/10").samples) == 10
    for bad in ("#3/3", "#1/1", "#x/3", "#1/"):
        with pytest.raises(ValueError, match="SET#K/N"):
            data.load_spec(spec + bad)
