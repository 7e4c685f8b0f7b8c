# The reproducibility / device boilerplate at the top of countless training scripts:
# seed_everything (random, numpy, torch, torch.cuda.manual_seed_all), cudnn flags, the
# cuda -> mps -> cpu device chain, and checks that re-seeding reproduces the random streams.
import os
import random

import numpy as np
import torch


def seed_everything(seed: int = 42):
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def get_device():
    if torch.cuda.is_available():
        return torch.device("cuda")
    elif torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


seed_everything(0)
device = get_device()
print("device:", device, "type:", device.type)
print("cuda:", torch.cuda.is_available(), "devices:", torch.cuda.device_count())
print("mps available:", torch.backends.mps.is_available(), "built:", isinstance(torch.backends.mps.is_built(), bool))
print("cudnn flags:", torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
print("accelerator:", torch.accelerator.is_available(), torch.accelerator.current_accelerator())
if torch.cuda.is_available():
    print("gpu:", torch.cuda.get_device_name(0))

a = torch.randn(3, 4, device=device)
b = torch.rand(5)
c = torch.randint(0, 100, (6,))
d = torch.randperm(8)
seed_everything(0)
print("randn reproducible:", torch.equal(a, torch.randn(3, 4, device=device)))
print("rand reproducible:", torch.equal(b, torch.rand(5)))
print("randint reproducible:", torch.equal(c, torch.randint(0, 100, (6,))))
print("randperm reproducible:", torch.equal(d, torch.randperm(8)), "is a permutation:", sorted(d.tolist()) == list(range(8)))

state = torch.get_rng_state()
first = torch.rand(3)
torch.set_rng_state(state)
print("rng state restore:", torch.equal(first, torch.rand(3)))
g = torch.Generator(device="cpu").manual_seed(123)
g2 = torch.Generator().manual_seed(123)
print("generators agree:", torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=g2)))
print("initial_seed:", torch.initial_seed(), g.initial_seed())

torch.manual_seed(7)
big = torch.randn(20000)
print("randn mean ~ 0: {:.1f}  std ~ 1: {:.1f}".format(big.mean().item(), big.std().item()))
u = torch.rand(20000)
print("rand in [0, 1):", bool((u >= 0).all() and (u < 1).all()), "mean ~ 0.5: {:.1f}".format(u.mean().item()))
bern = torch.bernoulli(torch.full((20000,), 0.3))
print("bernoulli rate ~ 0.3: {:.1f}".format(bern.mean().item()))
draws = torch.multinomial(torch.tensor([0.0, 1.0, 0.0]), 5, replacement=True)
print("multinomial of a point mass:", draws.tolist())
print("normal_(mean=3): {:.0f}".format(torch.empty(20000).normal_(mean=3.0, std=0.5).mean().item()))
print("uniform_(2, 4) bounds:", bool(torch.empty(1000).uniform_(2, 4).ge(2).all()))
