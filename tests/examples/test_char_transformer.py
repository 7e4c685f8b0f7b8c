"""examples/char_transformer.py: the quick run on the bundled text learns (in process and under
`distmlrun -n 2`), and the model is causal."""
import math
import os
import subprocess
import sys

import pytest

import distml
from example_loading import load_example

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "char_transformer.py")


@pytest.fixture(scope="module")
def example():
    return load_example(SCRIPT, "char_transformer")



def test_quick_run_on_the_bundled_text_learns(example, capsys):
    _, history, text = example.main(["--no-progress"])
    out = capsys.readouterr().out
    assert "public_domain.txt: 3466 characters, 57 distinct" in out
    uniform = math.log(57)
    (first_train, first_held_out), (last_train, last_held_out) = history[0], history[-1]
    assert last_train < first_train - 0.5 and last_train < uniform - 1.5
    assert last_held_out < first_held_out and last_held_out < uniform - 1.0
    assert text.startswith("Shall I ") and len(text) == len("Shall I ") + 120
    assert f"sample: {text!r}" in out


def test_each_position_sees_only_the_characters_before_it(example):
    model = example.CharTransformer(vocab_size=11, context=8, d_model=16, heads=2, layers=2, dropout=0.0)
    model.eval()
    ids = distml.randint(0, 11, (2, 8))
    changed = ids.clone()
    changed[:, 5:] = (ids[:, 5:] + 1) % 11
    with distml.no_grad():
        a, b = model(ids), model(changed)
    assert distml.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not distml.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


def test_vocabulary_round_trip_and_windows(example):
    vocab = example.Vocabulary("hello world")
    ids = vocab.encode("hello")
    assert vocab.decode(ids) == "hello" and len(vocab) == 8
    windows = example.Windows(vocab.encode("hello world"), context=4, stride=2)
    x, y = windows[1]
    assert vocab.decode(x.tolist()) == "llo " and vocab.decode(y.tolist()) == "lo w"
    assert len(windows) == 3


def test_unchanged_under_distmlrun():
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "distml.distributed.run", "-n", "2", SCRIPT, "--sample-length", "20"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("2 ranks") == 1 and done.stdout.count("sample: ") == 1  # only rank 0 prints
    losses = [float(line.split("train loss ")[1].split(",")[0]) for line in done.stdout.splitlines()
              if line.startswith("epoch ")]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.4, done.stdout
