"""FakeData: random images, the same image for the same index on every call."""
import distml
from distml.vision.datasets.vision import VisionDataset


class FakeData(VisionDataset):
    """`size` random images of `image_size` (C, H, W) with labels in [0, num_classes).

    Item i comes from a generator seeded with i + random_offset (as torchvision seeds torch's),
    so it is the same on every call and in every DataLoader worker, and the global RNG is left
    untouched. The numbers differ from torchvision's (distml's generator is not torch's). Items
    are `(PIL image, label)`: standard-normal values through ToPILImage, as torchvision does.

        FakeData(size=100, image_size=(3, 32, 32), num_classes=10, transform=ToTensor())
    """

    def __init__(self, size=1000, image_size=(3, 224, 224), num_classes=10, transform=None, target_transform=None,
                 random_offset=0):
        super().__init__(None, transform=transform, target_transform=target_transform)
        self.size, self.num_classes, self.image_size, self.random_offset = size, num_classes, image_size, random_offset

    def __getitem__(self, index):
        from distml.vision.transforms import to_pil_image

        if index >= len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        generator = distml.Generator().manual_seed(index + self.random_offset)
        image = distml.randn(*self.image_size, generator=generator)
        target = distml.randint(0, self.num_classes, size=(1,), dtype=distml.long, generator=generator)[0]
        return self._apply(to_pil_image(image), target.item())

    def __len__(self):
        return self.size
