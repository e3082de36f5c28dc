"""The `tinygrad-like` command (also `python -m tinygrad_like`).

  tinygrad-like train MODEL [options]   train a seed model on its bundled data
  tinygrad-like demo                    a tiny autograd example and a gradient check
  tinygrad-like kernels                 compile every Triton kernel for sm_80/sm_90 and report
                                        registers, spills, tensor-core use and a roofline
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

MODELS = ("mlp", "cnn", "perceptron", "gru-lm", "bilstm", "transformer", "gan")
LAUNCHED = "TINYGRAD_LIKE_LAUNCHED"  # set in the ranks that `train --nproc N` starts


def _parser() -> argparse.ArgumentParser:
    from tinygrad_like.kernel_report import BOUND_MODEL  # plain text: imports no Triton

    parser = argparse.ArgumentParser(prog="tinygrad-like",
                                     description="tinygrad_like: train the seed models")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a seed model on its bundled data")
    train.add_argument("model", choices=MODELS)
    train.add_argument("--device", choices=("cpu", "cuda", "interp"), default="cpu")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--optimizer",
                       choices=("sgd", "adam", "adamw", "adagrad", "adadelta", "rmsprop"))
    train.add_argument("--weight-decay", type=float, help="L2 through the optimizer")
    train.add_argument("--l1", type=float, help="weight of an L1 penalty added to the loss")
    train.add_argument("--dropout", type=float)
    train.add_argument("--seed", type=int)
    train.add_argument("--save", metavar="CKPT", help="write a .safetensors checkpoint")
    train.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint")
    train.add_argument("--plot", metavar="PNG", help="write loss/metric curves")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--nproc", type=int, default=1,
                       help="data-parallel ranks launched with mpirun (each loads "
                       "batch-size / nproc samples per step)")
    commands.add_parser("demo", help="fit a line with autograd and run a gradient check")
    kernels = commands.add_parser(
        "kernels", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="compile the Triton kernels for sm_80 and sm_90 (no GPU needed) and print "
        "registers, spills, tensor-core, TMA and cp.async use, the main loop and the bound",
        description="Compile every Triton kernel variant for sm_80 and sm_90 (no GPU needed) "
        "and print, from its cubin and SASS, registers, spills, tensor-core instructions, TMA "
        "(UTMALDG) and cp.async (LDGSTS) loads, the main loop's instructions and narrow "
        "global loads, and the estimated bound.", epilog=BOUND_MODEL)
    kernels.add_argument("--dump", metavar="DIR",
                         help="also write each variant's cubin and SASS to DIR")
    kernels.add_argument("--arch", type=int, choices=(80, 90), action="append",
                         help="only this architecture (repeatable; default both)")
    return parser


def _format_row(row: dict, columns: list[str]) -> str:
    cells = []
    for column in columns:
        value = row.get(column, "")
        cells.append(f"{value:>12.4f}" if isinstance(value, float) else f"{value!s:>12}")
    return " ".join(cells)


def _launch(nproc: int, argv: list[str]) -> int:
    """Run this same command as `nproc` MPI ranks; returns mpirun's exit status."""
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    mpirun = mpirun if os.path.exists(mpirun) else shutil.which("mpirun")
    if mpirun is None:
        raise RuntimeError("train --nproc: mpirun not found; install Open MPI and mpi4py "
                           "(pip install 'tinygrad_like[distributed]')")
    root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    command = [mpirun, *root, "--oversubscribe", "-n", str(nproc), "-x", LAUNCHED,
               sys.executable, "-m", "tinygrad_like", *argv]
    return subprocess.run(command, env=dict(os.environ, **{LAUNCHED: "1"})).returncode


def _join_ranks(args) -> bool:
    """In a rank started by `_launch`: join the process group; True on rank 0."""
    from tinygrad_like import distributed as dist

    dist.init_process_group("mpi")
    if dist.get_rank() == 0:
        return True
    sys.stdout = open(os.devnull, "w")  # only rank 0 prints the table and the results
    return False


def train_command(args, argv: list[str]) -> int:
    from tqdm import tqdm

    from tinygrad_like.models import get_task, train

    if args.nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {args.nproc}")
    task = get_task(args.model)
    options = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
               "optimizer": args.optimizer, "weight_decay": args.weight_decay, "l1": args.l1,
               "dropout": args.dropout, "seed": args.seed, "device": args.device}
    config = task.config(**{k: v for k, v in options.items() if v is not None})
    if config.batch_size % args.nproc:
        raise ValueError(f"batch size {config.batch_size} must be divisible by --nproc "
                         f"{args.nproc} (each rank loads batch-size / nproc samples a step)")
    if args.nproc > 1 and LAUNCHED not in os.environ:
        return _launch(args.nproc, argv)
    leader = _join_ranks(args) if args.nproc > 1 else True
    if args.device != "cpu":
        from tinygrad_like.backend import get_backend

        get_backend(args.device)  # fail fast with the device's own message
    columns: list[str] = []

    def on_epoch(row: dict) -> None:
        if not columns:
            columns.extend(row)
            print(" ".join(f"{c:>12}" for c in columns))
        print(_format_row(row, columns), flush=True)

    def progress(iterable, **kwargs):
        return tqdm(iterable, leave=False, disable=args.quiet or not leader, file=sys.stderr,
                    **kwargs)

    print(f"training {task.name} for {config.epochs} epochs on {config.device} "
          f"({config.optimizer}, lr {config.lr}, batch {config.batch_size})")
    result = train(task, config, on_epoch, progress, args.save if leader else None,
                   args.resume)
    print("final test metrics: " + ", ".join(f"{k.removeprefix('test_')} {v:.4f}"
                                             for k, v in result.final.items()))
    if task.name == "gru-lm":
        print("sample: " + repr(task.sample_text(result.model, config)))
    if args.save:
        print(f"checkpoint written to {args.save}")
    if task.summary_metric in result.final:
        print(f"{task.summary_metric.replace('_', ' ')}: {result.final[task.summary_metric]:.4f}")
    if args.plot and leader:
        from tinygrad_like.models.plot import plot_history

        plot_history(result.history, args.plot, title=task.name)
        print(f"curves written to {args.plot}")
    return 0


def demo() -> None:
    """Least-squares fit of y = 3x - 1 by gradient descent, then a gradient check."""
    import tinygrad_like as tg

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


def kernels_command(args) -> int:
    from tinygrad_like import kernel_report

    rows = kernel_report.report_rows(tuple(args.arch or kernel_report.ARCHS))
    print(kernel_report.format_table(rows))
    if args.dump:
        written = kernel_report.dump(rows, args.dump)
        print(f"wrote {len(written)} files (cubin and SASS per variant) to {args.dump}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            demo()
            return 0
        if args.command == "kernels":
            return kernels_command(args)
        return train_command(args, sys.argv[1:] if argv is None else argv)
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as error:
        # bad arguments, files or devices: one line, not a traceback
        print(f"tinygrad-like: error: {error}", file=sys.stderr)
        from tinygrad_like import distributed as dist

        if dist.is_initialized() and dist.get_world_size() > 1:
            sys.stderr.flush()
            dist.abort(2)  # the other ranks may be waiting for this one in a collective
        return 2


if __name__ == "__main__":
    sys.exit(main())
