"""``fslib train``: train a model with the recipe of Wang et al. (ICCV 2023), track learning dynamics, write metrics."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import torch

from .._io import atomic_write
from ..errors import InvalidInputError

logger = logging.getLogger(__name__)

# Kept here rather than imported so that building the parser does not import
# torch and torchvision; a test checks them against fslib.models and fslib.training.
MODEL_NAMES = ("alexnet", "resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "vit_b")
AUGMENTATIONS = ("paper", "none", "autoaugment", "augmix")
DEFAULTS = {"epochs": 200, "batch_size": 64, "lr": 0.01, "seed": 0, "checkpoint_epochs": 1, "augment": "paper"}

_RUN_FILE = "run.json"
# Files and folders that `fslib train` writes into --out; --overwrite removes these and nothing else.
_OUTPUTS = ("config.json", _RUN_FILE, "checkpoints", "model.pt", "metrics.json", "dynamics.csv", "figures")


def register(subparsers) -> None:
    """Add ``fslib train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier with the paper's recipe and track what it learns first",
        description="Train a model on a synthetic preset, the real-photo set or a folder written by "
        "'fslib synth', with the recipe of the official code of Wang et al., ICCV 2023: SGD with Nesterov "
        "momentum 0.9, weight decay 1e-4, lr 0.01 reduced x0.1 on a validation-loss plateau, batch 64, "
        "10% of the training data held out. Writes config.json, checkpoints/, model.pt, metrics.json (train, val "
        "and test metrics), dynamics.csv (with --track-every) and figures/ into --out. Running the same "
        "command again resumes from the latest checkpoint.",
    )
    parser.add_argument("--data", required=True, metavar="NAME|DIR",
                        help="training data: a synthetic preset (syn1, syn2, syn3, syn4), 'photos' (real-photo "
                        "crops, 32 px), 'photos224' (224 px), or a folder written by 'fslib synth'")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder of the run")

    parser.add_argument("--model", default="resnet18", choices=MODEL_NAMES, help="architecture (default: resnet18)")
    parser.add_argument("--width", type=int, default=None,
                        help="network width in channels of the first stage (64: standard size; 8 to 16: "
                        "CPU-sized; default: 64)")
    parser.add_argument("--stem", default="cifar", choices=("cifar", "torchvision"),
                        help="ResNet stem: 'cifar' (3x3 stride-1, no max-pool, as the official code) or "
                        "'torchvision' (7x7 stride-2 and max-pool) (default: cifar)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                        help=f"passes over the training split (default: {DEFAULTS['epochs']})")
    length.add_argument("--iterations", type=int, default=None,
                        help="optimizer steps in total, instead of --epochs")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                        help=f"images per optimizer step (default: {DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help=f"initial SGD learning rate (default: {DEFAULTS['lr']})")
    parser.add_argument("--augment", default=DEFAULTS["augment"], choices=AUGMENTATIONS,
                        help="training augmentation: 'paper' = pad 4 px, horizontal flip, random resized crop "
                        "(area 50-100%%); 'autoaugment' and 'augmix' add torchvision's AutoAugment or AugMix "
                        "after it; 'none' (default: paper)")
    parser.add_argument("--stylized-folder", metavar="DIR", default=None,
                        help="ImageFolder of stylised training images (one sub-folder per class name) added to "
                        "the training split, as the paper's stylised-ImageNet (SIN) training")

    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help="seed of the initial weights, validation split, data order and augmentation (default: 0)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seed of the generated data set for presets and photos (default: 0)")
    parser.add_argument("--checkpoint-every", type=int, default=DEFAULTS["checkpoint_epochs"], metavar="EPOCHS",
                        help="write a checkpoint every this many epochs; 0 writes only the last one (default: 1)")
    parser.add_argument("--checkpoint-every-iterations", type=int, default=None, metavar="STEPS",
                        help="also write a checkpoint every this many optimizer steps (default: off)")

    parser.add_argument("--track-every", type=int, default=0, metavar="STEPS",
                        help="evaluate the test set with frequency bands removed every this many optimizer steps "
                        "and write dynamics.csv; 0 switches tracking off (default: 0)")
    parser.add_argument("--band-stop", nargs="+", default=None, metavar="BANDS",
                        help="band sets to remove for tracking, numbered B1 (lowest) to B4 like the tables and "
                        "figures: '--band-stop B1+B2 B3+B4' removes B1 and B2, then B3 and B4; 'pairs' is every "
                        "pair of the 4 bands, 'none' tracks no band-stop filter (default: pairs)")

    parser.add_argument("--device", default=None,
                        help="torch device such as cpu, cuda or cuda:1 (default: cuda if available)")
    parser.add_argument("--amp", action="store_true", help="float16 mixed precision (CUDA only)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader worker processes; 0 loads in the main process (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run in --out (config, checkpoints, model, metrics, dynamics, figures) "
                        "and start over")
    parser.set_defaults(func=run)


def _parse_band_sets(values: list[str] | None) -> list[tuple[int, ...]] | None:
    if values is None:
        return None
    from ..dynamics import parse_band_sets

    return parse_band_sets(" ".join(values))


def _load_data(args: argparse.Namespace):
    """Return ``(train, test)`` TensorImageDatasets with images in [0, 1]."""
    from .. import datasets

    name = args.data
    if name in ("syn1", "syn2", "syn3", "syn4"):
        return (datasets.synthetic(name, "train", seed=args.data_seed),
                datasets.synthetic(name, "test", seed=args.data_seed))
    if name in ("photos", "photos224"):
        size = 224 if name == "photos224" else 32
        return (datasets.real_photos("train", size=size, seed=args.data_seed),
                datasets.real_photos("test", size=size, seed=args.data_seed))
    folder = Path(name)
    if not folder.is_dir():
        raise InvalidInputError(
            f"Invalid --data {name!r}: not a preset (syn1, syn2, syn3, syn4), 'photos', 'photos224' or an "
            "existing folder. Write a folder with 'fslib synth --preset syn1 --out DIR'."
        )
    from ..datasets.synthetic import synthetic_class_names
    from ..synthetic import SyntheticSpec, load_dataset

    spec = SyntheticSpec.load(folder / "spec.json") if (folder / "spec.json").is_file() else None
    splits = []
    for split in ("train", "test"):
        images, labels = load_dataset(folder, split)
        num_classes = getattr(spec, "num_classes", None) or int(labels.max()) + 1
        splits.append(datasets.TensorImageDataset(torch.as_tensor(images), torch.as_tensor(labels),
                                                  synthetic_class_names(spec, num_classes)))
    return tuple(splits)


def _prepare_out(out: Path, run_description: dict, config, overwrite: bool) -> None:
    """Check that ``out`` is new, contains the same run (resume), or may be overwritten; write run.json."""
    from ..training import check_resumable

    if overwrite and (out / "config.json").exists():
        for name in _OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        logger.info("Removed the previous run in %s", out)
    elif out.exists() and not out.is_dir():
        raise InvalidInputError(f"Invalid --out {out}: it is a file. Name a folder.")
    check_resumable(out, config, fix="Choose another --out, or pass --overwrite to replace it.")
    run_file = out / _RUN_FILE
    if run_file.exists():
        saved = json.loads(run_file.read_text())
        differences = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in run_description.items() if saved.get(k) != v]
        if differences:
            raise InvalidInputError(
                f"Output folder {out} contains a run of another model or data set ({'; '.join(differences)}). "
                "Choose another --out, or pass --overwrite to replace it."
            )
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(run_file, "w") as handle:
        json.dump(run_description, handle, indent=2)


def _dynamics_callback(args: argparse.Namespace, test_data, band_sets):
    from .. import dynamics

    filters = dynamics.standard_filters(tuple(test_data.images.shape[-2:]), band_stop_sets=band_sets)
    return dynamics.LearningDynamics(
        test_data.images, test_data.labels, test_data.classes, filters,
        every_iterations=args.track_every, at_start=True, at_end=True, filename="dynamics.csv",
    )


def _plot_curves(history: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..plotting import save_figure, set_style

    set_style()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("train", "training"), ("val", "validation")):
        loss_ax.plot(history["epoch"], history[f"{key}_loss"], marker="o", label=label)
        acc_ax.plot(history["epoch"], history[f"{key}_acc"], marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
    loss_ax.legend()
    save_figure(fig, path)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Handle ``fslib train``; return the exit code."""
    from ..models import build_model
    from ..training import TrainConfig, evaluate, train, write_metrics

    for name in ("track_every", "num_workers", "checkpoint_every", "data_seed"):
        if getattr(args, name) < 0:
            option = "--" + name.replace("_", "-")
            raise InvalidInputError(f"Invalid {option} {getattr(args, name)}: expected an integer >= 0.")
    band_sets = _parse_band_sets(args.band_stop)
    config = TrainConfig(
        epochs=args.epochs, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
        augment=args.augment, seed=args.seed, device=args.device, amp=args.amp, num_workers=args.num_workers,
        progress=not args.no_progress, checkpoint_epochs=args.checkpoint_every or None,
        checkpoint_iterations=args.checkpoint_every_iterations, stylized_folder=args.stylized_folder,
    )
    train_data, test_data = _load_data(args)
    image_size = int(train_data.images.shape[-1])
    run_description = {
        "data": args.data, "data_seed": args.data_seed, "model": args.model, "width": args.width,
        "stem": args.stem, "track_every": args.track_every,
        "band_stop": [list(s) for s in band_sets] if band_sets is not None else None,
    }
    out = Path(args.out)
    _prepare_out(out, run_description, config, args.overwrite)

    torch.manual_seed(args.seed)
    model = build_model(args.model, train_data.num_classes, image_size, width=args.width, stem=args.stem,
                        seed=args.seed)
    callbacks = [_dynamics_callback(args, test_data, band_sets)] if args.track_every else []

    result = train(model, train_data, None, config, callbacks=callbacks, out_dir=out)

    metrics = dict(result.metrics)
    metrics["test"] = evaluate(model, test_data, result.normalization, next(model.parameters()).device,
                               config.eval_batch_size, num_classes=train_data.num_classes)
    write_metrics(out / "metrics.json", metrics)
    figures = out / "figures"
    if result.history["epoch"]:
        _plot_curves(result.history, figures / "training_curves.png")
    if callbacks and len(callbacks[0].table):
        from ..dynamics import plot_dynamics
        from ..plotting import save_figure

        figure = plot_dynamics(callbacks[0].table, kind="band_stop", metric="recall")
        save_figure(figure, figures / "dynamics_band_stop.png")

    val = metrics["val"]["accuracy"] if metrics["val"] else float("nan")
    print(f"trained {args.model} on {args.data}: {result.iterations} optimizer steps, {result.epochs} complete epoch(s); "
          f"accuracy train {metrics['train']['accuracy']:.3f}, val {val:.3f}, test {metrics['test']['accuracy']:.3f}; "
          f"wrote {out}", file=sys.stdout)
    return 0
