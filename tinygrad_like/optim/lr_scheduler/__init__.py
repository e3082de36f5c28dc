"""tg.optim.lr_scheduler: learning-rate schedulers with PyTorch's names, signatures and
arithmetic (torch/optim/lr_scheduler.py), so that a scheduler steps through the very same lrs.

base.py holds the LRScheduler base class and explains the stepping protocol; the schedulers
are grouped by kind: per-epoch factors (multiplicative.py), cosine annealing (cosine.py),
the per-batch cycles OneCycleLR (one_cycle.py) and CyclicLR (cyclic.py), ReduceLROnPlateau
(plateau.py), and the schedulers made of schedulers (composite.py).
"""

from tinygrad_like.optim.lr_scheduler.base import LRScheduler, _LRScheduler
from tinygrad_like.optim.lr_scheduler.composite import ChainedScheduler, SequentialLR
from tinygrad_like.optim.lr_scheduler.cosine import CosineAnnealingLR, CosineAnnealingWarmRestarts
from tinygrad_like.optim.lr_scheduler.cyclic import CyclicLR
from tinygrad_like.optim.lr_scheduler.multiplicative import (ConstantLR, ExponentialLR, LambdaLR,
                                                             LinearLR, MultiplicativeLR,
                                                             MultiStepLR, PolynomialLR, StepLR)
from tinygrad_like.optim.lr_scheduler.one_cycle import OneCycleLR
from tinygrad_like.optim.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = ["ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
           "CyclicLR", "ExponentialLR", "LRScheduler", "LambdaLR", "LinearLR", "MultiStepLR",
           "MultiplicativeLR", "OneCycleLR", "PolynomialLR", "ReduceLROnPlateau", "SequentialLR",
           "StepLR", "_LRScheduler"]
