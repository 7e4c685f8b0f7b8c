"""Datasets, samplers and the DataLoader (PyTorch's torch.utils.data names)."""
from distml.utils.data._collate import default_collate, default_convert
from distml.utils.data._worker import WorkerInfo, get_worker_info
from distml.utils.data.dataloader import DataLoader, StatefulDataLoader
from distml.utils.data.distributed import DistributedSampler
from distml.utils.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset,
                                       random_split)
from distml.utils.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                                       WeightedRandomSampler)
