"""Peak resident memory of training steps, distml against PyTorch, each in a fresh subprocess.

    python benchmarks/memory_vs_torch.py [--workloads resnet18_32,resnet18_224] [--threads 1] [--rounds 2]

Each subprocess imports its framework (RSS then: "import MB"), builds the model and its batch,
runs two warm-up steps, resets the kernel's peak-RSS mark (/proc/self/clear_refs), runs three more
steps and reads the peak (VmHWM: "peak MB"). "step MB" = peak - import: what the model, its
gradients, optimizer state and a step's activations and temporaries need, without the libraries'
own footprint (PyTorch's is larger). The workloads and the step (forward, backward,
SGD(momentum=0.9).step()) are models_vs_torch.py's (its training_step). Subprocesses alternate distml / PyTorch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
    raise KeyError(field)


def child(framework, name, threads):
    if framework == "distml":
        sys.path.insert(0, os.path.dirname(HERE))  # this checkout's distml
    lib = __import__(framework)
    lib.set_num_threads(threads)
    import models_vs_torch
    imported = vm("VmRSS")
    step = models_vs_torch.training_step(lib, name)
    for i in range(2):
        step(i)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    for i in range(3):
        step(i)
    print(json.dumps({"import_mb": imported, "peak_mb": vm("VmHWM"), "after_mb": vm("VmRSS")}))


def measure(framework, name, threads):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", framework, name,
                          "--threads", str(threads)], capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="resnet18_32,resnet18_224")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child, args.threads)
    print(f"{args.threads} thread(s); medians over {args.rounds} subprocesses each; MB = 2**20 bytes")
    header = (f"{'workload':<13} | {'distml import':>13} {'peak':>6} {'step':>6} | {'torch import':>12} {'peak':>6} "
              f"{'step':>6} | {'step torch/distml':>17}")
    print(header)
    print("-" * len(header))
    for name in args.workloads.split(","):
        runs = {"distml": [], "torch": []}
        for r in range(args.rounds):
            for framework in (["distml", "torch"] if r % 2 == 0 else ["torch", "distml"]):
                runs[framework].append(measure(framework, name, args.threads))
        med = {f: {k: statistics.median(run[k] for run in runs[f]) for k in ("import_mb", "peak_mb")} for f in runs}
        step = {f: med[f]["peak_mb"] - med[f]["import_mb"] for f in med}
        d, t = med["distml"], med["torch"]
        print(f"{name:<13} | {d['import_mb']:13.0f} {d['peak_mb']:6.0f} {step['distml']:6.0f} | "
              f"{t['import_mb']:12.0f} {t['peak_mb']:6.0f} {step['torch']:6.0f} | {step['torch'] / step['distml']:17.2f}",
              flush=True)


if __name__ == "__main__":
    main()
