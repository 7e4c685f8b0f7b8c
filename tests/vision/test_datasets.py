"""FakeData, CIFAR10/100 (a tiny generated tarball, served over HTTP for the download) and ImageFolder/DatasetFolder."""
import hashlib
import http.server
import io
import os
import pickle
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

import distml
from distml.utils.data import DataLoader
from distml.vision import transforms as T
from distml.vision.datasets import CIFAR10, CIFAR100, DatasetFolder, FakeData, ImageFolder
from distml.vision.datasets.utils import extract_archive


# ---- FakeData ----

def test_fake_data_is_deterministic_per_index():
    data = FakeData(size=5, image_size=(3, 6, 4), num_classes=3, random_offset=10)
    image, label = data[2]
    assert isinstance(image, Image.Image) and image.size == (4, 6) and image.mode == "RGB"
    assert isinstance(label, int) and 0 <= label < 3
    distml.manual_seed(0)
    state = distml.get_rng_state()
    again, label_again = data[2]
    assert np.array_equal(np.asarray(image), np.asarray(again)) and label == label_again
    assert np.array_equal(distml.get_rng_state().numpy(), state.numpy())  # the global RNG is untouched
    # item i is seeded with i + random_offset, as torchvision's: offset 10 item 2 == offset 12 item 0
    shifted = FakeData(size=5, image_size=(3, 6, 4), num_classes=3, random_offset=12)[0]
    assert np.array_equal(np.asarray(shifted[0]), np.asarray(image)) and shifted[1] == label
    g = distml.Generator().manual_seed(12)
    expected = T.to_pil_image(distml.randn(3, 6, 4, generator=g))
    assert np.array_equal(np.asarray(expected), np.asarray(image))
    assert not np.array_equal(np.asarray(data[0][0]), np.asarray(data[1][0]))
    with pytest.raises(IndexError, match="FakeData index out of range"):
        data[5]


def test_fake_data_transforms_loader_and_repr():
    data = FakeData(size=40, image_size=(1, 5, 5), num_classes=4, transform=T.ToTensor(),
                    target_transform=T.Lambda(lambda y: y + 100))
    x, y = data[0]
    assert x.shape == (1, 5, 5) and 100 <= y < 104
    labels = [data[i][1] - 100 for i in range(40)]
    assert set(labels) == {0, 1, 2, 3}
    images, targets = next(iter(DataLoader(data, batch_size=8)))
    assert images.shape == (8, 1, 5, 5) and targets.tolist() == [data[i][1] for i in range(8)]
    assert repr(data) == ("Dataset FakeData\n    Number of datapoints: 40\n    StandardTransform\n"
                          "Transform: ToTensor()\nTarget transform: Lambda()")
    composed = FakeData(size=2, transform=T.Compose([T.CenterCrop(2), T.ToTensor()]))
    assert repr(composed).endswith("StandardTransform\nTransform: Compose(\n"
                                   "               CenterCrop(size=(2, 2))\n               ToTensor()\n           )")


# ---- CIFAR ----

def batch_bytes(entry):
    return pickle.dumps(entry, protocol=2)


def cifar_tarball(tmp_path, rng, hundred=False):
    """A CIFAR-shaped tarball (a few images per batch), with the md5 table its files need."""
    folder = "cifar-100-python" if hundred else "cifar-10-batches-py"
    names = (["train"], ["test"]) if hundred else ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
    label_key = "fine_labels" if hundred else "labels"
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    files, arrays = {}, {}
    for i, name in enumerate(names[0] + names[1]):
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 100 if hundred else 10, 3)]
        arrays[name] = (data, labels)
        files[name] = batch_bytes({"batch_label": f"batch {i}", label_key: labels, "data": data,
                                   "filenames": [f"img_{i}_{j}.png" for j in range(3)]})
    classes = [f"class_{i}" for i in range(100 if hundred else 10)]
    files[meta_name] = batch_bytes({meta_key: classes, "num_cases_per_batch": 3})
    tar_path = tmp_path / ("cifar-100-python.tar.gz" if hundred else "cifar-10-python.tar.gz")
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    md5 = {name: hashlib.md5(payload).hexdigest() for name, payload in files.items()}
    table = {"train_list": [[n, md5[n]] for n in names[0]], "test_list": [[n, md5[n]] for n in names[1]],
             "meta": {"filename": meta_name, "key": meta_key, "md5": md5[meta_name]},
             "tgz_md5": hashlib.md5(tar_path.read_bytes()).hexdigest()}
    return tar_path, table, arrays, classes


def patch_table(monkeypatch, cls, table, url=None):
    for key, value in table.items():
        monkeypatch.setattr(cls, key, value)
    if url is not None:
        monkeypatch.setattr(cls, "url", url)


@pytest.fixture
def http_folder():
    """Serve a folder over HTTP on localhost; yields (set_folder, base_url)."""
    state = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=state["folder"], **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (lambda folder: state.update(folder=str(folder))), f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("cls, hundred", [(CIFAR10, False), (CIFAR100, True)], ids=["cifar10", "cifar100"])
def test_cifar_download_over_http_and_read(tmp_path, rng, monkeypatch, http_folder, cls, hundred):
    serve, base = http_folder
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    tar_path, table, arrays, classes = cifar_tarball(mirror, rng, hundred)
    serve(mirror)
    patch_table(monkeypatch, cls, table, url=base + tar_path.name)
    root = tmp_path / "root"
    train = cls(root, train=True, download=True)
    assert (root / tar_path.name).is_file()
    names = [n for n, _ in table["train_list"]]
    assert len(train) == 3 * len(names) and train.data.shape == (3 * len(names), 32, 32, 3)
    assert train.classes == classes and train.class_to_idx["class_3"] == 3
    i = len(train) - 2  # in the last batch file
    image, label = train[i]
    data, labels = arrays[names[i // 3]]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(image), data[i % 3].reshape(3, 32, 32).transpose(1, 2, 0))
    assert label == labels[i % 3] and train.targets[:3] == arrays[names[0]][1]
    test = cls(root, train=False, transform=T.ToTensor(), download=True)  # already there: no second download
    x, y = test[1]
    np.testing.assert_allclose(x.numpy(), arrays[table["test_list"][0][0]][0][1].reshape(3, 32, 32) / 255, rtol=1e-6)
    assert repr(test).splitlines()[:4] == [f"Dataset {cls.__name__}", "    Number of datapoints: 3",
                                           f"    Root location: {root}", "    Split: Test"]


def test_cifar_missing_corrupt_and_checksum_errors(tmp_path, rng, monkeypatch, http_folder):
    message = "Dataset not found or corrupted. You can use download=True to download it"
    with pytest.raises(RuntimeError, match=message):
        CIFAR10(tmp_path / "nothing")
    tar_path, table, _, _ = cifar_tarball(tmp_path, rng)
    patch_table(monkeypatch, CIFAR10, table)
    extract_archive(str(tar_path), str(tmp_path / "root"))
    assert len(CIFAR10(tmp_path / "root")) == 15
    batch = tmp_path / "root" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])  # truncated: its md5 no longer matches
    with pytest.raises(RuntimeError, match=message):
        CIFAR10(tmp_path / "root")
    meta = tmp_path / "root" / "cifar-10-batches-py" / "batches.meta"
    extract_archive(str(tar_path), str(tmp_path / "root"))
    meta.write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="Dataset metadata file not found or corrupted."):
        CIFAR10(tmp_path / "root")
    serve, base = http_folder
    serve(tmp_path)
    monkeypatch.setattr(CIFAR10, "url", base + tar_path.name)
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(RuntimeError, match=f"Checksum mismatch for {base}{tar_path.name}: expected md5 0{{32}}"):
        CIFAR10(tmp_path / "fresh", download=True)
    assert os.listdir(tmp_path / "fresh") == []  # the bad download was removed
    monkeypatch.setattr(CIFAR10, "url", base + "missing.tar.gz")
    with pytest.raises(RuntimeError, match="Error downloading http://127.0.0.1:.*/missing.tar.gz"):
        CIFAR10(tmp_path / "fresh", download=True)


class Exploit:
    def __reduce__(self):
        return os.system, ("touch pwned",)


def test_cifar_batches_cannot_run_code(tmp_path, rng, monkeypatch):
    tar_path, table, _, _ = cifar_tarball(tmp_path, rng)
    extract_archive(str(tar_path), str(tmp_path / "root"))
    batch = tmp_path / "root" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": Exploit(), "labels": []}, protocol=2))
    table["train_list"][0][1] = hashlib.md5(batch.read_bytes()).hexdigest()
    patch_table(monkeypatch, CIFAR10, table)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match=r"data_batch_1 is not a readable CIFAR batch: .*refusing to load the global "
                                           r"(posix|os)\.system"):
        CIFAR10(tmp_path / "root")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("filters", [True, False], ids=["tarfile-filters", "older-python"])
def test_extract_archive_refuses_paths_outside(tmp_path, monkeypatch, filters):
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter")
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "into").mkdir()
    with pytest.raises(Exception, match="outside"):
        extract_archive(str(tar_path), str(tmp_path / "into"))
    assert not (tmp_path / "outside.txt").exists()
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("fine/inside.txt", "ok")
        archive.writestr("../outside.txt", "x")
    with pytest.raises(RuntimeError, match="member '../outside.txt' would be extracted outside"):
        extract_archive(str(zip_path), str(tmp_path / "into"))
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "into" / "fine").exists()
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("fine/inside.txt", "ok")
    assert extract_archive(str(zip_path), str(tmp_path / "into")) == str(tmp_path / "into")
    assert (tmp_path / "into" / "fine" / "inside.txt").read_text() == "ok"


# ---- ImageFolder / DatasetFolder ----

@pytest.fixture
def folder(tmp_path, rng):
    """root/{cat, dog, empty}: PNG and JPEG images (one nested), a text file, and an empty class."""
    images = {}
    for path in ["dog/b.png", "dog/nested/a.JPG", "cat/z.png", "cat/y.bmp"]:
        full = tmp_path / "root" / path
        full.parent.mkdir(parents=True, exist_ok=True)
        array = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        Image.fromarray(array).save(full)
        images[path] = array
    (tmp_path / "root" / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "root" / "empty").mkdir()
    return tmp_path / "root", images


def test_image_folder_classes_samples_and_items(folder):
    root, images = folder
    data = ImageFolder(root, allow_empty=True, transform=T.PILToTensor())
    assert data.classes == ["cat", "dog", "empty"] and data.class_to_idx == {"cat": 0, "dog": 1, "empty": 2}
    relative = [(os.path.relpath(p, root), t) for p, t in data.samples]
    assert relative == [("cat/y.bmp", 0), ("cat/z.png", 0), ("dog/b.png", 1), ("dog/nested/a.JPG", 1)]
    assert data.targets == [0, 0, 1, 1] and data.imgs is data.samples and len(data) == 4
    x, y = data[1]
    np.testing.assert_array_equal(x.numpy(), images["cat/z.png"].transpose(2, 0, 1))
    assert y == 0
    jpeg, _ = ImageFolder(root, allow_empty=True)[3]
    assert jpeg.mode == "RGB" and jpeg.size == (5, 4)


def test_image_folder_errors(folder, tmp_path):
    root, _ = folder
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes empty. Supported extensions are: "
                                                ".jpg, .jpeg, .png"):
        ImageFolder(root)
    (tmp_path / "flat").mkdir()
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder in"):
        ImageFolder(tmp_path / "flat")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    data = ImageFolder(root, allow_empty=True)
    with pytest.raises(OSError, match="cannot identify image file"):
        data[0]


def test_dataset_folder_loader_extensions_and_is_valid_file(folder):
    root, _ = folder
    sizes = DatasetFolder(root, loader=os.path.getsize, extensions=(".txt",), allow_empty=True)
    assert [os.path.basename(p) for p, _ in sizes.samples] == ["notes.txt"] and sizes[0] == (12, 1)
    only_png = DatasetFolder(root, loader=lambda p: p, is_valid_file=lambda p: p.endswith(".png"), allow_empty=True)
    assert [os.path.basename(p) for p, _ in only_png.samples] == ["z.png", "b.png"]
    single = DatasetFolder(root, loader=lambda p: p, extensions=".bmp", allow_empty=True)
    assert len(single) == 1 and single.extensions == ".bmp"
    with pytest.raises(ValueError, match="Both extensions and is_valid_file cannot be None or not None"):
        DatasetFolder(root, loader=lambda p: p)
    with pytest.raises(ValueError, match="Both extensions and is_valid_file cannot be None or not None"):
        DatasetFolder(root, loader=lambda p: p, extensions=".png", is_valid_file=lambda p: True)
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes cat, empty. Supported extensions "
                                                "are: .txt"):
        DatasetFolder(root, loader=lambda p: p, extensions=".txt")
