"""examples/zero_join.py unchanged under `python` and `distmlrun -n 2`: ZeRO inside DDP's buckets with
uneven batch counts (join) ends with the parameters and Adam state of one process that averages,
at each step, the gradients of the batches the ranks still have over the initial world size."""
import os
import subprocess
import sys

import numpy as np
import pytest

import distml
from distml import nn
from example_loading import load_example

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "zero_join.py")


@pytest.fixture(scope="module")
def example():
    return load_example(SCRIPT, "zero_join_example")


def run(ranks, tmp_path):
    model, state = tmp_path / f"model{ranks}.pt", tmp_path / f"optimizer{ranks}.pt"
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "distml.distributed.run", "-n", str(ranks)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    env["PYTHONPATH"] = ROOT
    done = subprocess.run([*launcher, SCRIPT, "--save", str(model), "--checkpoint", str(state)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, distml.load(str(model)), distml.load(str(state))


def reference(example, world):
    args = example.parse_args([])
    distml.manual_seed(args.seed)
    model = example.make_model()
    optimizer = distml.optim.Adam(model.parameters(), lr=args.lr)
    data = example.dataset(args.batches, args.batch_size, args.seed)
    for step in range(-(-args.batches // world)):
        optimizer.zero_grad()
        active = data[step * world:(step + 1) * world]
        loss = sum(nn.functional.mse_loss(model(x), y) for x, y in active)
        (loss / world).backward()
        optimizer.step()
    return model.state_dict(), optimizer.state_dict()


@pytest.mark.parametrize("ranks", [1, 2])
def test_example_equals_one_process_on_the_union_of_the_data(example, tmp_path, ranks):
    out, model, state = run(ranks, tmp_path)
    if ranks == 2:
        assert "rank 0/2: 6 steps" in out and "rank 1/2: 5 steps" in out, out
    expected_model, expected_state = reference(example, ranks)
    for key, value in expected_model.items():
        np.testing.assert_allclose(model[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    assert sorted(state["state"]) == sorted(expected_state["state"])
    for index, entry in expected_state["state"].items():
        for name, value in entry.items():
            np.testing.assert_allclose(state["state"][index][name].numpy(), value.numpy(), rtol=1e-4, atol=1e-7,
                                       err_msg=f"{index}.{name}")
