"""Read and write dominant frequency maps (DFMs).

A DFM file contains one binary map per class in the centred layout (zero
frequency at ``(H // 2, W // 2)``); a 1 marks a frequency that the model
relies on for that class. Two formats are supported:

``"fslib"``
    An ``.npz`` archive without pickled objects. ``maps`` is a uint8 (or
    float32) array ``(K, H, W)`` of 0 and 1, and ``header`` is a 0-d string
    array holding a JSON object with the keys in :data:`HEADER_KEYS`.
    Files are written atomically.

``"authors"``
    The format of the DFM files published with DFM-X, the follow-up work of
    Wang, Veldhuis, Brune and Strisciuglio (ICCV 2023 workshops): a pickle
    of a dict that maps each class index (an int from 0 to K - 1) to an
    ``(H, W)`` map of 0.0 and 1.0. The published files for CIFAR-10
    (ResNet18 and VGG11) store each map as a nested list of Python floats,
    with pickle protocols 3 and 4. Maps stored as float64 numpy arrays are
    read too. Such files are read with a restricted
    unpickler that builds only plain containers and numpy arrays, so a
    malicious file cannot run code. The format has no header.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._checks import as_size
from .._io import atomic_write, load_array_file
from ..errors import InvalidFileError, InvalidInputError
from ..fourier import is_conjugate_symmetric, mirror

__all__ = [
    "DFM_FORMAT_VERSION",
    "DFM_LAYOUT",
    "HEADER_KEYS",
    "DFMFile",
    "load_dfm",
    "save_dfm",
    "map_summary",
    "plot_dfm",
]

logger = logging.getLogger(__name__)

#: Version of the fslib ``.npz`` DFM format that this module writes and reads.
DFM_FORMAT_VERSION = 1

#: Layout string stored in every fslib DFM header.
DFM_LAYOUT = "centred, zero frequency at (H//2, W//2)"

#: Header keys of the fslib format. ``format_version``, ``layout``,
#: ``image_size`` and ``num_classes`` are filled in by :func:`save_dfm`; the
#: others are optional and default to None.
HEADER_KEYS = (
    "format_version",
    "layout",
    "image_size",
    "num_classes",
    "patch_size",
    "top_percent",
    "model",
    "data",
    "classes",
    "extra",
)
_REQUIRED_KEYS = ("format_version", "layout", "image_size", "num_classes")
_AUTOMATIC_KEYS = ("format_version", "layout", "num_classes")
_FORMATS = ("fslib", "authors")
_PICKLE_SUFFIXES = (".pkl", ".pickle")


@dataclass
class DFMFile:
    """A dominant frequency map file in memory.

    Attributes:
        maps: float32 tensor ``(K, H, W)`` of 0 and 1, centred layout.
        header: metadata; for the authors' format only ``layout``,
            ``image_size`` and ``num_classes``, which are derived from the maps.
        format: ``"fslib"`` or ``"authors"``, the format the file was read from.
    """

    maps: torch.Tensor
    header: dict = field(default_factory=dict)
    format: str = "fslib"

    @property
    def num_classes(self) -> int:
        """Number of classes ``K``."""
        return self.maps.shape[0]

    @property
    def classes(self) -> list[str]:
        """Class names from the header, or the class indices as strings."""
        names = self.header.get("classes")
        return list(names) if names else [str(c) for c in range(self.num_classes)]


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------


def _check_maps(maps: Any, source: str) -> np.ndarray:
    """Return ``maps`` as a float32 array ``(K, H, W)`` after checking rank and 0/1 values.

    ``source`` names the input in messages (a parameter or a file).
    """
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    if not isinstance(maps, np.ndarray):
        raise TypeError(f"Invalid {source}: expected a tensor or array (K, H, W), got {type(maps).__name__}.")
    if maps.ndim != 3 or 0 in maps.shape:
        raise InvalidInputError(
            f"Invalid {source}: expected a non-empty stack of maps (K, H, W), got shape {maps.shape}. "
            "Stack one (H, W) map per class, e.g. torch.stack(maps)."
        )
    if not (np.issubdtype(maps.dtype, np.number) or maps.dtype == np.bool_) or np.iscomplexobj(maps):
        raise TypeError(f"Invalid {source}: expected real numbers, got dtype {maps.dtype}.")
    values = maps.astype(np.float64)
    bad = ~((values == 0.0) | (values == 1.0))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidInputError(
            f"Invalid {source}: maps must contain only 0 and 1, but {int(bad.sum())} value(s) differ, "
            f"e.g. {float(values[first])} at (class, row, col) {first}. Threshold them first, e.g. (maps > 0.5)."
        )
    return values.astype(np.float32)


def _check_header(header: dict, num_classes: int, image_size: tuple[int, int]) -> dict:
    """Validate user header keys for the fslib format and return the full header."""
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if unknown:
        raise InvalidInputError(
            f"Invalid header: unknown key(s) {unknown}. Known keys: {', '.join(HEADER_KEYS)}; "
            "put free-form metadata under extra={...}."
        )
    automatic = sorted(set(header) & set(_AUTOMATIC_KEYS))
    if automatic:
        raise InvalidInputError(
            f"Invalid header: {automatic} are set from the maps by save_dfm; remove them from the call."
        )
    out: dict[str, Any] = {key: None for key in HEADER_KEYS}
    out.update(header)
    out["format_version"] = DFM_FORMAT_VERSION
    out["layout"] = DFM_LAYOUT
    out["num_classes"] = num_classes

    given_size = header.get("image_size")
    if given_size is not None and as_size(tuple(given_size) if isinstance(given_size, list) else given_size,
                                          "image_size") != image_size:
        raise InvalidInputError(
            f"Invalid image_size: got {given_size!r}, but the maps are {image_size[0]}x{image_size[1]}. "
            "Leave image_size out; it is taken from the maps."
        )
    out["image_size"] = list(image_size)

    patch_size = out["patch_size"]
    if patch_size is not None and (isinstance(patch_size, bool) or not isinstance(patch_size, (int, np.integer))
                                   or patch_size < 1):
        raise InvalidInputError(f"Invalid patch_size: expected a positive int or None, got {patch_size!r}.")
    top_percent = out["top_percent"]
    if top_percent is not None:
        if isinstance(top_percent, bool) or not isinstance(top_percent, (int, float, np.integer, np.floating)) \
                or not 0 < float(top_percent) <= 100 or math.isnan(float(top_percent)):
            raise InvalidInputError(
                f"Invalid top_percent: expected a number in (0, 100] or None, got {top_percent!r}, e.g. 5 for the top 5%."
            )
    classes = out["classes"]
    if classes is not None:
        if not isinstance(classes, (list, tuple)) or len(classes) != num_classes:
            raise InvalidInputError(
                f"Invalid classes: expected a list of {num_classes} class names, got {classes!r}."
            )
        out["classes"] = [str(name) for name in classes]

    try:
        json.dumps(out, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"Invalid header: the values must be JSON-serialisable (str, numbers, lists, dicts): {exc}."
        ) from exc
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def save_dfm(maps: Any, path: str | os.PathLike, format: str = "fslib", **header: Any) -> Path:
    """Write dominant frequency maps to ``path`` atomically.

    Args:
        maps: tensor or array ``(K, H, W)`` of 0 and 1 in the centred layout.
        path: target file; ``.npz`` for ``format="fslib"``, ``.pkl`` or
            ``.pickle`` for ``format="authors"``.
        format: ``"fslib"`` (``.npz`` with a JSON header) or ``"authors"``
            (the pickled dict of the published DFM-X files).
        **header: metadata for the fslib format: ``patch_size`` (int),
            ``top_percent`` (number in (0, 100]), ``model``, ``data``,
            ``classes`` (K names), ``extra`` (free-form dict), and optionally
            ``image_size`` (must match the maps). The authors' format has
            no header, so these are dropped there with a warning.

    Returns:
        The path written.

    Raises:
        InvalidInputError: maps not 0/1 or not ``(K, H, W)``, unknown
            ``format``, a suffix that does not fit the format, or an
            unknown or invalid header key.
    """
    if format not in _FORMATS:
        raise InvalidInputError(f"Invalid format: got {format!r}, expected one of {', '.join(map(repr, _FORMATS))}.")
    path = Path(path)
    values = _check_maps(maps, "maps")
    num_classes, height, width = values.shape

    if format == "fslib":
        if path.suffix != ".npz":
            raise InvalidInputError(
                f"Invalid path: the fslib DFM format is an .npz archive, got suffix {path.suffix!r} in {path}. "
                "Use a name ending in .npz, or format='authors' for a pickle."
            )
        full_header = _check_header(header, num_classes, (height, width))
        text = json.dumps(full_header, allow_nan=False, default=_json_default, sort_keys=True)
        buffer = io.BytesIO()
        np.savez(buffer, maps=values.astype(np.uint8), header=np.array(text))
        with atomic_write(path, "wb") as handle:
            handle.write(buffer.getvalue())
    else:
        if path.suffix not in _PICKLE_SUFFIXES:
            raise InvalidInputError(
                f"Invalid path: the authors' DFM format is a pickle, got suffix {path.suffix!r} in {path}. "
                "Use a name ending in .pkl, or format='fslib' for an .npz archive."
            )
        if header:
            logger.warning("The authors' DFM format stores no header; dropped keys: %s", sorted(header))
        # Nested lists of Python floats, as in the published files, load without
        # numpy. Arrays pickled by numpy 2 reference numpy._core, which numpy
        # 1.26 and earlier cannot import (github.com/numpy/numpy/issues/28340).
        content = {c: values[c].astype(np.float64).tolist() for c in range(num_classes)}
        with atomic_write(path, "wb") as handle:
            pickle.dump(content, handle, protocol=4)
    logger.info("Wrote %d dominant frequency maps (%dx%d, %s format) to %s", num_classes, height, width, format, path)
    return path


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _detect_format(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head.startswith(b"PK"):
        return "fslib"
    if head[:1] == b"\x80":
        return "authors"
    raise InvalidFileError(
        f"Unknown DFM file format in {path}: it is neither an .npz archive (fslib format) nor a pickle "
        "(the authors' format). Check the file, or write it with fslib.dfm.save_dfm."
    )


def _load_fslib(path: Path) -> DFMFile:
    if not zipfile.is_zipfile(path):
        raise InvalidFileError(f"Corrupt DFM file {path}: not a readable .npz archive. Write it again.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidFileError(f"Corrupt DFM file {path}: {exc}. Write it again.") from exc
    missing = [key for key in ("maps", "header") if key not in arrays]
    if missing:
        raise InvalidFileError(
            f"Invalid DFM file {path}: the archive has no {missing} array(s) (it contains {sorted(arrays)}). "
            "It is not an fslib DFM file; write one with fslib.dfm.save_dfm."
        )
    try:
        header = json.loads(str(arrays["header"]))
    except json.JSONDecodeError as exc:
        raise InvalidFileError(f"Invalid DFM file {path}: the header is not valid JSON ({exc}).") from exc
    if not isinstance(header, dict):
        raise InvalidFileError(f"Invalid DFM file {path}: the header is a {type(header).__name__}, expected a JSON object.")

    missing = [key for key in _REQUIRED_KEYS if key not in header]
    if missing:
        raise InvalidFileError(
            f"Invalid DFM file {path}: the header is missing the key(s) {missing}. Write the file again with save_dfm."
        )
    version = header["format_version"]
    if not isinstance(version, int) or version > DFM_FORMAT_VERSION or version < 1:
        raise InvalidFileError(
            f"Unsupported DFM file {path}: format version {version!r}; this fslib reads version "
            f"{DFM_FORMAT_VERSION}. Update fslib or write the file again."
        )
    if header["layout"] != DFM_LAYOUT:
        raise InvalidFileError(
            f"Unsupported DFM file {path}: layout {header['layout']!r}; fslib reads {DFM_LAYOUT!r}."
        )
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if unknown:
        logger.warning("DFM file %s has header keys that this fslib does not know, kept as they are: %s",
                       path, unknown)

    try:
        values = _check_maps(arrays["maps"], f"maps in {path}")
    except (InvalidInputError, TypeError) as exc:
        raise InvalidFileError(str(exc)) from exc
    classes = header.get("classes")
    if classes is not None and (not isinstance(classes, list) or len(classes) != values.shape[0]):
        raise InvalidFileError(
            f"Invalid DFM file {path}: the header's classes {classes!r} do not name the {values.shape[0]} maps."
        )
    if list(values.shape[1:]) != list(header["image_size"]) or values.shape[0] != header["num_classes"]:
        raise InvalidFileError(
            f"Invalid DFM file {path}: the maps have shape {values.shape}, but the header gives "
            f"{header['num_classes']} classes of size {header['image_size']}."
        )
    return DFMFile(torch.from_numpy(values), header, "fslib")


def _load_authors(path: Path) -> DFMFile:
    content = load_array_file(path)  # restricted unpickler: no code runs
    if not isinstance(content, dict) or not content:
        raise InvalidFileError(
            f"Invalid DFM file {path}: expected a pickled dict from class index to (H, W) map, got "
            f"{type(content).__name__}{' (empty)' if isinstance(content, dict) else ''}."
        )
    keys = list(content)
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in keys):
        raise InvalidFileError(
            f"Invalid DFM file {path}: the dict keys must be int class indices, got {keys[:5]!r}."
        )

    indices = sorted(int(k) for k in keys)
    if indices != list(range(len(indices))):
        raise InvalidFileError(
            f"Invalid DFM file {path}: the class indices must run from 0 to {len(indices) - 1}, got {indices}."
        )

    by_index = {int(k): v for k, v in content.items()}
    stacked = []
    for index in indices:
        try:
            item = np.asarray(by_index[index], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidFileError(
                f"Invalid DFM file {path}: the map of class {index} is not a numeric (H, W) array ({exc})."
            ) from exc
        if item.ndim != 2:
            raise InvalidFileError(
                f"Invalid DFM file {path}: the map of class {index} has shape {item.shape}, expected (H, W)."
            )
        if stacked and item.shape != stacked[0].shape:
            raise InvalidFileError(
                f"Invalid DFM file {path}: the map of class {index} has shape {item.shape}, class 0 has "
                f"{stacked[0].shape}. All maps must have one size."
            )
        stacked.append(item)

    try:
        values = _check_maps(np.stack(stacked), f"maps in {path}")
    except (InvalidInputError, TypeError) as exc:
        raise InvalidFileError(str(exc)) from exc
    header = {"layout": DFM_LAYOUT, "image_size": list(values.shape[1:]), "num_classes": values.shape[0]}
    return DFMFile(torch.from_numpy(values), header, "authors")


def load_dfm(path: str | os.PathLike) -> DFMFile:
    """Read a DFM file in the fslib or the authors' format.

    The format is recognised from the file's first bytes (a zip archive or
    a pickle), and the suffix must agree with it: ``.npz`` for the fslib
    format, ``.pkl`` or ``.pickle`` for the authors' format.

    Returns:
        A :class:`DFMFile` whose ``maps`` is a float32 tensor ``(K, H, W)``
        of 0 and 1 in the centred layout.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafePickleError: the pickle requests a global other than the
            containers and numpy arrays allowed (nothing in it is run).
        InvalidFileError: corrupt file, unknown format, a suffix that does
            not fit the content, maps of the wrong rank or not 0/1, or a
            header that lacks keys or has an unsupported version or layout.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"DFM file not found: {path}. Check the path.")
    if not path.is_file():
        raise InvalidFileError(f"Invalid DFM file {path}: it is not a regular file.")
    kind = _detect_format(path)
    expected = (".npz",) if kind == "fslib" else _PICKLE_SUFFIXES
    if path.suffix.lower() not in expected:
        raise InvalidFileError(
            f"Invalid DFM file {path}: its content is in the {kind} format, which uses the suffix "
            f"{' or '.join(expected)}, but the name ends in {path.suffix!r}. Rename the file."
        )
    result = _load_fslib(path) if kind == "fslib" else _load_authors(path)
    logger.debug("Read %d dominant frequency maps from %s (%s format)", result.num_classes, path, kind)
    return result


# --------------------------------------------------------------------------
# Summary and figure
# --------------------------------------------------------------------------


def map_summary(maps: torch.Tensor) -> list[dict[str, Any]]:
    """Describe each map of a stack ``(K, H, W)`` of 0/1 centred maps.

    Returns one dict per class with these keys:

    - ``kept``: the count of ones.
    - ``kept_percent``: the share of the spectrum set to 1, in percent.
    - ``conjugate_symmetric``: whether ``maps[c, k] == maps[c, -k]`` for every ``k``.
    - ``asymmetric_positions``: how many positions differ from their mirror.
      Each mismatched pair counts twice, once at ``k`` and once at ``-k``.
    """
    values = torch.as_tensor(_check_maps(maps, "maps"))
    mismatch = values != mirror(values)  # (K, H, W)
    height, width = values.shape[1:]
    rows = []
    for c in range(values.shape[0]):
        rows.append({
            "kept": int(values[c].sum()),
            "kept_percent": 100.0 * float(values[c].sum()) / (height * width),
            "conjugate_symmetric": is_conjugate_symmetric(values[c]),
            "asymmetric_positions": int(mismatch[c].sum()),
        })
    return rows


def plot_dfm(maps: Any, class_names: Sequence[str] | None = None, *, ncols: int | None = None):
    """Draw dominant frequency maps ``(K, H, W)``, one panel per class; return the Figure.

    Kept frequencies are dark; each title gives the share of the spectrum kept.
    """
    from ..metrics import plot_class_maps

    values = _check_maps(maps, "maps")
    names = [str(c) for c in range(values.shape[0])] if class_names is None else list(class_names)
    if len(names) != values.shape[0]:
        raise InvalidInputError(
            f"Invalid class_names: got {len(names)} names for {values.shape[0]} maps. Pass one name per class."
        )
    shares = 100.0 * values.mean(axis=(1, 2))
    titles = [f"{name} ({share:.1f}%)" for name, share in zip(names, shares)]
    return plot_class_maps(values, names, cmap="Greys", vmin=0.0, vmax=1.0, colorbar_label="kept (1) or not (0)",
                           titles=titles, ncols=ncols)
