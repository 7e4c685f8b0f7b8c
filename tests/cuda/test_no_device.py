"""What the CUDA parts of distml do on a machine without a usable CUDA device (no cupy, no driver or
no device), against PyTorch's CPU build: streams and events, pinned memory, DataLoader(pin_memory=True),
non_blocking moves, random tensors on "cuda", and seeding, which must not start CUDA. The GPU
machine skips these (tests/cuda's other files check the same calls there)."""
import re
import types
import warnings

import numpy as np
import pytest
import torch

import distml
from distml import _backend

pytestmark = pytest.mark.skipif(distml.cuda.is_available(), reason="checks behaviour without a usable CUDA device")


def outcome(call, module):
    try:
        return "return", call(module)
    except Exception as error:  # the comparison is the point: type and message
        return "raise", type(error), str(error)


@pytest.mark.parametrize("call", [lambda m: m.cuda.Stream(), lambda m: m.cuda.Event(),
                                  lambda m: m.cuda.Event(enable_timing=True), lambda m: m.cuda.current_stream(),
                                  lambda m: m.cuda.default_stream(), lambda m: m.cuda.current_stream(0),
                                  lambda m: m.cuda.stream(None).__enter__(), lambda m: m.cuda.set_stream(None),
                                  lambda m: m.zeros(2).is_pinned(), lambda m: m.zeros(2).pin_memory(),
                                  lambda m: m.zeros(2).to("cuda", non_blocking=True),
                                  lambda m: m.rand(2, device="cuda"), lambda m: m.randn(2, 2, device="cuda:0"),
                                  lambda m: m.normal(0.0, 1.0, size=(2,), device="cuda"),
                                  lambda m: m.cuda.manual_seed(3), lambda m: m.cuda.seed(),
                                  lambda m: m.cuda.memory_allocated(), lambda m: m.cuda.empty_cache(),
                                  lambda m: m.cuda.memory_reserved(), lambda m: m.cuda.max_memory_reserved(),
                                  lambda m: m.cuda.memory_stats(), lambda m: m.cuda.get_rng_state(),
                                  lambda m: m.cuda.get_rng_state_all(), lambda m: m.cuda.set_rng_state_all([]),
                                  lambda m: m.cuda.set_rng_state(m.zeros(16, dtype=m.uint8)),
                                  lambda m: m.randint(3, (2,), device="cuda"), lambda m: m.randperm(3, device="cuda")],
                         ids=["Stream", "Event", "timing-Event", "current_stream", "default_stream",
                              "current_stream(0)", "stream(None)", "set_stream(None)", "is_pinned", "pin_memory",
                              "to-non_blocking", "rand", "randn", "normal", "manual_seed", "seed",
                              "memory_allocated", "empty_cache", "memory_reserved", "max_memory_reserved",
                              "memory_stats", "get_rng_state", "get_rng_state_all", "set_rng_state_all",
                              "set_rng_state", "randint", "randperm"])
def test_cuda_calls_answer_as_torchs_cpu_build(call):
    ours, theirs = outcome(call, distml), outcome(call, torch)
    assert ours[:2] == theirs[:2], (ours, theirs)
    if theirs[0] == "raise" and theirs[1] is AssertionError:
        assert ours[2].startswith("distml cannot use CUDA: ") and _backend.cuda_unavailable_reason() in ours[2]
    elif theirs[0] == "raise" and ("requires CUDA support" in theirs[2] or "dummy base class" in theirs[2]):
        assert re.fullmatch(r"distml\.cuda\.(Stream|Event) requires CUDA support: distml cannot use CUDA: .+", ours[2])
    elif theirs[0] == "raise":
        assert ours[2] == theirs[2]
    else:
        assert ours[1] == theirs[1]


def test_dataloader_pin_memory_warns_and_does_not_pin():
    rows = np.arange(12.0).reshape(6, 2)
    batches = {}
    for m in (distml, torch):
        data = m.utils.data.TensorDataset(m.tensor(rows))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = m.utils.data.DataLoader(data, batch_size=4, pin_memory=True)
            batches[m] = list(loader)
        messages = [str(w.message) for w in caught if "pin_memory" in str(w.message)]
        batches[m, "warning"] = messages
    assert batches[distml, "warning"] and batches[distml, "warning"][0] == batches[torch, "warning"][0]
    for ours, theirs in zip(batches[distml], batches[torch]):
        assert not ours[0].is_pinned() and not theirs[0].is_pinned()
        np.testing.assert_array_equal(ours[0].numpy(), theirs[0].numpy())


def test_pin_memory_helper_keeps_the_batch_structure_without_a_device():
    # The helper itself is the GPU path; without a device the DataLoader never calls it, and it raises as pin_memory().
    with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is available."):
        distml.utils.data.dataloader.pin_memory({"x": [distml.ones(2)]})
    assert distml.utils.data.dataloader.pin_memory({"n": [3, "a"]}) == {"n": [3, "a"]}


def test_seeding_reaches_the_cuda_generators_without_starting_cuda():
    from distml.cuda import random as cuda_random
    distml.manual_seed(1234)
    assert cuda_random.initial_seed(0) == cuda_random.initial_seed(3) == 1234
    distml.cuda.manual_seed_all(99)
    assert cuda_random.initial_seed(1) == 99
    distml.cuda.manual_seed(7)  # no device to seed: accepted, as PyTorch's CPU build accepts it
    assert cuda_random.initial_seed(0) == 99
    assert not _backend.cuda_used() and not distml.cuda.is_initialized()
    with pytest.raises(AssertionError, match="distml cannot use CUDA"):
        distml.cuda.initial_seed()


def test_fork_rng_restores_the_cpu_generator_and_forks_no_device():
    distml.manual_seed(4)
    before = distml.get_rng_state()
    with distml.random.fork_rng():
        inside = distml.rand(5)
    np.testing.assert_array_equal(distml.get_rng_state().numpy(), before.numpy())
    np.testing.assert_array_equal(distml.rand(5).numpy(), inside.numpy())
    with distml.random.fork_rng(enabled=False):
        distml.rand(5)
    assert not np.array_equal(distml.get_rng_state().numpy(), before.numpy())
    with pytest.raises(AssertionError, match="distml cannot use CUDA"), distml.random.fork_rng(devices=[0]):
        pass


def test_cpu_dropout_still_draws_from_the_host_generator():
    x = distml.ones(100)
    distml.manual_seed(0)
    first = distml.nn.functional.dropout(x, 0.5)
    state = distml.get_rng_state()
    distml.manual_seed(0)
    np.testing.assert_array_equal(distml.nn.functional.dropout(x, 0.5).numpy(), first.numpy())
    np.testing.assert_array_equal(distml.get_rng_state().numpy(), state.numpy())
    assert isinstance(first.array, np.ndarray)


class _StandIn(distml.Tensor):
    """PLUMBING ONLY: a host tensor that reports another device, to reach the mixed-device check on a
    machine that cannot hold a cuda tensor. It proves which op layer raises and with what message; that
    real cuda tensors reach it is tests/cuda/test_cuda_tensors.py's job on the GPU machine."""

    reported = distml.device("cpu")

    @property
    def device(self):
        return self.reported


def _on(device, values):
    t = _StandIn(np.asarray(values, dtype=np.float32))
    t.reported = distml.device(device)
    return t


def test_mixed_devices_raise_in_primitive_apply(monkeypatch):
    # With cupy importable the check runs in Primitive.apply, before any op's forward.
    monkeypatch.setattr(_backend, "cupy", types.SimpleNamespace(ndarray=type(None)))
    a, b = _on("cuda:0", [1.0, 2.0]), _on("cpu", [3.0, 4.0])
    with pytest.raises(RuntimeError, match=re.escape("Expected all tensors to be on the same device, but found at "
                                                     "least two devices, cuda:0 and cpu!")):
        a + b
    with pytest.raises(RuntimeError, match=re.escape("found at least two devices, cuda:1 and cpu!")):
        distml.matmul(_on("cpu", [[1.0]]), _on("cuda:1", [[2.0]]))
    with pytest.raises(RuntimeError, match=re.escape("cuda:0 and cpu!")):
        distml.cat([a, b])
    np.testing.assert_array_equal((_on("cuda:0", [1.0]) + _on("cuda:0", [2.0])).numpy(), [3.0])
    np.testing.assert_array_equal((a * 2).numpy(), [2.0, 4.0])  # a Python number is not a tensor argument
    with pytest.raises(RuntimeError, match=re.escape("found at least two devices, cuda:0 and cpu!")):
        _on("cpu", 2.0).requires_grad_() * a  # a 0-d cpu tensor joins cuda tensors only without a gradient

