"""Convolution speed, distml against PyTorch, alternating in one run.

    python benchmarks/conv_vs_torch.py [--threads 1] [--repeats 7] [--no-step]

For ResNet-18's convolution shapes at 32x32 input, batch 16 (and a few at 224x224, batch 4,
a depthwise one, and LeNet-5's two on MNIST at batch 64) it times the forward (no grad),
forward + backward for the input gradient only, and forward + backward for the weight gradient
only. Then one whole
ResNet-18 training step (distml.vision.models.resnet18 against the torchvision layout written
out below, SGD with momentum, cross-entropy) at 32x32, batch 16. Both frameworks run at the
same thread count (torch.set_num_threads, threadpoolctl for BLAS and OpenMP); the fastest of
`--repeats` alternating runs counts, in process CPU time (every thread's, spinning included: on
a loaded machine wall time mostly measures the other processes). Prints ms and the ratio PyTorch
time / distml time (above 1: distml is faster).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's distml
import distml  # noqa: E402
from distml.vision.models import resnet18  # noqa: E402
from torch_resnet import TorchResNet18  # noqa: E402  (beside this script)

# (name, batch, in_channels, out_channels, kernel, stride, padding, size, groups)
SHAPES = [
    ("conv1 7x7/2", 16, 3, 64, 7, 2, 3, 32, 1),
    ("layer1 3x3", 16, 64, 64, 3, 1, 1, 8, 1),
    ("layer2 3x3/2", 16, 64, 128, 3, 2, 1, 8, 1),
    ("layer2 3x3", 16, 128, 128, 3, 1, 1, 4, 1),
    ("layer2 1x1/2", 16, 64, 128, 1, 2, 0, 8, 1),
    ("layer3 3x3/2", 16, 128, 256, 3, 2, 1, 4, 1),
    ("layer3 3x3", 16, 256, 256, 3, 1, 1, 2, 1),
    ("layer3 1x1/2", 16, 128, 256, 1, 2, 0, 4, 1),
    ("layer4 3x3/2", 16, 256, 512, 3, 2, 1, 2, 1),
    ("layer4 3x3", 16, 512, 512, 3, 1, 1, 1, 1),
    ("layer4 1x1/2", 16, 256, 512, 1, 2, 0, 2, 1),
    ("224 conv1 7x7/2", 4, 3, 64, 7, 2, 3, 224, 1),
    ("224 layer1 3x3", 4, 64, 64, 3, 1, 1, 56, 1),
    ("224 layer2 1x1/2", 4, 64, 128, 1, 2, 0, 56, 1),
    ("224 layer3 3x3", 4, 256, 256, 3, 1, 1, 14, 1),
    ("depthwise 3x3", 16, 128, 128, 3, 1, 1, 16, 128),
    ("lenet conv1 5x5", 64, 1, 6, 5, 1, 2, 28, 1),
    ("lenet conv2 5x5", 64, 6, 16, 5, 1, 0, 14, 1),
]


def best_of(fns, repeats):
    """The least CPU time (s) of each function, calling them in turn `repeats` times."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            start = time.process_time()
            fn()
            t.append(time.process_time() - start)
    return [min(t) for t in times]


def conv_cases(lib, shape, rng):
    """The three timed callables (forward, input grad, weight grad) for one framework."""
    _, n, c, o, k, s, p, size, g = shape
    x = lib.tensor(rng.standard_normal((n, c, size, size)).astype(np.float32))
    w = lib.tensor(rng.standard_normal((o, c // g, k, k)).astype(np.float32) * 0.1)
    xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    conv = lib.nn.functional.conv2d

    def forward():
        with lib.no_grad():
            conv(x, w, None, s, p, 1, g)

    def input_grad():
        conv(xg, w, None, s, p, 1, g).sum().backward()
        xg.grad = None

    def weight_grad():
        conv(x, wg, None, s, p, 1, g).sum().backward()
        wg.grad = None

    return forward, input_grad, weight_grad


def bench_convs(repeats):
    print(f"{'shape':18s} {'':6s} {'torch ms':>9s} {'distml ms':>9s} {'ratio':>6s}")
    for shape in SHAPES:
        rng = np.random.default_rng(0)
        t_cases, d_cases = conv_cases(torch, shape, rng), conv_cases(distml, shape, rng)
        for label, tf, df in zip(("fwd", "dx", "dw"), t_cases, d_cases):
            tf(), df()  # warm up
            t, d = best_of([tf, df], repeats)
            print(f"{shape[0]:18s} {label:6s} {t * 1e3:9.3f} {d * 1e3:9.3f} {t / d:6.2f}", flush=True)


def bench_step(repeats, batch=16, size=32):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    labels = rng.integers(0, 1000, batch)
    torch.manual_seed(0)
    t_model, d_model = TorchResNet18(), resnet18()
    d_model.load_state_dict({k: v.numpy().copy() for k, v in t_model.state_dict().items()})

    def stepper(lib, model):
        optimizer = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = lib.nn.CrossEntropyLoss()
        x, y = lib.from_numpy(images), lib.from_numpy(labels)

        def step():
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        return step

    t_step, d_step = stepper(torch, t_model), stepper(distml, d_model)
    t_step(), d_step()
    t, d = best_of([t_step, d_step], repeats)
    print(f"ResNet-18 training step, {size}x{size} batch {batch}: torch {t * 1e3:.1f} ms, distml {d * 1e3:.1f} ms, "
          f"ratio {t / d:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for both (0: all cores)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-step", action="store_true", help="skip the whole ResNet-18 step")
    args = parser.parse_args()
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        print(f"{threads} thread(s)")
        bench_convs(args.repeats)
        if not args.no_step:
            bench_step(args.repeats)


if __name__ == "__main__":
    main()
