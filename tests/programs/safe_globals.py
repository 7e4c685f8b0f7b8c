# Checkpoints holding objects of the user's own classes and the weights_only unpickler:
# torch.serialization.add_safe_globals([...]) and the safe_globals([...]) context manager.
import os
import tempfile
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class TrainConfig:
    lr: float
    epochs: int
    name: str


class Normalizer:
    def __init__(self, mean, std):
        self.mean = mean
        self.std = std

    def __call__(self, x):
        return (x - self.mean) / self.std


model = nn.Linear(3, 2)
with torch.no_grad():
    model.weight.copy_(torch.arange(6.).view(2, 3) / 10)
    model.bias.fill_(0.5)
data = torch.arange(12.).view(4, 3)
normalizer = Normalizer(data.mean(0), data.std(0))

with tempfile.TemporaryDirectory() as tmp:
    cfg_path = os.path.join(tmp, "run.pt")
    torch.save({"config": TrainConfig(lr=0.01, epochs=3, name="baseline"),
                "model": model.state_dict()}, cfg_path)
    try:
        torch.load(cfg_path)
    except Exception as e:
        print("without allowlist:", type(e).__name__)

    torch.serialization.add_safe_globals([TrainConfig])
    ckpt = torch.load(cfg_path)
    print("config:", ckpt["config"])
    print("allowlisted:", TrainConfig in torch.serialization.get_safe_globals())

    norm_path = os.path.join(tmp, "normalizer.pt")
    torch.save(normalizer, norm_path)
    try:
        torch.load(norm_path)
    except Exception as e:
        print("Normalizer not allowlisted:", type(e).__name__)
    with torch.serialization.safe_globals([Normalizer]):
        restored = torch.load(norm_path)
    print("restored:", type(restored).__name__, restored.mean)
    try:
        torch.load(norm_path)
        print("allowlist leaked out of the context manager")
    except Exception as e:
        print("outside the context again:", type(e).__name__)

    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(ckpt["model"])
    print("prediction:", fresh(restored(data[:2])).detach())
