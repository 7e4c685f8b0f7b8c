"""Training-step time on one GPU, distml against PyTorch CUDA on the same device, in float32 and in
bfloat16 autocast.

    python benchmarks/gpu_vs_torch.py [--rounds 3] [--seconds 2] [--workloads transformer,resnet18]
                                      [--precisions float32,bf16]

Workloads: ResNet-18 (distml.vision.models.resnet18 / torch_resnet.TorchResNet18, 1000 classes) on
64 x 3 x 224 x 224 with cross entropy, and a TransformerEncoderLayer (d_model 512, 8 heads, feed-forward
2048, batch_first) on 32 x 128 x 512 with MSE; a step is zero_grad, forward (inside
autocast("cuda", dtype=bfloat16) for bf16), backward, SGD(momentum=0.9).step(). The two frameworks
alternate in one process, in swapped order each round. Each measurement synchronises the device,
reads the clock, runs a fixed number of steps (sized by two timed warm-up steps to about --seconds),
synchronises and reads the clock again; the median over rounds is printed as ms/step with the ratio
torch / distml (the target is 0.8 or more). TF32 is off in both (cupy's cuBLAS default). Without a
usable GPU in both frameworks it prints one line saying why and exits 2; a workload that fails
prints its error in place of a number and the script exits 1.
"""
import argparse
import contextlib
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import distml  # noqa: E402

TARGET = 0.8


def build(lib, workload):
    """A function running one training step of `workload` in `lib` (distml or torch) on cuda,
    taking the autocast dtype (None: float32)."""
    nn = lib.nn
    if workload == "resnet18":
        if lib is torch:
            from torch_resnet import TorchResNet18
            model = TorchResNet18(1000)
        else:
            from distml.vision.models import resnet18
            model = resnet18(num_classes=1000)
        x = lib.randn(64, 3, 224, 224, device="cuda")
        target = lib.randint(0, 1000, (64,), device="cuda")
        loss_fn = nn.functional.cross_entropy
    else:
        model = nn.TransformerEncoderLayer(512, 8, dim_feedforward=2048, batch_first=True)
        x = lib.randn(32, 128, 512, device="cuda")
        target = lib.randn(32, 128, 512, device="cuda")
        loss_fn = nn.functional.mse_loss
    model = model.cuda().train()
    optimizer = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(dtype):
        optimizer.zero_grad()
        region = contextlib.nullcontext() if dtype is None else lib.autocast("cuda", dtype=dtype)
        with region:
            loss = loss_fn(model(x), target)
        loss.backward()
        optimizer.step()
    return step


def timed(lib, step, dtype, steps):
    """Seconds per step over `steps` steps, the device synchronised before each clock read."""
    lib.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(dtype)
    lib.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def measure(workload, precision, rounds, seconds):
    """{lib name: median ms/step} for one workload and precision, the frameworks alternating."""
    libs = {"distml": distml, "torch": torch}
    dtypes = {name: None if precision == "float32" else lib.bfloat16 for name, lib in libs.items()}
    steps = {name: build(lib, workload) for name, lib in libs.items()}
    counts = {}
    for name, lib in libs.items():
        timed(lib, steps[name], dtypes[name], 1)  # first use: kernels compiled, memory pools filled
        warm = timed(lib, steps[name], dtypes[name], 2)
        counts[name] = max(3, min(50, round(seconds / warm)))
    times = {name: [] for name in libs}
    for r in range(rounds):
        for name in (list(libs) if r % 2 == 0 else list(libs)[::-1]):
            times[name].append(timed(libs[name], steps[name], dtypes[name], counts[name]))
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def unavailable():
    """Why this machine cannot run the comparison, or None."""
    if not distml.cuda.is_available():
        return f"distml cannot use CUDA: {distml._backend.cuda_unavailable_reason()}"
    if not torch.cuda.is_available():
        return f"PyTorch {torch.__version__} has no usable CUDA device"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="about how long each measurement runs")
    parser.add_argument("--workloads", default="transformer,resnet18")
    parser.add_argument("--precisions", default="float32,bf16")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # rows printed before a time limit stops the run are kept
    reason = unavailable()
    if reason is not None:
        print(f"gpu_vs_torch: no GPU to measure on: {reason}", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    import cupy
    print(f"{torch.cuda.get_device_name()}: torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
          f"{torch.backends.cudnn.version()}), cupy {cupy.__version__}, TF32 off; median of {args.rounds} rounds")
    print(f"{'workload':<12} {'precision':<10} {'distml ms/step':>15} {'torch ms/step':>14} {'torch/distml':>13}")
    failed = False
    for workload in args.workloads.split(","):
        for precision in args.precisions.split(","):
            try:
                ms = measure(workload, precision, args.rounds, args.seconds)
            except Exception as error:  # noqa: BLE001 - reported in the row, the other rows still run
                print(f"{workload:<12} {precision:<10} error: {type(error).__name__}: {error}".splitlines()[0])
                failed = True
                continue
            ratio = ms["torch"] / ms["distml"]
            verdict = "" if ratio >= TARGET else f"  (below the {TARGET} target)"
            print(f"{workload:<12} {precision:<10} {ms['distml']:>15.2f} {ms['torch']:>14.2f} {ratio:>13.2f}{verdict}")
            torch.cuda.empty_cache()
            distml.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
