"""Training steps of real models, distml against PyTorch, at one thread and at the default thread count.

    python benchmarks/models_vs_torch.py [--rounds 2] [--seconds 2] [--workloads lenet,mlp]

Each (workload, framework, threads) runs in its own subprocess, so the peak RSS printed is that
framework's alone; the subprocesses alternate distml / PyTorch, in swapped order on every round.
A step is forward + backward + SGD(momentum=0.9).step(). "1" means set_num_threads(1) in both
frameworks; "default" sets nothing (each framework's own default, printed as its thread count).
Times are medians per step of wall time and of process CPU time (all threads of the process): on
a loaded machine wall time is noisy, CPU time shows work (and spinning) done. Ratio = PyTorch
time / distml time (above 1: distml is faster). LeNet-5 trains on the MNIST test split in
../shared/data/mnist when present, else on random data of its shape.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = ["small_ops", "mlp", "resnet18_32", "lstm", "transformer", "lenet", "resnet18_224"]
MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")


# ---- models, written once against either framework (`lib` is distml or torch) ----

def resnet18(lib, num_classes):
    if lib.__name__ == "torch":
        from torch_resnet import TorchResNet18  # beside this script: torchvision's layout, written out
        return TorchResNet18(num_classes)
    from distml.vision.models import resnet18 as distml_resnet18
    return distml_resnet18(num_classes=num_classes)


def lenet(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


class SmallOps:
    """Ten elementwise ops on a 100-element parameter, then sum: per-op overhead."""

    def __init__(self, lib):
        self.w = lib.nn.Parameter(lib.randn(100))

    def parameters(self):
        return [self.w]

    def __call__(self, x):
        y = self.w * x
        y = y + 1.0
        y = y.sin()
        y = y * self.w
        y = y.tanh()
        y = y - x
        y = y.exp()
        y = y / 2.0
        y = y.sigmoid()
        return (y * y).sum()


def lstm_head(lib):
    nn = lib.nn

    class LstmHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(64, 128, batch_first=True)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    return LstmHead()


def mnist_batches(lib, batch):
    """(images, labels) batches of the MNIST test split, normalised; random ones of that shape without it."""
    import gzip
    import numpy as np
    path = os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")
    if os.path.exists(path):
        with gzip.open(path) as f:
            images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
        with gzip.open(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")) as f:
            labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
        images = (images.astype(np.float32) / 255.0 - 0.1307) / 0.3081
    else:
        rng = np.random.default_rng(0)
        images = rng.standard_normal((10000, 1, 28, 28), dtype=np.float32)
        labels = rng.integers(0, 10, 10000)
    return [(lib.from_numpy(np.ascontiguousarray(images[i:i + batch])), lib.from_numpy(labels[i:i + batch]))
            for i in range(0, len(images) - batch + 1, batch)]


def workload(lib, name):
    """(model, batches, loss of (output, target)) for one workload; batches are cycled through."""
    nn, F = lib.nn, lib.nn.functional
    lib.manual_seed(0)
    ce = F.cross_entropy
    labels = lambda n, k=10: lib.randint(0, k, (n,))  # noqa: E731
    if name == "small_ops":
        return SmallOps(lib), [(lib.randn(100), None)], lambda out, _: out
    if name == "mlp":
        model = nn.Sequential(nn.Linear(1024, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
        return model, [(lib.randn(128, 1024), labels(128))], ce
    if name == "resnet18_32":
        return resnet18(lib, 10), [(lib.randn(16, 3, 32, 32), labels(16))], ce
    if name == "resnet18_224":
        return resnet18(lib, 1000), [(lib.randn(4, 3, 224, 224), labels(4, 1000))], ce
    if name == "lstm":
        return lstm_head(lib), [(lib.randn(32, 50, 64), labels(32))], ce
    if name == "transformer":
        model = nn.TransformerEncoderLayer(128, 4, dim_feedforward=256, batch_first=True)
        return model, [(lib.randn(16, 64, 128), lib.randn(16, 64, 128))], F.mse_loss
    if name == "lenet":
        return lenet(lib), mnist_batches(lib, 64), ce
    raise ValueError(f"unknown workload {name!r}; expected one of {WORKLOADS}")


def training_step(lib, name):
    """One training step of a workload as `step(i)`, on its i-th batch (cycled): forward, loss,
    backward, SGD(momentum=0.9).step(). memory_vs_torch.py measures the same step."""
    model, batches, loss_fn = workload(lib, name)
    if hasattr(model, "train"):
        model.train()
    optimizer = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(i):
        x, y = batches[i % len(batches)]
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def child(framework, name, threads, seconds):
    """Time training steps in this process; print one JSON line."""
    if framework == "distml":
        sys.path.insert(0, ROOT)  # this checkout's distml, not whichever one the environment installed
    lib = __import__(framework)
    if threads != "default":
        lib.set_num_threads(int(threads))
    step = training_step(lib, name)
    for i in range(2):
        step(i)
    walls, cpus, start = [], [], time.perf_counter()
    i = 0
    while (time.perf_counter() - start < seconds or i < 3) and i < 500:
        w, c = time.perf_counter(), time.process_time()
        step(i)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        i += 1
    print(json.dumps({"wall_ms": 1e3 * statistics.median(walls), "cpu_ms": 1e3 * statistics.median(cpus),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "threads": lib.get_num_threads(), "steps": i, "file": lib.__file__}))


def measure(framework, name, threads, seconds):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", framework, name,
                          "--threads", threads, "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--threads", default="1,default", help="comma-separated thread settings: numbers or 'default'")
    p.add_argument("--rounds", type=int, default=2, help="subprocess pairs per (workload, threads); medians count")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per subprocess (at least 3 steps, after 2 untimed)")
    p.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "WORKLOAD"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(*args.child, args.threads, args.seconds)

    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; medians per step; ratio = torch / distml")
    header = (f"{'workload':<13} {'threads':>9} | {'distml ms':>9} {'cpu':>8} {'torch ms':>9} {'cpu':>8} | "
              f"{'ratio':>5} {'cpu':>5} | {'RSS MB d':>8} {'torch':>6}")
    print(header)
    print("-" * len(header))
    for name in args.workloads.split(","):
        for threads in args.threads.split(","):
            runs = {"distml": [], "torch": []}
            for r in range(args.rounds):
                order = ["distml", "torch"] if r % 2 == 0 else ["torch", "distml"]
                for framework in order:
                    runs[framework].append(measure(framework, name, threads, args.seconds))
            med = {f: {k: statistics.median(run[k] for run in runs[f]) for k in ("wall_ms", "cpu_ms", "rss_mb")}
                   for f in runs}
            d, t = med["distml"], med["torch"]
            label = f"{threads}" if threads != "default" else \
                f"def({runs['distml'][0]['threads']}/{runs['torch'][0]['threads']})"
            print(f"{name:<13} {label:>9} | {d['wall_ms']:9.2f} {d['cpu_ms']:8.2f} {t['wall_ms']:9.2f} "
                  f"{t['cpu_ms']:8.2f} | {t['wall_ms'] / d['wall_ms']:5.2f} {t['cpu_ms'] / d['cpu_ms']:5.2f} | "
                  f"{d['rss_mb']:8.0f} {t['rss_mb']:6.0f}", flush=True)


if __name__ == "__main__":
    main()
