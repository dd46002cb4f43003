"""Benchmark of the dominant-frequency-map search on a small CNN trained on the syn1 preset (CPU).

Prints three ratios, all measured in this run:

(a) exact search time / time of the same number of plain forward passes at
    the same batch size (the physical limit is 1.0);
(b) speed-up of the exact search over a straightforward loop (per
    frequency, per image, per channel masking with numpy FFTs, then one
    forward pass of the class's filtered images per frequency), timed on a
    subset of frequencies and extrapolated to all of them;
(c) the fast method's speed-up over the exact search, and the Jaccard index
    and recall of its top-5% maps against the exact ones.

Run: ``.venv/bin/python bench/bench_search.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fslib.datasets import normalization_stats, normalize, synthetic
from fslib.dfm.search import compare_maps, search, unit_layout
from fslib.fourier import patch_mask


def small_cnn(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, classes),
    )


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            F.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    model.eval()


def plain_forward_seconds(model: nn.Module, inputs: int, batch_size: int, shape: tuple[int, ...]) -> float:
    batch = torch.randn(batch_size, *shape)
    start = time.perf_counter()
    with torch.no_grad():
        for done in range(0, inputs, batch_size):
            model(batch[: min(batch_size, inputs - done)])
    return time.perf_counter() - start


def paper_loop_seconds(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, positions: list) -> float:
    """Time the loop structure of a direct port on the given (row, col) positions."""
    height, width = images.shape[-2:]
    start = time.perf_counter()
    with torch.no_grad():
        for row, col in positions:
            mask = np.fft.ifftshift(patch_mask((height, width), row, col).numpy())
            for k in range(int(labels.max()) + 1):
                own = images[labels == k].numpy()
                filtered = np.empty_like(own)
                for i, image in enumerate(own):
                    for c, channel in enumerate(image):
                        filtered[i, c] = np.real(np.fft.ifft2(np.fft.fft2(channel) * mask))
                F.cross_entropy(model(torch.from_numpy(filtered)), labels[labels == k])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=10, help="test images per class (default: 10)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default: 3)")
    parser.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass (default: 256)")
    parser.add_argument("--loop-positions", type=int, default=8, help="frequencies timed for (b) (default: 8)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    train_set = synthetic("syn1", "train", cache_dir=False)
    test_set = synthetic("syn1", "test", cache_dir=False)
    mean, std = normalization_stats(train_set)
    x_train = normalize(train_set.images, mean, std)
    x_test = normalize(test_set.images, mean, std)
    keep = torch.cat([torch.nonzero(test_set.labels == k).flatten()[: args.per_class] for k in range(test_set.num_classes)])
    images, labels = x_test[keep], test_set.labels[keep]

    model = small_cnn(train_set.num_classes)
    train(model, x_train, train_set.labels, args.epochs, seed=0)
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == test_set.labels).float().mean())
    size = tuple(images.shape[-2:])
    units = unit_layout(size, 1).n_units
    print(f"model: small CNN, syn1, test accuracy {accuracy:.3f}; {images.shape[0]} images, {units} units per class")

    start = time.perf_counter()
    exact = search(model, images, labels, batch_size=args.batch_size, progress=False, device="cpu")
    exact_seconds = time.perf_counter() - start
    inputs = units * int(exact.counts.sum())
    forward_seconds = plain_forward_seconds(model, inputs, args.batch_size, tuple(images.shape[1:]))
    print(f"(a) exact search {exact_seconds:.2f} s for {inputs} inputs; plain forwards {forward_seconds:.2f} s; "
          f"ratio {exact_seconds / forward_seconds:.3f}")

    rng = np.random.default_rng(0)
    cells = rng.choice(size[0] * size[1], size=args.loop_positions, replace=False)
    positions = [(int(c) // size[1], int(c) % size[1]) for c in cells]
    loop_seconds = paper_loop_seconds(model, images, labels, positions)
    # A direct port visits every cell (both members of a mirror pair).
    loop_total = loop_seconds / len(positions) * size[0] * size[1]
    print(f"(b) direct port: {loop_seconds:.2f} s for {len(positions)} of {size[0] * size[1]} frequencies, "
          f"extrapolated {loop_total:.1f} s; speed-up {loop_total / exact_seconds:.1f}x")

    start = time.perf_counter()
    fast = search(model, images, labels, method="fast", top_percent=5, batch_size=args.batch_size,
                  progress=False, device="cpu")
    fast_seconds = time.perf_counter() - start
    comparison = compare_maps(fast, exact, 5)
    print(f"(c) fast search {fast_seconds:.2f} s, speed-up {exact_seconds / fast_seconds:.1f}x, "
          f"exact evaluations {fast.exact_evaluations}/{exact.exact_evaluations} "
          f"({100 * fast.exact_share:.1f}%)")
    print(f"    top 5%: Jaccard {comparison['jaccard_mean']:.3f} (per class "
          f"{', '.join(f'{v:.2f}' for v in comparison['jaccard'])}), recall of exact above-floor cells "
          f"{comparison['recall_mean']:.3f}; cells above the floor per class {exact.above_floor.tolist()}")


if __name__ == "__main__":
    main()
