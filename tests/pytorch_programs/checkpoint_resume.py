"""Save a training run's checkpoint (model, optimizer, step and RNG-free plain values) with
torch.save to a .pt file, load it with torch.load(weights_only=True) into fresh objects, and
carry on: the resumed run must end where an uninterrupted one does."""

import numpy as np
import torch
import torch.nn as nn


def build_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def _steps(model, optimizer, start, stop, data):
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for step in range(start, stop):
        x, y = torch.from_numpy(data[0][step]), torch.from_numpy(data[1][step])
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def train(model, path, steps=8, seed=0):
    rng = np.random.default_rng(seed)
    data = (rng.standard_normal((steps, 5, 6)).astype(np.float32),
            rng.integers(0, 3, size=(steps, 5)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = _steps(model, optimizer, 0, steps // 2, data)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "step": steps // 2, "config": {"lr": 0.01, "name": "mlp"}}, path)

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    resumed = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=checkpoint["config"]["lr"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    losses += _steps(resumed, resumed_optimizer, checkpoint["step"], steps, data)
    return {"losses": losses,
            "params": {n: p.detach().numpy().copy() for n, p in resumed.named_parameters()}}
