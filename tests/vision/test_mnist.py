"""MNIST / FashionMNIST: the real test split, small IDX files written here, download with checksums."""
import functools
import gzip
import hashlib
import http.server
import os
import struct
import threading

import numpy as np
import pytest

import distml
from distml.utils.data import DataLoader
from distml.vision import transforms as T
from distml.vision.datasets import MNIST, FashionMNIST, read_idx_file


def idx_bytes(array):
    """An array in the IDX format (big-endian, type code from the dtype)."""
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
    header = struct.pack(">BBBB", 0, 0, code[array.dtype.type], array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_split(folder, prefix, images, labels, gz):
    os.makedirs(folder, exist_ok=True)
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            with gzip.open(os.path.join(folder, name + ".gz"), "wb") as f:
                f.write(data)
        else:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)


@pytest.fixture
def small(rng):
    return rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)


def test_real_test_split(mnist_dir, tmp_path):
    os.makedirs(tmp_path / "MNIST")
    os.symlink(mnist_dir, tmp_path / "MNIST" / "raw")
    data = MNIST(tmp_path, train=False)
    assert len(data) == 10000
    image, label = data[0]
    assert label == 7 and image.shape == (28, 28) and image.dtype == np.uint8
    assert data.data.dtype == distml.uint8 and data.targets.dtype == distml.int64
    assert np.bincount(data.targets.numpy()).tolist()[:2] == [980, 1135]
    direct = MNIST(mnist_dir, train=False, transform=T.ToTensor())  # a folder holding the files works too
    x, y = direct[0]
    assert y == 7 and x.shape == (1, 28, 28) and 0.0 <= x.numpy().min() and x.numpy().max() <= 1.0
    images, labels = next(iter(DataLoader(direct, batch_size=16)))
    assert images.shape == (16, 1, 28, 28) and labels.dtype == distml.int64 and labels[0].item() == 7


@pytest.mark.parametrize("gz", [True, False])
def test_small_idx_files(tmp_path, small, gz):
    images, labels = small
    write_split(tmp_path / "MNIST" / "raw", "train", images, labels, gz)
    write_split(tmp_path / "MNIST" / "raw", "t10k", images[:2], labels[:2], gz)
    train = MNIST(tmp_path, train=True, target_transform=lambda y: y * 10)
    assert len(train) == 6 and len(MNIST(tmp_path, train=False)) == 2
    for i in range(6):
        image, label = train[i]
        np.testing.assert_array_equal(image, images[i])
        assert label == labels[i] * 10 and type(label) is int
    image, _ = train[0]
    image[:] = 0  # items are copies: the dataset is unchanged
    np.testing.assert_array_equal(train[0][0], images[0])


def test_read_idx_dtypes_and_damage(tmp_path):
    for array in (np.arange(12, dtype=np.int32).reshape(3, 4), np.linspace(0, 1, 5).astype(np.float32),
                  np.array([[-1.5]], dtype=np.float64), np.array([-3, 4], dtype=np.int16)):
        path = str(tmp_path / "a.idx")
        with open(path, "wb") as f:
            f.write(idx_bytes(array))
        back = read_idx_file(path)
        assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
        np.testing.assert_array_equal(back, array)
    with open(path, "wb") as f:
        f.write(idx_bytes(np.zeros((4, 5), np.uint8))[:-3])
    with pytest.raises(RuntimeError, match=r"truncated or corrupt: shape \[4, 5\] needs 20 bytes of data, found 17"):
        read_idx_file(path)
    with open(path, "wb") as f:
        f.write(b"\x01\x02\x03\x04")
    with pytest.raises(RuntimeError, match="is not an IDX file"):
        read_idx_file(path)


def test_missing_files_error(tmp_path):
    with pytest.raises(RuntimeError, match="Dataset not found. You can use download=True to download it") as info:
        MNIST(tmp_path, train=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert os.path.join(str(tmp_path), "MNIST", "raw") in message


def serve(tmp_path, small):
    """A mirror folder holding all four gzipped files, and resources listing their md5s."""
    images, labels = small
    mirror = tmp_path / "mirror"
    write_split(mirror, "train", images, labels, gz=True)
    write_split(mirror, "t10k", images[:2], labels[:2], gz=True)
    resources = [(name, hashlib.md5((mirror / name).read_bytes()).hexdigest()) for name in sorted(os.listdir(mirror))]
    return mirror, resources


def test_download_from_file_url_and_unreachable_mirror(tmp_path, small, monkeypatch):
    mirror, resources = serve(tmp_path, small)
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://127.0.0.1:9/nothing/", mirror.as_uri() + "/"])
    monkeypatch.setattr(FashionMNIST, "resources", resources)
    data = FashionMNIST(tmp_path / "root", train=True, download=True)
    assert len(data) == 6 and data[2][1] == 4
    assert sorted(os.listdir(tmp_path / "root" / "FashionMNIST" / "raw")) == sorted(n for n, _ in resources)
    assert len(FashionMNIST(tmp_path / "root", train=False, download=True)) == 2


def test_download_over_http_and_checksum_mismatch(tmp_path, small, monkeypatch):
    mirror, resources = serve(tmp_path, small)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
        monkeypatch.setattr(MNIST, "resources", resources)
        assert MNIST(tmp_path / "ok", train=False, download=True)[1][1] == 1
        bad = [(name, "0" * 32) for name, _ in resources]
        monkeypatch.setattr(MNIST, "resources", bad)
        with pytest.raises(RuntimeError, match=f"Checksum mismatch for http://127.0.0.1:.*/{bad[0][0]}: "
                                               f"expected md5 0{{32}}, got {resources[0][1]}"):
            MNIST(tmp_path / "bad", download=True)
        assert os.listdir(tmp_path / "bad" / "MNIST" / "raw") == []
    finally:
        server.shutdown()
        server.server_close()


def test_download_failure_lists_mirrors(tmp_path, monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/a/"])
    with pytest.raises(RuntimeError, match=r"Error downloading train-images-idx3-ubyte.gz:\nhttp://127.0.0.1:9/a/"):
        MNIST(tmp_path, download=True)
