"""Recurrent layers, distml against PyTorch, one thread each: forward + backward of one layer.

    python benchmarks/rnn_vs_torch.py [--repeats 20]

LSTM and GRU with input 64, hidden 128, sequence 50, batch 32, float32, the same weights and
inputs in both frameworks. The frameworks alternate, one forward + backward each in turn; the
median of the timed passes counts, each timed in CPU time (time.process_time: one thread each, so
other load on a shared machine does not count). Prints ms per pass for both and the ratio
PyTorch / distml (above 1: distml is faster). Run from the repository root with it on PYTHONPATH
(`PYTHONPATH=. python benchmarks/rnn_vs_torch.py`) to measure this tree.
"""
import argparse
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import distml

INPUT, HIDDEN, SEQ, BATCH = 64, 128, 50, 32


def step(lib, module, x):
    """CPU seconds for one forward + backward."""
    start = time.process_time()
    output, _ = module(x)
    output.sum().backward()
    return time.process_time() - start


def run(name, repeats):
    torch.manual_seed(0)
    t_module = getattr(torch.nn, name)(INPUT, HIDDEN)
    d_module = getattr(distml.nn, name)(INPUT, HIDDEN)
    d_module.load_state_dict({k: v.detach().numpy().copy() for k, v in t_module.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    t_x, d_x = torch.tensor(x, requires_grad=True), distml.tensor(x, requires_grad=True)
    seconds = {"torch": [], "distml": []}
    for i in range(repeats + 2):  # the first two passes warm up
        for lib, module, inputs in ((torch, t_module, t_x), (distml, d_module, d_x)):
            took = step(lib, module, inputs)
            if i >= 2:
                seconds[lib.__name__].append(took)
    t_ms, d_ms = (1e3 * float(np.median(seconds[k])) for k in ("torch", "distml"))
    print(f"{name}({INPUT}, {HIDDEN}) seq {SEQ} batch {BATCH} forward+backward: torch {t_ms:.2f} ms, "
          f"distml {d_ms:.2f} ms, torch/distml {t_ms / d_ms:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    distml.set_num_threads(1)
    with threadpool_limits(limits=1):
        for name in ("LSTM", "GRU"):
            run(name, args.repeats)


if __name__ == "__main__":
    main()
