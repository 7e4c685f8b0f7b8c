"""`distml.cpu`: PyTorch's torch.cpu namespace; `distml.cpu.amp` holds its deprecated autocast and GradScaler."""
from distml.cpu import amp  # noqa: F401
