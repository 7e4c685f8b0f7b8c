"""Train a ResNet on CIFAR-10-format data.

    python examples/cifar_resnet.py                          # a small synthetic CIFAR-10-format set: no download
    python examples/cifar_resnet.py --data-dir ~/data        # ~/data/cifar-10-batches-py: the real python batches
    python examples/cifar_resnet.py --data-dir ~/data --download --epochs 30 --blocks 3 --width 16   # ResNet-20
    distmlrun -n 2 examples/cifar_resnet.py                  # data-parallel, the same script

The network is the CIFAR ResNet of He et al. (2016): a 3x3 convolution, three stages of --blocks
basic blocks with --width, 2x and 4x channels (the later stages halve the resolution), global
average pooling and a linear classifier; --blocks 3 --width 16 is ResNet-20. The defaults are the
quick settings (ResNet-8 at width 8 on 512 synthetic images, 2 epochs: seconds of compute).

Without --data-dir, 10 classes of synthetic 32 x 32 RGB images (each class a colour and a stripe
pattern, under noise) are written as CIFAR-10's python batches into a temporary folder and read back
exactly as the real ones are: `data_batch_1`..`data_batch_5` and `test_batch`, each a pickled dict
with "data" (N x 3072 uint8, the red, green and blue planes in turn) and "labels".

Under a launcher (distmlrun, mpiexec, srun) the script is data-parallel: a DistributedSampler
shards the training set, DistributedDataParallel averages the gradients, the learning rate grows
with the number of ranks (the batch size is per rank), and only rank 0 prints.
"""
import argparse
import os
import pickle
import tempfile
import time

import numpy as np

import distml
import distml.distributed as dist
import distml.nn as nn
import distml.nn.functional as F
from distml.distributed.launch_rank import rank_environment
from distml.nn.parallel import DistributedDataParallel
from distml.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset
from distml.utils.progress import progress_bar
from distml.vision.datasets import CIFAR10
from distml.vision.datasets.cifar import load_batch

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)  # CIFAR-10's per-channel mean and std
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None,
                   help="folder holding cifar-10-batches-py (default: a synthetic set in a temporary folder)")
    p.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data-dir when it is not there")
    p.add_argument("--synthetic-size", type=int, default=512, help="training images of the synthetic set")
    p.add_argument("--limit", type=int, default=None, help="train on the first LIMIT training images only")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--lr", type=float, default=0.05,
                   help="for one rank; multiplied by the number of ranks (the linear scaling rule)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--blocks", type=int, default=1, help="basic blocks per stage (3: ResNet-20, 9: ResNet-56)")
    p.add_argument("--width", type=int, default=8, help="channels of the first stage (16 in the paper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars, only the epoch summaries")
    args = p.parse_args(argv)
    if args.download and not args.data_dir:
        p.error("--download needs --data-dir")
    return args


# ---- data ----

def write_synthetic_cifar10(folder, train_size, test_size, seed=0):
    """Write a synthetic set in CIFAR-10's python-batch layout into folder/cifar-10-batches-py.

    Class c is a colour and stripes at angle 18c degrees, with noise: easy to learn, so that a
    short run shows the loss falling, yet a convolutional network is needed to read the stripes.
    """
    rng = np.random.default_rng(seed)
    colours = rng.uniform(60, 200, size=(10, 3))
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)

    def images(count):
        labels = rng.integers(0, 10, count)
        angle = np.deg2rad(18.0 * labels)[:, None, None]
        phase = rng.uniform(0, 2 * np.pi, (count, 1, 1))
        stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 0.8 + phase)  # N x 32 x 32
        planes = colours[labels][:, :, None, None] + 40 * stripes[:, None] + rng.normal(0, 25, (count, 3, 32, 32))
        data = np.clip(planes, 0, 255).astype(np.uint8).reshape(count, 3072)  # R, G, B planes in turn
        return data, labels.tolist()

    target = os.path.join(folder, CIFAR10.base_folder)
    os.makedirs(target, exist_ok=True)
    sizes = np.diff(np.linspace(0, train_size, len(TRAIN_BATCHES) + 1).astype(int))
    for name, count in [*zip(TRAIN_BATCHES, sizes), ("test_batch", test_size)]:
        data, labels = images(int(count))
        with open(os.path.join(target, name), "wb") as f:
            pickle.dump({"batch_label": f"synthetic {name}", "data": data, "labels": labels,
                         "filenames": [f"{name}_{i}.png" for i in range(len(labels))]}, f, protocol=2)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(os.path.join(target, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": classes, "num_vis": 3072}, f, protocol=2)
    return folder


def read_cifar10(root, train):
    """(images N x 3 x 32 x 32 float32, normalised; labels int64) from root/cifar-10-batches-py.

    Reads the python batches themselves (with distml's safe unpickler), so a synthetic or partial
    set in the same layout works too; CIFAR10(root, download=True) is what checks a real download.
    """
    folder = os.path.join(root, CIFAR10.base_folder)
    names = TRAIN_BATCHES if train else ["test_batch"]
    missing = [name for name in names if not os.path.exists(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(f"{folder}: expected CIFAR-10's python batches {names}; missing {missing} "
                                "(download them with --download)")
    batches = [load_batch(os.path.join(folder, name)) for name in names]
    data = np.concatenate([batch["data"] for batch in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(batch["labels"], np.int64) for batch in batches])
    images = (data.astype(np.float32) / 255 - MEAN[:, None, None]) / STD[:, None, None]
    return images, labels


def cifar_datasets(args, scratch):
    """Training and test TensorDatasets; `scratch` is a folder for the synthetic set."""
    if args.data_dir is None:
        root = write_synthetic_cifar10(scratch, args.synthetic_size, max(args.synthetic_size // 4, 10), args.seed)
    else:
        root = args.data_dir
        if args.download:
            CIFAR10(root, download=True)  # fetches and checks the official tarball
    (train_x, train_y), (test_x, test_y) = read_cifar10(root, True), read_cifar10(root, False)
    if args.limit is not None:
        train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    return (TensorDataset(distml.tensor(train_x), distml.tensor(train_y)),
            TensorDataset(distml.tensor(test_x), distml.tensor(test_y)))


# ---- model ----

class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the input (through a 1x1 projection where the
    shape changes)."""

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR ResNet: `ResNet(blocks=3, width=16)` is ResNet-20 (6 * blocks + 2 layers)."""

    def __init__(self, blocks=3, width=16, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, channels = [], width
        for stage, out_channels in enumerate([width, 2 * width, 4 * width]):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.fc(distml.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- training ----

def train_epoch(model, optimizer, loader, epoch, args):
    """Mean training loss over this rank's batches, and images per second."""
    model.train()
    total_loss, seen, start = 0.0, 0, time.perf_counter()
    bar = progress_bar(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False, disable=args.no_progress)
    for images, labels in bar:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return total_loss / seen, seen / (time.perf_counter() - start)


def evaluate(model, loader):
    """(mean loss, accuracy) over the test set (the whole set on every rank)."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with distml.no_grad():
        for images, labels in loader:
            logits = model(images)
            total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            seen += len(labels)
    return total_loss / seen, correct / seen


def main(argv=None):
    """Train; returns (model, [(train loss, test loss, test accuracy) per epoch])."""
    args = parse_args(argv)
    if rank_environment()[2] > 1:
        dist.init_process_group("mpi")
    lead = dist.get_rank() == 0
    distml.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="synthetic-cifar10-") as scratch:
        train_set, test_set = cifar_datasets(args, scratch)
    sampler = DistributedSampler(train_set, seed=args.seed) if dist.is_initialized() else RandomSampler(train_set)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    test_loader = DataLoader(test_set, batch_size=256)
    net = ResNet(args.blocks, args.width)
    optimizer = distml.optim.SGD(net.parameters(), lr=args.lr * dist.get_world_size(), momentum=args.momentum,
                                 weight_decay=args.weight_decay)
    scheduler = distml.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    model = DistributedDataParallel(net) if dist.is_initialized() else net
    if lead:
        source = "synthetic CIFAR-10 format" if args.data_dir is None else f"CIFAR-10 from {args.data_dir}"
        print(f"{source}: {len(train_set)} training and {len(test_set)} test images; "
              f"ResNet-{6 * args.blocks + 2} (width {args.width}), {sum(p.numel() for p in net.parameters())} "
              "parameters" + (f", {dist.get_world_size()} ranks" if dist.is_initialized() else ""), flush=True)
    history = []
    for epoch in range(1, args.epochs + 1):
        if dist.is_initialized():
            sampler.set_epoch(epoch)
        began = time.perf_counter()
        train_loss, throughput = train_epoch(model, optimizer, train_loader, epoch, args)
        test_loss, accuracy = evaluate(model, test_loader)
        scheduler.step()
        history.append((train_loss, test_loss, accuracy))
        if lead:
            print(f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f}, test loss {test_loss:.4f}, "
                  f"test accuracy {accuracy:.2%}, {throughput:.0f} img/s per rank, "
                  f"{time.perf_counter() - began:.1f} s", flush=True)
    return net, history


if __name__ == "__main__":
    main()
