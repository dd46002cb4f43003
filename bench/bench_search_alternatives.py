"""Alternatives to the fast search's first-order screening, measured against the exact search.

The fast method (``fslib.dfm.search(..., method="fast")``) is measured by
``bench_search.py``. This script measures other ways to spend less than the
exact search, which the documentation of ``fslib.dfm.search`` discusses. It
uses the same small CNN and data as part (d) of ``bench_search.py``: syn1,
syn4 and the real-photo set at 32 px, 40 test images per class, top 5%.

(e) coarse-to-fine: exact search with 2x2 patches, then exact 1x1 values
    inside the ``c`` best coarse patches. A second variant goes from 4x4
    to 2x2 inside the best 4x4 patches, then to 1x1. Compute counts every
    patch evaluated on all images of its class.
(f) image subsets: every unit evaluated exactly on ``m`` images of its
    class, drawn at random (the mean of those), or the ``m`` images of
    largest unfiltered loss with first-order changes for the others.
(g) per class, the median over the 30 units of largest exact change of the
    correlation between the exact and the first-order change of each
    image's loss.

Each row prints the compute share of the exact search (forward passes of
images; the float64 first-order pass counts 3 per image), and the Jaccard
index (mean and smallest class) and recall of the top-5% maps against the
exact ones, with the same tie rule.

Run: ``.venv/bin/python bench/bench_search_alternatives.py`` (about 4 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
import torch.nn.functional as F

from bench_search import load_data, small_cnn, train
from fslib.dfm.search import (
    SearchResult,
    _first_order_units,
    _removal_inputs,
    compare_maps,
    search,
    unit_layout,
)


def per_image_changes(model, images: torch.Tensor, label: int, units: int, batch_size: int = 256) -> np.ndarray:
    """Return the ``(B, U)`` exact change of each image's loss with each unit removed."""
    layout = unit_layout(tuple(images.shape[-2:]), 1)
    spectrum = torch.fft.fft2(images)
    count = images.shape[0]
    target = torch.full((count,), label)
    out = np.empty((count, units))
    step = max(1, batch_size // count)
    with torch.no_grad():
        own = F.cross_entropy(model(images).double(), target, reduction="none")
        for u0 in range(0, units, step):
            chosen = np.arange(u0, min(units, u0 + step))
            inputs = _removal_inputs(images, spectrum, layout, chosen)
            losses = F.cross_entropy(model(inputs).double(), target.repeat(len(chosen)), reduction="none")
            out[:, chosen] = (losses.view(len(chosen), count) - own[None]).T.numpy()
    return out


def scored(exact: SearchResult, changes: np.ndarray) -> tuple[float, float, float]:
    """Jaccard (mean, smallest) and recall of maps from ``(K, U)`` changes (NaN: not evaluated)."""
    estimate = SearchResult(unit_losses=changes + exact.baseline_loss[:, None], baseline_loss=exact.baseline_loss,
                            counts=exact.counts, noise_floor=exact.noise_floor, image_size=exact.image_size,
                            patch_size=1)
    comparison = compare_maps(estimate, exact, 5)
    return comparison["jaccard_mean"], min(comparison["jaccard"]), comparison["recall_mean"]


def ranked(values: np.ndarray, layout) -> np.ndarray:
    return np.lexsort((layout.unit_raster, layout.unit_radius, -values))


def children(parent, child, unit: int) -> np.ndarray:
    return np.unique(child.cell_unit[parent.cell_unit == unit])


def measure(name: str, per_class: int, epochs: int, seed: int) -> None:
    x_train, y_train, images, labels, classes = load_data(name, per_class)
    torch.manual_seed(0)
    model = small_cnn(classes)
    train(model, x_train, y_train, epochs, seed=0)
    size = tuple(images.shape[-2:])
    fine, mid, coarse = (unit_layout(size, p) for p in (1, 2, 4))
    exact = search(model, images, labels, progress=False, device="cpu")
    exact_changes = exact.unit_losses - exact.baseline_loss[:, None]
    by_patch = {p: search(model, images, labels, patch_size=p, progress=False, device="cpu") for p in (2, 4)}
    level = {p: r.unit_losses - r.baseline_loss[:, None] for p, r in by_patch.items()}
    total = fine.n_units * classes
    print(f"{name}: {classes} classes x {per_class} images; units per class 1x1 {fine.n_units}, "
          f"2x2 {mid.n_units}, 4x4 {coarse.n_units}")

    mid_children = [children(mid, fine, u) for u in range(mid.n_units)]
    coarse_children = [children(coarse, mid, u) for u in range(coarse.n_units)]
    for count in (7, 13, 30):
        est, cost = np.full_like(exact_changes, np.nan), 0
        for k in range(classes):
            cells = np.unique(np.concatenate([mid_children[u] for u in ranked(level[2][k], mid)[:count]]))
            est[k, cells] = exact_changes[k, cells]
            cost += mid.n_units + len(cells)
        print("  (e) 2x2 -> 1x1, best {:2d} coarse: compute {:5.1f}%; Jaccard {:.3f} (min {:.2f}), recall {:.3f}"
              .format(count, 100 * cost / total, *scored(exact, est)))
    for top4, top2 in ((3, 13), (8, 20), (12, 30)):
        est, cost = np.full_like(exact_changes, np.nan), 0
        for k in range(classes):
            inner = np.unique(np.concatenate([coarse_children[u] for u in ranked(level[4][k], coarse)[:top4]]))
            values = np.full(mid.n_units, -np.inf)
            values[inner] = level[2][k, inner]
            best = ranked(values, mid)[:min(top2, len(inner))]
            cells = np.unique(np.concatenate([mid_children[u] for u in best]))
            est[k, cells] = exact_changes[k, cells]
            cost += coarse.n_units + len(inner) + len(cells)
        print("  (e) 4x4 -> 2x2 -> 1x1, best {} then {}: compute {:5.1f}%; Jaccard {:.3f} (min {:.2f}), recall {:.3f}"
              .format(top4, top2, 100 * cost / total, *scored(exact, est)))

    model64 = copy.deepcopy(model).double().eval()
    changes, first, own = [], [], []
    for k in range(classes):
        xs = images[labels == k]
        changes.append(per_image_changes(model, xs, k, fine.n_units))
        scores, _ = _first_order_units(model64, xs, labels[labels == k], fine, 64, per_image=True)
        first.append(scores)
        with torch.no_grad():
            own.append(F.cross_entropy(model(xs).double(), labels[labels == k], reduction="none").numpy())
    rng = np.random.default_rng(seed)
    for m in (2, 4, 8):
        plain, hybrid = np.zeros_like(exact_changes), np.zeros_like(exact_changes)
        for k in range(classes):
            count = changes[k].shape[0]
            pick = rng.choice(count, m, replace=False)
            plain[k] = changes[k][pick].mean(axis=0)
            hard = np.argsort(-own[k], kind="stable")[:m]
            easy = np.setdiff1d(np.arange(count), hard)
            hybrid[k] = (changes[k][hard].sum(axis=0) + first[k][easy].sum(axis=0)) / count
        share = m / per_class
        print("  (f) {} random images per unit: compute {:5.1f}%; Jaccard {:.3f} (min {:.2f}), recall {:.3f}"
              .format(m, 100 * share, *scored(exact, plain)))
        print("  (f) {} hardest images + first order: compute {:5.1f}%; Jaccard {:.3f} (min {:.2f}), recall {:.3f}"
              .format(m, 100 * (share + 4 / fine.n_units), *scored(exact, hybrid)))
    medians = []
    for k in range(classes):
        top = np.argsort(-exact_changes[k])[:30]
        medians.append(np.nanmedian([np.corrcoef(changes[k][:, u], first[k][:, u])[0, 1] for u in top]))
    print("  (g) median correlation of exact and first-order per-image changes, per class: "
          + ", ".join(f"{v:.2f}" for v in medians))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="syn1,syn4,photos", help="comma-separated (default: syn1,syn4,photos)")
    parser.add_argument("--per-class", type=int, default=40, help="test images per class (default: 40)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random image subsets (default: 0)")
    args = parser.parse_args()
    torch.manual_seed(0)
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        measure(name, args.per_class, args.epochs, args.seed)


if __name__ == "__main__":
    main()
