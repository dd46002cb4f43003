"""``fslib adcs``: class-wise spectra and ADCS maps of a labelled image set."""

from __future__ import annotations

import argparse
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InvalidFileError, InvalidInputError

logger = logging.getLogger(__name__)

_LAYOUT_HELP = (
    "a folder written by 'fslib synth' (train.npz and test.npz, each with arrays images (N, 3, H, W) "
    "float32 and labels (N,) int64, plus spec.json), or one .npz file with arrays images and labels"
)


def register(subparsers) -> None:
    """Add ``fslib adcs``."""
    parser = subparsers.add_parser(
        "adcs",
        help="compute class-wise average spectra and ADCS maps of a data set",
        description="Compute the mean amplitude spectrum of each class and the ADCS maps "
        "(accumulated difference of class-wise average spectra, integers in [1-K, K-1]). "
        "Writes an .npz with the maps, the spectra, the class names and counts, and optionally a figure.",
    )
    parser.add_argument("--data", required=True, metavar="PATH", help=f"input data: {_LAYOUT_HELP}")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="which split of a data set folder to use (default: train; ignored for an .npz file)")
    parser.add_argument("--out", required=True, metavar="FILE.npz",
                        help="output .npz with arrays adcs (K, H, W) int16, spectra (K, C, H, W) float32, "
                        "classes, counts and a JSON header")
    parser.add_argument("--per-channel", action="store_true",
                        help="keep colour channels apart: adcs is (K, C, H, W) instead of one map per class")
    parser.add_argument("--figure", metavar="FIG.png", help="also draw the ADCS maps into this image")
    parser.add_argument("--batch-size", type=int, default=256, help="images per FFT batch (default: 256)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)")
    parser.set_defaults(func=run)


def _class_names_from_spec(folder: Path, num_classes: int) -> list[str] | None:
    spec_path = folder / "spec.json"
    if not spec_path.is_file():
        return None
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("Could not read class names from %s: %s", spec_path, exc)
        return None
    for key in ("class_names", "classes"):
        names = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(names, list) and len(names) == num_classes:
            # fslib.synthetic writes each class as a dict with a "name".
            return [str(name["name"]) if isinstance(name, dict) and "name" in name else str(name) for name in names]
    return None


def _resolve_data_file(data: Path, split: str) -> Path:
    if not data.exists():
        raise FileNotFoundError(f"Invalid --data: {data} does not exist. Expected {_LAYOUT_HELP}.")
    if data.is_dir():
        file = data / f"{split}.npz"
        if not file.is_file():
            raise FileNotFoundError(
                f"Invalid --data: {data} has no {split}.npz. Expected {_LAYOUT_HELP}; "
                "create one with 'fslib synth' or pass an .npz file."
            )
        return file
    if data.suffix != ".npz":
        raise InvalidInputError(f"Invalid --data: {data} is neither a folder nor an .npz file. Expected {_LAYOUT_HELP}.")
    return data


def _load_synthetic(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a folder written by ``fslib synth``, checking its checksums."""
    from ..synthetic import load_dataset, read_saved_spec

    images, labels = load_dataset(folder, split)
    spec, _ = read_saved_spec(folder)
    return images.numpy(), labels.numpy(), [item.name for item in spec.classes]


def load_images_and_labels(data: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read ``images (N, C, H, W)``, ``labels (N,)`` and class names from a data set folder or .npz file."""
    data = Path(data)
    file = _resolve_data_file(data, split)
    if data.is_dir() and (data / "checksums.json").is_file():
        return _load_synthetic(data, split)

    if not zipfile.is_zipfile(file):
        raise InvalidFileError(f"Corrupt data file {file}: not a readable .npz archive.")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:  # pickled objects inside the archive
        raise InvalidFileError(f"Invalid data file {file}: {exc}. Save plain numeric arrays.") from exc
    missing = [key for key in ("images", "labels") if key not in arrays]
    if missing:
        raise InvalidFileError(
            f"Invalid data file {file}: no array(s) {missing} (it contains {sorted(arrays)}). Expected {_LAYOUT_HELP}."
        )
    images, labels = arrays["images"], arrays["labels"]
    stored_names = arrays["classes"].tolist() if "classes" in arrays else None

    if images.ndim != 4 or not np.issubdtype(images.dtype, np.floating):
        raise InvalidFileError(
            f"Invalid data file {file}: images must be a float array (N, C, H, W), got {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidFileError(
            f"Invalid data file {file}: labels must be an integer array (N,), got {labels.dtype} {labels.shape}."
        )

    num_classes = int(labels.max()) + 1 if labels.size else 0
    names = None
    if isinstance(stored_names, list) and len(stored_names) >= num_classes:
        names = [str(name) for name in stored_names]
    elif data.is_dir():
        names = _class_names_from_spec(data, num_classes)
    return images, labels, names or [str(c) for c in range(num_classes)]


def run(args: argparse.Namespace) -> int:
    """Compute and write ADCS maps (and a figure) for ``args.data``."""
    import torch

    from .._io import atomic_write
    from ..metrics import adcs_from_spectra, class_average_spectra, plot_adcs

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InvalidInputError(f"Invalid --out: expected a name ending in .npz, got {out}.")
    images, labels, names = load_images_and_labels(args.data, args.split)
    num_classes = len(names)

    spectra, counts = class_average_spectra(
        torch.from_numpy(images), torch.from_numpy(labels), num_classes,
        batch_size=args.batch_size, device=args.device, return_counts=True,
    )
    maps = adcs_from_spectra(spectra, per_channel=args.per_channel)  # (K, H, W) or (K, C, H, W)

    header = {
        "definition": "ADCS_c(u, v) = sum over j != c of sign(D_cj(u, v)); D_cj is E_c - E_j per channel "
                      "with per_channel, else summed over channels",
        "layout": "centred, zero frequency at (H//2, W//2)",
        "per_channel": bool(args.per_channel),
        "data": str(args.data),
        "split": args.split,
        "num_images": int(counts.sum()),
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        adcs=maps.cpu().numpy().astype(np.int16),
        spectra=spectra.cpu().numpy().astype(np.float32),
        counts=counts.cpu().numpy(),
        classes=np.array(names),
        header=np.array(json.dumps(header, sort_keys=True)),
    )
    with atomic_write(out, "wb") as handle:
        handle.write(buffer.getvalue())
    print(f"wrote ADCS maps {tuple(maps.shape)} of {num_classes} classes from {int(counts.sum())} images to {out}")

    if args.figure:
        from ..plotting import save_figure, set_style

        set_style()
        save_figure(plot_adcs(maps, names), args.figure)
        print(f"wrote figure {args.figure}")
    return 0
