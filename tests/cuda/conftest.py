"""What the GPU tests share: PyTorch's device to compare with (cuda where this PyTorch has CUDA, else
its CPU build, which computes the same values)."""
import pytest
import torch


@pytest.fixture(scope="session")
def torch_device():
    if torch.cuda.is_available():
        torch.backends.cudnn.allow_tf32 = False  # full float32 convolutions, as distml's
        torch.backends.cuda.matmul.allow_tf32 = False
        return "cuda"
    return "cpu"
