"""Measure the training throughput of fslib.training.train against a bare PyTorch loop.

Both sides train the same architecture from the same initial weights on the
same in-memory images (random, 32 px, 10 classes). They use the same SGD
optimizer (Nesterov momentum 0.9, weight decay 1e-4), batch size and number
of optimizer steps, without augmentation and without checkpoints:

- fslib: ``train(model, data, val, TrainConfig(augment="none", ...))``. It is
  timed from the first to the last optimizer step with a callback, so the
  figure includes data loading, normalisation, per-epoch validation on a
  small validation set and the callback hooks, but not the set-up and the
  final evaluation. The wall time of the whole call is printed too.
- baseline: a ``DataLoader`` over a ``TensorDataset`` with ``shuffle=True``,
  normalisation on the device, forward, backward and step.

The script prints images per second for both and the overhead,
``baseline images/s / fslib images/s - 1`` (the target is 10% or less).
The two sides run in turn ``--repeats`` times. It prints the overhead of
the best run of each side and the median overhead of the pairs, because on
a machine shared with other jobs single runs vary by tens of percent. Run it
with::

    .venv/bin/python bench/bench_train.py [--device cpu|cuda] [--steps 40] [--width 4] [--threads 1]

On a CPU the default is one torch thread: small models gain little from
more, and on a machine shared with other jobs threads compete for cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fslib.datasets import TensorImageDataset
from fslib.models import build_model
from fslib.training import Callback, TrainConfig, train


class _StepTimer(Callback):
    """Record the time of the first and the last optimizer step."""

    def __init__(self, device: torch.device):
        self.device = device
        self.first = self.last = None

    def on_iteration_end(self, state):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now


def fresh_model(width: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", 10, 32, width=width).to(device)


def run_fslib(data, val, steps: int, batch_size: int, width: int, device: torch.device) -> tuple[float, float]:
    """Return (images per second between the first and the last step, wall seconds of the call)."""
    model = fresh_model(width, device)
    timer = _StepTimer(device)
    config = TrainConfig(iterations=steps, batch_size=batch_size, augment="none", progress=False,
                         checkpoint_epochs=None, device=str(device))
    started = time.perf_counter()
    train(model, data, val, config, callbacks=[timer])
    wall = time.perf_counter() - started
    # The first step is the start mark, so steps - 1 steps lie between the marks.
    return (steps - 1) * batch_size / (timer.last - timer.first), wall


def run_baseline(data, steps: int, batch_size: int, width: int, device: torch.device) -> float:
    """Return images per second of a bare loop, timed like the fslib side (first to last step)."""
    model = fresh_model(width, device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    mean = data.images.mean(dim=(0, 2, 3)).to(device).view(1, -1, 1, 1)
    std = data.images.std(dim=(0, 2, 3)).to(device).view(1, -1, 1, 1)
    loader = DataLoader(TensorDataset(data.images, data.labels), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    done = 0
    first = last = None
    while done < steps:
        for images, labels in loader:
            images = (images.to(device) - mean) / std
            labels = labels.to(device)
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            last = time.perf_counter()
            first = first or last
            done += 1
            if done == steps:
                break
    return (steps - 1) * batch_size / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run (default: 40)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument("--width", type=int, default=4, help="resnet18 width (default: 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--images", type=int, default=2048, help="training images (default: 2048)")
    parser.add_argument("--repeats", type=int, default=4, help="runs of each side (default: 4)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    data = TensorImageDataset(torch.rand(args.images, 3, 32, 32, generator=generator),
                              torch.randint(0, 10, (args.images,), generator=generator))
    val = TensorImageDataset(torch.rand(64, 3, 32, 32, generator=generator), torch.arange(64) % 10)

    print(f"resnet18 width {args.width}, 32 px, batch {args.batch_size}, {args.steps} steps, "
          f"{args.images} images, device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    fslib_rates, walls, baseline_rates = [], [], []
    for repeat in range(args.repeats):
        rate, wall = run_fslib(data, val, args.steps, args.batch_size, args.width, device)
        fslib_rates.append(rate)
        walls.append(wall)
        baseline_rates.append(run_baseline(data, args.steps, args.batch_size, args.width, device))
        print(f"run {repeat + 1}: fslib {fslib_rates[-1]:.0f} images/s (whole call {wall:.1f} s), "
              f"baseline {baseline_rates[-1]:.0f} images/s")
    best_fslib, best_baseline = max(fslib_rates), max(baseline_rates)
    pair_overheads = [b / f - 1 for f, b in zip(fslib_rates, baseline_rates)]
    print(f"best: fslib {best_fslib:.0f} images/s, baseline {best_baseline:.0f} images/s, "
          f"overhead {best_baseline / best_fslib - 1:+.1%} (target <= +10%)")
    print(f"median overhead of the {len(pair_overheads)} pairs: {statistics.median(pair_overheads):+.1%}")


if __name__ == "__main__":
    main()
