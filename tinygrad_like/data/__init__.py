"""Data loading, as torch.utils.data: datasets, samplers, the DataLoader (with worker
processes), and built-in datasets that work offline."""

from tinygrad_like.data.collate import default_collate, default_convert
from tinygrad_like.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset,
                                        Subset, TensorDataset, random_split)
from tinygrad_like.data.datasets import (MNIST, CharCorpus, CharDataset, FashionMNIST, char_corpus,
                                         load_digits, read_idx)
from tinygrad_like.data.loader import DataLoader
from tinygrad_like.data.sampler import (BatchSampler, DistributedSampler, RandomSampler, Sampler,
                                        SequentialSampler, SubsetRandomSampler,
                                        WeightedRandomSampler)
from tinygrad_like.data.worker import WorkerInfo, get_worker_info

__all__ = ["MNIST", "BatchSampler", "ChainDataset", "CharCorpus", "CharDataset", "ConcatDataset",
           "DataLoader", "Dataset", "DistributedSampler", "FashionMNIST", "IterableDataset",
           "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
           "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "char_corpus",
           "default_collate", "default_convert", "get_worker_info", "load_digits",
           "random_split", "read_idx"]
