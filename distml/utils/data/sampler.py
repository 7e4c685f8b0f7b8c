"""Samplers: the order in which a DataLoader visits dataset indices.

Any object with `__iter__` (yielding indices) and `__len__` works as a sampler; these are
PyTorch's. Random ones draw from `generator` (a `distml.Generator` or a numpy Generator)
or, when it is None, take a fresh seed from distml's global RNG on every pass, so
`distml.manual_seed(s)` makes the whole order reproducible.
"""
import numpy as np


def _draw_seed(generator=None):
    """A 63-bit seed drawn from `generator`, or from distml's global RNG when it is None."""
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(2 ** 63 - 1))
    import distml
    return int(distml.randint(0, 2 ** 63 - 1, (), generator=generator).item())


def _numpy_rng(generator=None):
    return np.random.default_rng(_draw_seed(generator))


def _randperm(n, generator=None):
    """A random permutation of range(n) as a list of ints."""
    return _numpy_rng(generator).permutation(n).tolist()


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value}")


def _check_bool(name, value, error=ValueError):
    if not isinstance(value, bool):
        raise error(f"{name} should be a boolean value, but got {name}={value}")


class Sampler:
    """Base class: subclass and define `__iter__` (and `__len__` where the length is known)."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order: a permutation per pass, or `num_samples` draws with `replacement=True`.

        RandomSampler(data, generator=distml.Generator().manual_seed(0))
        RandomSampler(data, replacement=True, num_samples=10_000)

    Without replacement, `num_samples > len(data)` gives whole permutations back to back.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        _check_bool("replacement", replacement, TypeError)
        _check_positive_int("num_samples", self.num_samples)

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        rng = _numpy_rng(self.generator)
        if self.replacement:
            yield from rng.integers(0, n, self.num_samples).tolist()
            return
        for _ in range(self.num_samples // n):
            yield from rng.permutation(n).tolist()
        yield from rng.permutation(n)[:self.num_samples % n].tolist()

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order (a new one each pass): `SubsetRandomSampler(range(0, 100, 2))`."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        for i in _randperm(len(self.indices), self.generator):
            yield self.indices[i]

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """Indices 0..len(weights)-1 drawn with probability proportional to `weights`.

        WeightedRandomSampler([0.1, 0.9, 0.4], num_samples=5, replacement=True)
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        _check_positive_int("num_samples", num_samples)
        _check_bool("replacement", replacement)
        weights = np.asarray(weights.numpy() if hasattr(weights, "numpy") else weights, dtype=np.float64)
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(weights.shape)}")
        self.weights = weights
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        w = self.weights
        if (w < 0).any():
            raise RuntimeError("invalid multinomial distribution (encountering probability entry < 0)")
        if w.sum() <= 0:
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if not self.replacement and self.num_samples > np.count_nonzero(w):
            raise RuntimeError(f"cannot sample n_sample ({self.num_samples}) > number of non-zero weights "
                               f"({np.count_nonzero(w)}) without replacement")
        rng = _numpy_rng(self.generator)
        yield from rng.choice(len(w), self.num_samples, replace=self.replacement, p=w / w.sum()).tolist()

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of `batch_size`.

        list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))  # [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler, batch_size, drop_last):
        _check_positive_int("batch_size", batch_size)
        _check_bool("drop_last", drop_last)
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size
