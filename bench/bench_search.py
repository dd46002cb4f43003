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

(d) on each data set of ``--datasets`` (default syn1, syn4 and the real-photo
    set at 32 px, each with a small CNN trained for ``--epochs``): the fast
    method's compute share (forward-pass image evaluations, the screening's
    float64 forward and backward pass charged as 3 per image), wall-clock
    speed-up, Jaccard index and recall of its top-5% maps against the exact
    ones, and the largest TPR and FPR difference of the two maps'
    :func:`fslib.dfm.shortcut_table`. ``--sweep`` adds a row per fast
    setting (the measured trade-off curve).

Run: ``.venv/bin/python bench/bench_search.py`` (about 3 minutes on 2 CPU cores, 167 s measured);
``--datasets syn1 --skip-loop`` for (a), (c) and (d) on syn1 only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fslib.datasets import normalization_stats, normalize, real_photos, synthetic
from fslib.dfm import shortcut_table
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


def load_data(name: str, per_class: int):
    """Return normalised train images and labels, search images and labels, and the class count."""
    if name == "photos":
        train_set, test_set = real_photos("train", size=32), real_photos("test", size=32)
    else:
        train_set, test_set = synthetic(name, "train", cache_dir=False), synthetic(name, "test", cache_dir=False)
    mean, std = normalization_stats(train_set)
    x_train = normalize(train_set.images, mean, std)
    x_test = normalize(test_set.images, mean, std)
    keep = torch.cat([torch.nonzero(test_set.labels == k).flatten()[:per_class] for k in range(test_set.num_classes)])
    return x_train, train_set.labels, x_test[keep], test_set.labels[keep], train_set.num_classes


#: Fast settings of the --sweep curve: (fast_initial, fast_subset, fast_margin, fast_order).
SWEEP = [(4.0, 1, 1.0, "loss"), (8.0, 1, 1.0, "loss"), (6.0, 1, 1.5, "loss"), (4.0, 1, 1.0, "first_order"),
         (6.0, 1, 1.0, "first_order"), (6.0, 1, 1.5, "first_order")]


def checkpoint_data(path: str, per_class: int):
    """Return the model of an fslib checkpoint and its normalised real-photo test images and labels."""
    from fslib.models import load_model

    model, meta = load_model(path)
    test_set = real_photos("test", size=int(meta["image_size"]))
    mean = torch.tensor(meta["normalization"]["mean"])
    std = torch.tensor(meta["normalization"]["std"])
    x_test = normalize(test_set.images, mean, std)
    keep = torch.cat([torch.nonzero(test_set.labels == k).flatten()[:per_class] for k in range(test_set.num_classes)])
    return model, x_test[keep], test_set.labels[keep], test_set.num_classes


def compare_on(name: str, args) -> None:
    """Print (d) for one data set, or for the photo model of ``args.photo_checkpoint`` when ``name`` is ``checkpoint``."""
    if name == "checkpoint":
        model, images, labels, classes = checkpoint_data(args.photo_checkpoint, args.per_class)
        name = f"photos, {args.photo_checkpoint}"
    else:
        x_train, y_train, images, labels, classes = load_data(name, args.per_class)
        torch.manual_seed(0)
        model = small_cnn(classes)
        train(model, x_train, y_train, args.epochs, seed=0)
    start = time.perf_counter()
    exact = search(model, images, labels, batch_size=args.batch_size, progress=False, device="cpu")
    exact_seconds = time.perf_counter() - start
    exact_table = shortcut_table(model, images, labels, exact.dfm(5), device="cpu").table
    print(f"(d) {name}: {classes} classes x {args.per_class} images; exact search {exact_seconds:.1f} s; "
          f"cells above the floor per class {exact.above_floor.tolist()}")
    settings = [None] + (SWEEP if args.sweep else [])
    for setting in settings:
        options = {} if setting is None else dict(zip(("fast_initial", "fast_subset", "fast_margin", "fast_order"), setting))
        start = time.perf_counter()
        fast = search(model, images, labels, method="fast", top_percent=5, batch_size=args.batch_size,
                      progress=False, device="cpu", **options)
        fast_seconds = time.perf_counter() - start
        comparison = compare_maps(fast, exact, 5)
        table = shortcut_table(model, images, labels, fast.dfm(5), device="cpu").table
        share = fast.metadata["forward_equivalents"] / exact.metadata["forward_equivalents"]
        label = "default" if setting is None else "pool {:g}k, {} hard image(s), margin {:g}, order {}".format(*setting)
        print(f"    {label}: compute share {100 * share:.1f}% ({1 / share:.1f}x less), wall-clock "
              f"{exact_seconds / fast_seconds:.1f}x; Jaccard {comparison['jaccard_mean']:.3f} "
              f"(min {min(comparison['jaccard']):.2f}), recall {comparison['recall_mean']:.3f}; "
              f"max |dTPR| {np.abs(table['tpr'] - exact_table['tpr']).max():.3f}, "
              f"max |dFPR| {np.abs(table['fpr'] - exact_table['fpr']).max():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=10, help="test images per class (default: 10)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default: 3)")
    parser.add_argument("--batch-size", type=int, default=256, help="inputs per forward pass (default: 256)")
    parser.add_argument("--loop-positions", type=int, default=8, help="frequencies timed for (b) (default: 8)")
    parser.add_argument("--datasets", default="syn1,syn4,photos",
                        help="comma-separated data sets for (d): syn1..syn4, photos (default: syn1,syn4,photos)")
    parser.add_argument("--per-class-d", type=int, default=40, help="images per class in (d) (default: 40)")
    parser.add_argument("--sweep", action="store_true", help="add the trade-off curve of fast settings to (d)")
    parser.add_argument("--skip-loop", action="store_true", help="skip (a) to (c) and run only (d)")
    parser.add_argument("--photo-checkpoint", metavar="PATH",
                        help="also run (d) with the model of this fslib checkpoint on the real-photo test "
                        "images, e.g. the DFM chapter's model.pt in the artifact store")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if not args.skip_loop:
        loop_benchmarks(args)
    d_args = argparse.Namespace(**vars(args))
    d_args.per_class = args.per_class_d
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    for name in names + (["checkpoint"] if args.photo_checkpoint else []):
        compare_on(name, d_args)


def loop_benchmarks(args) -> None:
    """Print (a), (b) and (c) on syn1."""

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
          f"({100 * fast.exact_share:.1f}%), compute share (forward-pass equivalents) "
          f"{100 * fast.metadata['forward_equivalents'] / exact.metadata['forward_equivalents']:.1f}%")
    print(f"    top 5%: Jaccard {comparison['jaccard_mean']:.3f} (per class "
          f"{', '.join(f'{v:.2f}' for v in comparison['jaccard'])}), recall of exact above-floor cells "
          f"{comparison['recall_mean']:.3f}; cells above the floor per class {exact.above_floor.tolist()}")


if __name__ == "__main__":
    main()
