"""Training on a CUDA device. Steps against PyTorch (on CUDA where it has it): an MLP and a small CNN
(conv, batch norm, max pool, dropout off, linear, cross entropy), same weights and inputs; losses,
the input's and every parameter's gradients, and the weights after SGD and Adam steps. Whole runs
against the same run on the CPU: LeNet on MNIST and a small ResNet-18 reach the same test accuracy.
Mixed precision: bfloat16 and float16 (with a GradScaler) autocast training converges. Runs only
where a CUDA device is usable."""
import copy

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


# ---- the same training on cuda and on the CPU: accuracy agrees ----

def lenet():
    nn = distml.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def quadrants(n, seed, size=32):
    """Images 3 x size x size of noise with a bright square in one quadrant, the label: a task a small
    ResNet learns in a few dozen steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.standard_normal((n, 3, size, size)).astype(np.float32) * 0.5
    half, side = size // 2, size // 4
    for i, label in enumerate(labels):
        top, left = (half * q + side // 2 for q in divmod(int(label), 2))
        images[i, :, top:top + side, left:left + side] += 2.0
    return images, labels


def fit_and_score(model, device, train_set, test_set, epochs, lr, batch=64, seed=0):
    """Test accuracy after SGD(momentum=0.9) on `device`, the batches in one seeded order."""
    model = model.to(device)
    optimizer = distml.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    images, labels = train_set
    order = np.random.default_rng(seed).permutation(len(labels))
    model.train()
    for _ in range(epochs):
        for start in range(0, len(order) - batch + 1, batch):
            rows = order[start:start + batch]
            x, y = distml.tensor(images[rows], device=device), distml.tensor(labels[rows], device=device)
            optimizer.zero_grad()
            distml.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.eval()
    with distml.no_grad():
        predicted = model(distml.tensor(test_set[0], device=device)).argmax(1).cpu().numpy()
    return float((predicted == test_set[1]).mean())


def mnist_split(directory, train=4000, test=2000):
    """The MNIST test split (the files in ../shared/data/mnist), normalised: its first `train` images to
    train on, its last `test` to test on."""
    from distml.vision.datasets import MNIST
    split = MNIST(directory, train=False)
    images = ((split.data.numpy()[:, None].astype(np.float32) / 255.0) - 0.1307) / 0.3081
    labels = split.targets.numpy()
    return (images[:train], labels[:train]), (images[-test:], labels[-test:])


# float32 on two devices rounds differently, so the runs drift apart a little: one point of accuracy
# on 2,000 MNIST images (20 images), four points on the 200 synthetic ones (16 x 16).
def test_lenet_on_mnist_reaches_the_cpu_accuracy_on_cuda(mnist_dir):
    train_set, test_set = mnist_split(mnist_dir)
    distml.manual_seed(0)
    model = lenet()
    on_cuda = copy.deepcopy(model)
    cpu = fit_and_score(model, "cpu", train_set, test_set, epochs=1, lr=0.05)
    gpu = fit_and_score(on_cuda, "cuda", train_set, test_set, epochs=1, lr=0.05)
    assert cpu > 0.85
    assert abs(gpu - cpu) <= 0.01, (gpu, cpu)


def test_small_resnet18_reaches_the_cpu_accuracy_on_cuda():
    from distml.vision.models import resnet18
    train_set, test_set = quadrants(256, 1, size=16), quadrants(200, 2, size=16)
    distml.manual_seed(0)
    model = resnet18(num_classes=4)
    on_cuda = copy.deepcopy(model)
    cpu = fit_and_score(model, "cpu", train_set, test_set, epochs=3, lr=0.02, batch=32)
    gpu = fit_and_score(on_cuda, "cuda", train_set, test_set, epochs=3, lr=0.02, batch=32)
    assert cpu > 0.9
    assert abs(gpu - cpu) <= 0.04, (gpu, cpu)


# ---- mixed precision on cuda ----

def small_cnn():
    nn = distml.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 4, 4))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_training_converges(dtype):
    low = getattr(distml, dtype)
    if low is distml.bfloat16 and not distml.cuda.is_bf16_supported():
        pytest.skip(f"{distml.cuda.get_device_name()} does not compute in bfloat16")
    distml.manual_seed(0)
    model = small_cnn().cuda()
    optimizer = distml.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # float16 starts from a scale its gradients overflow at, so the first steps are skipped and backed off.
    scaler = distml.amp.GradScaler("cuda", init_scale=2.0 ** 24, enabled=low is distml.float16)
    (images, labels), (test_images, test_labels) = quadrants(512, 3), quadrants(200, 4)
    losses, skipped = [], 0
    for epoch in range(4):
        for start in range(0, 512, 32):
            x = distml.tensor(images[start:start + 32], device="cuda")
            y = distml.tensor(labels[start:start + 32], device="cuda")
            optimizer.zero_grad()
            with distml.autocast("cuda", dtype=low):
                out = model(x)
                loss = distml.nn.functional.cross_entropy(out, y)
            assert out.dtype is low and loss.dtype is distml.float32
            scaler.scale(loss).backward()
            assert all(p.grad.dtype is distml.float32 and p.grad.is_cuda for p in model.parameters())
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            skipped += scaler.get_scale() < scale  # backed off: the step held an inf or nan and was skipped
            losses.append(loss.item())
    if scaler.is_enabled():
        assert skipped >= 1 and scaler.get_scale() < 2.0 ** 24
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:8])
    model.eval()
    with distml.no_grad(), distml.autocast("cuda", dtype=low):
        predicted = model(distml.tensor(test_images, device="cuda")).argmax(1).cpu().numpy()
    assert (predicted == test_labels).mean() > 0.9
