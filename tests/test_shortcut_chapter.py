"""Tests of the helpers of the frequency-shortcut and transfer chapters."""

import json
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fslib.book import shortcut_chapter as sc
from fslib.datasets import IMAGENET10_CLASSES, TensorImageDataset, real_photos
from fslib.errors import InvalidFileError, InvalidInputError

IMAGENET10_NAMES = [name for name, _ in IMAGENET10_CLASSES]


def _pair_map(size, offsets):
    """Return a centred (size, size) map holding each (row, col) offset and its mirror."""
    values = np.zeros((size, size))
    centre = size // 2
    for row, col in offsets:
        values[centre + row, centre + col] = 1.0
        values[centre - row, centre - col] = 1.0
    return values


def test_band_shares_loop_reference():
    rng = np.random.default_rng(0)
    maps = (rng.random((3, 16, 16)) < 0.1).astype(float)
    edges = [0.0, 2.0, 5.0, math.inf]
    shares = sc.band_shares(maps, edges)
    centre = 8
    for k in range(3):
        counts = np.zeros(3)
        for row in range(16):
            for col in range(16):
                if maps[k, row, col]:
                    radius = math.hypot(row - centre, col - centre)
                    band = next(b for b in range(3) if edges[b] <= radius < edges[b + 1])
                    counts[band] += 1
        np.testing.assert_allclose(shares[k], counts / counts.sum())


def test_band_shares_default_edges():
    # Offsets (0, 2) and (0, 13) lie in the first and last band of [0, 4, 8, 12, inf].
    maps = _pair_map(32, [(0, 2), (0, 13)])[None]
    np.testing.assert_allclose(sc.band_shares(maps)[0], [0.5, 0.0, 0.0, 0.5])


def test_band_shares_empty_map_nan():
    shares = sc.band_shares(np.zeros((1, 8, 8)), [0.0, 2.0, math.inf])
    assert np.isnan(shares).all()


def test_band_shares_rejects_2d():
    with pytest.raises(InvalidInputError, match="maps"):
        sc.band_shares(np.zeros((8, 8)))


def test_map_band_table_columns():
    maps = np.stack([_pair_map(32, [(0, 2), (0, 13)]), _pair_map(32, [(3, 4)])])
    table = sc.map_band_table(maps, ["brick", "cat"])
    assert table["kind"].tolist() == ["texture", "object"]
    assert table["low_share"].tolist() == [0.5, 1.0]
    assert table.loc[0, "mean_radius"] == pytest.approx(7.5)
    assert table.loc[1, "mean_radius"] == pytest.approx(5.0)


def test_map_band_table_name_count():
    with pytest.raises(InvalidInputError, match="class_names"):
        sc.map_band_table(np.zeros((2, 8, 8)), ["only one"])


def test_photo_kinds_unknown():
    assert sc.photo_kinds(["gravel", "rocket", "zebra"]) == ["texture", "object", "unknown"]


def test_kind_summary_means():
    table = pd.DataFrame({"name": ["a", "b", "c"], "kind": ["texture", "texture", "object"],
                          "tpr": [0.2, 0.4, 1.0], "is_shortcut": [False, True, True]})
    summary = sc.kind_summary(table)
    assert summary.loc["texture", "tpr"] == pytest.approx(0.3)
    assert summary.loc["texture", "is_shortcut"] == pytest.approx(0.5)
    assert summary.loc["object", "classes"] == 1


def _shortcut_frame():
    return pd.DataFrame({"name": ["brick", "cat", "x"], "tpr": [0.9, 0.1, np.nan], "fpr": [0.2, 0.0, np.nan],
                         "is_shortcut": [True, False, False]})


def test_shortcut_summary_skips_nan():
    summary = sc.shortcut_summary(_shortcut_frame())
    assert summary["mean_tpr"] == pytest.approx(0.5)
    assert summary["mean_fpr"] == pytest.approx(0.1)
    assert summary["shortcut_count"] == 1
    assert summary["shortcut_classes"] == ["brick"]


def test_per_class_metrics_plain_json():
    values = sc.per_class_metrics(_shortcut_frame())
    assert values["x"]["tpr"] is None
    assert values["brick"] == {"tpr": 0.9, "fpr": 0.2, "is_shortcut": True, "kind": "texture"}
    json.dumps(values)


def test_load_data_matches_real_photos(tmp_path):
    description = {"source": "photos", "size": 16, "seed": 3, "crops_per_class": {"train": 2, "test": 1}}
    path = tmp_path / "data.json"
    path.write_text(json.dumps(description))
    loaded = sc.load_data(path, "test")
    direct = real_photos("test", size=16, seed=3, crops_per_class=1, cache_dir=False)
    assert torch.equal(loaded.images, direct.images)
    assert loaded.classes == direct.classes


def test_load_data_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        sc.load_data(tmp_path / "missing.json", "train")
    with pytest.raises(InvalidInputError, match="source"):
        sc.load_data({"source": "cifar100", "size": 32}, "train")
    with pytest.raises(InvalidFileError, match="source"):
        sc.load_data({"size": 32}, "train")
    with pytest.raises(InvalidInputError, match="split"):
        sc.load_data({"source": "photos", "size": 32, "seed": 0}, "val")


def test_stack_dataset_generic():
    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return torch.full((1, 2, 2), float(index)), index % 2

    images, labels = sc.stack_dataset(Items())
    assert images.shape == (3, 1, 2, 2)
    assert labels.tolist() == [0, 1, 0]


def _write_folder(root, name, count):
    folder = root / name
    folder.mkdir(parents=True)
    for index in range(count):
        Image.fromarray(np.full((12, 12, 3), 40 * index, dtype=np.uint8)).save(folder / f"{index}.png")


def test_related_ood_labels(tmp_path):
    _write_folder(tmp_path, "military_aircraft", 2)
    _write_folder(tmp_path, "Horse", 3)
    related = {"military aircraft": "airliner", "horse": "zebra"}
    data = sc.related_ood_dataset(tmp_path, IMAGENET10_NAMES, 8, related=related)
    assert data.images.shape == (5, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 7, 7, 7]


def test_related_ood_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="ood_dir"):
        sc.related_ood_dataset(None, ["a", "b"], 8)
    _write_folder(tmp_path, "horse", 1)
    with pytest.raises(FileNotFoundError, match="lorikeet"):
        sc.related_ood_dataset(tmp_path, IMAGENET10_NAMES, 8, related={"lorikeet": "humming bird"})
    with pytest.raises(InvalidInputError, match="zebu"):
        sc.related_ood_dataset(tmp_path, IMAGENET10_NAMES, 8, related={"horse": "zebu"})


def test_default_related_classes():
    assert set(sc.IMAGENET_SCT_RELATED.values()) == set(IMAGENET10_NAMES)


def test_plot_confusions_panels():
    confusion = {c: np.eye(3, dtype=int) for c in range(3)}
    fig = sc.plot_confusions(confusion, ["a", "b", "c"], ncols=2)
    assert sum(axis.axison for axis in fig.axes) == 3


def test_plot_band_shares_bars():
    table = sc.map_band_table(np.stack([_pair_map(32, [(0, 2)])]), ["brick"])
    fig = sc.plot_band_shares(table)
    assert len(fig.axes[0].patches) == 4


def test_train_variant_normalization():
    torch.manual_seed(0)
    images = torch.rand(16, 3, 32, 32)
    labels = torch.arange(16) % 2
    data = TensorImageDataset(images, labels, ["a", "b"])
    model, result = sc.train_variant(data, model_name="resnet18", width=2, augment="none", epochs=1, lr=0.01,
                                     batch_size=8, normalization=([0.5] * 3, [0.25] * 3), device="cpu")
    assert not model.training
    assert result.normalization[0].tolist() == [0.5] * 3


def test_replace_class_images():
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1)
    labels = torch.tensor([0, 1, 1, 2])
    new_images = torch.full((3, 1, 1, 1), 9.0)
    merged, merged_labels = sc.replace_class_images(images, labels, new_images, torch.tensor([1, 1, 1]))
    assert merged.flatten().tolist() == [0.0, 3.0, 9.0, 9.0, 9.0]
    assert merged_labels.tolist() == [0, 2, 1, 1, 1]


def test_replace_class_images_shape():
    with pytest.raises(InvalidInputError, match="new_images"):
        sc.replace_class_images(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), torch.zeros(1, 1, 8, 8),
                                torch.tensor([1]))


def test_load_reference_reads_artifacts(tmp_path):
    from fslib.book.dfm_chapter import natural_data_spec
    from fslib.dfm import save_dfm
    from fslib.models import build_model, save_checkpoint

    description = natural_data_spec("photos", size=32, seed=0, train_per_class=2, test_per_class=2)
    (tmp_path / "data.json").write_text(json.dumps(description))
    classes = list(sc.load_data(description, "test").classes)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.2, 0.2]
    model = build_model("resnet18", len(classes), 32, width=4, seed=0)
    save_checkpoint(tmp_path / "model.pt", model, {"classes": classes, "normalization": {"mean": mean, "std": std}})
    maps = torch.zeros(len(classes), 32, 32)
    maps[:, 16, 16] = 1.0
    save_dfm(maps, tmp_path / "dfm_exact.npz", top_percent=5.0)

    reference = sc.load_reference(tmp_path, "exact")
    assert reference.classes == classes
    assert reference.top_percent == 5.0
    assert torch.equal(reference.maps, maps)
    expected = (reference.test_pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    assert torch.allclose(reference.test_images, expected)
    assert reference.test_labels.shape[0] == reference.test_pixels.shape[0]


def test_load_reference_rejects_method(tmp_path):
    with pytest.raises(InvalidInputError, match="Invalid dfm_method"):
        sc.load_reference(tmp_path, "slow")
