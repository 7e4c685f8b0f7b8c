"""VisionDataset: the base of the image datasets (root, transform, target_transform, torchvision's repr)."""
import os

from distml.utils.data import Dataset


class VisionDataset(Dataset):
    _repr_indent = 4

    def __init__(self, root=None, transform=None, target_transform=None):
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else None
        self.transform = transform
        self.target_transform = target_transform

    def _apply(self, sample, target):
        if self.transform is not None:
            sample = self.transform(sample)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return sample, target

    def extra_repr(self):
        return ""

    def __repr__(self):
        body = [f"Number of datapoints: {len(self)}"]
        if self.root is not None:
            body.append(f"Root location: {self.root}")
        body += self.extra_repr().splitlines()
        if self.transform is not None or self.target_transform is not None:
            # one entry of several lines: only its first is indented, as torchvision prints it
            transforms = ["StandardTransform"]
            for title, t in (("Transform: ", self.transform), ("Target transform: ", self.target_transform)):
                if t is not None:
                    lines = repr(t).splitlines()
                    transforms += [title + lines[0]] + [" " * len(title) + line for line in lines[1:]]
            body.append("\n".join(transforms))
        return "\n".join([f"Dataset {type(self).__name__}"] + [" " * self._repr_indent + line for line in body])
