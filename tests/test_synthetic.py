"""Tests of fslib.synthetic: the generator, its presets, saved data sets and the authors' files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle

import numpy as np
import pytest
import torch

from fslib import cli, synthetic
from fslib.errors import InvalidFileError, InvalidInputError, UnsafePickleError
from fslib.synthetic import ClassSpec, SpecialGroup, SyntheticSpec

EDGES = (0.0, 4.0, 8.0, 12.0, math.inf)


def with_sizes(spec: SyntheticSpec, train: int = 40, test: int = 20, **changes) -> SyntheticSpec:
    return dataclasses.replace(spec, train_size=train, test_size=test, **changes)


def digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()


def band_index_map(size: int) -> np.ndarray:
    """Band index of each centred frequency, computed here with numpy."""
    offsets = np.arange(size) - size // 2
    radius = np.hypot(offsets[:, None], offsets[None, :])
    return np.searchsorted(np.array(EDGES), radius, side="right") - 1  # (H, W)


def measured_band_scores(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """Sum over each band of |E_c - mean_j E_j|, with E_c the class-average amplitude spectrum."""
    x = images.numpy().astype(np.float64)
    size = x.shape[-1]
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))) * 2 / size**2  # (N, 3, H, W)
    amplitude = amplitude.mean(axis=1)  # (N, H, W)
    y = labels.numpy()
    class_means = np.stack([amplitude[y == c].mean(axis=0) for c in range(num_classes)])  # (K, H, W)
    difference = np.abs(class_means - class_means.mean(axis=0))
    bands = band_index_map(size)
    return np.stack([difference[:, bands == b].sum(axis=1) for b in range(len(EDGES) - 1)], axis=1)


@pytest.fixture(scope="module")
def preset_test_splits():
    return {name: synthetic.make_dataset(spec, "test", seed=0) for name, spec in synthetic.PRESETS.items()}


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------


def test_same_seed_same_bytes():
    spec = with_sizes(synthetic.get_preset("syn2"))
    first_images, first_labels = synthetic.make_dataset(spec, "train", seed=3)
    second_images, second_labels = synthetic.make_dataset(spec, "train", seed=3)
    assert digest(first_images) == digest(second_images)
    assert digest(first_labels) == digest(second_labels)


def test_different_seed_differs():
    spec = with_sizes(synthetic.get_preset("syn2"))
    first, _ = synthetic.make_dataset(spec, "train", seed=0)
    second, _ = synthetic.make_dataset(spec, "train", seed=1)
    assert digest(first) != digest(second)


def test_train_and_test_differ():
    spec = with_sizes(synthetic.get_preset("syn2"), train=20, test=20)
    train, _ = synthetic.make_dataset(spec, "train", seed=0)
    test, _ = synthetic.make_dataset(spec, "test", seed=0)
    assert digest(train) != digest(test)


def test_shapes_dtypes_range():
    images, labels = synthetic.make_dataset(with_sizes(synthetic.get_preset("syn1"), train=30), "train")
    assert isinstance(images, torch.Tensor)
    assert images.shape == (30, 3, 32, 32)
    assert images.dtype == torch.float32
    assert labels.shape == (30,)
    assert labels.dtype == torch.int64
    assert float(images.min()) >= 0.0
    assert float(images.max()) <= 1.0


def test_preset_sizes():
    spec = synthetic.get_preset("syn3")
    assert (spec.train_size, spec.test_size) == (2000, 400)


def test_class_balance():
    _, labels = synthetic.make_dataset(with_sizes(synthetic.get_preset("syn1"), train=42), "train")
    counts = np.bincount(labels.numpy(), minlength=4)
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == 42


def test_labels_shuffled():
    _, labels = synthetic.make_dataset(with_sizes(synthetic.get_preset("syn1"), train=40), "train")
    assert not np.array_equal(labels.numpy(), np.arange(40) % 4)


@pytest.mark.parametrize("name", list(synthetic.PRESETS))
def test_clipped_share_tiny(name):
    raw, _ = synthetic.make_dataset(name, "test", seed=0, clip=False)
    clipped = float(((raw < 0) | (raw > 1)).double().mean())
    assert clipped < 1e-3


def test_clip_false_matches_clip():
    spec = with_sizes(synthetic.get_preset("syn1"))
    clipped, _ = synthetic.make_dataset(spec, "train", seed=0)
    raw, _ = synthetic.make_dataset(spec, "train", seed=0, clip=False)
    assert torch.equal(raw.clamp(0, 1), clipped)


@pytest.mark.parametrize("name", list(synthetic.PRESETS))
def test_mean_colour_not_separable(name, preset_test_splits):
    images, labels = preset_test_splits[name]
    colour = images.mean(dim=(2, 3)).numpy()  # (N, 3)
    class_colour = np.stack([colour[labels.numpy() == c].mean(axis=0) for c in range(4)])  # (4, 3)
    assert np.abs(class_colour - 0.5).max() < 0.005


def test_noise_free_spectrum_at_special_frequencies():
    spec = with_sizes(synthetic.get_preset("syn4"), train=8, noise_std=0.0, distractors_per_image=0)
    images, labels = synthetic.make_dataset(spec, "train", seed=0, clip=False)
    size = spec.image_size
    spectrum = np.fft.fftshift(np.fft.fft2(images.numpy().astype(np.float64) - 0.5), axes=(-2, -1))
    amplitude = np.abs(spectrum) * 2 / size**2  # cosine amplitude at k and at -k
    masks = synthetic.special_frequency_masks(spec).numpy().astype(bool)
    for image, label in zip(amplitude, labels.numpy()):
        expected = masks[label]
        present = image.max(axis=0) > 1e-4
        assert np.array_equal(present, expected)
        assert image[:, expected].min() >= 0.02 - 1e-4
        assert image[:, expected].max() <= 0.09 + 1e-4


def test_special_frequencies_mirrored_in_masks():
    masks = synthetic.special_frequency_masks("syn3")
    flipped = torch.roll(torch.flip(masks, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    assert torch.equal(masks, flipped)


def test_special_frequency_counts():
    spec = synthetic.get_preset("syn1")
    counts = [len(rows) for rows in synthetic.special_frequencies(spec)]
    assert counts == [7, 5, 5, 5]
    assert int(synthetic.special_frequency_masks(spec).sum()) == 2 * sum(counts)


def test_special_frequencies_in_declared_bands():
    spec = synthetic.get_preset("syn2")
    bands = band_index_map(32)
    for item, rows in zip(spec.classes, synthetic.special_frequencies(spec)):
        declared = sorted(g.band for g in item.special for _ in range(g.count))
        found = sorted(int(bands[u + 16, v + 16]) for u, v in rows)
        assert found == declared


def test_special_frequencies_not_shared():
    rows = np.concatenate(synthetic.special_frequencies("syn1"))
    assert len({tuple(r) for r in rows}) == len(rows)


def test_layout_follows_layout_seed():
    spec = synthetic.get_preset("syn1")
    moved = dataclasses.replace(spec, layout_seed=spec.layout_seed + 1)
    first = np.concatenate(synthetic.special_frequencies(spec))
    second = np.concatenate(synthetic.special_frequencies(moved))
    assert not np.array_equal(first, second)


# --------------------------------------------------------------------------
# Design claims, checked from generated data
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(synthetic.PRESETS))
def test_designated_band_from_data(name, preset_test_splits):
    spec = synthetic.get_preset(name)
    images, labels = preset_test_splits[name]
    scores = measured_band_scores(images, labels, spec.num_classes)
    assert int(scores[spec.designated_class].argmax()) == spec.designated_band


@pytest.mark.parametrize("name", list(synthetic.PRESETS))
def test_designated_class_most_distinctive(name, preset_test_splits):
    spec = synthetic.get_preset(name)
    images, labels = preset_test_splits[name]
    best = measured_band_scores(images, labels, spec.num_classes).max(axis=1)
    assert int(best.argmax()) == spec.designated_class


@pytest.mark.parametrize("name", list(synthetic.PRESETS))
def test_all_class_bands_from_data(name, preset_test_splits):
    spec = synthetic.get_preset(name)
    images, labels = preset_test_splits[name]
    measured = measured_band_scores(images, labels, spec.num_classes).argmax(axis=1).tolist()
    assert measured == spec.most_distinctive_bands()


def test_every_band_designated_somewhere():
    bands = {spec.designated_band for spec in synthetic.PRESETS.values()}
    assert bands == {0, 1, 2, 3}


def test_some_designated_band_high():
    outcomes = [spec.expected_outcome() for spec in synthetic.PRESETS.values()]
    assert any(o["band"] == "B4" and o["high_frequency"] for o in outcomes)


def test_expected_outcome_names_class():
    outcome = synthetic.get_preset("syn3").expected_outcome()
    assert outcome == {"class_index": 2, "class_name": "class 2", "band": "B3", "band_index": 2,
                       "high_frequency": True}


# --------------------------------------------------------------------------
# Spec: JSON, hash, validation
# --------------------------------------------------------------------------


def test_json_round_trip():
    spec = synthetic.get_preset("syn4")
    assert SyntheticSpec.from_json(spec.to_json()) == spec


def test_json_round_trip_keeps_hash():
    spec = synthetic.get_preset("syn4")
    assert SyntheticSpec.from_dict(json.loads(spec.to_json())).spec_hash() == spec.spec_hash()


def test_json_writes_inf_as_string():
    data = json.loads(synthetic.get_preset("syn1").to_json())
    assert data["band_edges"] == [0.0, 4.0, 8.0, 12.0, "inf"]


def test_hash_is_sha256_of_canonical_json():
    spec = synthetic.get_preset("syn1")
    text = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    assert spec.spec_hash() == hashlib.sha256(text.encode()).hexdigest()


def test_preset_hash_pinned():
    # A changed value here means the preset or the recipe changed, and with it every generated image.
    expected = "df9052450aff3831dca618102b4e8cfed81fd39858b0c6cdd9da81fbbcf4da7a"
    assert synthetic.get_preset("syn1").spec_hash() == expected


def test_hash_changes_with_field():
    spec = synthetic.get_preset("syn1")
    assert dataclasses.replace(spec, noise_std=0.03).spec_hash() != spec.spec_hash()


def test_list_values_equal_tuple_values():
    spec = synthetic.get_preset("syn1")
    rebuilt = dataclasses.replace(spec, phase_range=[0, 2 * math.pi], band_edges=[0, 4, 8, 12, "inf"])
    assert rebuilt == spec


def test_default_band_edges():
    spec = SyntheticSpec(classes=synthetic.get_preset("syn1").classes)
    assert spec.band_edges == EDGES


def group(band=0, count=2, amplitude=(0.04, 0.06)):
    return SpecialGroup(band, count, amplitude)


def two_classes(**changes):
    classes = (ClassSpec("a", (group(),)), ClassSpec("b", (group(band=1),)))
    return SyntheticSpec(classes=classes, **changes)


@pytest.mark.parametrize("changes, error, word", [
    ({"image_size": 4}, InvalidInputError, "image_size"),
    ({"image_size": 32.0}, TypeError, "image_size"),
    ({"noise_std": -0.1}, InvalidInputError, "noise_std"),
    ({"noise_std": float("nan")}, InvalidInputError, "noise_std"),
    ({"train_size": 0}, InvalidInputError, "train_size"),
    ({"test_size": True}, TypeError, "test_size"),
    ({"distractors_per_image": -1}, InvalidInputError, "distractors_per_image"),
    ({"distractor_amplitude": (0.03, 0.01)}, InvalidInputError, "distractor_amplitude"),
    ({"distractor_amplitude": (0.01,)}, InvalidInputError, "distractor_amplitude"),
    ({"phase_range": "0,1"}, InvalidInputError, "phase_range"),
    ({"layout_seed": -1}, InvalidInputError, "layout_seed"),
    ({"band_edges": (0, 4, 8, 12)}, InvalidInputError, "band_edges"),
    ({"band_edges": (1, 4, 8, math.inf)}, InvalidInputError, "band_edges"),
    ({"band_edges": (0, 8, 4, math.inf)}, InvalidInputError, "edges"),
    ({"designated_class": 5}, InvalidInputError, "designated_class"),
    ({"name": ""}, InvalidInputError, "name"),
])
def test_invalid_spec_fields(changes, error, word):
    with pytest.raises(error, match=word):
        two_classes(**changes)


@pytest.mark.parametrize("kwargs, error, word", [
    ({"band": -1}, InvalidInputError, "band"),
    ({"count": 0}, InvalidInputError, "count"),
    ({"amplitude": (-0.1, 0.1)}, InvalidInputError, "amplitude"),
    ({"amplitude": (0.0, 0.0)}, InvalidInputError, "amplitude"),
])
def test_invalid_group(kwargs, error, word):
    with pytest.raises(error, match=word):
        group(**kwargs)


def test_one_class_rejected():
    with pytest.raises(InvalidInputError, match="at least two"):
        SyntheticSpec(classes=(ClassSpec("a", (group(),)),))


def test_duplicate_class_names_rejected():
    with pytest.raises(InvalidInputError, match="duplicate"):
        SyntheticSpec(classes=(ClassSpec("a", (group(),)), ClassSpec("a", (group(),))))


def test_class_without_groups_rejected():
    with pytest.raises(InvalidInputError, match="special"):
        ClassSpec("a", ())


def test_band_out_of_range_rejected():
    with pytest.raises(InvalidInputError, match="4 bands"):
        SyntheticSpec(classes=(ClassSpec("a", (group(band=4),)), ClassSpec("b", (group(),))))


def test_band_capacity_checked():
    # B1 of a 32 px image contains 22 frequencies up to mirrors.
    with pytest.raises(InvalidInputError, match="contains 22"):
        SyntheticSpec(classes=(ClassSpec("a", (group(count=12),)), ClassSpec("b", (group(count=11),))))


def test_designated_class_must_be_most_distinctive():
    classes = (ClassSpec("weak", (group(count=1),)), ClassSpec("strong", (group(count=4),)))
    with pytest.raises(InvalidInputError, match="not the most distinctive"):
        SyntheticSpec(classes=classes, designated_class=0)


def test_from_dict_unknown_key():
    data = synthetic.get_preset("syn1").to_dict()
    data["noise"] = 0.1
    with pytest.raises(InvalidInputError, match="unknown keys"):
        SyntheticSpec.from_dict(data)


def test_from_dict_other_generator_version():
    data = synthetic.get_preset("syn1").to_dict()
    data["generator_version"] = synthetic.GENERATOR_VERSION + 1
    with pytest.raises(InvalidInputError, match="generator_version"):
        SyntheticSpec.from_dict(data)


def test_from_json_not_json():
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        SyntheticSpec.from_json("{classes: ")


def test_unknown_preset_lists_names():
    with pytest.raises(InvalidInputError, match="syn1, syn2, syn3, syn4"):
        synthetic.get_preset("syn5")


def test_invalid_split():
    with pytest.raises(InvalidInputError, match="split"):
        synthetic.make_dataset("syn1", "val")


def test_invalid_seed():
    with pytest.raises(InvalidInputError, match="seed"):
        synthetic.make_dataset("syn1", "train", seed=-1)


def test_invalid_spec_type():
    with pytest.raises(TypeError, match="spec_or_preset"):
        synthetic.make_dataset({"name": "syn1"})


# --------------------------------------------------------------------------
# Saved data sets
# --------------------------------------------------------------------------


@pytest.fixture()
def saved(tmp_path):
    spec = with_sizes(synthetic.get_preset("syn3"), train=16, test=8)
    out = synthetic.save_dataset(tmp_path / "syn3", spec, seed=5)
    return out, spec


def test_save_writes_files(saved):
    out, _ = saved
    assert sorted(os.listdir(out)) == ["checksums.json", "spec.json", "test.npz", "train.npz"]


def test_save_load_round_trip(saved):
    out, spec = saved
    images, labels = synthetic.load_dataset(out, "test", spec=spec, seed=5)
    expected_images, expected_labels = synthetic.make_dataset(spec, "test", seed=5)
    assert torch.equal(images, expected_images)
    assert torch.equal(labels, expected_labels)


def test_saved_spec_readable(saved):
    out, spec = saved
    assert SyntheticSpec.load(out / "spec.json") == spec
    assert synthetic.read_saved_spec(out) == (spec, 5)


def test_corrupt_byte_detected(saved):
    out, _ = saved
    path = out / "train.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidFileError, match="Checksum mismatch"):
        synthetic.load_dataset(out, "train")


def test_edited_spec_detected(saved):
    out, _ = saved
    path = out / "spec.json"
    path.write_text(path.read_text().replace('"noise_std": 0.02', '"noise_std": 0.03'))
    with pytest.raises(InvalidFileError, match="Checksum mismatch"):
        synthetic.load_dataset(out, "test")


def test_other_spec_rejected(saved):
    out, _ = saved
    with pytest.raises(InvalidFileError, match="another spec"):
        synthetic.load_dataset(out, "test", spec="syn3")


def test_other_seed_rejected(saved):
    out, spec = saved
    with pytest.raises(InvalidFileError, match="seed 5"):
        synthetic.load_dataset(out, "test", spec=spec, seed=6)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        synthetic.load_dataset(tmp_path / "absent")


def test_existing_dataset_needs_overwrite(saved):
    out, spec = saved
    with pytest.raises(InvalidInputError, match="overwrite"):
        synthetic.save_dataset(out, spec, seed=6)
    synthetic.save_dataset(out, spec, seed=6, overwrite=True)
    assert synthetic.read_saved_spec(out)[1] == 6


def test_foreign_folder_not_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(InvalidInputError, match="not empty"):
        synthetic.save_dataset(tmp_path, with_sizes(synthetic.get_preset("syn1")), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------
# The authors' files
# --------------------------------------------------------------------------


def authors_arrays(seed=0, n=6):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)  # (N, H, W, C)
    labels = np.arange(n) % 4
    return images, labels


def write_authors(folder, k, split, data, labels, file_format):
    folder.mkdir(parents=True, exist_ok=True)
    data_name, label_name = synthetic.authors_file_names(k, split)
    for name, value in ((data_name, data), (label_name, labels)):
        path = folder / name
        if file_format == "npy":
            np.save(path, value)  # the name already ends in .npy, so np.save keeps it
        elif file_format == "pickle":
            path.write_bytes(pickle.dumps(value))
        elif file_format == "torch":
            torch.save(torch.as_tensor(value), path)


@pytest.mark.parametrize("file_format", ["npy", "pickle", "torch"])
def test_authors_uint8_channels_last(tmp_path, file_format):
    images, labels = authors_arrays()
    write_authors(tmp_path, 1, "train", images, labels, file_format)
    loaded, loaded_labels = synthetic.load_authors_dataset(tmp_path, 1, "train")
    assert loaded.shape == (6, 3, 32, 32)
    assert loaded.dtype == torch.float32
    assert loaded_labels.dtype == torch.int64
    assert np.allclose(loaded.numpy(), images.transpose(0, 3, 1, 2) / 255.0)
    assert np.array_equal(loaded_labels.numpy(), labels)


@pytest.mark.parametrize("file_format", ["npy", "pickle", "torch"])
def test_authors_float_channels_first(tmp_path, file_format):
    images, labels = authors_arrays(seed=1)
    floats = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # (N, C, H, W) in [0, 1]
    write_authors(tmp_path, 2, "test", floats, labels.astype(np.float64), file_format)
    loaded, loaded_labels = synthetic.load_authors_dataset(tmp_path, 2, "test")
    assert np.array_equal(loaded.numpy(), floats)
    assert np.array_equal(loaded_labels.numpy(), labels)


def test_authors_float_0_to_255(tmp_path):
    images, labels = authors_arrays(seed=2)
    write_authors(tmp_path, 3, "train", images.astype(np.float64), labels, "npy")
    loaded, _ = synthetic.load_authors_dataset(tmp_path, 3, "train")
    assert np.allclose(loaded.numpy(), images.transpose(0, 3, 1, 2) / 255.0)


def test_authors_one_hot_labels(tmp_path):
    images, labels = authors_arrays(seed=3)
    write_authors(tmp_path, 4, "train", images, np.eye(4)[labels], "npy")
    _, loaded_labels = synthetic.load_authors_dataset(tmp_path, 4, "train")
    assert np.array_equal(loaded_labels.numpy(), labels)


def test_authors_missing_folder_names_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_data_complex_special_1_par.npy"):
        synthetic.load_authors_dataset(tmp_path / "absent", 1, "train")


def test_authors_missing_file_named(tmp_path):
    images, labels = authors_arrays()
    write_authors(tmp_path, 1, "train", images, labels, "npy")
    (tmp_path / "train_label_complex_special_1_par.npy").unlink()
    with pytest.raises(FileNotFoundError, match="train_label_complex_special_1_par.npy"):
        synthetic.load_authors_dataset(tmp_path, 1, "train")


def test_authors_count_mismatch(tmp_path):
    images, labels = authors_arrays()
    write_authors(tmp_path, 1, "train", images, labels[:-1], "npy")
    with pytest.raises(InvalidFileError, match="6 images"):
        synthetic.load_authors_dataset(tmp_path, 1, "train")


class RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_authors_raw_pickle_with_code_rejected(tmp_path):
    marker = tmp_path / "ran"
    images, labels = authors_arrays()
    write_authors(tmp_path, 1, "train", images, labels, "npy")
    (tmp_path / "train_data_complex_special_1_par.npy").write_bytes(pickle.dumps(RunsShell(marker)))
    with pytest.raises(UnsafePickleError, match="os|posix|system"):
        synthetic.load_authors_dataset(tmp_path, 1, "train")
    assert not marker.exists()


def test_authors_object_npy_with_code_rejected(tmp_path):
    marker = tmp_path / "ran"
    images, labels = authors_arrays()
    write_authors(tmp_path, 1, "train", images, labels, "npy")
    payload = np.empty(1, dtype=object)
    payload[0] = RunsShell(marker)
    with open(tmp_path / "train_data_complex_special_1_par.npy", "wb") as handle:
        np.save(handle, payload, allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        synthetic.load_authors_dataset(tmp_path, 1, "train")
    assert not marker.exists()


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def test_cli_preset_writes_dataset(tmp_path, capsys):
    out = tmp_path / "syn1"
    assert cli.main(["synth", "--preset", "syn1", "--seed", "0", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["checksums.json", "spec.json", "test.npz", "train.npz"]
    assert synthetic.read_saved_spec(out) == (synthetic.get_preset("syn1"), 0)


def test_cli_spec_file(tmp_path, capsys):
    spec = with_sizes(synthetic.get_preset("syn2"), train=8, test=4)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(spec.to_json())
    out = tmp_path / "custom"
    assert cli.main(["synth", "--spec", str(spec_path), "--seed", "2", "--out", str(out)]) == 0
    images, _ = synthetic.load_dataset(out, "train", spec=spec, seed=2)
    assert images.shape == (8, 3, 32, 32)


def test_cli_bad_preset(tmp_path, capsys):
    code = cli.main(["synth", "--preset", "syn9", "--out", str(tmp_path / "x")])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1
    assert "syn1, syn2, syn3, syn4" in error


def test_cli_missing_out(capsys):
    code = cli.main(["synth", "--preset", "syn1"])
    assert code == 2
    assert "--out" in capsys.readouterr().err


def test_cli_preset_and_spec_conflict(tmp_path, capsys):
    code = cli.main(["synth", "--preset", "syn1", "--spec", "x.json", "--out", str(tmp_path / "x")])
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_list(capsys):
    assert cli.main(["synth", "--list"]) == 0
    listing = capsys.readouterr().out
    for name in ("syn1", "syn2", "syn3", "syn4"):
        assert f"{name}:" in listing
    assert "B4 (high frequency)" in listing


def test_cli_bad_seed_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synth", "--preset", "syn1", "--seed", "abc", "--out", "x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
