"""CTC loss forward + backward, distml against PyTorch, single-threaded, at a realistic size
(T=50 steps, N=16 sequences, C=20 classes, targets of up to S=10 labels).

    python benchmarks/ctc_loss.py

Prints milliseconds per forward + backward for both and the ratio PyTorch time / distml time.
"""
import timeit

import numpy as np
import torch

import distml


def case(m, T=50, N=16, C=20, S=10):
    rng = np.random.default_rng(0)
    logits = m.from_numpy(rng.standard_normal((T, N, C)).astype(np.float32)).requires_grad_()
    targets = m.from_numpy(rng.integers(1, C, (N, S)))
    input_lengths = m.from_numpy(rng.integers(T - 10, T + 1, N))
    target_lengths = m.from_numpy(rng.integers(S // 2, S + 1, N))

    def step():
        loss = m.nn.functional.ctc_loss(logits.log_softmax(2), targets, input_lengths, target_lengths)
        loss.backward()

    return step


def main(repeat=10, number=20):
    torch.set_num_threads(1)
    distml.set_num_threads(1)
    steps = {"distml": case(distml), "torch": case(torch)}
    best = {}
    for _ in range(repeat):  # interleaved so both see the same load; the best of each kept
        for lib, step in steps.items():
            seconds = timeit.timeit(step, number=number) / number
            best[lib] = min(best.get(lib, seconds), seconds)
    ours, theirs = best["distml"] * 1e3, best["torch"] * 1e3
    print(f"ctc_loss forward+backward (T=50, N=16, C=20, S=10): distml {ours:.3f} ms, torch {theirs:.3f} ms, "
          f"torch/distml {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
