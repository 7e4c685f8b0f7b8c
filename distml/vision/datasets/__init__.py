"""Vision datasets (torchvision's names)."""
from distml.vision.datasets.mnist import MNIST, FashionMNIST, read_idx_file
