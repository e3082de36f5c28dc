"""The `tinygrad-like` command (also `python -m tinygrad_like`).

Subcommands:
  demo   fit a tiny model with autograd and gradcheck one of its ops (the default)
"""

from __future__ import annotations

import argparse
import sys

import tinygrad_like as tg


def demo() -> None:
    """Least-squares fit of y = 3x - 1 by gradient descent, then a gradient check."""
    tg.manual_seed(0)
    x = tg.randn(64, 1)
    y = 3 * x - 1 + 0.01 * tg.randn(64, 1)
    w = tg.zeros(1, 1, requires_grad=True)
    b = tg.zeros(1, requires_grad=True)
    for step in range(101):
        loss = ((x @ w + b - y) ** 2).mean()
        w.grad = b.grad = None
        loss.backward()
        with tg.no_grad():
            w.sub_(0.1 * w.grad)
            b.sub_(0.1 * b.grad)
        if step % 25 == 0:
            print(f"step {step:3d}  loss {loss.item():.5f}")
    print(f"fitted y = {w.item():.3f} x + {b.item():.3f}  (true: 3x - 1)")
    probe = tg.randn(3, 4, dtype=tg.float64, requires_grad=True)
    ok = tg.gradcheck(lambda t: (t.tanh() @ t.T).logsumexp(1), probe)
    print(f"gradcheck of logsumexp(tanh(x) @ x.T) in float64: {'passed' if ok else 'failed'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinygrad-like", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("demo", help="fit a tiny model with autograd and run a gradient check")
    args = parser.parse_args(argv)
    if args.command in (None, "demo"):
        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
