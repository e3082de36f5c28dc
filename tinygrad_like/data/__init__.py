"""Data loading: datasets, the DataLoader, and built-in datasets that work offline."""

from tinygrad_like.data.dataset import Dataset, Subset, TensorDataset, random_split
from tinygrad_like.data.datasets import (MNIST, CharCorpus, CharDataset, FashionMNIST, char_corpus,
                                         load_digits, read_idx)
from tinygrad_like.data.loader import DataLoader, default_collate
from tinygrad_like.data.sampler import DistributedSampler, Sampler

__all__ = ["MNIST", "CharCorpus", "CharDataset", "DataLoader", "Dataset", "DistributedSampler",
           "FashionMNIST", "Sampler", "Subset",
           "TensorDataset", "char_corpus", "default_collate", "load_digits", "random_split",
           "read_idx"]
