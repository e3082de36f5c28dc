"""tg.optim: optimizers (PyTorch's update rules) and learning-rate schedulers."""

from tinygrad_like.optim import lr_scheduler
from tinygrad_like.optim.adadelta import Adadelta
from tinygrad_like.optim.adagrad import Adagrad
from tinygrad_like.optim.adam import Adam, AdamW
from tinygrad_like.optim.optimizer import Optimizer
from tinygrad_like.optim.rmsprop import RMSprop
from tinygrad_like.optim.sgd import SGD

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
