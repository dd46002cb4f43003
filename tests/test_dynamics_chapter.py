"""Tests of the learning-dynamics chapter's helpers."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from fslib import synthetic
from fslib.book import dynamics_chapter
from fslib.dynamics import FilterEvaluation, evaluations_to_frame
from fslib.errors import InvalidInputError

CLASSES = ["a", "b", "c"]


def _table(confusions):
    """Build a tidy table with one unfiltered checkpoint per (iteration, confusion matrix)."""
    frames = []
    for iteration, confusion in confusions:
        confusion = np.asarray(confusion, dtype=np.int64)
        evaluation = FilterEvaluation("none", confusion, confusion)
        frames.append(evaluations_to_frame([evaluation], CLASSES, iteration=iteration, epoch=iteration / 10))
    return pd.concat(frames, ignore_index=True)


# Iteration 0: every image predicted as "a" (recall 1, precision 1/3).
COLLAPSED = [[10, 0, 0], [10, 0, 0], [10, 0, 0]]
# Iteration 5: "b" recognised (recall 0.9, precision 0.9), "a" and "c" mixed up.
B_FIRST = [[5, 1, 4], [0, 9, 1], [5, 0, 5]]
# Iteration 10: every class recognised.
ALL = [[9, 1, 0], [0, 10, 0], [1, 0, 9]]


def test_check_collapsed_not_first():
    table = _table([(0, COLLAPSED), (5, B_FIRST), (10, ALL)])
    record = dynamics_chapter.check_learned_first(table, "b", threshold=0.6, min_precision=0.5)
    assert record["learned_first"] == "b"
    assert record["learned_first_iteration"] == 5
    assert record["agreement"] == "yes"


def test_check_without_precision_rule():
    table = _table([(0, COLLAPSED), (5, B_FIRST), (10, ALL)])
    record = dynamics_chapter.check_learned_first(table, "b", threshold=0.6, min_precision=0.0)
    assert record["learned_first"] == "a"
    assert record["agreement"] == "no"
    assert record["expected_first_iteration"] == 5


def test_check_tie_and_accuracy():
    table = _table([(0, COLLAPSED), (10, ALL)])
    record = dynamics_chapter.check_learned_first(table, "c", threshold=0.6, min_precision=0.5)
    assert record["learned_first"] == "a, b, c"
    assert record["agreement"] == "tied"
    assert record["test_accuracy"] == pytest.approx(28 / 30)


def test_check_none_learned():
    table = _table([(0, COLLAPSED)])
    record = dynamics_chapter.check_learned_first(table, "a", threshold=0.6, min_precision=0.5)
    assert record["agreement"] == "none learned"
    assert record["learned_first_iteration"] is None
    assert record["expected_first_iteration"] is None


def test_check_unknown_class():
    table = _table([(0, ALL)])
    with pytest.raises(InvalidInputError, match="'d'"):
        dynamics_chapter.check_learned_first(table, "d", threshold=0.6, min_precision=0.5)


def test_measured_single_cosine():
    # Class 0 contains a cosine of amplitude 0.2 at (u, v) = (0, 6), radius 6, in band B2;
    # class 1 is constant. Each class deviates from the mean by 0.1 at k and at -k.
    n = torch.arange(32, dtype=torch.float64)
    cosine = 0.5 + 0.2 * torch.cos(2 * math.pi * 6 * n / 32)  # (W,)
    images = torch.stack([cosine.expand(3, 32, 32), torch.full((3, 32, 32), 0.5, dtype=torch.float64)]).float()
    scores = dynamics_chapter.measured_band_distinctiveness(images, torch.tensor([0, 1]), 2)
    expected = np.zeros((2, 4))
    expected[:, 1] = 0.2
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_measured_matches_design():
    spec = dataclasses.replace(synthetic.get_preset("syn3"), train_size=800)
    images, labels = synthetic.make_dataset(spec, "train", seed=0)
    scores = dynamics_chapter.measured_band_distinctiveness(images, labels, spec.num_classes)
    assert scores.max(axis=1).argmax() == spec.designated_class
    assert scores.argmax(axis=1).tolist() == spec.most_distinctive_bands()


def test_preset_data_sizes():
    data = dynamics_chapter.load_preset_data("syn2", train_size=40, test_size=20, seed=1)
    assert len(data.train) == 40
    assert len(data.test) == 20
    assert data.expected_class == synthetic.get_preset("syn2").designated_class
    assert data.expected_band == 1


def test_authors_files(tmp_path):
    rng = np.random.default_rng(0)
    images = (rng.random((24, 32, 32, 3)) * 255).astype(np.uint8)
    labels = np.arange(24) % 4
    for split in ("train", "test"):
        data_name, label_name = synthetic.authors_file_names(3, split)
        np.save(tmp_path / data_name, images)
        np.save(tmp_path / label_name, labels)
    data = dynamics_chapter.load_preset_data("syn3", train_size=16, authors_data_dir=tmp_path)
    assert len(data.train) == 16
    assert len(data.test) == 24
    assert data.spec is None
    assert data.distinctiveness.shape == (4, 4)


def test_authors_number_invalid():
    with pytest.raises(InvalidInputError, match="'cifar'"):
        dynamics_chapter.authors_dataset_number("cifar")


def test_plot_panels():
    table = _table([(0, COLLAPSED), (5, B_FIRST)])
    fig = dynamics_chapter.plot_unfiltered_recall({"x": table, "y": table}, {"x": "b"}, threshold=0.6)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert visible[0].get_title() == "x (expected: b)"
    assert visible[1].get_title() == "y"


def test_majority_collapsed():
    table = _table([(0, COLLAPSED), (5, B_FIRST)])
    assert dynamics_chapter.majority_prediction(table, 0) == ("a", 1.0)


def test_majority_share():
    table = _table([(0, COLLAPSED), (10, ALL)])
    name, share = dynamics_chapter.majority_prediction(table, 10)
    assert name == "b"
    assert share == pytest.approx(11 / 30)


def test_majority_missing_iteration():
    table = _table([(0, COLLAPSED)])
    with pytest.raises(InvalidInputError, match=r"\[0\]"):
        dynamics_chapter.majority_prediction(table, 7)
