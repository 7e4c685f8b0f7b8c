"""Training throughput and accuracy, distml against PyTorch, one thread each.

    python benchmarks/train_vs_torch.py [--epochs 1] [--data ../shared/data/mnist]

The same MLP (784-256-128-10) and LeNet-5 (conv 6@5x5 pad 2, max-pool, conv 16@5x5,
max-pool, 120, 84, 10; ReLU) are trained with SGD(lr=0.01, momentum=0.9), batch 64, on the
first 8,000 images of the MNIST split in ../shared/data/mnist (the t10k files) and tested on
the last 2,000. Both frameworks start from the same weights and see the same batches.
Prints samples/s for both, distml / PyTorch, and both test accuracies.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import distml

BATCH, TRAIN, TEST, LR, MOMENTUM = 64, 8000, 2000, 0.01, 0.9


def load_mnist(directory):
    with gzip.open(os.path.join(directory, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(directory, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    images = ((images.astype(np.float32) / 255.0) - 0.1307) / 0.3081
    return (images[:TRAIN], labels[:TRAIN]), (images[-TEST:], labels[-TEST:])


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def lenet(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


def train(lib, model, train_set, epochs, order):
    """Seconds spent in the training loop (forward, backward, step) over `epochs`."""
    images, labels = train_set
    optimizer = lib.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = lib.nn.CrossEntropyLoss()
    batches = [(lib.from_numpy(np.ascontiguousarray(images[i])), lib.from_numpy(labels[i]))
               for epoch in range(epochs) for i in np.split(order[epoch], range(BATCH, TRAIN, BATCH))]
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def accuracy(lib, model, test_set):
    images, labels = test_set
    model.eval()
    with lib.no_grad():
        predicted = model(lib.from_numpy(images)).argmax(1)
    return float((np.asarray(predicted.numpy()) == labels).mean())


def run(name, build, train_set, test_set, epochs, repeats):
    order = [np.random.default_rng(epoch).permutation(TRAIN) for epoch in range(epochs)]
    torch.manual_seed(0)
    t_model = build(torch)
    d_model = build(distml)
    d_model.load_state_dict({k: v.numpy().copy() for k, v in t_model.state_dict().items()})
    seconds = {"torch": [train(torch, t_model, train_set, epochs, order)],
               "distml": [train(distml, d_model, train_set, epochs, order)]}
    # further timed passes on fresh models, alternating frameworks; the fastest pass counts
    for _ in range(repeats - 1):
        for lib in (torch, distml):
            seconds[lib.__name__].append(train(lib, build(lib), train_set, epochs, order))
    results = {lib.__name__: (epochs * TRAIN / min(seconds[lib.__name__]), accuracy(lib, model, test_set))
               for lib, model in ((torch, t_model), (distml, d_model))}
    (t_speed, t_acc), (d_speed, d_acc) = results["torch"], results["distml"]
    print(f"| {name:6} | {t_speed:15.0f} | {d_speed:16.0f} | {d_speed / t_speed:5.2f} | {100 * t_acc:11.2f} | "
          f"{100 * d_acc:12.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                       "mnist"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per framework; the fastest counts")
    args = parser.parse_args()
    if not os.path.exists(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")):
        raise SystemExit(f"MNIST not found in {args.data} (expects t10k-images-idx3-ubyte.gz and labels)")
    torch.set_num_threads(1)
    distml.set_num_threads(1)
    train_set, test_set = load_mnist(args.data)
    print(f"batch {BATCH}, {TRAIN} train / {TEST} test images, {args.epochs} epoch(s), 1 thread, "
          f"best of {args.repeats}")
    print("| model  | torch samples/s | distml samples/s | ratio | torch acc % | distml acc % |")
    print("|--------|-----------------|------------------|-------|-------------|--------------|")
    with threadpool_limits(limits=1):
        run("MLP", mlp, train_set, test_set, args.epochs, args.repeats)
        run("LeNet5", lenet, train_set, test_set, args.epochs, args.repeats)


if __name__ == "__main__":
    main()
