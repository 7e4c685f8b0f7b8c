"""examples/mnist.py end to end: accuracy after a short run, checkpoints, and resume == uninterrupted."""
import fcntl
import os
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest

import distml
from example_loading import load_example

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "mnist.py")


@pytest.fixture(scope="module")
def demo():
    return load_example(SCRIPT, "mnist_demo")



def test_digits_default_run_reaches_95_percent(demo, tmp_path, capsys):
    model, accuracy = demo.main(["--no-progress", "--checkpoint-dir", str(tmp_path)])
    assert accuracy >= 0.95
    out = capsys.readouterr().out
    assert "digits: 1437 training and 360 test images" in out
    assert "epoch 12/12: train loss" in out and "test accuracy" in out and "img/s" in out
    state = distml.load(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 12 and set(state) >= {"model", "optimizer", "rng_state"}
    np.testing.assert_array_equal(state["model"]["fc2.weight"].numpy(), model.fc2.weight.detach().numpy())


def test_resume_gives_the_same_parameters_as_an_uninterrupted_run(demo, tmp_path):
    straight, _ = demo.main(["--no-progress", "--epochs", "2", "--checkpoint-dir", str(tmp_path / "a")])
    demo.main(["--no-progress", "--epochs", "1", "--checkpoint-dir", str(tmp_path / "b")])
    distml.manual_seed(12345)  # whatever happened in between must not matter
    resumed, _ = demo.main(["--no-progress", "--epochs", "2", "--checkpoint-dir", str(tmp_path / "b"), "--resume"])
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert distml.load(tmp_path / "b" / "checkpoint.pt")["epoch"] == 2


def test_mnist_from_the_shared_test_split(demo, mnist_dir, capsys):
    _, accuracy = demo.main(["--no-progress", "--dataset", "mnist", "--data-dir", mnist_dir, "--epochs", "1"])
    assert accuracy >= 0.9
    out = capsys.readouterr().out
    assert "training on its first 8,000 images, testing on the last 2,000" in out
    assert "mnist: 8000 training and 2000 test images" in out


def test_runs_as_a_script_with_progress_bars_and_workers(tmp_path):
    """With stderr a terminal (a pseudo-terminal here) the bar draws as the epoch goes."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 24 x 120, not 0 x 0
    result = subprocess.Popen([sys.executable, SCRIPT, "--epochs", "1", "--num-workers", "2",
                               "--checkpoint-dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=follower,
                              text=True, env=env)
    os.close(follower)
    screen = b""
    try:
        while chunk := os.read(leader, 65536):
            screen += chunk
    except OSError:  # EIO: the script closed its end of the terminal
        pass
    finally:
        os.close(leader)
    stdout = result.communicate(timeout=300)[0]
    assert result.returncode == 0, screen.decode()
    assert "epoch 1/1: train loss" in stdout
    assert b"img_per_s" in screen and b"loss=" in screen  # the tqdm bar
    assert os.path.exists(tmp_path / "checkpoint.pt")
