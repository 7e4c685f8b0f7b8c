# Learning-rate schedules as training scripts use them: StepLR, MultiStepLR, ExponentialLR,
# CosineAnnealingLR, a LambdaLR linear warm-up, OneCycleLR per batch, and ReduceLROnPlateau
# fed a validation loss; lrs read with get_last_lr() and optimizer.param_groups.
import torch
import torch.nn as nn
from torch.optim import SGD, AdamW
from torch.optim.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, MultiStepLR, OneCycleLR,
                                      ReduceLROnPlateau, StepLR)


def make_optimizer(lr=0.1):
    model = nn.Linear(2, 1)
    return SGD(model.parameters(), lr=lr, momentum=0.9)


def trace(name, make_scheduler, epochs=8):
    opt = make_optimizer()
    sched = make_scheduler(opt)
    lrs = []
    for epoch in range(epochs):
        opt.step()
        lrs.append(round(opt.param_groups[0]["lr"], 5))
        sched.step()
    print(f"{name:>12}: {lrs}")
    return sched


trace("StepLR", lambda o: StepLR(o, step_size=3, gamma=0.5))
trace("MultiStepLR", lambda o: MultiStepLR(o, milestones=[2, 5], gamma=0.1))
trace("ExponentialLR", lambda o: ExponentialLR(o, gamma=0.8))
s = trace("Cosine", lambda o: CosineAnnealingLR(o, T_max=8, eta_min=0.001))
print("cosine last lr:", [round(v, 6) for v in s.get_last_lr()])
warmup = 3
trace("warmup", lambda o: LambdaLR(o, lr_lambda=lambda e: min(1.0, (e + 1) / warmup)))

model = nn.Linear(3, 1)
opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
onecycle = OneCycleLR(opt, max_lr=0.01, total_steps=10)
seen = []
for step in range(10):
    opt.step()
    seen.append(round(onecycle.get_last_lr()[0], 6))
    onecycle.step()
print("OneCycleLR:", seen)
print("momentum follows the cycle:", [round(g["betas"][0], 4) for g in opt.param_groups])

opt = make_optimizer(lr=1.0)
plateau = ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
val_losses = [1.0, 0.9, 0.95, 0.97, 0.96, 0.8, 0.85, 0.86, 0.9]
history = []
for val_loss in val_losses:
    opt.step()
    plateau.step(val_loss)
    history.append(opt.param_groups[0]["lr"])
print("ReduceLROnPlateau:", history)

opt = make_optimizer()
sched = StepLR(opt, step_size=2, gamma=0.1)
for _ in range(3):
    opt.step()
    sched.step()
state = sched.state_dict()
print("scheduler state:", {k: state[k] for k in ("step_size", "gamma", "last_epoch")})
restored = StepLR(make_optimizer(), step_size=2, gamma=0.1)
restored.load_state_dict(state)
print("restored last_epoch:", restored.last_epoch, "base_lrs:", restored.base_lrs)
