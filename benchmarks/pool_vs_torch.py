"""Pooling, distml against PyTorch, single-threaded, forward and forward + backward.

    PYTHONPATH=. python benchmarks/pool_vs_torch.py

The cases are ResNet-18's MaxPool2d(3, 2, 1) (stem at 112x112, and a 16x16 map) and its
AdaptiveAvgPool2d(1) head, plus a few other geometries. Prints ms per call for both and the
ratio PyTorch time / distml time (above 1: distml is faster). PYTHONPATH=. measures this
checkout rather than an installed distml.
"""
import timeit

import numpy as np
import torch

import distml

CASES = [
    ("MaxPool2d(3, 2, 1)", (16, 64, 16, 16), lambda nn: nn.MaxPool2d(3, 2, 1)),
    ("MaxPool2d(3, 2, 1)", (4, 64, 112, 112), lambda nn: nn.MaxPool2d(3, 2, 1)),
    ("MaxPool2d(2)", (16, 64, 32, 32), lambda nn: nn.MaxPool2d(2)),
    ("AdaptiveAvgPool2d(1)", (16, 512, 7, 7), lambda nn: nn.AdaptiveAvgPool2d(1)),
    ("AvgPool2d(3, 2, 1)", (16, 64, 32, 32), lambda nn: nn.AvgPool2d(3, 2, 1)),
    ("MaxPool3d(3, 2, 1)", (2, 16, 16, 32, 32), lambda nn: nn.MaxPool3d(3, 2, 1)),
    ("AvgPool1d(4, 2, 1)", (16, 64, 1024), lambda nn: nn.AvgPool1d(4, 2, 1)),
]


def calls(lib, shape, make):
    x = lib.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    x.requires_grad_(True)
    layer = make(lib.nn)

    def forward():
        with lib.no_grad():
            layer(x)

    def backward():
        layer(x).sum().backward()

    return {"forward": forward, "forward+backward": backward}


def best_seconds(fn, repeat, number):
    return min(timeit.repeat(fn, number=number, repeat=1)[0] / number for _ in range(repeat))


def main(repeat=7, number=5):
    torch.set_num_threads(1)
    distml.set_num_threads(1)
    print(f"{'case':40s} {'pass':17s} {'distml ms':>10s} {'torch ms':>9s} {'torch/distml':>13s}")
    for name, shape, make in CASES:
        suites = {"distml": calls(distml, shape, make), "torch": calls(torch, shape, make)}
        for kind in ("forward", "forward+backward"):
            best = {lib: float("inf") for lib in suites}
            for _ in range(repeat):  # alternate the two so both see the same load
                for lib, suite in suites.items():
                    best[lib] = min(best[lib], best_seconds(suite[kind], 1, number))
            ours, theirs = best["distml"] * 1e3, best["torch"] * 1e3
            print(f"{name + ' ' + str(shape):40s} {kind:17s} {ours:10.3f} {theirs:9.3f} {theirs / ours:13.2f}")


if __name__ == "__main__":
    main()
