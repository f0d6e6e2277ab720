"""The validation runs behind chapter 5's training recipe: a sweep, not a timing.

Chapter 5 trains its CNN for 8 epochs of batches of 128 at ``lr = 3e-3``, with
shifts of up to one pixel and a cosine schedule, and states the validation runs
that choice rests on. This module repeats them::

    MNIST_PATH=... OPENBLAS_NUM_THREADS=1 python -m utils.benchmarks.cnn_recipe

Each run trains ``stage5.cnn`` with Adam and ``stage5.shifted_cosine_epoch`` on
55,000 MNIST training images and prints its validation accuracy (5,000 images, the
chapter's split) after every epoch and its training time; the test set is never
touched. All of :data:`RUNS` take about 10 minutes on one CPU thread. The
accuracies depend on the BLAS library's thread count (summation order), so the
chapter's figures are those of one thread, as ``make test`` and ``make book`` run.
``make bench`` does not run this module (it has no ``bench_*`` function).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RUNS", "Run", "main", "train"]


@dataclass(frozen=True)
class Run:
    """One training run of chapter 5's network: its initialisation and settings."""

    seed: int
    num_epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3
    max_shift: int = 1
    channels: tuple[int, int] = (8, 16)

    def label(self) -> str:
        return (
            f"seed {self.seed}, {self.num_epochs} epochs, batches of "
            f"{self.batch_size}, lr {self.lr:g}, shift {self.max_shift}, "
            f"channels {self.channels}"
        )


# the runs chapter 5 states, in its order: epochs, lr, shifts, channels from seed 3,
# then batches of 64 against 128 from seeds 0, 3, 4 and 5
RUNS = (
    Run(3, num_epochs=4),
    Run(3, num_epochs=6),
    Run(3),
    Run(3, num_epochs=10),
    Run(3, lr=5e-3),
    Run(3, num_epochs=3, max_shift=0),
    Run(3, channels=(16, 32)),
    *(Run(seed, batch_size=64, lr=2e-3) for seed in (0, 3, 4, 5)),
    *(Run(seed) for seed in (0, 4, 5)),
)


def train(run: Run, ds) -> tuple[list[float], float]:  # noqa: ANN001 - a Dataset
    """Train chapter 5's network as ``run`` says, on ``ds`` (with a validation set).

    Returns:
        The validation accuracy after each epoch, and the training time in seconds.
    """
    from utils.reference import stage4 as nn
    from utils.reference import stage5

    steps_per_epoch = -(-len(ds.y_train) // run.batch_size)
    epoch_fn = stage5.shifted_cosine_epoch(
        run.lr, run.num_epochs * steps_per_epoch, ds.image_shape, run.max_shift
    )
    nn.manual_seed(run.seed)
    model = stage5.cnn(ds.image_shape, run.channels, hidden=128)
    optimizer = nn.Adam(model.parameters(), lr=run.lr)
    start = time.perf_counter()
    history = nn.fit(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        ds.X_train,
        ds.y_train,
        num_epochs=run.num_epochs,
        batch_size=run.batch_size,
        epoch_fn=epoch_fn,
        X_val=ds.X_val,
        y_val=ds.y_val,
        progress=False,
    )
    return list(history["val_acc"]), time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Run :data:`RUNS` (or the first ``--first`` of them) and print a line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--first", type=int, default=len(RUNS), help="runs to do")
    args = parser.parse_args(argv)
    from utils import data

    ds = data.load_mnist(fallback=True)
    ds = ds.with_validation(5000 if ds.name == "mnist" else 0.2)
    print(f"{ds.name}: {len(ds.y_train):,} training, {len(ds.y_val):,} validation")
    for run in RUNS[: args.first]:
        val_acc, seconds = train(run, ds)
        per_epoch = ", ".join(f"{a:.2%}" for a in val_acc)
        print(f"{run.label()}: validation {per_epoch}; {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
