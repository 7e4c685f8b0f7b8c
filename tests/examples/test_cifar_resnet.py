"""examples/cifar_resnet.py: the quick run learns (in process and under `distmlrun -n 2`), and real
CIFAR-10 python batches in a --data-dir are read as the synthetic ones are."""
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import distml
from example_loading import load_example

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "cifar_resnet.py")


@pytest.fixture(scope="module")
def example():
    return load_example(SCRIPT, "cifar_resnet")



def test_quick_run_on_the_synthetic_set_learns(example, capsys):
    net, history = example.main(["--no-progress"])
    (first, _, _), (last, test_loss, accuracy) = history
    assert last < 0.7 * first and first < math.log(10) + 0.5
    assert test_loss < math.log(10) and accuracy > 0.3  # chance: 0.1
    out = capsys.readouterr().out
    assert "synthetic CIFAR-10 format: 512 training and 128 test images; ResNet-8 (width 8)" in out
    assert "epoch 2/2: train loss" in out
    assert sum(p.numel() for p in net.parameters()) == int(out.split(" parameters")[0].rsplit(" ", 1)[1])


def test_resnet20_has_the_paper_layout(example):
    net = example.ResNet(blocks=3, width=16)
    convs = [m for m in net.modules() if isinstance(m, distml.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 19 and sum(p.numel() for p in net.parameters()) == 272_474  # He et al.: 0.27 M
    assert tuple(net(distml.randn(2, 3, 32, 32)).shape) == (2, 10)


def write_batch(path, data, labels):
    """A batch as the official tarball holds it: a pickled dict, N x 3072 uint8 rows (R, G, B planes)."""
    with open(path, "wb") as f:
        pickle.dump({"batch_label": "training batch", "labels": list(map(int, labels)), "data": data,
                     "filenames": [f"img_{i}.png" for i in range(len(labels))]}, f, protocol=2)


def test_reads_real_format_batches_from_data_dir(example, tmp_path, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = {}
    for name, count in [*[(f"data_batch_{i}", 20) for i in range(1, 6)], ("test_batch", 30)]:
        labels = rng.integers(0, 10, count)
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        write_batch(folder / name, data, labels)
        images[name] = data, labels
    x, y = example.read_cifar10(str(tmp_path), train=True)
    assert x.shape == (100, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(y, np.concatenate([images[f"data_batch_{i}"][1] for i in range(1, 6)]))
    pixel = images["data_batch_2"][0][3].reshape(3, 32, 32)[:, 5, 7]  # channel planes, row 5, column 7
    np.testing.assert_allclose(x[23, :, 5, 7], (pixel / 255 - example.MEAN) / example.STD, rtol=1e-6)
    _, history = example.main(["--no-progress", "--data-dir", str(tmp_path), "--epochs", "1", "--limit", "64"])
    assert len(history) == 1
    assert f"CIFAR-10 from {tmp_path}: 64 training and 30 test images" in capsys.readouterr().out
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['data_batch_3'\]"):
        example.read_cifar10(str(tmp_path), train=True)


def test_unchanged_under_distmlrun():
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", SCRIPT],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("2 ranks") == 1  # only rank 0 prints
    losses = [float(line.split("train loss ")[1].split(",")[0]) for line in done.stdout.splitlines()
              if line.startswith("epoch ")]
    assert len(losses) == 2 and losses[1] < 0.8 * losses[0], done.stdout
