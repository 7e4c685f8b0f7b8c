"""MNIST and FashionMNIST read from their IDX files, as torchvision lays them out."""
import gzip
import hashlib
import os
import urllib.error
import urllib.request

import numpy as np

from distml.tensor import Tensor
from distml.utils.data import Dataset

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_file(path):
    """The array in an IDX file (gzipped when the name ends in .gz): `read_idx_file("t10k-labels-idx1-ubyte.gz")`."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise RuntimeError(f"{path} is truncated or corrupt: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise RuntimeError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = dtype.itemsize * int(np.prod(dims))
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise RuntimeError(f"{path} is truncated or corrupt: shape {list(dims)} needs {expected} bytes of data, "
                           f"found {len(body)}")
    return np.frombuffer(body, dtype=dtype).astype(dtype.newbyteorder("=")).reshape(dims)


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MNIST(Dataset):
    """The MNIST digits: `MNIST(root, train=True, transform=ToTensor(), download=True)`.

    Reads `root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte` (each optionally
    `.gz`); a `root` that holds those files itself works too. Items are
    `(image, label)`: the image a 28 x 28 uint8 numpy array (what torchvision gives as a
    PIL image) passed through `transform`, the label an int through `target_transform`.
    `data` (uint8, N x 28 x 28) and `targets` (int64) hold the whole split as tensors.
    `download=True` fetches missing files from `mirrors` and checks their md5.
    """

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
    resources = [("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                 ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
                 ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
                 ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
               "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        self.root = os.fspath(os.path.expanduser(root))
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if download and not self._split_files():
            self.download()
        files = self._split_files()
        if not files:
            names = ", ".join(self._split_names())
            raise RuntimeError(f"Dataset not found. You can use download=True to download it "
                               f"(expected {names}, optionally .gz, in {self.raw_folder})")
        images, labels = (read_idx_file(f) for f in files)
        if len(images) != len(labels):
            raise RuntimeError(f"{files[0]} has {len(images)} images but {files[1]} has {len(labels)} labels")
        self.data = Tensor(images.astype(np.uint8))
        self.targets = Tensor(labels.astype(np.int64))

    @property
    def raw_folder(self):
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self):
        return {name: i for i, name in enumerate(self.classes)}

    def _split_names(self):
        prefix = "train" if self.train else "t10k"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def _split_files(self):
        """The paths of this split's image and label files, or None when either is missing."""
        for folder in (self.raw_folder, self.root):
            found = [next((p for p in (os.path.join(folder, n), os.path.join(folder, n + ".gz"))
                           if os.path.isfile(p)), None) for n in self._split_names()]
            if all(found):
                return found
        return None

    def download(self):
        """Fetch every file of `resources` missing from raw_folder, trying each mirror in turn."""
        os.makedirs(self.raw_folder, exist_ok=True)
        for filename, md5 in self.resources:
            path = os.path.join(self.raw_folder, filename)
            if os.path.isfile(path) and _md5(path) == md5:
                continue
            errors = []
            for mirror in self.mirrors:
                url = mirror + filename
                try:
                    urllib.request.urlretrieve(url, path + ".part")
                except (urllib.error.URLError, OSError) as error:
                    errors.append(f"{url}: {error}")
                    if os.path.exists(path + ".part"):
                        os.remove(path + ".part")
                    continue
                actual = _md5(path + ".part")
                if actual != md5:
                    os.remove(path + ".part")
                    raise RuntimeError(f"Checksum mismatch for {url}: expected md5 {md5}, got {actual}")
                os.replace(path + ".part", path)
                break
            else:
                raise RuntimeError(f"Error downloading {filename}:\n" + "\n".join(errors))

    def __getitem__(self, index):
        image, target = self.data.array[index].copy(), int(self.targets.array[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n    Root location: {self.root}"
                f"\n    Split: {'Train' if self.train else 'Test'}")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and API, clothing classes, under `root/FashionMNIST/raw`."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                 ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                 ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                 ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83fd310")]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
