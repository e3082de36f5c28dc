"""GAN on a 2-D mixture of eight Gaussians on a circle, scored by how many modes it covers.

The real data are points from eight isotropic Gaussians (standard deviation `STD`) whose centres
sit evenly on a circle of radius `RADIUS`, drawn offline from a fixed seed. A generator MLP maps
Gaussian noise to points, a discriminator MLP maps points to a logit, and they play the standard
game with binary cross-entropy on logits: the discriminator learns to tell real points (label 1)
from generated ones (label 0), the generator to make the discriminator say 1 (the
non-saturating loss). Each epoch is one pass over the real points, with one discriminator and
one generator step per batch.

The generator's weights oscillate from step to step as the two players chase each other, so the
model also keeps an exponential moving average of them (decay `AVERAGE_DECAY` per step, as in
Yazici et al., "The Unusual Effectiveness of Averaging in GAN Training", 2019), and samples and
is evaluated with that average: it settles onto the modes, where the raw generator's coverage
jumps by a few modes from one epoch to the next.

Evaluation draws `EVAL_SAMPLES` points from a fixed noise batch and counts a sample as near a
mode when it lies within 3 standard deviations (3 * STD) of that mode's centre:

    test_modes_covered   modes with at least 2% of the samples near them (0 to 8); a generator
                         that collapses onto a few modes scores low however sharp those are
    test_mode_quality    the fraction of samples near any mode; a generator that smears its
                         samples around the circle scores low however many modes it touches
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import tinygrad_like as tg
from tinygrad_like import nn, optim
from tinygrad_like.data import TensorDataset
from tinygrad_like.models.task import Task, TrainConfig
from tinygrad_like.nn import functional as F

MODES, RADIUS, STD = 8, 2.0, 0.05
LATENT = 8
AVERAGE_DECAY = 0.99
EVAL_SAMPLES, COVERED_FRACTION = 2000, 0.02


def mode_centres() -> np.ndarray:
    angles = 2 * np.pi * np.arange(MODES) / MODES
    return RADIUS * np.stack([np.cos(angles), np.sin(angles)], 1)


def eight_gaussians(samples: int = 8000, seed: int = 0) -> np.ndarray:
    """(samples, 2) float32 points, equally likely from each mode."""
    rng = np.random.default_rng(seed)
    centres = mode_centres()[rng.integers(MODES, size=samples)]
    return (centres + STD * rng.standard_normal((samples, 2))).astype(np.float32)


def mode_coverage(points: np.ndarray) -> tuple[int, float]:
    """(modes with >= COVERED_FRACTION of `points` within 3 STD, fraction within 3 STD of any)."""
    distances = np.linalg.norm(points[:, None, :] - mode_centres()[None], axis=-1)
    near = distances <= 3 * STD  # (samples, modes); the modes are far apart, so one per row
    return int((near.mean(0) >= COVERED_FRACTION).sum()), float(near.any(1).mean())


def _mlp(inputs: int, hidden: int, outputs: int,
         activation: Callable[[], nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), activation(), nn.Linear(hidden, hidden),
                         activation(), nn.Linear(hidden, outputs))


class GAN(nn.Module):
    def __init__(self, latent: int = LATENT, hidden: int = 128):
        super().__init__()
        self.latent = latent
        self.generator = _mlp(latent, hidden, 2, nn.ReLU)
        self.discriminator = _mlp(2, hidden, 1, functools.partial(nn.LeakyReLU, 0.2))
        self.average_generator = copy.deepcopy(self.generator).requires_grad_(False)

    def forward(self, noise: tg.Tensor) -> tg.Tensor:
        """Points (N, 2) from noise (N, latent), made by the averaged generator."""
        return self.average_generator(noise)

    def update_average(self) -> None:
        with tg.no_grad():
            for average, current in zip(self.average_generator.parameters(),
                                        self.generator.parameters()):
                average.mul_(AVERAGE_DECAY).add_(current * (1 - AVERAGE_DECAY))


class DataParallelGAN(nn.Module):
    """A GAN whose players average their gradients over the ranks of a `train --nproc` job.

    Each player has its own DistributedDataParallel rather than one for the whole GAN: a step
    runs one backward pass per player's optimizer, and a DDP reduces the gradients of one
    forward per backward. The generator step's backward also averages the discriminator's
    gradients, which are dropped (zero_grad) before the discriminator's next step, as in a
    single process."""

    def __init__(self, gan: GAN):
        super().__init__()
        self.gan = gan
        self.latent = gan.latent
        self.generator = tg.nn.parallel.DistributedDataParallel(gan.generator)
        self.discriminator = tg.nn.parallel.DistributedDataParallel(gan.discriminator)

    def update_average(self) -> None:
        self.gan.update_average()


@dataclass
class OptimizerPair:
    """The generator's and the discriminator's optimizers, checkpointed as one."""

    generator: optim.Optimizer
    discriminator: optim.Optimizer

    def state_dict(self) -> dict:
        return {"generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.generator.load_state_dict(state_dict["generator"])
        self.discriminator.load_state_dict(state_dict["discriminator"])


def _bce(logits: tg.Tensor, label: float) -> tg.Tensor:
    targets = (tg.ones if label else tg.zeros)(*logits.shape, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, targets)


class GANTask(Task):
    name = "gan"
    defaults = {"epochs": 20, "batch_size": 128, "lr": 2e-3}
    summary_metric = "test_modes_covered"

    def build(self, config: TrainConfig) -> GAN:
        return GAN()

    def make_optimizer(self, model: GAN, config: TrainConfig) -> OptimizerPair:
        # beta1 = 0.5, as in DCGAN (Radford et al., 2015): with 0.9 the two players oscillate
        def make(module: nn.Module) -> optim.Optimizer:
            return optim.Adam(module.parameters(), lr=config.lr, betas=(0.5, 0.999),
                              weight_decay=config.weight_decay)

        return OptimizerPair(make(model.generator), make(model.discriminator))

    def data_parallel(self, model: GAN) -> DataParallelGAN:
        return DataParallelGAN(model)

    def train_epoch(self, model: GAN | DataParallelGAN, optimizer: OptimizerPair,
                    config: TrainConfig, progress) -> dict:
        loader = self.train_loader(TensorDataset(tg.from_numpy(eight_gaussians())), config)
        d_total = g_total = 0.0
        for (real,) in progress(loader, total=len(loader)):
            real = real.to(config.device)
            # the global batch's noise, drawn alike on every rank, and this rank's rows of it:
            # the ranks together generate from the noise a single process draws
            noise = self.rank_rows(tg.randn(len(real) * self.world_size(), model.latent,
                                            device=config.device))
            fake = model.generator(noise)
            # real and generated points in one forward: a DDP reduces once per forward
            logits = model.discriminator(tg.cat([real, fake.detach()]))
            d_loss = _bce(logits[:len(real)], 1.0) + _bce(logits[len(real):], 0.0)
            optimizer.discriminator.zero_grad()
            d_loss.backward()
            optimizer.discriminator.step()
            g_loss = _bce(model.discriminator(fake), 1.0)
            optimizer.generator.zero_grad()
            g_loss.backward()
            optimizer.generator.step()
            model.update_average()
            d_total, g_total = d_total + d_loss.item(), g_total + g_loss.item()
        d_total, g_total = self.mean_over_ranks(d_total, g_total)
        return {"d_loss": d_total / len(loader), "g_loss": g_total / len(loader)}

    def evaluate(self, model: GAN, config: TrainConfig) -> dict:
        # the same noise every epoch, so the metrics follow the generator alone
        noise = np.random.default_rng(1).standard_normal((EVAL_SAMPLES, model.latent))
        points = model(tg.from_numpy(noise.astype(np.float32)).to(config.device))
        covered, quality = mode_coverage(points.cpu().numpy())
        return {"test_modes_covered": covered, "test_mode_quality": quality}
