"""Reported numbers and claims of the paper and its follow-ups, as data, beside the book's measurements.

Every reported item carries a provenance tag:

``"paper"``
    stated by Wang, Veldhuis, Brune and Strisciuglio, ICCV 2023
    (arXiv 2307.09829), its figures or its official code;
``"follow-up"``
    stated by the same authors' later work that re-runs the method: DFM-X
    (ICCV 2023 workshops) and HFSS (CVPR 2025, arXiv 2503.03519);
``"summary"``
    from third-party summaries of the paper, plausible but not checked
    against the paper's text;
``"ours"``
    a decision or a derivation of this project where the sources are silent.

:func:`results_table` and :func:`claims_table` put the numbers that the
book's chapters write to their ``metrics.json`` beside the reported ones and
give a verdict by the rules documented on :func:`verdict`. A value that a
chapter did not write is shown as "not measured", never filled in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from .errors import InvalidInputError

#: The provenance tags, from the most to the least direct source.
PROVENANCE_TAGS = ("paper", "follow-up", "summary", "ours")

PAPER = "Wang et al., ICCV 2023, arXiv 2307.09829"
PAPER_CODE = "Wang et al., ICCV 2023, official code (github.com/nis-research/nn-frequency-shortcuts)"
# NOTE: the items tagged "follow-up" are known to come from the authors' later work, but not which of the
# two papers states each number, so both are named.
FOLLOW_UP = ("Wang et al., follow-up work: DFM-X (ICCV 2023 workshops) or "
             "HFSS (CVPR 2025, arXiv 2503.03519)")
SUMMARY = "third-party summary of Wang et al., ICCV 2023"
INDEPENDENT = "third-party summary, citing an independent paper that applies the same protocol"

# Verdicts of the results and claims tables.
AGREES = "agrees"
DIFFERS = "differs"
PARTLY = "partly agrees"
NOT_MEASURED = "not measured"
DIFFERENT_DATA = "not comparable: different data"
DIFFERENT_MODEL = "not comparable: different model"
DATA_NOT_RECORDED = "not comparable: data set not recorded"
DIFFERENT_HARDWARE = "not comparable: different hardware and data"

#: Largest absolute difference of a true- or false-positive rate still called "agrees". The reported
#: runs of the same protocol differ by far more for one class (container ship: 0.94 in the summary,
#: 0.54 in the follow-up's re-run), so 0.10 is a strict reading.
RATE_TOLERANCE = 0.10

#: ImageNet-10 classes in index order, the CIFAR-10 order (Wang et al., ICCV 2023, official code).
IMAGENET10_CLASSES = ("airliner", "wagon", "humming bird", "Siamese cat", "ox", "golden retriever",
                      "tailed frog", "zebra", "container ship", "trailer truck")


@dataclass(frozen=True)
class ReportedItem:
    """One number or setting reported by the paper, a follow-up or a summary.

    ``dataset`` and ``model`` name what the number was measured on; they are
    empty for settings that hold everywhere (the training recipe).
    """

    key: str
    quantity: str
    value: Any
    unit: str
    provenance: str
    source: str
    dataset: str = ""
    model: str = ""
    note: str = ""

    def __post_init__(self):
        if self.provenance not in PROVENANCE_TAGS:
            raise InvalidInputError(
                f"Invalid provenance {self.provenance!r} for reported item {self.key!r}: "
                f"expected one of {PROVENANCE_TAGS}."
            )


@dataclass(frozen=True)
class Evidence:
    """A chapter metric that tests a claim.

    The evidence supports the claim when ``bool(value) == expected`` for a
    boolean ``expected``, and when ``value == expected`` otherwise (a string
    such as ``"yes"``). ``value`` is the chapter's metric at the path
    ``metric`` (see :func:`metric_value`), or ``derive(metrics)`` when
    ``derive`` is given. ``None`` from either, or a value listed in
    ``inconclusive``, counts as not measured.
    """

    chapter: str
    metric: str
    description: str
    expected: bool | str | int | float = True
    derive: Callable[[Mapping[str, Any]], Any] | None = None
    inconclusive: tuple[Any, ...] = ()

    def supports(self, value: Any) -> bool:
        """Return whether a measured ``value`` supports the claim."""
        if isinstance(self.expected, bool):
            return bool(value) == self.expected
        return value == self.expected

    def value(self, metrics: Mapping[str, Any]) -> Any:
        """Return the measured value from the chapter's metrics, or ``None`` when it is missing."""
        if self.derive is not None:
            return self.derive(metrics) if metrics else None
        return metric_value(metrics, self.metric)


@dataclass(frozen=True)
class Claim:
    """One of the paper's qualitative claims, with the chapter metrics that test it."""

    number: int
    statement: str
    provenance: str
    source: str
    evidence: tuple[Evidence, ...] = ()

    def __post_init__(self):
        if self.provenance not in PROVENANCE_TAGS:
            raise InvalidInputError(
                f"Invalid provenance {self.provenance!r} for claim {self.number}: expected one of {PROVENANCE_TAGS}."
            )


@dataclass(frozen=True)
class Comparison:
    """A chapter metric set beside a reported item, and the rule that compares them.

    ``metric`` is a path into the chapter's ``metrics.json`` (see
    :func:`metric_value`). ``rule`` is ``"tolerance"`` (numbers within
    ``tolerance``), ``"equal"`` (same setting), ``"hardware"`` (never
    comparable) or ``"context"`` (shown beside, comparable only on the same
    data set and model, then within ``tolerance``). ``scale`` multiplies the
    measured value into the reported unit (1 / 3600 for seconds to hours).
    An empty ``chapter`` marks an item that no chapter measures, and ``note``
    gives the reason.
    """

    item: str
    chapter: str
    metric: str
    rule: str = "tolerance"
    tolerance: float = RATE_TOLERANCE
    scale: float = 1.0
    note: str = ""


def _recipe(key: str, quantity: str, value: Any, unit: str = "", note: str = "") -> ReportedItem:
    return ReportedItem(key, quantity, value, unit, "paper", PAPER_CODE, note=note)


def _rate(key: str, quantity: str, value: float, provenance: str, source: str, model: str = "ResNet18",
          note: str = "") -> ReportedItem:
    return ReportedItem(key, quantity, value, "fraction of images", provenance, source,
                        dataset="ImageNet-10", model=model, note=note)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


_FOLLOW_UP_TPRS = (0.08, 0.0, 0.40, 0.80, 0.02, 0.02, 0.14, 0.80, 0.54, 0.06)

#: Every reported item, keyed by :attr:`ReportedItem.key`.
REPORTED: dict[str, ReportedItem] = {item.key: item for item in (
    # Training recipe of the official code.
    _recipe("optimizer", "optimizer", "SGD with Nesterov momentum 0.9"),
    _recipe("weight_decay", "weight decay", 1e-4),
    _recipe("learning_rate", "initial learning rate", 0.01, note="reduced on plateau by a factor 0.1"),
    _recipe("batch_size", "batch size", 64, "images"),
    _recipe("epochs", "training epochs", 200, "epochs", note="a checkpoint every epoch"),
    _recipe("validation_fraction", "training data held out for validation", 0.10, "fraction"),
    _recipe("augmentation", "training augmentation", "pad 4, horizontal flip, random resized crop"),
    _recipe("resnet_stem", "ResNet stem", "3x3 stride-1 convolution, no max-pool", note="also at 224 px"),
    # Dominant frequency maps and their cost.
    ReportedItem("dfm_top_percent", "share of frequencies kept in a DFM", 5.0, "% of the spectrum", "paper",
                 f"{PAPER}, Figure 1"),
    ReportedItem("dfm_patch_size_224", "frequency patch on 224x224 images", 2, "cells per side", "follow-up",
                 FOLLOW_UP, dataset="ImageNet-10", note="stated as likely"),
    ReportedItem("search_cost_cifar10", "DFM search cost", 7.5, "GPU-hours", "follow-up", FOLLOW_UP,
                 dataset="CIFAR-10", model="ResNet18", note="one NVIDIA A40"),
    ReportedItem("search_cost_imagenet1k", "DFM search cost, estimate", 8500, "GPU-hours", "follow-up",
                 FOLLOW_UP, dataset="ImageNet-1k", note="an estimate, not a run"),
    # ImageNet-10.
    ReportedItem("imagenet10_classes", "ImageNet-10 classes in index order", IMAGENET10_CLASSES, "", "paper",
                 PAPER_CODE, dataset="ImageNet-10"),
    ReportedItem("imagenet10_image_size", "ImageNet-10 image size", 224, "px", "paper", PAPER_CODE,
                 dataset="ImageNet-10"),
    ReportedItem("imagenet10_test_per_class", "ImageNet-10 test images per class", 50, "images", "paper",
                 PAPER_CODE, dataset="ImageNet-10", note="the ImageNet validation images"),
    # Shortcut tests on DFM-filtered ImageNet-10.
    _rate("tpr_zebra", "TPR, zebra", 0.96, "summary", SUMMARY),
    _rate("fpr_zebra", "FPR, zebra", 0.022, "summary", SUMMARY),
    _rate("tpr_container_ship", "TPR, container ship", 0.94, "summary", SUMMARY),
    _rate("fpr_container_ship", "FPR, container ship", 0.013, "summary", SUMMARY),
    _rate("tpr_siamese_cat_sin", "TPR, Siamese cat, trained on stylised ImageNet-10", 0.88, "summary", SUMMARY,
          model="ResNet18 (SIN)"),
    _rate("fpr_siamese_cat_sin", "FPR, Siamese cat, trained on stylised ImageNet-10", 0.244, "summary", SUMMARY,
          model="ResNet18 (SIN)"),
    _rate("tpr_container_ship_vgg16", "TPR, container ship", 0.70, "summary", SUMMARY, model="VGG16"),
    _rate("fpr_container_ship_vgg16", "FPR, container ship", 0.42, "summary", SUMMARY, model="VGG16"),
    _rate("tpr_class_average", "TPR, class average", 0.286, "summary", INDEPENDENT),
    _rate("fpr_class_average", "FPR, class average", 0.041, "summary", INDEPENDENT),
    *(
        _rate(f"tpr_{_slug(name)}_rerun", f"TPR, {name}, re-run", value, "follow-up", FOLLOW_UP)
        for name, value in zip(IMAGENET10_CLASSES, _FOLLOW_UP_TPRS)
    ),
)}

#: The paper's four qualitative claims. The evidence paths are filled in by :data:`CLAIM_EVIDENCE`.
_CLAIM_TEXT = (
    (1, "Networks find simple solutions: what they learn first is the most distinctive frequency "
        "characteristic of a class, which can be low or high frequency.", "paper", PAPER),
    (2, "A class-wise metric (ADCS) exposes distinctive frequencies, and a search finds the frequencies a "
        "trained model relies on (dominant frequency maps, DFMs).", "paper", PAPER),
    (3, "Frequency shortcuts can be texture-based or shape-based (colour-based in a third-party summary), "
        "depending on what best simplifies the objective.", "paper", f"{PAPER}; colour: {SUMMARY}"),
    (4, "Frequency shortcuts transfer to out-of-distribution test sets, and larger models or data "
        "augmentation do not remove them.", "paper", PAPER),
)

DYNAMICS_CHAPTER = "03_learning_dynamics"
SPECTRA_CHAPTER = "04_natural_image_spectra"
SHORTCUTS_CHAPTER = "06_frequency_shortcuts"
DFM_CHAPTER = "05_dominant_frequency_maps"
TRANSFER_CHAPTER = "07_transfer_mitigation"

#: The chapter metrics set beside each reported item. Chapters that run on other data than the
#: item's make the verdict "not comparable"; see :func:`verdict`.
COMPARISONS: tuple[Comparison, ...] = (
    Comparison("dfm_top_percent", DFM_CHAPTER, "top_percent", rule="equal"),
    Comparison("search_cost_cifar10", DFM_CHAPTER, "search_seconds_exact", rule="hardware", scale=1 / 3600),
    Comparison("tpr_class_average", SHORTCUTS_CHAPTER, "mean_tpr", rule="context"),
    Comparison("fpr_class_average", SHORTCUTS_CHAPTER, "mean_fpr", rule="context"),
    Comparison("tpr_zebra", SHORTCUTS_CHAPTER, "per_class/zebra/tpr", rule="context"),
    Comparison("fpr_zebra", SHORTCUTS_CHAPTER, "per_class/zebra/fpr", rule="context"),
    Comparison("tpr_container_ship", SHORTCUTS_CHAPTER, "per_class/container ship/tpr", rule="context"),
    Comparison("fpr_container_ship", SHORTCUTS_CHAPTER, "per_class/container ship/fpr", rule="context"),
    *(
        Comparison(f"tpr_{_slug(name)}_rerun", SHORTCUTS_CHAPTER, f"per_class/{name}/tpr", rule="context")
        for name in IMAGENET10_CLASSES
    ),
    *(
        Comparison(key, "", "", rule="context", note=why)
        for key, why in (
            ("tpr_siamese_cat_sin", "no chapter of this book trains on stylised images (SIN)"),
            ("fpr_siamese_cat_sin", "no chapter of this book trains on stylised images (SIN)"),
            ("tpr_container_ship_vgg16", "the transfer chapter trains other architectures than VGG16 by default"),
            ("fpr_container_ship_vgg16", "the transfer chapter trains other architectures than VGG16 by default"),
        )
    ),
)


def _shortcut_of_kind(kind: str) -> Callable[[Mapping[str, Any]], Any]:
    """Return a function telling from the shortcut chapter's ``per_class`` whether a class of ``kind`` is a shortcut."""

    def derive(metrics: Mapping[str, Any]) -> Any:
        per_class = metrics.get("per_class")
        if not isinstance(per_class, Mapping):
            return None
        rows = [row for row in per_class.values() if isinstance(row, Mapping) and row.get("kind") == kind]
        if not rows:
            return None
        return any(bool(row.get("is_shortcut")) for row in rows)

    return derive


def _distinct_bands(metrics: Mapping[str, Any]) -> Any:
    bands = metrics.get("most_distinctive_band")
    if not isinstance(bands, Mapping) or not bands:
        return None
    return len(set(bands.values())) > 1


def _classes_above_floor(metrics: Mapping[str, Any]) -> Any:
    counts = metrics.get("above_floor")
    if not isinstance(counts, Mapping) or not counts:
        return None
    return sum(1 for count in counts.values() if isinstance(count, (int, float)) and count > 0)


#: Evidence per claim; see :class:`Evidence`.
CLAIM_EVIDENCE: dict[int, tuple[Evidence, ...]] = {
    1: tuple(
        Evidence(DYNAMICS_CHAPTER, f"syn{band}_agreement",
                 f"syn{band} (bias in band B{band}, {'low' if band <= 2 else 'high'} frequency): the class learned "
                 "first is the designed one", expected="yes", inconclusive=("tied", "none learned"))
        for band in (1, 2, 3, 4)
    ),
    2: (Evidence(SPECTRA_CHAPTER, "most_distinctive_band: distinct values",
                 "different classes have different most distinctive ADCS bands", derive=_distinct_bands),
        Evidence(DFM_CHAPTER, "above_floor: classes above 0",
                 "classes with frequencies whose removal raises the loss above the noise floor",
                 derive=_classes_above_floor)),
    3: (Evidence(SHORTCUTS_CHAPTER, "shortcut_count", "classes whose DFM alone carries the class (shortcuts)"),
        Evidence(SHORTCUTS_CHAPTER, "per_class: kind texture, is_shortcut", "a texture photograph has a shortcut",
                 derive=_shortcut_of_kind("texture")),
        Evidence(SHORTCUTS_CHAPTER, "per_class: kind object, is_shortcut", "an object photograph has a shortcut",
                 derive=_shortcut_of_kind("object"))),
    4: (Evidence(TRANSFER_CHAPTER, "models_with_ood_shortcuts", "models with a shortcut on an OOD test set"),
        Evidence(TRANSFER_CHAPTER, "larger_shortcut_count", "shortcut classes of the larger model"),
        Evidence(TRANSFER_CHAPTER, "augmix_shortcut_count", "shortcut classes of the model trained with AugMix"),
        Evidence(TRANSFER_CHAPTER, "autoaugment_shortcut_count",
                 "shortcut classes of the model trained with AutoAugment")),
}

#: The claims with their evidence.
CLAIMS: tuple[Claim, ...] = tuple(
    Claim(number, text, provenance, source, CLAIM_EVIDENCE.get(number, ()))
    for number, text, provenance, source in _CLAIM_TEXT
)

_MISSING = object()


def reported_table(provenance: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Return the reported items as a table, optionally only those with the given provenance tag(s)."""
    tags = (provenance,) if isinstance(provenance, str) else provenance
    if tags is not None:
        for tag in tags:
            if tag not in PROVENANCE_TAGS:
                raise InvalidInputError(
                    f"Invalid provenance {tag!r}: expected one of {PROVENANCE_TAGS} or None for all items."
                )
    rows = [
        {"key": item.key, "quantity": item.quantity, "value": _format(item.value), "unit": item.unit,
         "data set": item.dataset, "model": item.model, "provenance": item.provenance, "source": item.source,
         "note": item.note}
        for item in REPORTED.values()
        if tags is None or item.provenance in tags
    ]
    return pd.DataFrame(rows)


def metric_value(metrics: Mapping[str, Any], path: str) -> Any:
    """Return the value at ``path`` in a chapter's metrics, or :data:`None` when it is missing.

    ``path`` is keys separated by ``/``. A key matches a dictionary key
    exactly or after lower-casing and replacing non-alphanumerics with ``_``
    (so ``"container ship"`` finds ``"container_ship"``). A key that meets a
    list picks the item by integer index, or by the position of a class name
    in the metrics' top-level ``classes`` list.
    """
    node: Any = metrics
    for key in path.split("/"):
        node = _step(node, key, metrics.get("classes") if isinstance(metrics, Mapping) else None)
        if node is _MISSING:
            return None
    return node


def _step(node: Any, key: str, classes: Any) -> Any:
    if isinstance(node, Mapping):
        if key in node:
            return node[key]
        matches = [value for name, value in node.items() if _slug(str(name)) == _slug(key)]
        return matches[0] if len(matches) == 1 else _MISSING
    if isinstance(node, (list, tuple)):
        if re.fullmatch(r"-?\d+", key):
            index = int(key)
        elif isinstance(classes, (list, tuple)):
            names = [_slug(str(name)) for name in classes]
            if _slug(key) not in names:
                return _MISSING
            index = names.index(_slug(key))
        else:
            return _MISSING
        return node[index] if -len(node) <= index < len(node) else _MISSING
    return _MISSING


def _same(a: str, b: str) -> bool:
    return re.sub(r"[^a-z0-9]", "", a.lower()) == re.sub(r"[^a-z0-9]", "", b.lower())


def verdict(item: ReportedItem, measured: Any, metrics: Mapping[str, Any], comparison: Comparison) -> tuple[str, str]:
    """Return ``(verdict, note)`` for a measured value set beside a reported item.

    The rules, applied in order:

    1. Rule ``"context"`` and the chapter recorded a ``dataset`` other than
       the item's: "not comparable: different data", whether or not the
       value exists (a class of ImageNet-10 has no value on other data).
    2. No measured value: "not measured".
    3. Rule ``"hardware"`` (costs in GPU-hours against this book's run): "not
       comparable: different hardware and data".
    4. Rule ``"context"``: the chapter's metrics must record ``dataset`` (and
       ``model`` when the item names one). A missing ``dataset`` gives "not
       comparable: data set not recorded"; a different model "not
       comparable: different model". Names are compared ignoring case and
       punctuation, and a recorded ``width`` other than 64 makes the model
       differ from the standard one of the same name.
    5. Rule ``"equal"``: "agrees" when the values are equal, else "differs".
    6. Numbers (rules ``"tolerance"`` and ``"context"``): "agrees" when
       ``|measured - reported| <= tolerance``, else "differs".
    """
    if not comparison.chapter:
        return NOT_MEASURED, comparison.note or "no chapter of this book measures it"
    source = f"{comparison.chapter}: {comparison.metric}"
    dataset = metrics.get("dataset")
    if comparison.rule == "context" and dataset is not None and item.dataset and not _same(str(dataset), item.dataset):
        return DIFFERENT_DATA, f"measured on {dataset}, reported on {item.dataset}"
    if measured is None:
        return NOT_MEASURED, f"{source} was not written"
    if comparison.rule == "hardware":
        return DIFFERENT_HARDWARE, f"reported on {item.dataset or 'other data'}, {item.note or 'other hardware'}"
    if comparison.rule == "context":
        if dataset is None:
            return DATA_NOT_RECORDED, f"{comparison.chapter} wrote no 'dataset'"
        model = _model_text(metrics)
        if item.model and (model is None or not _same(model, item.model)):
            return DIFFERENT_MODEL, f"measured with {model or 'an unrecorded model'}, reported for {item.model}"
    if comparison.rule == "equal":
        return (AGREES, "") if _equal(measured, item.value) else (DIFFERS, "")
    if not isinstance(measured, (int, float)) or isinstance(measured, bool) or not math.isfinite(measured):
        return NOT_MEASURED, f"{source} is {measured!r}, not a finite number"
    difference = measured - item.value
    note = f"difference {difference:+.3g}, tolerance {comparison.tolerance:g}"
    return (AGREES, note) if abs(difference) <= comparison.tolerance else (DIFFERS, note)


def _model_text(metrics: Mapping[str, Any]) -> str | None:
    """Return the metrics' ``model``, with ``width`` appended when it is not the standard 64."""
    model = metrics.get("model")
    if model is None:
        return None
    width = metrics.get("width")
    if width is None or width == 64 or f"width {width}" in str(model):
        return str(model)
    return f"{model} (width {width})"


def _equal(measured: Any, reported: Any) -> bool:
    if isinstance(measured, (int, float)) and isinstance(reported, (int, float)):
        return math.isclose(float(measured), float(reported), rel_tol=1e-9, abs_tol=1e-12)
    return measured == reported


def _format(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _check_chapter_metrics(chapter_metrics: Any) -> None:
    if not isinstance(chapter_metrics, Mapping) or not all(
        isinstance(name, str) and isinstance(metrics, Mapping) for name, metrics in chapter_metrics.items()
    ):
        raise TypeError(
            "Invalid chapter_metrics: expected a dict {chapter name: metrics dict}, e.g. "
            "{'05_dominant_frequency_maps': read_metrics(folder)}; got "
            f"{type(chapter_metrics).__name__}."
        )


def results_table(chapter_metrics: Mapping[str, Mapping[str, Any]],
                  comparisons: Sequence[Comparison] = COMPARISONS, *, tolerance: float | None = None) -> pd.DataFrame:
    """Return the reported numbers beside the book's measured ones, one row per comparison.

    ``chapter_metrics`` maps a chapter name (``"06_frequency_shortcuts"``) to
    its ``metrics.json`` contents; a chapter that is absent counts as having
    written nothing. Columns: ``quantity``, ``data set``, ``model``,
    ``reported``, ``unit``, ``provenance``, ``source``, ``measured`` (the value,
    or "not measured"), ``measured in`` (chapter and metric path),
    ``verdict`` and ``note``. The verdict rules are those of :func:`verdict`.
    ``tolerance``, when given, replaces the tolerance of every comparison of
    rates (default :data:`RATE_TOLERANCE`).
    """
    _check_chapter_metrics(chapter_metrics)
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                  or not 0 <= tolerance < math.inf):
        raise InvalidInputError(
            f"Invalid tolerance {tolerance!r}: expected a finite number >= 0, e.g. 0.1 for rates, or None."
        )
    rows = []
    for comparison in comparisons:
        if tolerance is not None and comparison.rule in ("tolerance", "context"):
            comparison = replace(comparison, tolerance=float(tolerance))
        if comparison.item not in REPORTED:
            raise InvalidInputError(
                f"Invalid comparison item {comparison.item!r}: expected a key of fslib.paper.REPORTED."
            )
        item = REPORTED[comparison.item]
        metrics = chapter_metrics.get(comparison.chapter, {})
        measured = metric_value(metrics, comparison.metric)
        if isinstance(measured, (int, float)) and not isinstance(measured, bool):
            measured = measured * comparison.scale
        outcome, note = verdict(item, measured, metrics, comparison)
        rows.append({
            "quantity": item.quantity, "data set": item.dataset, "model": item.model,
            "reported": _format(item.value), "unit": item.unit, "provenance": item.provenance,
            "source": item.source, "measured": NOT_MEASURED if measured is None else _format(measured),
            "measured in": f"{comparison.chapter}: {comparison.metric}", "verdict": outcome, "note": note,
        })
    return pd.DataFrame(rows)


def claims_table(chapter_metrics: Mapping[str, Mapping[str, Any]],
                 claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """Return one row per claim: the paper's statement, what the book measured, and the verdict.

    Each :class:`Evidence` decides whether its value supports the claim
    (:meth:`Evidence.supports`). The verdict is "agrees" when all measured evidence supports
    the claim, "differs" when none does, "partly agrees" otherwise, and "not
    measured" when no chapter wrote any of it.
    """
    _check_chapter_metrics(chapter_metrics)
    rows = []
    for claim in claims:
        findings, supports = [], []
        for evidence in claim.evidence:
            value = evidence.value(chapter_metrics.get(evidence.chapter, {}))
            where = f"{evidence.chapter}: {evidence.metric}"
            if value is None:
                findings.append(f"{evidence.description}: not measured ({where})")
                continue
            if value in evidence.inconclusive:
                findings.append(f"{evidence.description}: {_format(value)}, inconclusive ({where})")
                continue
            supports.append(evidence.supports(value))
            findings.append(f"{evidence.description}: {_format(value)} ({where})")
        if not supports:
            outcome = NOT_MEASURED
        elif all(supports):
            outcome = AGREES
        elif not any(supports):
            outcome = DIFFERS
        else:
            outcome = PARTLY
        rows.append({"claim": claim.number, "the paper says": claim.statement, "provenance": claim.provenance,
                     "source": claim.source, "this book measured": "; ".join(findings) or NOT_MEASURED,
                     "verdict": outcome})
    return pd.DataFrame(rows)


#: Keys of the DFM chapter's metrics that :func:`search_cost_table` reads.
SEARCH_COST_KEYS = {
    "exact_seconds": "search_seconds_exact",
    "fast_seconds": "search_seconds_fast",
    "exact_removals": "exact_evaluations_exact",
    "fast_removals": "exact_evaluations_fast",
    "fast_inputs": "forward_equivalents_fast",
    "image_size": "image_size",
    "patch_size": "patch_size",
    "images_per_class": "search_images_per_class",
    "classes": "classes",
    "device": "search_device",
}

#: CIFAR-10 search setting behind the follow-up's 7.5 GPU-hours: 32x32 frequencies, 10 classes of
#: 1,000 test images.
CIFAR10_FREQUENCIES = 32 * 32
CIFAR10_CLASSES = 10
CIFAR10_TEST_PER_CLASS = 1_000


def search_cost_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Return the DFM search cost: this book's exact and fast searches beside the paper's loop and the follow-up.

    ``metrics`` is the DFM chapter's ``metrics.json`` (keys in
    :data:`SEARCH_COST_KEYS`). A removal is one (class, frequency) pair: the
    class's search images with that frequency (and its mirror) removed, one
    model input per image, so model inputs = removals x images per class.
    The paper's code loops over every frequency cell (or patch) for every
    class, ``K * (H / p) * (W / p)`` removals, without merging a cell with its
    mirror. The fast search's removals are those it evaluated on every image.
    Its model inputs are its recorded compute (``forward_equivalents_fast``:
    every image through the model, the gradient pass counted as 3 per image)
    when the chapter recorded it. The follow-up's 7.5 GPU-hours on CIFAR-10 are set against
    ``10 * 32 * 32`` removals of 1,000 images each, a derivation of this
    project that assumes every test image and every cell was evaluated.
    Missing metrics are shown as "not measured".
    """
    if not isinstance(metrics, Mapping):
        raise TypeError(f"Invalid metrics: expected the DFM chapter's metrics dict, got {type(metrics).__name__}.")
    value = {name: metric_value(metrics, key) for name, key in SEARCH_COST_KEYS.items()}
    device = str(value["device"]) if value["device"] is not None else "device not recorded"
    size, patch, per_class = value["image_size"], value["patch_size"] or 1, value["images_per_class"]
    classes = value["classes"]
    known = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (size, patch, per_class)) \
        and isinstance(classes, (list, tuple))
    if known:
        setting = f"{len(classes)} classes, {int(size)}x{int(size)}, patch {int(patch)}, {int(per_class)} images per class"
        loop_removals = len(classes) * (int(size) // int(patch)) ** 2
    else:
        setting, loop_removals = "setting not recorded", None

    def inputs(removals):
        if known and isinstance(removals, (int, float)):
            return int(removals) * int(per_class)
        return None

    def row(search, setting, removals, model_inputs, seconds, hardware, provenance, source):
        rate = None
        if isinstance(model_inputs, (int, float)) and isinstance(seconds, (int, float)) and seconds > 0:
            rate = model_inputs / seconds
        return {"search": search, "setting": setting, "removals": _or_not_measured(removals),
                "model inputs": _or_not_measured(model_inputs), "seconds": _or_not_measured(seconds),
                "inputs per second": _or_not_measured(rate), "hardware": hardware, "provenance": provenance,
                "source": source}

    follow_up_removals = CIFAR10_CLASSES * CIFAR10_FREQUENCIES
    rows = [
        row("this book, exact", setting, value["exact_removals"], inputs(value["exact_removals"]),
            value["exact_seconds"], device, "ours", f"{DFM_CHAPTER}: {SEARCH_COST_KEYS['exact_seconds']}"),
        row("this book, fast", setting, value["fast_removals"],
            value["fast_inputs"] if isinstance(value["fast_inputs"], (int, float)) else inputs(value["fast_removals"]),
            value["fast_seconds"], device, "ours", f"{DFM_CHAPTER}: {SEARCH_COST_KEYS['fast_seconds']}"),
        row("paper's loop", setting, loop_removals, inputs(loop_removals), None, "", "ours",
            "every frequency cell for every class, the loop structure of the official code"),
        row("follow-up", "CIFAR-10, ResNet18", follow_up_removals, follow_up_removals * CIFAR10_TEST_PER_CLASS,
            REPORTED["search_cost_cifar10"].value * 3600, "one NVIDIA A40", "follow-up",
            f"{FOLLOW_UP}; removals and model inputs derived by this project"),
        row("follow-up, estimate", "ImageNet-1k", None, None, REPORTED["search_cost_imagenet1k"].value * 3600,
            "GPU", "follow-up", FOLLOW_UP),
    ]
    for column in ("removals", "model inputs", "inputs per second"):
        rows[-1][column] = "not reported"
    return pd.DataFrame(rows)


def _or_not_measured(value: Any) -> Any:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def read_bench_tables(path: str | Path) -> list[tuple[str, pd.DataFrame]]:
    """Return the Markdown tables of a benchmark record (``bench/README.md``), each with a title.

    A table is a run of lines starting with ``|`` whose second line is the
    ``|---|`` separator. The title is the nearest ``##`` heading above the
    table, followed by the last line of text just before the table (in the
    record, the command that produced it). Cells are kept as text. Returns an
    empty list when the file has no table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Benchmark record not found: {path}. Run the scripts in bench/ and record them there.")
    tables: list[tuple[str, pd.DataFrame]] = []
    section, caption, block = "", "", []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|"):
            block.append(stripped)
            continue
        if len(block) >= 2 and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", block[1].replace(" ", "")):
            cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in block]
            width = len(cells[0])
            body = [row + [""] * (width - len(row)) for row in cells[2:]]
            title = f"{section}: {caption}" if section and caption else section or caption
            tables.append((title, pd.DataFrame([row[:width] for row in body], columns=cells[0])))
        block = []
        if stripped.startswith("## "):
            section, caption = stripped[3:].strip(), ""
        elif stripped and not stripped.startswith("#"):
            caption = stripped
    return tables


#: The chapters whose ``metrics.json`` the results chapter reads, in book order.
BOOK_CHAPTERS = ("01_fourier_primer", "02_synthetic_data", "03_learning_dynamics", "04_natural_image_spectra",
                 "05_dominant_frequency_maps", "06_frequency_shortcuts", "07_transfer_mitigation")


#: Chapters that test the model and data of the DFM chapter, so its ``data.json`` and ``model.pt`` name
#: what their numbers were measured on.
CONTEXT_CHAPTERS = (DFM_CHAPTER, SHORTCUTS_CHAPTER)


def read_chapter_metrics(upstream: Mapping[str, str] | None,
                         chapters: Sequence[str] = BOOK_CHAPTERS) -> dict[str, dict[str, Any]]:
    """Return ``{chapter: metrics}`` for the chapters whose artifact folders ``upstream`` names.

    A chapter that ``upstream`` does not name, or whose folder contains no
    ``metrics.json``, maps to ``{}`` and is logged, so the tables show its
    values as "not measured". The chapters in :data:`CONTEXT_CHAPTERS` that
    do not record ``dataset`` or ``model`` get them from the DFM chapter's
    artifacts (:func:`dfm_chapter_context`), with ``context_from`` naming
    that source.
    """
    import logging

    from .book.store import read_metrics, upstream_dir

    logger = logging.getLogger(__name__)
    result: dict[str, dict[str, Any]] = {}
    for chapter in chapters:
        if not upstream or chapter not in upstream:
            logger.info("no artifact folder for %s; its values are shown as not measured", chapter)
            result[chapter] = {}
            continue
        result[chapter] = read_metrics(upstream_dir(upstream, chapter))

    context = dfm_chapter_context(upstream[DFM_CHAPTER]) if upstream and DFM_CHAPTER in upstream else {}
    for chapter in CONTEXT_CHAPTERS:
        metrics = result.get(chapter)
        if not metrics or not context:
            continue
        added = {key: value for key, value in context.items() if key not in metrics}
        if added:
            metrics.update(added)
            metrics["context_from"] = f"{DFM_CHAPTER}: data.json and model.pt"
    return result


def dfm_chapter_context(folder: str | Path) -> dict[str, str]:
    """Return the data set and model that the DFM chapter's artifacts in ``folder`` describe.

    ``dataset`` is the ``source`` of ``data.json`` (``"photos"``,
    ``"imagenet10"``, ``"cifar10"``). ``model`` is the checkpoint's model
    name, followed by its width when that is not the standard 64, because a
    narrow ResNet18 is not the paper's ResNet18. Missing files give missing
    keys.
    """
    import json

    from .models import read_checkpoint

    folder = Path(folder)
    context: dict[str, str] = {}
    data_file = folder / "data.json"
    if data_file.is_file():
        source = json.loads(data_file.read_text()).get("source")
        if source:
            context["dataset"] = str(source)
    model_file = folder / "model.pt"
    if model_file.is_file():
        meta = read_checkpoint(model_file).get("meta", {})
        if meta.get("name"):
            width = meta.get("width")
            standard = width is None or width == 64
            context["model"] = str(meta["name"]) + ("" if standard else f" (width {width})")
    return context


def metrics_overview(chapter_metrics: Mapping[str, Mapping[str, Any]], max_chars: int = 80) -> pd.DataFrame:
    """Return every top-level metric of every chapter as ``chapter, metric, value`` rows.

    Values longer than ``max_chars`` characters are cut and end with "...".
    """
    _check_chapter_metrics(chapter_metrics)
    rows = []
    for chapter, metrics in chapter_metrics.items():
        if not metrics:
            rows.append({"chapter": chapter, "metric": "", "value": "no metrics.json"})
        for key, value in metrics.items():
            text = _format(value) if not isinstance(value, Mapping) else str(dict(value))
            if len(text) > max_chars:
                text = text[: max_chars - 3] + "..."
            rows.append({"chapter": chapter, "metric": key, "value": text})
    return pd.DataFrame(rows, columns=["chapter", "metric", "value"])


def find_bench_record(path: str | Path | None = None, start: str | Path | None = None) -> Path | None:
    """Return the benchmark record to show, or ``None`` when there is none.

    ``path`` given: that file, which must exist. Otherwise ``bench/README.md``
    of the book project at or above ``start`` (default: the working folder),
    or ``None`` when no project or record is found.
    """
    from .book.params import find_project_root

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"Benchmark record not found: bench_record={str(path)!r}. Pass the path of bench/README.md "
                "or None to look for it in the project folder."
            )
        return path
    try:
        record = find_project_root(start) / "bench" / "README.md"
    except FileNotFoundError:
        return None
    return record if record.is_file() else None


def plot_search_cost(table: pd.DataFrame):
    """Plot the model inputs and seconds of each search in a :func:`search_cost_table`; return the figure.

    Cells without a number ("not measured", "not reported") are left empty and labelled with their text.
    """
    import matplotlib.pyplot as plt
    import matplotlib.transforms as transforms
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 0.8 * len(table) + 1.6), sharey=True)
    labels = [f"{search}\n{setting}" for search, setting in zip(table["search"], table["setting"])]
    positions = np.arange(len(labels))
    for axis, column, title in zip(axes, ("model inputs", "seconds"), ("model inputs (log scale)",
                                                                     "seconds (log scale)")):
        for position, value in zip(positions, table[column]):
            if isinstance(value, (int, float)) and value > 0:
                axis.barh(position, value, color="tab:blue" if position < 3 else "tab:gray")
                axis.text(value, position, f" {value:.3g}", va="center", fontsize=8)
            else:
                # x in axes fractions, y in data units: the label sits at the left edge of the log axis.
                where = transforms.blended_transform_factory(axis.transAxes, axis.transData)
                axis.text(0.02, position, str(value), va="center", fontsize=8, color="0.4", transform=where)
        axis.set_xscale("log")
        axis.set_title(title)
    axes[0].set_yticks(positions, labels)
    axes[0].set_ylim(len(labels) - 0.5, -0.5)
    fig.tight_layout()
    return fig


def plot_reported_rates(measured: Mapping[str, Any] | None = None):
    """Plot the reported per-class TPRs on ImageNet-10 beside this book's per-class TPRs; return the figure.

    ``measured`` is the shortcut chapter's metrics with
    ``{"per_class": {class: {"tpr": ...}}}`` (or ``{"classes": [...], "tpr":
    [...]}``, or ``{"tpr": {class: tpr}}``), or ``None``. The left panel shows the
    follow-up's re-run (bars) and the summary's numbers (points); the right
    panel this book's values on its own classes.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    positions = np.arange(len(IMAGENET10_CLASSES))
    axes[0].bar(positions, _FOLLOW_UP_TPRS, color="tab:gray", label="follow-up re-run")
    for key, name in (("tpr_zebra", "zebra"), ("tpr_container_ship", "container ship")):
        index = IMAGENET10_CLASSES.index(name)
        axes[0].plot(index, REPORTED[key].value, "o", color="tab:red",
                     label="third-party summary" if name == "zebra" else None)
    axes[0].axhline(REPORTED["tpr_class_average"].value, color="tab:orange", linestyle="--",
                    label="independent paper, class average")
    axes[0].set_xticks(positions, IMAGENET10_CLASSES, rotation=45, ha="right")
    axes[0].set_ylim(0, 1.3)
    axes[0].set_ylabel("TPR")
    axes[0].set_title("reported, ResNet18 on ImageNet-10")
    axes[0].legend(fontsize=8, loc="upper left", ncol=3)

    names, values = _class_values(measured)
    if names:
        axes[1].bar(np.arange(len(names)), values, color="tab:blue")
        axes[1].set_xticks(np.arange(len(names)), names, rotation=45, ha="right")
    else:
        axes[1].text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes[1].transAxes)
        axes[1].set_xticks([])
    axes[1].set_ylim(0, 1.3)
    axes[1].set_title("this book")
    fig.tight_layout()
    return fig


def _class_values(measured: Mapping[str, Any] | None) -> tuple[list[str], list[float]]:
    if not measured:
        return [], []
    per_class = measured.get("per_class")
    if isinstance(per_class, Mapping):
        rows = [(str(name), row.get("tpr")) for name, row in per_class.items() if isinstance(row, Mapping)]
        rows = [(name, float(tpr)) for name, tpr in rows if isinstance(tpr, (int, float))]
        return [name for name, _ in rows], [tpr for _, tpr in rows]
    tpr = measured.get("tpr")
    if isinstance(tpr, (list, tuple)) and isinstance(measured.get("classes"), (list, tuple)):
        return [str(name) for name in measured["classes"]], [float(v) for v in tpr]
    if isinstance(tpr, Mapping):
        return [str(name) for name in tpr], [float(v) for v in tpr.values()]
    return [], []


def verdict_summary(results: pd.DataFrame, claims: pd.DataFrame) -> dict[str, Any]:
    """Return flat counts of the results table's verdicts and each claim's verdict, for ``metrics.json``.

    Keys: ``comparisons``, ``comparisons_agree``, ``comparisons_differ``,
    ``comparisons_not_comparable``, ``comparisons_not_measured`` and
    ``claim_<number>_verdict``.
    """
    verdicts = results["verdict"].astype(str)
    summary: dict[str, Any] = {
        "comparisons": int(len(verdicts)),
        "comparisons_agree": int((verdicts == AGREES).sum()),
        "comparisons_differ": int((verdicts == DIFFERS).sum()),
        "comparisons_not_comparable": int(verdicts.str.startswith("not comparable").sum()),
        "comparisons_not_measured": int((verdicts == NOT_MEASURED).sum()),
    }
    for number, outcome in zip(claims["claim"], claims["verdict"]):
        summary[f"claim_{int(number)}_verdict"] = str(outcome)
    return summary
