"""``fslib dfm search``, ``fslib dfm merge`` and ``fslib dfm evaluate``: find and test dominant frequency maps."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write, sha256_file
from ..errors import InvalidFileError, InvalidInputError

logger = logging.getLogger(__name__)

_PRESETS = ("syn1", "syn2", "syn3", "syn4")
_RESULT_FILE = "loss_maps.npz"
_CHECKPOINT_FILE = "search_checkpoint.pt"
_DATA_HELP = ("data set: a synthetic preset (syn1..syn4), 'photos' (the embedded real-photo set), "
              "a folder written by 'fslib synth', or an image folder (<class>/*.png, "
              "optionally under <split>/)")


def register(subparsers) -> None:
    """Add ``fslib dfm search``, ``fslib dfm merge`` and ``fslib dfm evaluate``."""
    search = subparsers.add_parser(
        "search", help="search the dominant frequency map of every class of a trained model",
        description="For every class and frequency patch, record the model's mean cross-entropy loss on "
        "the class's images with the patch (and its mirror) removed; keep the top percent as the DFM.",
    )
    _add_model_data(search)
    search.add_argument("--patch-size", type=int, default=1, help="side of the frequency patch, in cells (default: 1)")
    search.add_argument("--per-class", type=int, metavar="N",
                        help="search with the first N images of each class of the split, in file order, "
                        "as the book's DFM chapter does with search_per_class (default: every image)")
    search.add_argument("--top", type=float, action="append",
                        help="percent of the spectrum kept in the DFM; repeat for several maps (default: 5). "
                        "The fast method is tuned to the largest value, so search each value on its own "
                        "for the best fast maps")
    search.add_argument("--ties", choices=("fill", "exclude"), default="fill",
                        help="fill the top share with changes below the noise floor, or leave them out (default: fill)")
    search.add_argument("--method", choices=("exact", "fast"), default="exact",
                        help="exact: every patch on every image (default); fast: first-order screening, then "
                        "exact evaluations on more images only for candidates near the map's boundary")
    search.add_argument("--fast-initial", type=float, metavar="F",
                        help="fast method: candidates are F times k patches of largest first-order rise and "
                        "as many of largest fall, k patches being the top percent (default: 6)")
    search.add_argument("--fast-margin", type=float, metavar="M",
                        help="fast method: half-width of a candidate's interval, in units of the summed absolute "
                        "first-order changes of the images it has not seen; larger is closer to exact (default: 1)")
    search.add_argument("--fast-order", choices=("loss", "first_order"),
                        help="fast method: order in which a candidate gets more images, by unfiltered loss or by "
                        "its own first-order changes (default: loss)")
    search.add_argument("--shard", metavar="I/N", help="evaluate only shard I of N (0-based); join with 'fslib dfm merge'")
    search.add_argument("--amp", action="store_true", help="run the model under torch.autocast (mixed precision)")
    search.add_argument("--channels-last", action="store_true", help="feed inputs in channels-last memory format")
    search.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    search.add_argument("--authors-format", action="store_true",
                        help="also write each DFM as the paper authors' pickle (dfm_top<X>.pkl)")
    search.add_argument("--out", required=True,
                        help="output folder; a rerun resumes a stopped search from its checkpoint and reuses a "
                        "finished one, so that only the maps and figures are written again")
    search.set_defaults(func=run_search)

    merge = subparsers.add_parser(
        "merge", help="join the shards of a 'fslib dfm search --shard' into one result",
        description="Read loss_maps.npz from every shard folder and write the result of an unsharded search.",
    )
    merge.add_argument("shards", nargs="+", help="output folders of 'fslib dfm search --shard I/N', one per shard")
    merge.add_argument("--top", type=float, action="append", help="percent of the spectrum kept (default: 5)")
    merge.add_argument("--ties", choices=("fill", "exclude"), default="fill", help="tie rule (default: fill)")
    merge.add_argument("--authors-format", action="store_true", help="also write the authors' pickle format")
    merge.add_argument("--out", required=True, help="output folder")
    merge.set_defaults(func=run_merge)

    evaluate = subparsers.add_parser(
        "evaluate", help="TPR and FPR of a model on images filtered with each class's DFM",
        description="Apply each class's DFM to all images of the split (--split); report per class the share of its images "
        "still recognised (TPR) and the share of other images now assigned to it (FPR).",
    )
    _add_model_data(evaluate)
    evaluate.add_argument("--maps", required=True, help="DFM file (fslib .npz or the authors' .pkl)")
    evaluate.add_argument("--tpr-threshold", type=float, default=0.5, help="minimum TPR for a shortcut (default: 0.5)")
    evaluate.add_argument("--fpr-threshold", type=float, default=0.0,
                          help="minimum rise of the FPR over the unfiltered FPR for a shortcut (default: 0)")
    evaluate.add_argument("--out", required=True, help="output folder")
    evaluate.set_defaults(func=run_evaluate)


def _add_model_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="model checkpoint written by fslib.models.save_checkpoint, with normalisation statistics")
    parser.add_argument("--data", required=True, help=_DATA_HELP)
    parser.add_argument("--split", choices=("train", "test"), default="test", help="data split (default: test)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, help="inputs per forward pass (default: fit to memory)")


# --------------------------------------------------------------------------
# Model and data
# --------------------------------------------------------------------------


def _load_images(data: str, split: str, image_size: int, classes: list[str] | None,
                 per_class: int | None = None):
    """Return ``(images (N, C, H, W) in [0, 1], labels (N,), class names)``.

    With ``per_class``, only the first ``per_class`` images of each class are
    returned, grouped by class, as :func:`fslib.book.dfm_chapter.class_images`
    selects them for the book's DFM chapter.
    """
    from .. import datasets
    from ..book.dfm_chapter import class_images, per_class_subset

    if data in _PRESETS:
        dataset = datasets.synthetic(data, split)
    elif data == "photos":
        dataset = datasets.real_photos(split, size=image_size)
    else:
        dataset = None
    if dataset is not None:
        images, labels = (dataset.images, dataset.labels) if per_class is None else class_images(dataset, per_class)
        return images, labels, list(dataset.classes)
    folder = Path(data)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Invalid --data: {data!r} is neither a preset ({', '.join(_PRESETS)}, photos) nor a folder. "
            "Check the path."
        )
    from .. import synthetic

    try:
        synthetic.read_saved_spec(folder)
    except (InvalidFileError, FileNotFoundError):
        pass
    else:
        images, labels = synthetic.load_dataset(folder, split)
        names = [str(c) for c in range(int(labels.max()) + 1)]
        if per_class is not None:
            images, labels = per_class_subset(images, labels, per_class, len(names))
        return images, labels, names
    root = folder / split if (folder / split).is_dir() else folder
    dataset = datasets.image_folder(root, classes=classes, size=image_size)
    if per_class is not None:
        images, labels = class_images(dataset, per_class)  # decodes only the chosen files
        return images, labels, list(dataset.classes)
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([int(item[1]) for item in items])
    return images, labels, list(dataset.classes)


def _load_model_and_data(args: argparse.Namespace, per_class: int | None = None):
    from ..datasets import normalize
    from ..models import load_model

    model, meta = load_model(args.checkpoint)
    stats = meta.get("normalization")
    if not stats or "mean" not in stats or "std" not in stats:
        raise InvalidFileError(
            f"Invalid --checkpoint {args.checkpoint}: it stores no normalisation statistics, so the data "
            "cannot be normalised as in training. Save the checkpoint with meta['normalization']."
        )
    images, labels, classes = _load_images(args.data, args.split, int(meta["image_size"]), meta.get("classes"),
                                           per_class)
    if tuple(images.shape[-2:]) != (int(meta["image_size"]),) * 2:
        raise InvalidInputError(
            f"Invalid --data: images are {tuple(images.shape[-2:])} but the model in {args.checkpoint} was "
            f"built for {meta['image_size']} px. Use data of that size."
        )
    if int(labels.max()) >= int(meta["num_classes"]):
        raise InvalidInputError(
            f"Invalid --data: labels go up to {int(labels.max())} but the model has {meta['num_classes']} classes. "
            "Use the data set the model was trained on."
        )
    names = meta.get("classes") or classes
    return model, meta, normalize(images, stats["mean"], stats["std"]), labels, list(names)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as exc:
        raise InvalidInputError(f"Invalid --shard: expected I/N such as 0/4, got {text!r}.") from exc
    return index, count


def _check_tops(tops: list[float] | None) -> list[float]:
    tops = tops or [5.0]
    for top in tops:
        if not 0 < top <= 100:
            raise InvalidInputError(f"Invalid --top: {top:g} is outside (0, 100]. Pass a percent such as 5.")
    return tops


def _write_json(path: Path, payload: dict) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(payload, handle, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


# --------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------


def _write_maps(result, out: Path, tops: list[float], ties: str, names: list[str], authors: bool,
                extra: dict) -> dict:
    """Write DFMs, figures and per-class summaries for each top percent; return the metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..dfm.io import plot_dfm, save_dfm
    from ..plotting import save_figure

    metrics = {}
    for top in tops:
        chosen = result.selection(top, ties)
        tag = f"{top:g}"
        save_dfm(chosen.maps, out / f"dfm_top{tag}.npz", patch_size=result.patch_size, top_percent=top,
                 classes=names, extra=dict(extra, ties=ties))
        if authors:
            save_dfm(chosen.maps, out / f"dfm_top{tag}.pkl", format="authors")
        figure = plot_dfm(chosen.maps.numpy(), names)
        save_figure(figure, out / f"dfm_top{tag}.png")
        plt.close(figure)
        metrics[tag] = result.summary(top, ties).assign(name=names).to_dict(orient="records")

    changes = result.loss_changes.numpy()
    figure, axes = plt.subplots(1, len(names), figsize=(2.2 * len(names), 2.4), squeeze=False)
    for c, ax in enumerate(axes[0]):
        image = ax.imshow(changes[c], cmap="magma")
        ax.set_title(names[c], fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        figure.colorbar(image, ax=ax, fraction=0.046)
    figure.suptitle("loss change with each frequency removed")
    save_figure(figure, out / "loss_changes.png")
    plt.close(figure)
    return metrics


def _check_per_class(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise InvalidInputError(
            f"Invalid --per-class: {value} is not a positive number of images. Pass N >= 1 (for example "
            "--per-class 10), or leave the option out to search with every image."
        )
    return value


def _request_key(checkpoint: str, images: torch.Tensor, labels: torch.Tensor, settings: dict) -> str:
    """Return a SHA-256 hex digest of everything that fixes the loss maps of a search.

    ``images`` are ``(N, C, H, W)`` and ``labels`` ``(N,)``. The key is
    stored in the saved result, so that a rerun into the same folder can tell
    whether the finished result was made for the same request.
    """
    digest = hashlib.sha256()
    digest.update(sha256_file(checkpoint).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(labels.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _fast_options(args: argparse.Namespace) -> dict:
    """Return the fast method's keyword arguments of :func:`fslib.dfm.search.search` from the options."""
    options = {"--fast-initial": args.fast_initial, "--fast-margin": args.fast_margin, "--fast-order": args.fast_order}
    if args.method != "fast":
        named = [name for name, value in options.items() if value is not None]
        if named:
            raise InvalidInputError(
                f"Invalid {named[0]}: the fast method's options apply to --method fast only, got --method "
                f"{args.method}. Add --method fast, or leave out {', '.join(named)}."
            )
        return {}
    from ..dfm.search import search

    defaults = inspect.signature(search).parameters
    initial = defaults["fast_initial"].default if args.fast_initial is None else args.fast_initial
    margin = defaults["fast_margin"].default if args.fast_margin is None else args.fast_margin
    order = defaults["fast_order"].default if args.fast_order is None else args.fast_order
    if not math.isfinite(initial) or initial < 1:
        raise InvalidInputError(
            f"Invalid --fast-initial: {initial} is not a finite number of at least 1. Pass e.g. --fast-initial 6."
        )
    if not math.isfinite(margin) or margin <= 0:
        raise InvalidInputError(
            f"Invalid --fast-margin: {margin} is not a finite number above 0 (at 0 no candidate gets more "
            "images and misses cannot be counted). Pass e.g. --fast-margin 1, or more for maps closer to "
            "the exact ones."
        )
    return {"fast_initial": initial, "fast_margin": margin, "fast_order": order}


def _finished_result(out: Path, key: str, settings: dict):
    """Return the finished search result in ``out`` when it was made for ``key``, else ``None``.

    A result saved for another request is an error, so that a rerun with a
    changed checkpoint, data set or setting never mixes with the old result.
    The message names the settings that differ when the result records them.
    """
    from ..dfm.search import SearchResult

    path = out / _RESULT_FILE
    if not path.is_file():
        return None
    result = SearchResult.load(path)
    saved_key = result.metadata.get("request_key")
    if saved_key is None:
        # A result saved by an older fslib has no request key to compare, so the search runs again and
        # resumes from the checkpoint when one is left.
        return None
    if saved_key != key:
        saved = result.metadata.get("request") or {}
        changed = [f"{name} {saved.get(name)!r} -> {value!r}" for name, value in settings.items()
                   if name in saved and saved[name] != value]
        difference = ("; changed: " + ", ".join(changed)) if changed else " (another checkpoint or data set)"
        raise InvalidInputError(
            f"Invalid --out: {out} contains the result of a finished search of another request{difference}. "
            f"Pass another --out, or delete {path} to replace that result."
        )
    return result


def run_search(args: argparse.Namespace) -> int:
    """Search the DFMs of a checkpoint and write loss maps, maps, figures and metrics.json.

    A rerun into a folder whose search finished for the same request reuses
    ``loss_maps.npz`` and keeps the search time it stored. The search
    checkpoint is deleted once ``loss_maps.npz`` is written.
    """
    from ..dfm.search import check_patch_size, search

    tops = _check_tops(args.top)
    shard = _parse_shard(args.shard)
    per_class = _check_per_class(args.per_class)
    fast = _fast_options(args)
    model, meta, images, labels, names = _load_model_and_data(args, per_class)
    try:
        check_patch_size(tuple(images.shape[-2:]), args.patch_size)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc).replace("Invalid patch_size", "Invalid --patch-size", 1)) from None
    counts = torch.bincount(labels, minlength=len(names)).tolist()
    if per_class is not None and min(counts) < per_class:
        logger.warning("--per-class %d: some classes of the %s split have fewer images, so the search uses "
                       "%s images per class", per_class, args.split, counts)
    settings = {"patch_size": args.patch_size, "method": args.method, "shard": list(shard) if shard else None,
                "amp": args.amp, "top_percent": max(tops) if args.method == "fast" else None}
    settings.update(fast)
    settings["per_class"] = per_class
    key = _request_key(args.checkpoint, images, labels, settings)

    # The folder is made only once every input has been checked.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / _CHECKPOINT_FILE
    result = _finished_result(out, key, settings)
    reused = result is not None
    if result is None and checkpoint_path.is_file():
        print(f"resuming the stopped search from {checkpoint_path}")
    if result is None:
        start = time.perf_counter()
        try:
            result = search(model, images, labels, num_classes=int(meta["num_classes"]),
                            patch_size=args.patch_size, method=args.method, batch_size=args.batch_size,
                            device=args.device, amp=args.amp, channels_last=args.channels_last,
                            progress=not args.no_progress, checkpoint_path=checkpoint_path, shard=shard,
                            top_percent=max(tops), **fast)
        except InvalidInputError as exc:
            if not str(exc).startswith("Invalid checkpoint_path"):
                raise
            raise InvalidInputError(
                f"Invalid --out: {checkpoint_path} is the checkpoint of a stopped search of another "
                "checkpoint, data set or setting. Pass another --out, or delete that file to start over."
            ) from None
        result.metadata.update({"classes": names, "checkpoint": str(args.checkpoint), "data": args.data,
                                "split": args.split, "per_class": per_class, "request_key": key,
                                "request": settings,
                                "search_seconds": time.perf_counter() - start})
        result.save(out / _RESULT_FILE)
    # The saved result replaces the checkpoint, also when an earlier run stopped before deleting it.
    checkpoint_path.unlink(missing_ok=True)

    seconds = result.metadata.get("search_seconds")
    metrics = {
        "method": args.method, "patch_size": result.patch_size, "image_size": list(result.image_size),
        "shard": list(shard) if shard else None, "per_class": per_class, "images_per_class": counts,
        "seconds": seconds, "reused_result": reused,
        "exact_evaluations": result.exact_evaluations, "exhaustive_evaluations": result.exhaustive_evaluations,
        "baseline_loss": result.baseline_loss, "noise_floor": result.noise_floor,
        "above_floor": result.above_floor, "classes": names, "metadata": result.metadata,
    }
    if shard is None:
        extra = {"checkpoint": str(args.checkpoint), "data": args.data, "split": args.split, "method": args.method}
        metrics["maps"] = _write_maps(result, out, tops, args.ties, names, args.authors_format, extra)
    _write_json(out / "metrics.json", metrics)
    share = result.metadata["forward_equivalents"] / result.metadata["exhaustive_forward_equivalents"]
    cost = (f"{result.metadata['forward_equivalents']:,} images through the model ({100 * share:.1f}% of an "
            f"exhaustive search) in {seconds:.1f} s")
    if reused:
        print(f"wrote {out}: reused the finished search in {out / _RESULT_FILE} ({cost})")
    else:
        print(f"wrote {out}: {cost}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    """Join shard folders into one result and write maps, figures and metrics.json."""
    from ..dfm.search import SearchResult, merge_results

    tops = _check_tops(args.top)
    results = [SearchResult.load(Path(folder) / "loss_maps.npz") for folder in args.shards]
    merged = merge_results(results)
    # The key and the time of the first shard describe that shard only.
    merged.metadata.pop("request_key", None)
    merged.metadata.pop("search_seconds", None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    merged.save(out / "loss_maps.npz")
    names = merged.metadata.get("classes") or [str(c) for c in range(merged.num_classes)]
    extra = {key: merged.metadata.get(key) for key in ("checkpoint", "data", "split")}
    metrics = {
        "method": "exact", "patch_size": merged.patch_size, "image_size": list(merged.image_size),
        "merged_shards": len(results), "shard_seconds": [r.metadata.get("search_seconds") for r in results],
        "baseline_loss": merged.baseline_loss, "noise_floor": merged.noise_floor,
        "above_floor": merged.above_floor, "classes": names,
        "maps": _write_maps(merged, out, tops, args.ties, names, args.authors_format, extra),
    }
    _write_json(out / "metrics.json", metrics)
    print(f"wrote {out}: merged {len(results)} shards")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Write the shortcut table (TPR, FPR per class), confusion matrices and a gallery."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..dfm.evaluate import plot_gallery, shortcut_table
    from ..dfm.io import load_dfm
    from ..plotting import save_figure

    model, meta, images, labels, names = _load_model_and_data(args)
    maps = load_dfm(args.maps).maps
    out = Path(args.out)
    report = shortcut_table(model, images, labels, maps, class_names=names, tpr_threshold=args.tpr_threshold,
                            fpr_threshold=args.fpr_threshold, batch_size=args.batch_size or 256, device=args.device)
    with atomic_write(out / "shortcut_table.csv", "w") as handle:
        report.table.to_csv(handle, index=False)
    with atomic_write(out / "confusion.npz") as handle:
        np.savez(handle, baseline=report.baseline["confusion"],
                 **{f"class_{c}": matrix for c, matrix in report.confusion.items()})
    stats = meta["normalization"]
    figure = plot_gallery(images, labels, maps, names, denormalize=(stats["mean"], stats["std"]))
    save_figure(figure, out / "gallery.png")
    plt.close(figure)
    _write_json(out / "metrics.json", {
        "maps": str(args.maps), "checkpoint": str(args.checkpoint), "data": args.data, "split": args.split,
        "baseline_accuracy": report.baseline["accuracy"], "baseline_recall": report.baseline["recall"],
        "rule": report.rule, "table": report.table.to_dict(orient="records"),
    })
    print(report.table.to_string(index=False))
    return 0
