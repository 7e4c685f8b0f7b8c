"""Tensors on a CUDA device (cupy arrays) against PyTorch on CUDA: moves (.cuda/.cpu/.to) and their
gradients, pinned memory and non_blocking copies, DataLoader(pin_memory=True), random numbers and
dropout masks drawn on the device, and the mixed-device error. Runs only where a CUDA device is usable."""
import re
import warnings

import numpy as np
import pytest
import torch

import distml
from distml import _backend

pytestmark = pytest.mark.skipif(not distml.cuda.is_available(),
                                reason=f"needs a CUDA device: {_backend.cuda_unavailable_reason()}")
two_devices = pytest.mark.skipif(distml.cuda.device_count() < 2, reason="needs two CUDA devices")

cupy = _backend.cupy
MIXED = "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!"


def values(dtype, rng):
    if dtype == np.bool_:
        return rng.standard_normal((3, 4)) > 0
    return (rng.standard_normal((3, 4)) * 5).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_])
def test_cuda_and_cpu_round_trip(rng, torch_device, dtype):
    data = values(dtype, rng)
    x = distml.tensor(data)
    y = x.cuda()
    assert isinstance(y.array, cupy.ndarray) and y.is_cuda and not y.is_cpu
    assert y.device == distml.device("cuda", 0) and str(y.device) == "cuda:0"
    assert y.dtype == x.dtype
    theirs = torch.tensor(data).to("cuda" if torch_device == "cuda" else "cpu")
    if torch_device == "cuda":
        assert y.type() == theirs.type()
    back = y.cpu()
    assert back.device == distml.device("cpu") and isinstance(back.array, np.ndarray)
    np.testing.assert_array_equal(back.numpy(), data)
    np.testing.assert_array_equal(y.to("cpu").numpy(), theirs.cpu().numpy())


def test_moves_that_change_nothing_return_self(rng):
    x = distml.tensor(rng.standard_normal(3))
    y = x.cuda()
    assert x.cpu() is x and x.to("cpu") is x
    assert y.cuda() is y and y.to("cuda:0") is y and y.to("cuda") is y and y.cuda(0) is y
    assert y.to("cuda", copy=True) is not y
    z = y.to("cuda", distml.float32)
    assert z.is_cuda and z.dtype is distml.float32


def test_factories_on_cuda(torch_device):
    for make in (lambda m: m.zeros(2, 3, device="cuda"), lambda m: m.ones(4, device="cuda:0"),
                 lambda m: m.arange(5, device="cuda"), lambda m: m.full((2,), 7.0, device="cuda"),
                 lambda m: m.tensor([1.0, 2.0], device="cuda")):
        ours = make(distml)
        assert isinstance(ours.array, cupy.ndarray) and ours.device == distml.device("cuda", 0)
        theirs = make(torch if torch_device == "cuda" else _CpuTorch())
        np.testing.assert_array_equal(ours.cpu().numpy(), theirs.cpu().numpy())
        if torch_device == "cuda":
            assert repr(ours) == repr(theirs)


class _CpuTorch:
    """torch's factories with device= dropped: PyTorch's CPU build as the reference for values."""

    def __getattr__(self, name):
        function = getattr(torch, name)
        return lambda *args, device=None, **kwargs: function(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_flows_back_through_moves(rng, torch_device, dtype):
    data = rng.standard_normal((4, 3)).astype(dtype)
    x = distml.tensor(data, requires_grad=True)
    y = (x.cuda() * x.cuda()).sum(dim=1).cpu() * distml.tensor(np.arange(4.0, dtype=dtype))
    y.sum().backward()
    t = torch.tensor(data, requires_grad=True)
    u = (t.to(torch_device) * t.to(torch_device)).sum(dim=1).cpu() * torch.arange(4.0, dtype=t.dtype)
    u.sum().backward()
    assert x.grad.device == distml.device("cpu")
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)
    w = distml.tensor(data).cuda().requires_grad_()
    (w.cpu() ** 2).sum().backward()
    assert w.grad.is_cuda
    np.testing.assert_allclose(w.grad.cpu().numpy(), 2 * data, rtol=1e-6)


def test_pin_memory_and_non_blocking_copies(rng):
    data = rng.standard_normal((256, 64)).astype(np.float32)
    x = distml.tensor(data)
    assert not x.is_pinned()
    pinned = x.pin_memory()
    assert pinned.is_pinned() and pinned is not x and pinned.pin_memory() is pinned
    np.testing.assert_array_equal(pinned.numpy(), data)
    on_device = pinned.to("cuda", non_blocking=True)
    distml.cuda.synchronize()
    np.testing.assert_array_equal(on_device.cpu().numpy(), data)
    back = (on_device * 2).to("cpu", non_blocking=True)
    distml.cuda.synchronize()
    assert back.is_pinned()
    np.testing.assert_array_equal(back.numpy(), data * 2)
    assert not on_device.cpu().is_pinned()  # a blocking copy lands in ordinary memory
    with pytest.raises(RuntimeError, match=re.escape("cannot pin 'torch.cuda.FloatTensor' only dense CPU tensors "
                                                     "can be pinned")):
        on_device.pin_memory()


def test_pin_memory_keeps_autograd(rng):
    data = rng.standard_normal(5)
    x = distml.tensor(data, requires_grad=True)
    (x.pin_memory().cuda() * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(5, 3.0))


def test_dataloader_pins_batches_on_a_gpu_machine(rng):
    data = distml.utils.data.TensorDataset(distml.tensor(rng.standard_normal((10, 3))), distml.arange(10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader = distml.utils.data.DataLoader(data, batch_size=4, pin_memory=True)
        batches = list(loader)
    assert all(x.is_pinned() and y.is_pinned() for x, y in batches)
    np.testing.assert_array_equal(batches[0][1].numpy(), [0, 1, 2, 3])
    dict_batch = distml.utils.data.dataloader.pin_memory({"x": distml.ones(2), "n": 3})
    assert dict_batch["x"].is_pinned() and dict_batch["n"] == 3
    assert not list(distml.utils.data.DataLoader(data, batch_size=4))[0][0].is_pinned()


def test_dataloader_workers_pin_in_the_main_process(rng):
    data = distml.utils.data.TensorDataset(distml.tensor(rng.standard_normal((8, 3))))
    batches = list(distml.utils.data.DataLoader(data, batch_size=4, num_workers=2, pin_memory=True))
    assert len(batches) == 2 and all(b[0].is_pinned() for b in batches)


# ---- random numbers on the device ----

@pytest.mark.parametrize("make", [lambda: distml.rand(1000, device="cuda"), lambda: distml.randn(1000, device="cuda"),
                                  lambda: distml.rand_like(distml.zeros(1000, device="cuda")),
                                  lambda: distml.randn(10, 100, device="cuda", dtype=distml.float64),
                                  lambda: distml.empty(1000, device="cuda").uniform_(-1, 1),
                                  lambda: distml.empty(1000, device="cuda").normal_(2.0, 0.5),
                                  lambda: distml.normal(0.0, 1.0, size=(1000,), device="cuda"),
                                  lambda: distml.randint(0, 1000, (1000,), device="cuda"),
                                  lambda: distml.randint_like(distml.zeros(1000, device="cuda"), 7, 900),
                                  lambda: distml.randperm(1000, device="cuda"),
                                  lambda: distml.empty(1000, device="cuda").random_(0, 100),
                                  lambda: distml.empty(1000, device="cuda").exponential_(2.0),
                                  lambda: distml.empty(1000, device="cuda").bernoulli_(0.3),
                                  lambda: distml.multinomial(distml.rand(4, 300, device="cuda"), 100),
                                  lambda: distml.multinomial(distml.rand(300, device="cuda"), 500, replacement=True)],
                         ids=["rand", "randn", "rand_like", "randn64", "uniform_", "normal_", "normal", "randint",
                              "randint_like", "randperm", "random_", "exponential_", "bernoulli_", "multinomial",
                              "multinomial_replacement"])
def test_random_tensors_are_drawn_on_the_device_and_seeded(make):
    distml.manual_seed(5)
    host_state = distml.get_rng_state()
    first = make()
    assert isinstance(first.array, cupy.ndarray)
    # Drawn by the device's generator: the host generator did not move.
    np.testing.assert_array_equal(distml.get_rng_state().numpy(), host_state.numpy())
    distml.manual_seed(5)
    np.testing.assert_array_equal(make().cpu().numpy(), first.cpu().numpy())
    assert not np.array_equal(make().cpu().numpy(), first.cpu().numpy())


def test_device_random_distributions():
    distml.manual_seed(0)
    u = distml.rand(200_000, device="cuda").cpu().numpy()
    n = distml.randn(200_000, device="cuda", dtype=distml.float64).cpu().numpy()
    assert u.dtype == np.float32 and 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert n.dtype == np.float64 and abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01


def test_device_integer_samplers():
    distml.manual_seed(0)
    ints = distml.randint(-3, 5, (100_000,), device="cuda")
    assert ints.dtype is distml.int64 and ints.is_cuda
    counts = np.bincount(ints.cpu().numpy() + 3, minlength=8)
    assert counts.size == 8 and counts.min() > 11_000
    perm = distml.randperm(5000, device="cuda")
    assert perm.dtype is distml.int64 and sorted(perm.cpu().numpy().tolist()) == list(range(5000))
    probs = distml.tensor([[0.1, 0.0, 0.6, 0.3], [0.0, 0.0, 1.0, 0.0]], device="cuda")
    picks = distml.multinomial(probs, 20_000, replacement=True).cpu().numpy()
    np.testing.assert_allclose(np.bincount(picks[0], minlength=4) / 20_000, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    assert (picks[1] == 2).all()
    without = distml.multinomial(distml.tensor([1.0, 2.0, 0.0, 7.0], device="cuda").expand(2000, 4), 3).cpu().numpy()
    assert all(len(set(row)) == 3 and 2 not in row for row in without)
    np.testing.assert_allclose(np.bincount(without[:, 0], minlength=4) / 2000, [0.1, 0.2, 0.0, 0.7], atol=0.03)
    with pytest.raises(RuntimeError, match="cannot sample n_sample > prob_dist.size"):
        distml.multinomial(probs, 5)


def test_cuda_rng_state_round_trips():
    distml.manual_seed(21)
    state = distml.cuda.get_rng_state()
    assert state.dtype is distml.uint8 and tuple(state.shape) == (16,) and not state.is_cuda
    first = distml.rand(100, device="cuda").cpu().numpy()
    assert not np.array_equal(distml.cuda.get_rng_state().numpy(), state.numpy())
    distml.cuda.set_rng_state(state)
    np.testing.assert_array_equal(distml.rand(100, device="cuda").cpu().numpy(), first)
    states = distml.cuda.get_rng_state_all()
    assert len(states) == distml.cuda.device_count()
    second = distml.randn(50, device="cuda").cpu().numpy()
    distml.cuda.set_rng_state_all(states)
    np.testing.assert_array_equal(distml.randn(50, device="cuda").cpu().numpy(), second)
    with distml.random.fork_rng(devices=[0]):
        inside = distml.rand(10, device="cuda").cpu().numpy()
    np.testing.assert_array_equal(distml.rand(10, device="cuda").cpu().numpy(), inside)
    with pytest.raises(RuntimeError, match="RNG state is wrong size"):
        distml.cuda.set_rng_state(distml.zeros(8, dtype=distml.uint8))


def test_cuda_seed_functions():
    distml.cuda.manual_seed(11)
    assert distml.cuda.initial_seed() == 11
    a = distml.rand(8, device="cuda")
    distml.cuda.manual_seed_all(11)
    np.testing.assert_array_equal(distml.rand(8, device="cuda").cpu().numpy(), a.cpu().numpy())
    distml.manual_seed(12)
    assert distml.cuda.initial_seed() == 12
    distml.cuda.seed()
    assert distml.cuda.initial_seed() != 12


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_mask_is_drawn_on_the_device(p):
    x = distml.ones(256, 512, device="cuda", requires_grad=True)
    distml.manual_seed(1)
    host_state = distml.get_rng_state()
    y = distml.nn.functional.dropout(x, p)
    np.testing.assert_array_equal(distml.get_rng_state().numpy(), host_state.numpy())
    assert isinstance(y.array, cupy.ndarray)
    out = y.detach().cpu().numpy()
    kept = out != 0
    if p < 1:
        np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-6)
    assert abs((1 - kept.mean()) - p) < 0.01
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.cpu().numpy(), out)
    distml.manual_seed(1)
    np.testing.assert_array_equal(distml.nn.functional.dropout(x, p).detach().cpu().numpy(), out)


def test_dropout_module_and_feature_dropout_on_the_device():
    distml.manual_seed(2)
    x = distml.ones(8, 16, 4, 4, device="cuda")
    y = distml.nn.Dropout2d(0.5)(x)
    assert y.is_cuda
    channels = y.cpu().numpy().reshape(8 * 16, -1)
    assert all(len(np.unique(c)) == 1 for c in channels) and len(np.unique(channels)) == 2
    assert distml.nn.Dropout(0.5).eval()(x) is x


# ---- the mixed-device error ----

def _torch_mixed_message(torch_device, op):
    if torch_device != "cuda":
        return None
    with pytest.raises(RuntimeError) as error:
        op(torch)
    return str(error.value)


@pytest.mark.parametrize("op", [lambda m: m.ones(3, device="cuda") + m.ones(3),
                                lambda m: m.ones(3, device="cuda") * m.ones(3),
                                lambda m: m.matmul(m.ones(2, 3, device="cuda"), m.ones(3, 2)),
                                lambda m: m.nn.functional.linear(m.ones(2, 3, device="cuda"), m.ones(4, 3)),
                                lambda m: m.cat([m.ones(2, device="cuda"), m.ones(2)]),
                                lambda m: m.where(m.ones(2, dtype=m.bool, device="cuda"), m.ones(2, device="cuda"),
                                                  m.zeros(2))],
                         ids=["add", "mul", "matmul", "linear", "cat", "where"])
def test_mixed_devices_raise_torchs_error(torch_device, op):
    with pytest.raises(RuntimeError, match=re.escape(MIXED)):
        op(distml)
    theirs = _torch_mixed_message(torch_device, op)
    if theirs is not None:
        assert "Expected all tensors to be on the same device" in theirs


def test_module_on_cuda_with_a_cpu_input_raises():
    model = distml.nn.Linear(3, 2).cuda()
    assert all(p.is_cuda for p in model.parameters())
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        model(distml.ones(1, 3))
    assert model(distml.ones(1, 3, device="cuda")).is_cuda


@two_devices
def test_second_device(rng):
    data = rng.standard_normal(6)
    x = distml.tensor(data).to("cuda:1")
    assert x.device == distml.device("cuda", 1) and x.array.device.id == 1
    y = x.to("cuda:0")
    assert y.device.index == 0
    np.testing.assert_array_equal(y.cpu().numpy(), data)
    assert distml.tensor(data).cuda(1).device.index == 1
    assert x.cuda().device.index == 0 and x.to("cuda").device.index == 0  # "cuda" is the current device
    with distml.cuda.device(1):
        assert distml.zeros(2, device="cuda").device.index == 1
        assert distml.rand(2, device="cuda").device.index == 1
        assert x.to("cuda") is x and y.cuda().device.index == 1
    with pytest.raises(RuntimeError, match=re.escape("found at least two devices, cuda:1 and cuda:0!")):
        x + y


def test_factory_pin_memory_argument_is_refused_on_a_gpu_machine():
    with pytest.raises(NotImplementedError, match=re.escape("zeros(pin_memory=True) is not supported")):
        distml.zeros(2, pin_memory=True)


def test_a_cpu_scalar_tensor_joins_cuda_tensors(torch_device):
    results = []
    for m, device in ((distml, "cuda"), (torch, torch_device)):
        x = m.ones(3, device=device, requires_grad=True)
        y = x * m.tensor(2.0) + m.tensor(1.0)
        y.sum().backward()
        assert y.device.type == device
        results.append((y.detach().cpu().numpy(), x.grad.cpu().numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)
    # distml's one difference: the cpu scalar may not need a gradient.
    with pytest.raises(RuntimeError, match=re.escape(MIXED)):
        distml.ones(3, device="cuda") * distml.tensor(2.0, requires_grad=True)
