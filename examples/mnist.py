"""Train a LeNet-style CNN on handwritten digits.

    python examples/mnist.py                                   # scikit-learn's 8x8 digits: no download
    python examples/mnist.py --dataset mnist --data-dir ~/data --download
    python examples/mnist.py --epochs 2 --checkpoint-dir ckpt
    python examples/mnist.py --epochs 4 --checkpoint-dir ckpt --resume   # epochs 3 and 4, as if never stopped

A checkpoint (model, optimizer, learning-rate schedule, epoch, RNG state) is written to --checkpoint-dir after
every epoch; --resume continues from it and ends with the same parameters as an
uninterrupted run. With --dataset mnist and only the MNIST test split on disk (t10k-*),
its first 8,000 images train and the last 2,000 test.

The same script is data-parallel under the launcher: `distmlrun -n 2 examples/mnist.py`
shards the training set with a DistributedSampler, averages gradients with
DistributedDataParallel (batch size is per rank, and the learning rate grows with the rank
count, as the global batch does), and only rank 0 prints and saves.
"""
import argparse
import os
import time

import numpy as np

import distml
import distml.distributed as dist
import distml.nn as nn
import distml.nn.functional as F
from distml.distributed.launch_rank import rank_environment
from distml.distributed.algorithms.ddp_comm_hooks import default_hooks
from distml.nn.parallel import DistributedDataParallel
from distml.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset, TensorDataset
from distml.utils.progress import progress_bar
from distml.vision import datasets, transforms


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    p.add_argument("--data-dir", default="data", help="MNIST root (holding MNIST/raw) or a folder of IDX files")
    p.add_argument("--download", action="store_true", help="fetch MNIST when it is not in --data-dir")
    p.add_argument("--epochs", type=int, default=None, help="default: 12 for digits, 2 for mnist")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.02,
                   help="for one rank; multiplied by the number of ranks (the linear scaling rule)")
    p.add_argument("--gamma", type=float, default=0.8, help="learning-rate decay per epoch")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--checkpoint-dir", default=None, help="where to save a checkpoint after each epoch")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bars, only the epoch summaries")
    p.add_argument("--comm-hook", choices=["none", "fp16", "bf16"], default="none",
                   help="under the launcher: send gradients compressed to float16 or bfloat16")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 12 if args.dataset == "digits" else 2
    if args.resume and not args.checkpoint_dir:
        p.error("--resume needs --checkpoint-dir")
    return args


# ---- data ----

def digits_datasets():
    """scikit-learn's 1,797 8x8 handwritten digits (UCI), normalised; a fixed 80/20 split."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0 - 0.3) / 0.37  # roughly zero mean, unit variance
    images = images[:, None]  # N x 1 x 8 x 8
    order = np.random.default_rng(0).permutation(len(images))  # the split never depends on --seed
    cut = int(0.8 * len(images))
    train, test = order[:cut], order[cut:]
    as_set = lambda idx: TensorDataset(distml.tensor(images[idx]), distml.tensor(digits.target[idx]))  # noqa: E731
    return as_set(train), as_set(test)


def mnist_datasets(root, download):
    """MNIST's train and test splits, or 8,000 / 2,000 of the test split when only that is present."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    try:
        train = datasets.MNIST(root, train=True, transform=transform, download=download)
    except RuntimeError as error:
        if not str(error).startswith("Dataset not found"):
            raise
        test = datasets.MNIST(root, train=False, transform=transform, download=download)
        print(f"MNIST: only the test split is in {root}; training on its first 8,000 images, testing on the last 2,000")
        return Subset(test, range(8000)), Subset(test, range(8000, len(test)))
    return train, datasets.MNIST(root, train=False, transform=transform)


def make_train_sampler(train_set, args):
    """The order of training samples: this rank's shard when data-parallel."""
    if dist.is_initialized():
        return DistributedSampler(train_set, seed=args.seed)
    return RandomSampler(train_set)


def make_loaders(train_set, test_set, sampler, args):
    train = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers)
    test = DataLoader(test_set, batch_size=256, num_workers=args.num_workers)
    return train, test


# ---- model and steps ----

class LeNet(nn.Module):
    """Two conv(3x3, same) + ReLU + 2x2 max-pool stages, then two fully connected layers."""

    def __init__(self, image_size, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * (image_size // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(distml.flatten(x, 1))))


def train_step(model, optimizer, images, labels):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_epoch(model, optimizer, loader, epoch, args):
    model.train()
    total_loss, seen, start = 0.0, 0, time.perf_counter()
    bar = progress_bar(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False, disable=args.no_progress,
                       dynamic_ncols=True)
    for images, labels in bar:
        loss = train_step(model, optimizer, images, labels)
        total_loss += loss * len(labels)
        seen += len(labels)
        bar.set_postfix(loss=f"{loss:.4f}", img_per_s=f"{seen / (time.perf_counter() - start):.0f}")
    return total_loss / seen, seen / (time.perf_counter() - start)


def evaluate(model, loader):
    """(mean loss, accuracy) over the loader."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with distml.no_grad():
        for images, labels in loader:
            logits = model(images)
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
    return total_loss / seen, correct / seen


# ---- checkpoints ----

def checkpoint_path(args):
    return os.path.join(args.checkpoint_dir, "checkpoint.pt")


def save_checkpoint(args, model, optimizer, scheduler, epoch):
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    distml.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "epoch": epoch, "rng_state": distml.get_rng_state(),
                 "args": vars(args)}, checkpoint_path(args))


def load_checkpoint(args, model, optimizer, scheduler):
    """Restore model, optimizer, learning-rate schedule and RNG; returns the last finished epoch."""
    state = distml.load(checkpoint_path(args), map_location="cpu")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    distml.set_rng_state(state["rng_state"])
    return state["epoch"]


def main(argv=None):
    args = parse_args(argv)
    if rank_environment()[2] > 1:
        dist.init_process_group("mpi")
    lead = not dist.is_initialized() or dist.get_rank() == 0
    distml.manual_seed(args.seed)
    if args.dataset == "digits":
        train_set, test_set = digits_datasets()
        image_size = 8
    else:
        train_set, test_set = mnist_datasets(args.data_dir, args.download)
        image_size = 28
    sampler = make_train_sampler(train_set, args)
    train_loader, test_loader = make_loaders(train_set, test_set, sampler, args)
    net = LeNet(image_size)
    optimizer = distml.optim.SGD(net.parameters(), lr=args.lr * dist.get_world_size(), momentum=args.momentum)
    scheduler = distml.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.gamma)
    start = 1
    if args.resume:
        start = load_checkpoint(args, net, optimizer, scheduler) + 1
        if lead:
            print(f"resumed from {checkpoint_path(args)} after epoch {start - 1}")
    model = DistributedDataParallel(net) if dist.is_initialized() else net
    if args.comm_hook != "none":
        if not dist.is_initialized():
            raise SystemExit("--comm-hook compresses DDP's gradients: run under the launcher (distmlrun -n 2)")
        model.register_comm_hook(None, getattr(default_hooks, f"{args.comm_hook}_compress_hook"))
    if lead:
        print(f"{args.dataset}: {len(train_set)} training and {len(test_set)} test images, "
              f"{sum(p.numel() for p in net.parameters())} parameters"
              + (f", {dist.get_world_size()} ranks" if dist.is_initialized() else ""))
    accuracy = None
    for epoch in range(start, args.epochs + 1):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        began = time.perf_counter()
        train_loss, throughput = train_epoch(model, optimizer, train_loader, epoch, args)
        test_loss, accuracy = evaluate(model, test_loader)
        scheduler.step()
        if lead:
            print(f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f}, test loss {test_loss:.4f}, "
                  f"test accuracy {accuracy:.2%}, {throughput:.0f} img/s per rank, "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
        if args.checkpoint_dir and lead:
            save_checkpoint(args, net, optimizer, scheduler, epoch)
    return net, accuracy


if __name__ == "__main__":
    main()
