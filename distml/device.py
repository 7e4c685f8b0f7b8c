"""`distml.device`: where a tensor's data lives ("cpu", "cuda", "cuda:1")."""


class device:
    """A device: `distml.device("cuda:0")`, `distml.device("cuda", 1)`, `distml.device("cpu")`."""

    __slots__ = ("type", "index")

    def __init__(self, spec, index=None):
        if isinstance(spec, device):
            spec, index = spec.type, spec.index
        elif isinstance(spec, int):
            spec, index = "cuda", spec
        elif ":" in spec:
            spec, _, number = spec.partition(":")
            if not number.isdigit():
                raise RuntimeError(f"Invalid device string: '{spec}:{number}'")
            index = int(number)
        if spec not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {spec}")
        if spec == "cpu" and index not in (None, 0):
            raise RuntimeError(f"CPU device index must be -1 or zero, got {index}")
        self.type = spec
        self.index = index if spec == "cuda" else None

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (str(self),))


CPU = device("cpu")
