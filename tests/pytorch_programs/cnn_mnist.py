"""The pytorch/examples MNIST script's shape: a CNN with dropout, trained by Adadelta with a
StepLR schedule from a torch.utils.data DataLoader, then tested with summed NLL loss."""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, dropout=(0.25, 0.5)):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(dropout[0])
        self.dropout2 = nn.Dropout(dropout[1])
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def build_model():
    torch.manual_seed(1)
    return Net(dropout=(0.0, 0.0))  # dropout off: the two runs must see the same network


def _dataset(seed, n):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, 1, 14, 14)).astype(np.float32)
    labels = rng.integers(0, 10, size=n)
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


def train(model, epochs=2, seed=0):
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    train_loader = DataLoader(_dataset(seed, 64), batch_size=16, shuffle=False)
    test_loader = DataLoader(_dataset(seed + 1, 32), batch_size=32)
    model = model.to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    losses, first_grads = [], None
    for epoch in range(1, epochs + 1):
        model.train()
        for batch_idx, (data, target) in enumerate(train_loader):
            data, target = data.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            if first_grads is None:
                first_grads = {n: p.grad.cpu().numpy().copy() for n, p in model.named_parameters()}
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data.to(device))
            test_loss += F.nll_loss(output, target.to(device), reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return {"losses": losses, "grads": first_grads, "test_loss": test_loss,
            "correct": correct, "lr": scheduler.get_last_lr()}
