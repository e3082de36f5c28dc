"""The training and evaluation loop shared by the classifier seed models."""

from __future__ import annotations

import numpy as np

from tinygrad_like import metrics
from tinygrad_like.data import DataLoader, Dataset
from tinygrad_like.models.task import Task, TrainConfig
from tinygrad_like.nn import functional as F


class ClassificationTask(Task):
    """Mini-batch training on (input, class) pairs with cross-entropy (or BCE for binary)."""

    binary = False  # True: one logit per sample and binary cross-entropy with logits
    report_f1 = False  # also report macro precision, recall and F1 on the test set

    def datasets(self, config: TrainConfig) -> tuple[Dataset, Dataset]:
        raise NotImplementedError

    def _data(self, config: TrainConfig) -> tuple[Dataset, Dataset]:
        if not hasattr(self, "_cached_data"):
            self._cached_data = self.datasets(config)
        return self._cached_data

    def loss(self, logits, targets):
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits.reshape(-1),
                                                      targets.to(logits.dtype))
        return F.cross_entropy(logits, targets)

    def predict(self, logits):
        return (logits.reshape(-1) > 0).long() if self.binary else logits.argmax(-1)

    def train_epoch(self, model, optimizer, config, progress) -> dict:
        train_set, _ = self._data(config)
        loader = self.train_loader(train_set, config)
        total, count, correct = 0.0, 0, 0
        for inputs, targets in progress(loader, total=len(loader)):
            inputs, targets = inputs.to(config.device), targets.to(config.device)
            logits = model(inputs)
            loss = self.loss(logits, targets)
            optimizer.zero_grad()
            self.loss_with_penalty(loss, model, config).backward()
            optimizer.step()
            total += loss.item() * len(targets)
            count += len(targets)
            correct += int((self.predict(logits) == targets).sum().item())
        total, count, correct = self.sum_over_ranks(total, count, correct)
        return {"train_loss": total / count, "train_accuracy": correct / count}

    def evaluate(self, model, config) -> dict:
        _, test_set = self._data(config)
        predictions, targets, total = [], [], 0.0
        for inputs, target in DataLoader(test_set, 256):
            logits = model(inputs.to(config.device))
            total += self.loss(logits, target.to(config.device)).item() * len(target)
            predictions.append(self.predict(logits).cpu().numpy())
            targets.append(target.numpy())
        pred, target = np.concatenate(predictions), np.concatenate(targets)
        result = {"test_loss": total / len(target), "test_accuracy": metrics.accuracy(pred, target)}
        if self.report_f1:
            result.update(test_precision=metrics.precision(pred, target),
                          test_recall=metrics.recall(pred, target),
                          test_f1=metrics.f1_score(pred, target))
        return result
