"""Training steps on a CUDA device against PyTorch (on CUDA where it has it): an MLP and a small CNN
(conv, batch norm, max pool, dropout off, linear, cross entropy), same weights and inputs; losses,
the input's and every parameter's gradients, and the weights after SGD and Adam steps. Runs only
where a CUDA device is usable."""
import numpy as np
import pytest
import torch

import distml
from distml import _backend

pytestmark = pytest.mark.skipif(not distml.cuda.is_available(),
                                reason=f"needs a CUDA device: {_backend.cuda_unavailable_reason()}")

cupy = _backend.cupy
TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}


def mlp(m):
    return m.nn.Sequential(m.nn.Linear(20, 64), m.nn.ReLU(), m.nn.Linear(64, 32), m.nn.Tanh(), m.nn.Linear(32, 5))


def cnn(m):
    # No bias before batch norm: its gradient there is rounding noise, which Adam's step would amplify.
    return m.nn.Sequential(
        m.nn.Conv2d(3, 8, 3, padding=1, bias=False), m.nn.BatchNorm2d(8), m.nn.ReLU(), m.nn.MaxPool2d(2),
        m.nn.Conv2d(8, 16, 3, stride=2), m.nn.ReLU(), m.nn.Dropout(0.0), m.nn.Flatten(), m.nn.Linear(16 * 3 * 3, 5))


def pair(build, dtype, torch_device):
    """The same model in distml on cuda and in torch on torch_device, with distml's initial weights."""
    ours = build(distml).to(dtypes_of(dtype))
    theirs = build(torch).to(TORCH_DTYPE[dtype])
    with torch.no_grad():
        for (name, p), (their_name, q) in zip(ours.state_dict().items(), theirs.state_dict().items()):
            assert name == their_name
            q.copy_(torch.from_numpy(np.array(p.numpy())))
    return ours.cuda(), theirs.to(torch_device)


def dtypes_of(dtype):
    return distml.float64 if dtype == np.float64 else distml.float32


def host(t):
    return t.detach().cpu().numpy()


@pytest.mark.parametrize("build, shape", [(mlp, (16, 20)), (cnn, (4, 3, 14, 14))], ids=["mlp", "cnn"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_training_steps_match_torch(rng, torch_device, build, shape, dtype, optimizer):
    ours, theirs = pair(build, dtype, torch_device)
    assert all(isinstance(p.array, cupy.ndarray) for p in ours.parameters())
    options = dict(lr=0.05, momentum=0.9) if optimizer == "SGD" else dict(lr=1e-2)
    our_opt = getattr(distml.optim, optimizer)(ours.parameters(), **options)
    their_opt = getattr(torch.optim, optimizer)(theirs.parameters(), **options)
    for step in range(2):
        data = rng.standard_normal(shape).astype(dtype)
        target = rng.integers(0, 5, shape[0])
        x = distml.tensor(data, device="cuda", requires_grad=True)
        t = torch.tensor(data, device=torch_device, requires_grad=True)
        our_loss = distml.nn.functional.cross_entropy(ours(x), distml.tensor(target, device="cuda"))
        their_loss = torch.nn.functional.cross_entropy(theirs(t), torch.tensor(target, device=torch_device))
        our_opt.zero_grad()
        their_opt.zero_grad()
        our_loss.backward()
        their_loss.backward()
        assert our_loss.is_cuda and x.grad.is_cuda
        np.testing.assert_allclose(host(our_loss), host(their_loss), **TOLERANCE[dtype])
        np.testing.assert_allclose(host(x.grad), host(t.grad), **TOLERANCE[dtype])
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert p.grad.is_cuda, name
            np.testing.assert_allclose(host(p.grad), host(q.grad), **TOLERANCE[dtype], err_msg=name)
        our_opt.step()
        their_opt.step()
    for (name, p), q in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert p.is_cuda, name
        np.testing.assert_allclose(host(p), host(q), **TOLERANCE[dtype], err_msg=name)


def test_eval_forward_and_moving_back_to_the_cpu(rng, torch_device):
    ours, theirs = pair(cnn, np.float64, torch_device)
    data = rng.standard_normal((2, 3, 14, 14))
    ours(distml.tensor(data, device="cuda"))  # a training step's batch-norm statistics
    theirs(torch.tensor(data, device=torch_device))
    ours.eval()
    theirs.eval()
    with distml.no_grad():
        out = ours(distml.tensor(data, device="cuda"))
    np.testing.assert_allclose(host(out), host(theirs(torch.tensor(data, device=torch_device))), rtol=1e-9, atol=1e-11)
    on_cpu = ours.cpu()
    assert all(isinstance(p.array, np.ndarray) for p in on_cpu.parameters())
    np.testing.assert_allclose(on_cpu(distml.tensor(data)).detach().numpy(), host(out), rtol=1e-9, atol=1e-11)


def test_dropout_training_on_cuda():
    model = distml.nn.Sequential(distml.nn.Linear(32, 32), distml.nn.Dropout(0.5), distml.nn.Linear(32, 1)).cuda()
    x = distml.randn(64, 32, device="cuda")
    distml.manual_seed(3)
    first = model(x)
    first.sum().backward()
    grads = [host(p.grad) for p in model.parameters()]
    model.zero_grad()
    distml.manual_seed(3)
    second = model(x)
    second.sum().backward()
    np.testing.assert_array_equal(host(first), host(second))
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, host(p.grad))
