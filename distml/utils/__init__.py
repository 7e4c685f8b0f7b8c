"""Utilities: `distml.utils.data` (datasets, samplers, DataLoader)."""
from distml.utils import data
