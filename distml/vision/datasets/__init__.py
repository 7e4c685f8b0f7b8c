"""Vision datasets (torchvision's names)."""
from distml.vision.datasets.cifar import CIFAR10, CIFAR100
from distml.vision.datasets.fakedata import FakeData
from distml.vision.datasets.folder import IMG_EXTENSIONS, DatasetFolder, ImageFolder, default_loader, pil_loader
from distml.vision.datasets.mnist import MNIST, FashionMNIST, read_idx_file
from distml.vision.datasets.vision import VisionDataset
