"""Tests of the helpers of the natural-image and dominant-frequency-map chapters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fslib.book import dfm_chapter
from fslib.datasets import TensorImageDataset
from fslib.errors import InvalidInputError


def _slow_band_shares(maps: np.ndarray, edges, threshold=0) -> np.ndarray:
    """Loop over every frequency: the reference for adcs_band_shares."""
    classes, height, width = maps.shape
    counts = np.zeros((classes, len(edges) - 1))
    sizes = np.zeros(len(edges) - 1)
    for i in range(height):
        for j in range(width):
            if (i, j) == (height // 2, width // 2):
                continue
            radius = math.hypot(i - height // 2, j - width // 2)
            for b in range(len(edges) - 1):
                if edges[b] <= radius < edges[b + 1]:
                    sizes[b] += 1
                    counts[:, b] += maps[:, i, j] > threshold
    return counts / sizes


def test_band_shares_match_loop():
    generator = torch.Generator().manual_seed(0)
    maps = torch.randint(-3, 4, (4, 16, 16), generator=generator)
    edges = [0, 2, 4.5, 6, math.inf]
    expected = _slow_band_shares(maps.numpy(), edges)
    result = dfm_chapter.adcs_band_shares(maps, edges).numpy()
    np.testing.assert_allclose(result, expected)


def test_band_shares_threshold():
    generator = torch.Generator().manual_seed(1)
    maps = torch.randint(-3, 4, (2, 8, 8), generator=generator)
    edges = [0, 2, math.inf]
    expected = _slow_band_shares(maps.numpy(), edges, threshold=2)
    result = dfm_chapter.adcs_band_shares(maps, edges, threshold=2).numpy()
    np.testing.assert_allclose(result, expected)


def test_band_shares_closed_form():
    # Class 0 is positive everywhere and class 1 only below radius 2, so their shares are [1, 1] and [1, 0].
    maps = torch.full((2, 8, 8), -1)
    maps[0] = 1
    for i in range(8):
        for j in range(8):
            if math.hypot(i - 4, j - 4) < 2:
                maps[1, i, j] = 1
    shares = dfm_chapter.adcs_band_shares(maps, [0, 2, math.inf])
    assert shares[0].tolist() == [1.0, 1.0]
    assert shares[1].tolist() == [1.0, 0.0]


def test_band_shares_zero_frequency():
    maps = torch.zeros(1, 4, 4)
    maps[0, 2, 2] = 5
    with_zero = dfm_chapter.adcs_band_shares(maps, [0, 1, math.inf], exclude_zero=False)
    assert with_zero[0, 0].item() == 1.0
    assert dfm_chapter.adcs_band_shares(maps, [0, 1, math.inf])[0, 0].isnan()


def test_band_shares_rejects_rank():
    with pytest.raises(InvalidInputError, match="maps"):
        dfm_chapter.adcs_band_shares(torch.zeros(8, 8), [0, math.inf])


def test_band_table_most_distinctive():
    values = np.array([[0.1, 0.9], [0.7, 0.2]])
    table = dfm_chapter.band_table(values, ["a", "b"], kinds={"a": "texture", "b": "object"})
    assert table["most_distinctive"].tolist() == ["B2", "B1"]
    assert table["kind"].tolist() == ["texture", "object"]


def test_band_table_flat_row():
    table = dfm_chapter.band_table(np.array([[1.0, 0.98], [0.0, 0.5]]), ["a", "b"])
    assert table["most_distinctive"].tolist() == ["none", "B2"]


def test_band_table_rejects_shape():
    with pytest.raises(InvalidInputError, match="values"):
        dfm_chapter.band_table(np.zeros((3, 2)), ["a", "b"])


def test_subset_first_per_class():
    labels = torch.tensor([1, 0, 1, 0, 1, 2])
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1)
    chosen, chosen_labels = dfm_chapter.per_class_subset(images, labels, 2, 3)
    assert chosen.flatten().tolist() == [1.0, 3.0, 0.0, 2.0, 5.0]
    assert chosen_labels.tolist() == [0, 0, 1, 1, 2]


def test_subset_rejects_empty_class():
    with pytest.raises(InvalidInputError, match="class 2"):
        dfm_chapter.per_class_subset(torch.zeros(2, 1, 1, 1), torch.tensor([0, 1]), 1, 3)


def test_subset_rejects_per_class():
    with pytest.raises(InvalidInputError, match="per_class"):
        dfm_chapter.per_class_subset(torch.zeros(2, 1, 1, 1), torch.tensor([0, 1]), 0, 2)


class _FolderLike(torch.utils.data.Dataset):
    """A data set that lists labels in ``targets`` and builds images on access, as folder data sets do."""

    def __init__(self, targets):
        self.targets = list(targets)
        self.classes = ["a", "b"]
        self.loaded = []

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        self.loaded.append(index)
        return torch.full((1, 2, 2), float(index)), self.targets[index]


def test_class_images_folder_like():
    dataset = _FolderLike([1, 1, 0, 1, 0])
    images, labels = dfm_chapter.class_images(dataset, per_class=1)
    assert images[:, 0, 0, 0].tolist() == [2.0, 0.0]
    assert labels.tolist() == [0, 1]
    assert sorted(dataset.loaded) == [0, 2]


def test_class_images_tensor_dataset():
    dataset = TensorImageDataset(torch.arange(4.0).view(4, 1, 1, 1), torch.tensor([1, 0, 1, 0]), ["a", "b"])
    images, labels = dfm_chapter.class_images(dataset)
    assert images.flatten().tolist() == [1.0, 3.0, 0.0, 2.0]
    assert labels.tolist() == [0, 0, 1, 1]


def test_spec_photos():
    spec = dfm_chapter.natural_data_spec("photos", size=32, seed=3, train_per_class=5, test_per_class=2)
    assert spec == {"source": "photos", "size": 32, "seed": 3, "crops_per_class": {"train": 5, "test": 2}}


def test_spec_missing_folder():
    with pytest.raises(InvalidInputError, match="imagenet10_dir"):
        dfm_chapter.natural_data_spec("imagenet10")


def test_spec_unknown_source():
    with pytest.raises(InvalidInputError, match="'mnist'"):
        dfm_chapter.natural_data_spec("mnist")


def test_dataset_missing_folder(tmp_path):
    spec = dfm_chapter.natural_data_spec("cifar10", cifar10_dir=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError):
        dfm_chapter.natural_dataset(spec, "train")


def test_dataset_photos_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("FSLIB_CACHE", str(tmp_path))
    spec = dfm_chapter.natural_data_spec("photos", size=16, train_per_class=2, test_per_class=1)
    test = dfm_chapter.natural_dataset(spec, "test")
    assert len(test) == len(test.classes)
    assert tuple(test.images.shape[1:]) == (3, 16, 16)


def test_photo_kinds():
    assert dfm_chapter.photo_kinds(["brick", "cat"]) == {"brick": "texture", "cat": "object"}
    assert dfm_chapter.photo_kinds(["brick", "zebra"]) is None
