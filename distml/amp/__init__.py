"""`distml.amp`: automatic mixed precision, as PyTorch's torch.amp.

    with distml.amp.autocast("cpu", dtype=distml.bfloat16):
        loss = loss_fn(model(x), y)
    scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()
"""
from distml.amp.autocast_mode import autocast, custom_bwd, custom_fwd, is_autocast_available
from distml.amp.grad_scaler import GradScaler

__all__ = ["autocast", "custom_bwd", "custom_fwd", "is_autocast_available", "GradScaler"]
