"""BatchNorm, distml against PyTorch, single-threaded: training forward + backward and eval forward.

    PYTHONPATH=. python benchmarks/norm_vs_torch.py [--repeat 7]

The cases are the BatchNorm2d shapes of ResNet-18 (torchvision layout) at 32x32 with batch 16
and at 224x224 with batch 4, and a BatchNorm1d after a wide Linear. Training: batch statistics,
running-stat update, then backward of a given upstream gradient into the input, weight and bias.
distml and PyTorch alternate; each figure is the best of `repeat` rounds, per call, of wall time
and of process CPU time (on a shared machine wall time is noisy; CPU time shows the work done). Ratio = PyTorch time / distml
time (above 1: distml is faster). PYTHONPATH=. measures this checkout rather than an installed distml.
"""
import argparse
import time

import numpy as np
import torch

import distml

CASES = [  # (label, input shape)
    ("resnet18_32 bn1", (16, 64, 16, 16)),
    ("resnet18_32 layer1", (16, 64, 8, 8)),
    ("resnet18_32 layer2", (16, 128, 4, 4)),
    ("resnet18_32 layer3", (16, 256, 2, 2)),
    ("resnet18_32 layer4", (16, 512, 1, 1)),
    ("resnet18_224 bn1", (4, 64, 112, 112)),
    ("resnet18_224 layer1", (4, 64, 56, 56)),
    ("resnet18_224 layer2", (4, 128, 28, 28)),
    ("resnet18_224 layer3", (4, 256, 14, 14)),
    ("resnet18_224 layer4", (4, 512, 7, 7)),
    ("BatchNorm1d after Linear", (128, 2048)),
]


def calls(lib, shape):
    rng = np.random.default_rng(0)
    x = lib.from_numpy(rng.standard_normal(shape).astype(np.float32)).requires_grad_(True)
    upstream = lib.from_numpy(rng.standard_normal(shape).astype(np.float32))
    layer = (lib.nn.BatchNorm1d if len(shape) == 2 else lib.nn.BatchNorm2d)(shape[1])

    def train():
        layer.train()
        layer(x).backward(upstream)

    def evaluate():
        layer.eval()
        with lib.no_grad():
            layer(x)

    return {"train fwd+bwd": train, "eval fwd": evaluate}


def seconds(fn, number):
    """(wall, CPU) seconds per call of fn."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        fn()
    return (time.perf_counter() - wall) / number, (time.process_time() - cpu) / number


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--number", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    distml.set_num_threads(1)
    print(f"distml from {distml.__file__}")
    print(f"{'case':45s} {'pass':14s} | {'distml ms':>9s} {'cpu':>7s} | {'torch ms':>8s} {'cpu':>7s} | "
          f"{'ratio':>5s} {'cpu':>5s}")
    for name, shape in CASES:
        suites = {"distml": calls(distml, shape), "torch": calls(torch, shape)}
        for kind in ("train fwd+bwd", "eval fwd"):
            best = {lib: [float("inf")] * 2 for lib in suites}
            for _ in range(args.repeat):  # alternate the two so both see the same load
                for lib, suite in suites.items():
                    best[lib] = [min(b, t) for b, t in zip(best[lib], seconds(suite[kind], args.number))]
            (ours, ours_cpu), (theirs, theirs_cpu) = ([1e3 * t for t in best[lib]] for lib in ("distml", "torch"))
            print(f"{name + ' ' + str(shape):45s} {kind:14s} | {ours:9.3f} {ours_cpu:7.3f} | {theirs:8.3f} "
                  f"{theirs_cpu:7.3f} | {theirs / ours:5.2f} {theirs_cpu / ours_cpu:5.2f}", flush=True)


if __name__ == "__main__":
    main()
