"""Synthetic data sets with a frequency bias: fslib's definition of Syn_1 to Syn_4.

Wang et al. (ICCV 2023) train on four synthetic data sets, Syn_1 to Syn_4, of
four classes of 32x32 RGB images. Each class is made of class-specific
"special" frequencies plus other components, and the spectrum is split into
four radial bands B1 (low) to B4 (high), with the bias of Syn_b in band B_b.
The authors published the files but not the recipe. **The recipe here is a
reconstruction, fslib's own definition from that principle, not the authors'
generator**; :func:`load_authors_dataset` reads the published files instead.

How an image is made
--------------------
A :class:`SyntheticSpec` fixes everything. Each class owns groups of special
frequencies (:class:`SpecialGroup`: a band, a count and an amplitude range).
Their positions are drawn once from ``layout_seed``, so they are a property
of the data set and independent of the split and of the generation seed. No
special frequency is the zero frequency (DC), so classes do not differ in
mean colour, and no two classes share a frequency.

An image of class ``c`` is, per RGB channel ``ch`` and pixel ``n = (y, x)``::

    raw(ch, n) = sum_k a(k, ch) * cos(2 pi <k, n> / 32 + phi(k))   (special frequencies of c)
               + sum_d a(d, ch) * cos(2 pi <d, n> / 32 + phi(d))   (distractors)
               + noise(ch, n)
    pixel(ch, n) = clip(0.5 + raw(ch, n), 0, 1)

- Special amplitudes ``a(k, ch)`` are drawn uniformly from the group's
  range, independently per channel, so colour varies from image to image.
  The phase ``phi(k)`` is drawn uniformly from ``phase_range`` per image and
  component and is shared by the three channels.
- Distractors: ``distractors_per_image`` components per image, each at a
  position drawn by first picking a band uniformly and then a frequency
  uniformly inside it, so every band gets the same share of distractors
  whatever its area. Their amplitudes come from ``distractor_amplitude``.
- ``noise`` is Gaussian, ``noise_std`` per pixel and channel.
- Amplitudes are in output intensity units: ``0.5 + raw`` is the fixed affine
  map to ``[0, 1]``, followed by clipping. The presets clip less than 0.1% of
  the pixel values (measured in the tests).

Each cosine is written into the spectrum at ``k`` and at its conjugate mirror
``-k`` (``a / 2 * H * W * exp(+-i phi)``, unscaled DFT), and one inverse FFT
per batch turns all spectra into real images.

The presets ``syn1`` to ``syn4``
--------------------------------
In ``syn<b>`` (``b`` = 1..4, band index ``b - 1``):

- Every class has primary special frequencies in band B_b, the data set's
  bias. Class ``b - 1`` is the designated class: it has 5 primary
  frequencies with amplitudes in [0.06, 0.09], the other classes 3 with
  amplitudes in [0.035, 0.055]. Its characteristic is therefore the most
  distinctive one of the data set.
- Every class also has 2 weak secondary frequencies (amplitudes in
  [0.02, 0.03]) in one of the other three bands, which differs between
  classes, so band-stop tests can tell whether a model uses the bias band
  alone.
- 6 distractors per image with amplitudes in [0.01, 0.025], noise 0.02.
- 2000 training and 400 test images, balanced over the four classes.

So across the presets each band is the most distinctive band of some class,
and the designated characteristic is low-frequency in ``syn1`` and
high-frequency in ``syn3`` and ``syn4``. :meth:`SyntheticSpec.expected_outcome`
states this before any training; :meth:`SyntheticSpec.band_distinctiveness`
computes it from the spec.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ._io import atomic_directory, atomic_write, load_array_file, sha256_file
from .errors import InvalidFileError, InvalidInputError
from .fourier import band_masks, default_band_edges

__all__ = [
    "GENERATOR_VERSION",
    "SPLITS",
    "SpecialGroup",
    "ClassSpec",
    "SyntheticSpec",
    "PRESETS",
    "get_preset",
    "special_frequencies",
    "special_frequency_masks",
    "make_dataset",
    "save_dataset",
    "load_dataset",
    "read_saved_spec",
    "authors_file_names",
    "load_authors_dataset",
]

logger = logging.getLogger(__name__)

#: Version of the recipe in :func:`make_dataset`. It is part of every spec's
#: JSON and hash, so a changed recipe never matches data made by an old one.
GENERATOR_VERSION = 1

SPLITS = ("train", "test")

_SPEC_FORMAT = "fslib-synthetic-spec"
_INTENSITY_OFFSET = 0.5
# Images rendered per inverse FFT. For 32x32 images the temporaries of one chunk
# take about 200 MB (an estimate from the array sizes), whatever the data set size.
_RENDER_CHUNK = 1024


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Invalid {name}: expected an int, got {value!r}.")
    if value < minimum:
        raise InvalidInputError(f"Invalid {name}: expected an int >= {minimum}, got {value}.")
    return int(value)


def _check_float(value: Any, name: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Invalid {name}: expected a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInputError(f"Invalid {name}: expected a finite number, got {value}.")
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"Invalid {name}: expected a number >= {minimum}, got {value}.")
    return value


def _check_range(value: Any, name: str, minimum: float | None = None) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise InvalidInputError(f"Invalid {name}: expected a (low, high) pair, got {value!r}. Pass e.g. (0.02, 0.03).")
    low = _check_float(value[0], f"{name}[0]", minimum)
    high = _check_float(value[1], f"{name}[1]", minimum)
    if low > high:
        raise InvalidInputError(f"Invalid {name}: low {low} is larger than high {high}. Swap them.")
    return (low, high)


def _band_name(band: int) -> str:
    return f"B{band + 1}"


# --------------------------------------------------------------------------
# Specification
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialGroup:
    """A group of special frequencies of one class, all inside one band.

    Attributes:
        band: 0-based band index (0 is B1, the lowest band).
        count: number of special frequencies, each used with its conjugate mirror.
        amplitude: ``(low, high)`` range of the per-channel cosine amplitude,
            in output intensity units.
    """

    band: int
    count: int
    amplitude: tuple[float, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "band", _check_int(self.band, "band", 0))
        object.__setattr__(self, "count", _check_int(self.count, "count", 1))
        object.__setattr__(self, "amplitude", _check_range(self.amplitude, "amplitude", 0.0))
        if self.amplitude[1] <= 0.0:
            raise InvalidInputError(
                f"Invalid amplitude: the range {self.amplitude} has no positive value, so the "
                "special frequencies would be absent. Pass e.g. (0.04, 0.06)."
            )

    @property
    def mean_amplitude(self) -> float:
        """Mean of the amplitude range."""
        return (self.amplitude[0] + self.amplitude[1]) / 2


@dataclass(frozen=True)
class ClassSpec:
    """One class: a name and its groups of special frequencies."""

    name: str
    special: tuple[SpecialGroup, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError(f"Invalid class name: expected a non-empty string, got {self.name!r}.")
        groups = self.special
        if isinstance(groups, SpecialGroup) or not isinstance(groups, Sequence) or len(groups) == 0:
            raise InvalidInputError(
                f"Invalid special for class {self.name!r}: expected a non-empty sequence of SpecialGroup, "
                f"got {groups!r}. Give every class at least one group of special frequencies."
            )
        for group in groups:
            if not isinstance(group, SpecialGroup):
                raise TypeError(
                    f"Invalid special for class {self.name!r}: expected SpecialGroup items, got "
                    f"{type(group).__name__}. Build them with SpecialGroup(band, count, amplitude)."
                )
        object.__setattr__(self, "special", tuple(groups))


@dataclass(frozen=True)
class SyntheticSpec:
    """Full definition of a synthetic data set; see the module docstring for the recipe.

    Attributes:
        classes: one :class:`ClassSpec` per class, in label order (at least two).
        name: short name, e.g. ``"syn1"``.
        description: one-paragraph design note shown by ``fslib synth --list``.
        image_size: height and width in pixels (square images, at least 8).
        band_edges: radial band edges in index units, ``[0, ..., inf]``; ``None``
            uses :func:`fslib.fourier.default_band_edges` (``[0, 4, 8, 12, inf]``
            for 32 px). The first edge must be 0 and the last one must lie
            beyond the largest radius, so the bands cover the spectrum.
        phase_range: ``(low, high)`` range of the phases in radians.
        distractors_per_image: number of distractor components per image.
        distractor_amplitude: ``(low, high)`` amplitude range of distractors.
        noise_std: standard deviation of the Gaussian pixel noise.
        train_size: number of training images.
        test_size: number of test images.
        layout_seed: seed of the special-frequency positions.
        designated_class: index of the class built to have the most distinctive
            characteristic, or ``None``. It is checked against
            :meth:`band_distinctiveness` on construction.
    """

    classes: tuple[ClassSpec, ...]
    name: str = "custom"
    description: str = ""
    image_size: int = 32
    band_edges: tuple[float, ...] | None = None
    phase_range: tuple[float, float] = (0.0, 2 * math.pi)
    distractors_per_image: int = 6
    distractor_amplitude: tuple[float, float] = (0.01, 0.025)
    noise_std: float = 0.02
    train_size: int = 2000
    test_size: int = 400
    layout_seed: int = 0
    designated_class: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"Invalid name: expected a non-empty string, got {self.name!r}.")
        if not isinstance(self.description, str):
            raise TypeError(f"Invalid description: expected a string, got {type(self.description).__name__}.")
        size = _check_int(self.image_size, "image_size", 8)
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "band_edges", self._checked_edges(size))
        self._check_classes()
        object.__setattr__(self, "phase_range", _check_range(self.phase_range, "phase_range"))
        object.__setattr__(self, "distractors_per_image",
                           _check_int(self.distractors_per_image, "distractors_per_image", 0))
        object.__setattr__(self, "distractor_amplitude",
                           _check_range(self.distractor_amplitude, "distractor_amplitude", 0.0))
        object.__setattr__(self, "noise_std", _check_float(self.noise_std, "noise_std", 0.0))
        object.__setattr__(self, "train_size", _check_int(self.train_size, "train_size", 1))
        object.__setattr__(self, "test_size", _check_int(self.test_size, "test_size", 1))
        object.__setattr__(self, "layout_seed", _check_int(self.layout_seed, "layout_seed", 0))
        self._check_capacity()
        self._check_designated_class()

    # -- validation helpers ------------------------------------------------

    def _checked_edges(self, size: int) -> tuple[float, ...]:
        edges = self.band_edges
        if edges is None:
            return tuple(float(e) for e in default_band_edges(size))
        if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence):
            raise InvalidInputError(f"Invalid band_edges: expected a sequence of radii, got {edges!r}.")
        values = tuple(_parse_edge(e, i) for i, e in enumerate(edges))
        band_masks(size, values)  # raises on fewer than two or non-increasing edges
        max_radius = math.hypot(size // 2, size // 2)
        if values[0] != 0.0 or values[-1] <= max_radius:
            raise InvalidInputError(
                f"Invalid band_edges: {list(values)} do not cover the spectrum. The first edge must be 0 "
                f"and the last one larger than {max_radius:.2f} (or inf); e.g. {default_band_edges(size)}."
            )
        return values

    def _check_classes(self) -> None:
        classes = self.classes
        if isinstance(classes, ClassSpec) or not isinstance(classes, Sequence) or len(classes) < 2:
            raise InvalidInputError(
                f"Invalid classes: expected a sequence of at least two ClassSpec, got {classes!r}."
            )
        for item in classes:
            if not isinstance(item, ClassSpec):
                raise TypeError(f"Invalid classes: expected ClassSpec items, got {type(item).__name__}.")
        names = [c.name for c in classes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInputError(f"Invalid classes: duplicate class names {duplicates}. Give each class its own name.")
        for item in classes:
            for group in item.special:
                if group.band >= self.num_bands:
                    raise InvalidInputError(
                        f"Invalid band {group.band} in class {item.name!r}: there are {self.num_bands} bands "
                        f"(indices 0 to {self.num_bands - 1}). Use a smaller index or add band edges."
                    )
        object.__setattr__(self, "classes", tuple(classes))

    def _check_capacity(self) -> None:
        available = [len(reps) for reps in _band_representatives(self.image_size, self.band_edges)]
        requested = [0] * self.num_bands
        for item in self.classes:
            for group in item.special:
                requested[group.band] += group.count
        for band, (want, have) in enumerate(zip(requested, available)):
            if want > have:
                raise InvalidInputError(
                    f"Invalid classes: band {_band_name(band)} contains {have} frequencies (up to mirrors) but the "
                    f"classes ask for {want} special frequencies there. Lower the counts or widen the band."
                )

    def _check_designated_class(self) -> None:
        index = self.designated_class
        if index is None:
            return
        index = _check_int(index, "designated_class", 0)
        if index >= self.num_classes:
            raise InvalidInputError(
                f"Invalid designated_class: got {index}, expected a class index in [0, {self.num_classes - 1}] or None."
            )
        object.__setattr__(self, "designated_class", index)
        best = self.band_distinctiveness().max(axis=1)  # (K,)
        others = np.delete(best, index)
        if not best[index] > others.max():
            raise InvalidInputError(
                f"Invalid designated_class: class {index} ({self.class_names[index]!r}) is not the most "
                f"distinctive class (best band scores {np.round(best, 4).tolist()}). Give it more or "
                "stronger special frequencies, or set designated_class to None."
            )

    # -- derived quantities ------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def num_bands(self) -> int:
        """Number of radial bands."""
        return len(self.band_edges) - 1

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return [c.name for c in self.classes]

    def split_size(self, split: str) -> int:
        """Return the number of images of ``split`` ("train" or "test")."""
        _check_split(split)
        return self.train_size if split == "train" else self.test_size

    def band_distinctiveness(self) -> np.ndarray:
        """Return the expected distinctiveness of each class in each band, ``(K, n_bands)``.

        Let ``E_c(k)`` be the expected class-average amplitude at frequency
        ``k``: the mean amplitude of a special frequency of class ``c``, else 0.
        The score of class ``c`` in band ``b`` is the sum over ``k`` in ``b``
        of ``|E_c(k) - mean_j E_j(k)|``, counting ``k`` and its mirror.
        Distractors and noise have the same distribution in every class and
        are left out. The same statistic computed from generated images, with
        ``E_c`` the measured class-average amplitude spectrum, agrees with it
        up to sampling noise.
        """
        num_classes = self.num_classes
        scores = np.zeros((num_classes, self.num_bands))
        for owner, item in enumerate(self.classes):
            for group in item.special:
                # Each frequency k and its mirror: the owner sits above the mean by
                # a (1 - 1/K), every other class below it by a / K.
                weight = 2 * group.count * group.mean_amplitude
                for c in range(num_classes):
                    share = (1 - 1 / num_classes) if c == owner else 1 / num_classes
                    scores[c, group.band] += weight * share
        return scores

    def most_distinctive_bands(self) -> list[int]:
        """Return, per class, the 0-based band with the highest :meth:`band_distinctiveness`."""
        return [int(b) for b in self.band_distinctiveness().argmax(axis=1)]

    @property
    def designated_band(self) -> int | None:
        """The designated class's most distinctive band (0-based), or ``None``."""
        if self.designated_class is None:
            return None
        return self.most_distinctive_bands()[self.designated_class]

    def expected_outcome(self) -> dict[str, Any] | None:
        """Return what the learning-dynamics experiment should show, or ``None`` without a designated class.

        The dict names the class whose characteristic is most distinctive, its
        band (``"B1"``.. ``"B4"``) and whether that band is in the upper half
        of the bands.
        """
        if self.designated_class is None:
            return None
        band = self.designated_band
        return {
            "class_index": self.designated_class,
            "class_name": self.class_names[self.designated_class],
            "band": _band_name(band),
            "band_index": band,
            "high_frequency": band >= self.num_bands / 2,
        }

    def _class_label(self, index: int) -> str:
        name = self.classes[index].name
        return name if name == f"class {index}" else f"class {index} ({name})"

    def describe(self) -> str:
        """Return a few lines that state the design, for listings."""
        lines = [f"{self.name}: {self.description}".rstrip(": ")]
        edges = ", ".join("inf" if math.isinf(e) else f"{e:g}" for e in self.band_edges)
        lines.append(f"  {self.image_size}x{self.image_size} RGB, bands at radii [{edges}], "
                     f"{self.train_size} train / {self.test_size} test images")
        for index, item in enumerate(self.classes):
            groups = ", ".join(
                f"{g.count} in {_band_name(g.band)} (amplitude {g.amplitude[0]:g}-{g.amplitude[1]:g})"
                for g in item.special
            )
            marker = "  <- designated" if index == self.designated_class else ""
            lines.append(f"  {self._class_label(index)}: {groups}{marker}")
        lines.append(f"  distractors: {self.distractors_per_image} per image (amplitude "
                     f"{self.distractor_amplitude[0]:g}-{self.distractor_amplitude[1]:g}), "
                     f"noise std {self.noise_std:g}")
        outcome = self.expected_outcome()
        if outcome is not None:
            height = "high" if outcome["high_frequency"] else "low"
            lines.append(f"  most distinctive: {self._class_label(outcome['class_index'])} "
                         f"in {outcome['band']} ({height} frequency)")
        return "\n".join(lines)

    # -- serialisation -----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict; an infinite band edge is written as the string ``"inf"``."""
        return {
            "format": _SPEC_FORMAT,
            "generator_version": GENERATOR_VERSION,
            "name": self.name,
            "description": self.description,
            "image_size": self.image_size,
            "band_edges": ["inf" if math.isinf(e) else e for e in self.band_edges],
            "classes": [
                {"name": c.name,
                 "special": [{"band": g.band, "count": g.count, "amplitude": list(g.amplitude)} for g in c.special]}
                for c in self.classes
            ],
            "phase_range": list(self.phase_range),
            "distractors_per_image": self.distractors_per_image,
            "distractor_amplitude": list(self.distractor_amplitude),
            "noise_std": self.noise_std,
            "train_size": self.train_size,
            "test_size": self.test_size,
            "layout_seed": self.layout_seed,
            "designated_class": self.designated_class,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SyntheticSpec":
        """Build a spec from :meth:`to_dict` output; missing optional keys take their defaults."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"Invalid spec: expected a JSON object (dict), got {type(data).__name__}.")
        data = dict(data)
        fmt = data.pop("format", _SPEC_FORMAT)
        if fmt != _SPEC_FORMAT:
            raise InvalidInputError(f"Invalid spec: format is {fmt!r}, expected {_SPEC_FORMAT!r}.")
        version = data.pop("generator_version", GENERATOR_VERSION)
        if version != GENERATOR_VERSION:
            raise InvalidInputError(
                f"Invalid spec: generator_version {version!r} differs from this fslib's {GENERATOR_VERSION}; "
                "the images would not match. Use the fslib version that wrote the spec."
            )
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise InvalidInputError(f"Invalid spec: unknown keys {unknown}. Allowed keys: {sorted(allowed)}.")
        if "classes" not in data:
            raise InvalidInputError("Invalid spec: the key 'classes' is missing. List at least two classes.")
        data["classes"] = tuple(_class_from_dict(item, i) for i, item in enumerate(_as_list(data["classes"], "classes")))
        for key in ("phase_range", "distractor_amplitude", "band_edges"):
            if data.get(key) is not None:
                data[key] = tuple(_as_list(data[key], key))
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        """Return the spec as JSON text (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> "SyntheticSpec":
        """Parse JSON text written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"Invalid spec: the text is not valid JSON ({exc}).") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SyntheticSpec":
        """Read a spec from a JSON file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Spec file not found: {path}. Write one with SyntheticSpec.to_json().")
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: {exc}") from exc

    def spec_hash(self) -> str:
        """Return the SHA-256 hex digest of the canonical JSON (sorted keys, no spaces)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_edge(value: Any, index: int) -> float:
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"Invalid band_edges[{index}]: expected a number or 'inf', got {value!r}.")
    return float(value)


def _as_list(value: Any, name: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"Invalid spec: {name} must be a JSON array, got {value!r}.")
    return list(value)


def _class_from_dict(data: Any, index: int) -> ClassSpec:
    if not isinstance(data, Mapping) or set(data) != {"name", "special"}:
        raise InvalidInputError(
            f"Invalid spec: classes[{index}] must be an object with the keys 'name' and 'special', got {data!r}."
        )
    groups = []
    for j, group in enumerate(_as_list(data["special"], f"classes[{index}].special")):
        if not isinstance(group, Mapping) or set(group) != {"band", "count", "amplitude"}:
            raise InvalidInputError(
                f"Invalid spec: classes[{index}].special[{j}] must be an object with the keys 'band', "
                f"'count' and 'amplitude', got {group!r}."
            )
        groups.append(SpecialGroup(group["band"], group["count"],
                                   tuple(_as_list(group["amplitude"], f"classes[{index}].special[{j}].amplitude"))))
    return ClassSpec(data["name"], tuple(groups))


def _check_split(split: Any) -> str:
    if split not in SPLITS:
        raise InvalidInputError(f"Invalid split: got {split!r}, expected one of {', '.join(map(repr, SPLITS))}.")
    return split


# --------------------------------------------------------------------------
# Frequency layout
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _band_representatives(size: int, edges: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Per band, the ``(R, 2)`` centred offsets ``(u, v)`` of one frequency of each mirror pair.

    The zero frequency and the frequencies that are their own mirror (on even
    sizes, the Nyquist ones) are left out, because a cosine there cannot have
    a free phase.
    """
    half = size // 2
    offsets = np.arange(size) - half  # centred index i is the frequency i - size // 2
    u, v = np.meshgrid(offsets, offsets, indexing="ij")  # (H, W) each
    mirror_u = (-u + half) % size - half
    mirror_v = (-v + half) % size - half
    # Keep k when it sorts before its mirror; this drops k == -k as well.
    keep = (u < mirror_u) | ((u == mirror_u) & (v < mirror_v))
    masks = band_masks(size, list(edges), dtype=torch.float64).numpy().astype(bool)  # (n_bands, H, W)
    reps = []
    for mask in masks:
        chosen = keep & mask
        reps.append(np.stack([u[chosen], v[chosen]], axis=1))  # (R, 2)
    return tuple(reps)


@functools.lru_cache(maxsize=32)
def _layout(spec: SyntheticSpec) -> tuple[np.ndarray, ...]:
    """Per class, an ``(S_c, 3)`` int array of ``(u, v, group index)`` rows."""
    rng = np.random.default_rng(spec.layout_seed)
    reps = _band_representatives(spec.image_size, spec.band_edges)
    used = [np.zeros(len(r), dtype=bool) for r in reps]
    layout = []
    for item in spec.classes:
        rows = []
        for group_index, group in enumerate(item.special):
            free = np.flatnonzero(~used[group.band])
            picked = np.sort(rng.choice(free, size=group.count, replace=False))
            used[group.band][picked] = True
            chosen = reps[group.band][picked]  # (count, 2)
            rows.append(np.column_stack([chosen, np.full(group.count, group_index)]))
        layout.append(np.concatenate(rows).astype(np.int64))
    return tuple(layout)


def special_frequencies(spec_or_preset: SyntheticSpec | str) -> list[np.ndarray]:
    """Return each class's special frequencies as centred offsets.

    Returns:
        One int array ``(S_c, 2)`` per class with rows ``(u, v)``: the
        frequency sits at index ``(u + H // 2, v + W // 2)`` of a centred
        spectrum, and its mirror ``(-u, -v)`` (modulo the size) is used too.
    """
    spec = _resolve(spec_or_preset)
    return [rows[:, :2].copy() for rows in _layout(spec)]


def special_frequency_masks(spec_or_preset: SyntheticSpec | str) -> torch.Tensor:
    """Return the ``(K, H, W)`` centred 0/1 masks of each class's special frequencies, mirrors included."""
    spec = _resolve(spec_or_preset)
    size, half = spec.image_size, spec.image_size // 2
    masks = torch.zeros(spec.num_classes, size, size)
    for index, rows in enumerate(special_frequencies(spec)):
        u, v = torch.as_tensor(rows[:, 0]), torch.as_tensor(rows[:, 1])
        masks[index, u + half, v + half] = 1.0
        masks[index, (half - u) % size, (half - v) % size] = 1.0  # the mirror -k, centred
    return masks


# --------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------

_PRESET_CLASS_NAMES = ("class 0", "class 1", "class 2", "class 3")


def _make_preset(bias_band: int) -> SyntheticSpec:
    other_bands = [b for b in range(4) if b != bias_band]
    classes = []
    for index, class_name in enumerate(_PRESET_CLASS_NAMES):
        if index == bias_band:
            primary = SpecialGroup(bias_band, 5, (0.06, 0.09))
        else:
            primary = SpecialGroup(bias_band, 3, (0.035, 0.055))
        secondary = SpecialGroup(other_bands[index % 3], 2, (0.02, 0.03))
        classes.append(ClassSpec(class_name, (primary, secondary)))
    name = f"syn{bias_band + 1}"
    height = "low" if bias_band < 2 else "high"
    description = (
        f"bias in {_band_name(bias_band)}: every class has its primary special frequencies there; "
        f"class {bias_band} has more and stronger ones ({height}-frequency characteristic)."
    )
    return SyntheticSpec(classes=tuple(classes), name=name, description=description,
                         layout_seed=2023 + bias_band, designated_class=bias_band)


#: The four presets by name, ``"syn1"`` to ``"syn4"`` (fslib's reconstruction).
PRESETS: dict[str, SyntheticSpec] = {spec.name: spec for spec in (_make_preset(b) for b in range(4))}


def get_preset(name: str) -> SyntheticSpec:
    """Return the preset called ``name`` ("syn1".."syn4")."""
    if not isinstance(name, str) or name.lower() not in PRESETS:
        raise InvalidInputError(f"Unknown preset {name!r}: expected one of {', '.join(PRESETS)}.")
    return PRESETS[name.lower()]


def _resolve(spec_or_preset: Any) -> SyntheticSpec:
    if isinstance(spec_or_preset, SyntheticSpec):
        return spec_or_preset
    if isinstance(spec_or_preset, str):
        return get_preset(spec_or_preset)
    raise TypeError(
        f"Invalid spec_or_preset: expected a SyntheticSpec or a preset name such as 'syn1', "
        f"got {type(spec_or_preset).__name__}."
    )


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------


def _split_seed_sequence(seed: int, split: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SPLITS.index(split), GENERATOR_VERSION])


def _draw_components(spec: SyntheticSpec, labels: np.ndarray, rng: np.random.Generator):
    """Draw the frequencies, amplitudes and phases of every component of every image.

    Returns ``u, v`` int arrays ``(N, M)``, amplitudes ``(N, M, 3)`` and
    phases ``(N, M)``. ``M`` is the largest special count plus the
    distractor count, and unused special slots have amplitude 0.
    """
    num_images = len(labels)
    layout = _layout(spec)
    slots = max(len(rows) for rows in layout)

    # Special frequencies: a (K, S) table gathered by label.
    table_u = np.zeros((spec.num_classes, slots), dtype=np.int64)
    table_v = np.zeros_like(table_u)
    table_low = np.zeros((spec.num_classes, slots))
    table_high = np.zeros_like(table_low)
    for index, rows in enumerate(layout):
        count = len(rows)
        table_u[index, :count], table_v[index, :count] = rows[:, 0], rows[:, 1]
        groups = spec.classes[index].special
        table_low[index, :count] = [groups[g].amplitude[0] for g in rows[:, 2]]
        table_high[index, :count] = [groups[g].amplitude[1] for g in rows[:, 2]]
    special_u, special_v = table_u[labels], table_v[labels]  # (N, S)
    low, high = table_low[labels][..., None], table_high[labels][..., None]  # (N, S, 1)
    special_amp = low + (high - low) * rng.random((num_images, slots, 3))  # zero where low == high == 0
    special_phase = spec.phase_range[0] + np.ptp(spec.phase_range) * rng.random((num_images, slots))

    # Distractors: a band drawn uniformly, then a frequency uniformly inside it.
    reps = _band_representatives(spec.image_size, spec.band_edges)
    counts = np.array([len(r) for r in reps])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    all_reps = np.concatenate(reps)  # (R_total, 2)
    num_distractors = spec.distractors_per_image
    band = rng.integers(spec.num_bands, size=(num_images, num_distractors))
    pick = starts[band] + np.floor(rng.random((num_images, num_distractors)) * counts[band]).astype(np.int64)
    low, high = spec.distractor_amplitude
    distractor_amp = low + (high - low) * rng.random((num_images, num_distractors, 3))
    distractor_phase = spec.phase_range[0] + np.ptp(spec.phase_range) * rng.random((num_images, num_distractors))

    u = np.concatenate([special_u, all_reps[pick, 0]], axis=1)  # (N, M)
    v = np.concatenate([special_v, all_reps[pick, 1]], axis=1)
    amplitude = np.concatenate([special_amp, distractor_amp], axis=1)  # (N, M, 3)
    phase = np.concatenate([special_phase, distractor_phase], axis=1)  # (N, M)
    return u, v, amplitude, phase


def _render(u: np.ndarray, v: np.ndarray, amplitude: np.ndarray, phase: np.ndarray, size: int) -> np.ndarray:
    """Render cosines into ``(N, 3, H, W)`` float64 images with one inverse FFT.

    A cosine ``a cos(2 pi <k, n> / size + phi)`` has the unscaled DFT
    ``a / 2 * size**2 * exp(i phi)`` at ``k`` and its conjugate at ``-k``.
    Components that share a frequency add up.
    """
    num_images, num_components = u.shape
    channels = amplitude.shape[2]
    value = 0.5 * size * size * amplitude * np.exp(1j * phase)[..., None]  # (N, M, 3) complex
    image_index = np.arange(num_images)[:, None, None]  # (N, 1, 1)
    channel_index = np.arange(channels)[None, None, :]  # (1, 1, 3)
    base = (image_index * channels + channel_index) * size * size  # (N, 1, 3)
    # Unshifted DFT layout: frequency u sits at row u mod size.
    at_k = base + ((u % size) * size + (v % size))[..., None]  # (N, M, 3)
    at_mirror = base + (((-u) % size) * size + ((-v) % size))[..., None]
    index = np.concatenate([at_k.ravel(), at_mirror.ravel()])
    values = np.concatenate([value.ravel(), value.conj().ravel()])
    length = num_images * channels * size * size
    real = np.bincount(index, weights=values.real, minlength=length)
    imag = np.bincount(index, weights=values.imag, minlength=length)
    spectrum = (real + 1j * imag).reshape(num_images, channels, size, size)  # (N, 3, H, W)
    # The spectrum is conjugate-symmetric, so the imaginary part is rounding error only.
    return np.fft.ifft2(spectrum, axes=(-2, -1)).real


def make_dataset(spec_or_preset: SyntheticSpec | str, split: str = "train", seed: int = 0,
                 *, clip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate the images and labels of one split of a synthetic data set.

    Args:
        spec_or_preset: a :class:`SyntheticSpec` or a preset name ("syn1".."syn4").
        split: "train" or "test"; the two splits use independent random streams.
        seed: generation seed (a non-negative int). The same spec, split and
            seed give the same bytes on the same platform. The special
            frequency positions depend on ``spec.layout_seed`` only.
        clip: clip to ``[0, 1]`` (default). ``False`` returns ``0.5 + raw``
            unclipped, to measure how much clipping changes.

    Returns:
        ``images`` float32 ``(N, 3, H, W)`` in ``[0, 1]`` and ``labels``
        int64 ``(N,)``, balanced over the classes (counts differ by at most
        one) in random order.
    """
    spec = _resolve(spec_or_preset)
    split = _check_split(split)
    seed = _check_int(seed, "seed", 0)
    num_images = spec.split_size(split)
    size = spec.image_size
    component_seeds, noise_seeds = _split_seed_sequence(seed, split).spawn(2)
    rng = np.random.default_rng(component_seeds)
    noise_rng = np.random.default_rng(noise_seeds)

    labels = rng.permutation(np.arange(num_images) % spec.num_classes).astype(np.int64)  # (N,)
    u, v, amplitude, phase = _draw_components(spec, labels, rng)

    images = np.empty((num_images, 3, size, size), dtype=np.float32)
    for start in range(0, num_images, _RENDER_CHUNK):
        stop = min(start + _RENDER_CHUNK, num_images)
        raw = _render(u[start:stop], v[start:stop], amplitude[start:stop], phase[start:stop], size)
        if spec.noise_std > 0:
            raw += noise_rng.normal(0.0, spec.noise_std, size=raw.shape)
        raw += _INTENSITY_OFFSET
        if clip:
            np.clip(raw, 0.0, 1.0, out=raw)
        images[start:stop] = raw
    logger.debug("generated %s %s seed %d: %d images", spec.name, split, seed, num_images)
    return torch.from_numpy(images), torch.from_numpy(labels)


# --------------------------------------------------------------------------
# Saved data sets
# --------------------------------------------------------------------------

_MANIFEST = "checksums.json"
_SPEC_FILE = "spec.json"


def save_dataset(out_dir: str | os.PathLike, spec_or_preset: SyntheticSpec | str, seed: int = 0,
                 *, overwrite: bool = False) -> Path:
    """Generate both splits and write them to ``out_dir`` atomically.

    Files: ``train.npz`` and ``test.npz`` (arrays ``images`` float32
    ``(N, 3, H, W)`` and ``labels`` int64 ``(N,)``), ``spec.json`` (the spec,
    readable with :meth:`SyntheticSpec.load`) and ``checksums.json`` (SHA-256
    of each of those files, the seed and the spec hash). The folder appears
    only once complete.

    Args:
        overwrite: replace ``out_dir`` when it already contains a saved data set.
            A non-empty folder that is not a saved data set is never replaced.

    Returns:
        The folder's path.
    """
    spec = _resolve(spec_or_preset)
    seed = _check_int(seed, "seed", 0)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InvalidInputError(f"Invalid out_dir: {out_dir} is a file. Pass a new or empty folder.")
        if any(out_dir.iterdir()):
            if not (out_dir / _MANIFEST).is_file():
                raise InvalidInputError(
                    f"Invalid out_dir: {out_dir} is not empty and contains no saved data set, so it is not "
                    "replaced. Pass a new or empty folder."
                )
            if not overwrite:
                raise InvalidInputError(
                    f"Invalid out_dir: {out_dir} already contains a saved data set. Pass overwrite=True "
                    "(--overwrite on the command line) to replace it, or choose another folder."
                )

    with atomic_directory(out_dir) as tmp:
        files = {}
        for split in SPLITS:
            images, labels = make_dataset(spec, split, seed)
            with atomic_write(tmp / f"{split}.npz", "wb") as handle:
                np.savez(handle, images=images.numpy(), labels=labels.numpy())
            files[f"{split}.npz"] = sha256_file(tmp / f"{split}.npz")
        with atomic_write(tmp / _SPEC_FILE, "w") as handle:
            handle.write(spec.to_json() + "\n")
        files[_SPEC_FILE] = sha256_file(tmp / _SPEC_FILE)
        manifest = {"sha256": files, "seed": seed, "spec_hash": spec.spec_hash(),
                    "generator_version": GENERATOR_VERSION}
        with atomic_write(tmp / _MANIFEST, "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
            handle.write("\n")
    logger.info("saved %s (seed %d) to %s", spec.name, seed, out_dir)
    return out_dir


def _read_manifest(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Data set folder not found: {directory}. Write one with save_dataset or `fslib synth --out`."
        )
    path = directory / _MANIFEST
    if not path.is_file():
        raise InvalidFileError(f"{directory} contains no {_MANIFEST}, so it is not a saved synthetic data set.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidFileError(f"Corrupt {path}: {exc}. Regenerate the data set.") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), dict):
        raise InvalidFileError(f"Corrupt {path}: the 'sha256' table is missing. Regenerate the data set.")
    return manifest


def _verify_file(directory: Path, manifest: dict[str, Any], name: str) -> Path:
    path = directory / name
    expected = manifest["sha256"].get(name)
    if expected is None:
        raise InvalidFileError(f"{directory / _MANIFEST} lists no checksum for {name}. Regenerate the data set.")
    if not path.is_file():
        raise InvalidFileError(f"Missing file {path} of a saved data set. Regenerate the data set.")
    actual = sha256_file(path)
    if actual != expected:
        raise InvalidFileError(
            f"Checksum mismatch for {path}: SHA-256 {actual[:12]}..., expected {expected[:12]}.... "
            "The file is corrupt or was changed; regenerate the data set."
        )
    return path


def read_saved_spec(directory: str | os.PathLike) -> tuple[SyntheticSpec, int]:
    """Return the verified spec and seed of a folder written by :func:`save_dataset`."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    spec_path = _verify_file(directory, manifest, _SPEC_FILE)
    try:
        spec = SyntheticSpec.load(spec_path)
    except InvalidInputError as exc:
        raise InvalidFileError(f"Invalid {spec_path}: {exc}") from exc
    if spec.spec_hash() != manifest.get("spec_hash"):
        raise InvalidFileError(
            f"{spec_path} does not match the spec hash in {directory / _MANIFEST}. Regenerate the data set."
        )
    seed = manifest.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidFileError(f"Corrupt {directory / _MANIFEST}: seed is {seed!r}. Regenerate the data set.")
    return spec, seed


def load_dataset(directory: str | os.PathLike, split: str = "train", *,
                 spec: SyntheticSpec | str | None = None, seed: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split written by :func:`save_dataset`, after checking every checksum.

    Args:
        directory: the folder written by :func:`save_dataset`.
        split: "train" or "test".
        spec: if given, the saved data set must come from this spec (or preset).
        seed: if given, the saved data set must come from this seed.

    Returns:
        ``images`` float32 ``(N, 3, H, W)`` and ``labels`` int64 ``(N,)``.

    Raises:
        FileNotFoundError: the folder does not exist.
        InvalidFileError: a file is missing, corrupt, changed, or does not
            match ``spec`` or ``seed``.
    """
    split = _check_split(split)
    directory = Path(directory)
    saved_spec, saved_seed = read_saved_spec(directory)
    if spec is not None and _resolve(spec).spec_hash() != saved_spec.spec_hash():
        raise InvalidFileError(
            f"{directory} contains data set {saved_spec.name!r}, made from another spec than the one requested. "
            "Regenerate it or point to the right folder."
        )
    if seed is not None and seed != saved_seed:
        raise InvalidFileError(f"{directory} was generated with seed {saved_seed}, not {seed}. Regenerate it.")

    path = _verify_file(directory, _read_manifest(directory), f"{split}.npz")
    arrays = load_array_file(path)
    if not isinstance(arrays, dict) or set(arrays) != {"images", "labels"}:
        raise InvalidFileError(f"{path} must hold the arrays 'images' and 'labels'. Regenerate the data set.")
    images, labels = arrays["images"], arrays["labels"]
    size = saved_spec.image_size
    expected_shape = (saved_spec.split_size(split), 3, size, size)
    if images.shape != expected_shape or images.dtype != np.float32:
        raise InvalidFileError(
            f"{path}: images are {images.dtype} {images.shape}, expected float32 {expected_shape}."
        )
    if labels.shape != expected_shape[:1] or labels.dtype != np.int64:
        raise InvalidFileError(f"{path}: labels are {labels.dtype} {labels.shape}, expected int64 {expected_shape[:1]}.")
    return torch.from_numpy(images), torch.from_numpy(labels)


# --------------------------------------------------------------------------
# The authors' published files
# --------------------------------------------------------------------------


def authors_file_names(k: int, split: str = "train") -> tuple[str, str]:
    """Return the ``(data, label)`` file names of the authors' data set ``k`` and ``split``."""
    k = _check_int(k, "k", 0)
    split = _check_split(split)
    return (f"{split}_data_complex_special_{k}_par.npy", f"{split}_label_complex_special_{k}_par.npy")


def _to_numpy(value: Any, path: Path) -> np.ndarray:
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            stacked = np.asarray([_to_numpy(item, path) for item in value])
        except (InvalidFileError, ValueError) as exc:
            raise InvalidFileError(f"{path} contains a sequence of items that do not stack into one array: {exc}") from exc
        if stacked.dtype != object:
            return stacked
    raise InvalidFileError(f"Invalid {path}: found a {type(value).__name__}, expected an array or a tensor.")


def _authors_images(data: np.ndarray, path: Path) -> np.ndarray:
    if np.iscomplexobj(data):
        if np.abs(data.imag).max(initial=0.0) > 1e-6 * max(np.abs(data.real).max(initial=0.0), 1e-12):
            raise InvalidFileError(f"Invalid {path}: the images are complex with a non-zero imaginary part, expected real images.")
        data = data.real
    if data.ndim == 3:
        data = data[:, None]  # (N, H, W) grey -> (N, 1, H, W)
    if data.ndim != 4:
        raise InvalidFileError(f"{path}: expected images of shape (N, H, W, C) or (N, C, H, W), got {data.shape}.")
    channels_first = data.shape[1] in (1, 3)
    channels_last = data.shape[3] in (1, 3)
    if channels_last and not channels_first:
        data = data.transpose(0, 3, 1, 2)
    elif not channels_first:
        raise InvalidFileError(f"{path}: cannot find a channel axis of size 1 or 3 in shape {data.shape}.")
    if data.shape[1] == 1:
        data = np.repeat(data, 3, axis=1)  # grey -> RGB

    if data.dtype == np.uint8:
        return (data.astype(np.float32) / 255.0)
    if data.dtype == bool:
        return data.astype(np.float32)
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise InvalidFileError(f"{path}: images have dtype {data.dtype}, expected uint8 or floating point.")
    data = data.astype(np.float64)
    if not np.isfinite(data).all():
        raise InvalidFileError(f"{path}: images contain NaN or infinite values.")
    low, high = float(data.min(initial=0.0)), float(data.max(initial=0.0))
    if low >= 0.0 and high <= 1.0:
        pass
    elif low >= 0.0 and high <= 255.0:
        logger.info("%s: values up to %g, read as 0..255 and divided by 255", path, high)
        data = data / 255.0
    else:
        # NOTE: the authors' value range is not documented. A range outside
        # [0, 1] and [0, 255] is mapped linearly onto [0, 1] over the whole file.
        logger.warning("%s: values in [%g, %g] are rescaled linearly to [0, 1]", path, low, high)
        data = (data - low) / (high - low) if high > low else np.zeros_like(data)
    return np.ascontiguousarray(data, dtype=np.float32)


def _authors_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(axis=1)  # one-hot (N, K) -> (N,)
    labels = labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels
    if labels.ndim != 1:
        raise InvalidFileError(f"{path}: expected labels of shape (N,) or one-hot (N, K), got {labels.shape}.")
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise InvalidFileError(f"{path}: labels have dtype {labels.dtype}, expected integers.")
    if np.issubdtype(labels.dtype, np.floating) and not np.array_equal(labels, np.round(labels)):
        raise InvalidFileError(f"{path}: labels are not whole numbers.")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InvalidFileError(f"{path}: labels must be non-negative, found {labels.min()}.")
    return labels


def load_authors_dataset(folder: str | os.PathLike, k: int, split: str = "train"
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the authors' published synthetic data set ``k``, one split.

    Reads ``<split>_data_complex_special_<k>_par.npy`` and
    ``<split>_label_complex_special_<k>_par.npy`` from ``folder`` with the
    restricted loader :func:`fslib._io.load_array_file` (``.npy``, raw
    pickles of arrays, ``torch.save`` files), so a file cannot run code.

    Images may be ``(N, H, W, C)`` or ``(N, C, H, W)`` (or grey ``(N, H, W)``),
    uint8 or floating point. uint8 and floats in ``[0, 255]`` are divided by
    255, floats in ``[0, 1]`` are kept, other ranges are rescaled linearly.
    Labels may be ``(N,)`` or one-hot ``(N, K)``.

    Returns:
        ``images`` float32 ``(N, 3, H, W)`` in ``[0, 1]`` and ``labels`` int64 ``(N,)``.

    Raises:
        FileNotFoundError: the folder or a file is missing (the message names
            the expected files).
        UnsafePickleError: a file requests objects other than arrays and plain containers.
        InvalidFileError: the arrays have an unusable shape or type.
    """
    names = authors_file_names(k, split)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Folder not found: {folder}. Expected a folder with {names[0]} and {names[1]}."
        )
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Missing {', '.join(missing)} in {folder}. The authors' data set {k} ({split}) is read from "
            f"{names[0]} and {names[1]}."
        )

    data_path, label_path = folder / names[0], folder / names[1]
    images = _authors_images(_to_numpy(load_array_file(data_path), data_path), data_path)
    labels = _authors_labels(_to_numpy(load_array_file(label_path), label_path), label_path)
    if len(images) != len(labels):
        raise InvalidFileError(f"Invalid data set: {data_path} contains {len(images)} images but {label_path} {len(labels)} labels.")
    return torch.from_numpy(images), torch.from_numpy(labels)
