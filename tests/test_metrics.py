"""Tests for fslib.metrics (class-wise spectra, ADCS, figures) and ``fslib adcs``."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from fslib.cli import main  # noqa: E402
from fslib.datasets.base import TensorImageDataset  # noqa: E402
from fslib.errors import InvalidInputError  # noqa: E402
from fslib.fourier import mirror  # noqa: E402
from fslib.metrics import (  # noqa: E402
    adcs,
    adcs_from_spectra,
    class_average_spectra,
    plot_adcs,
    plot_class_spectra,
)


def _random_data(num_classes=3, per_class=5, channels=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n = num_classes * per_class
    images = torch.rand(n, channels, size, size, generator=generator)
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=generator)]
    return images, labels


def _numpy_spectra(images, labels, num_classes):
    """Class-average centred amplitude spectra with numpy.fft, one image at a time."""
    images = images.numpy().astype(np.float64)
    labels = labels.numpy()
    out = np.zeros((num_classes, *images.shape[1:]))
    for c in range(num_classes):
        members = [np.abs(np.fft.fftshift(np.fft.fft2(img), axes=(-2, -1))) for img, y in zip(images, labels) if y == c]
        out[c] = np.mean(members, axis=0)
    return out


def _loop_adcs(spectra, per_channel):
    """ADCS by explicit loops over classes, channels and frequencies."""
    num_classes, channels, height, width = spectra.shape
    shape = (num_classes, channels, height, width) if per_channel else (num_classes, height, width)
    out = np.zeros(shape, dtype=np.int64)
    for c in range(num_classes):
        for j in range(num_classes):
            if j == c:
                continue
            for u in range(height):
                for v in range(width):
                    if per_channel:
                        for ch in range(channels):
                            out[c, ch, u, v] += np.sign(spectra[c, ch, u, v] - spectra[j, ch, u, v])
                    else:
                        difference = sum(spectra[c, ch, u, v] - spectra[j, ch, u, v] for ch in range(channels))
                        out[c, u, v] += np.sign(difference)
    return out


# --------------------------------------------------------------------------
# class_average_spectra
# --------------------------------------------------------------------------


def test_spectra_match_numpy():
    images, labels = _random_data()
    spectra = class_average_spectra(images, labels, 3, device="cpu")
    np.testing.assert_allclose(spectra.numpy(), _numpy_spectra(images, labels, 3), rtol=1e-6, atol=1e-9)


def test_spectra_counts():
    images, labels = _random_data(num_classes=3, per_class=4)
    _, counts = class_average_spectra(images, labels, 3, device="cpu", return_counts=True)
    assert counts.tolist() == [4, 4, 4]


def test_spectra_dtype_and_shape():
    images, labels = _random_data(num_classes=3, channels=2, size=6)
    spectra = class_average_spectra(images, labels, device="cpu")
    assert spectra.dtype == torch.float64
    assert tuple(spectra.shape) == (3, 2, 6, 6)


def test_spectra_loader_equals_tensor():
    images, labels = _random_data(num_classes=4, per_class=6)
    in_memory, counts = class_average_spectra(images, labels, 4, device="cpu", batch_size=1000, return_counts=True)
    loader = DataLoader(TensorImageDataset(images, labels), batch_size=5, shuffle=False)
    streamed, streamed_counts = class_average_spectra(loader, device="cpu", return_counts=True)
    torch.testing.assert_close(streamed, in_memory, rtol=1e-12, atol=1e-12)
    assert streamed_counts.tolist() == counts.tolist()


def test_spectra_plain_iterable_of_batches():
    images, labels = _random_data(num_classes=2, per_class=3)
    batches = [(images[:4], labels[:4]), (images[4:], labels[4:])]
    streamed = class_average_spectra(iter(batches), device="cpu")
    expected = class_average_spectra(images, labels, device="cpu")
    torch.testing.assert_close(streamed, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_spectra_cuda_equals_cpu():
    images, labels = _random_data(num_classes=3, per_class=4)
    on_cpu = class_average_spectra(images, labels, 3, device="cpu")
    on_cuda = class_average_spectra(images, labels, 3, device="cuda")
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-10, atol=1e-10)
    assert torch.equal(adcs_from_spectra(on_cuda).cpu(), adcs_from_spectra(on_cpu))


# --------------------------------------------------------------------------
# ADCS
# --------------------------------------------------------------------------


def test_adcs_matches_loop_reference():
    images, labels = _random_data(num_classes=4, per_class=3, size=6, seed=1)
    reference = _loop_adcs(_numpy_spectra(images, labels, 4), per_channel=False)
    result = adcs(images, labels, 4, device="cpu")
    assert result.dtype == torch.int64
    np.testing.assert_array_equal(result.numpy(), reference)


def test_adcs_per_channel_matches_loop():
    images, labels = _random_data(num_classes=3, per_class=3, size=6, seed=2)
    reference = _loop_adcs(_numpy_spectra(images, labels, 3), per_channel=True)
    result = adcs(images, labels, 3, per_channel=True, device="cpu")
    assert tuple(result.shape) == (3, 3, 6, 6)
    np.testing.assert_array_equal(result.numpy(), reference)


def test_adcs_grey_sums_channel_differences():
    # Channel 0 favours class 1 by 1, channel 1 favours class 0 by 3: the summed difference is +2.
    spectra = torch.zeros(2, 2, 1, 1, dtype=torch.float64)
    spectra[0, 0] = 1.0
    spectra[1, 0] = 2.0
    spectra[0, 1] = 4.0
    spectra[1, 1] = 1.0
    grey = adcs_from_spectra(spectra)
    assert grey[0, 0, 0].item() == 1
    assert grey[1, 0, 0].item() == -1
    per_channel = adcs_from_spectra(spectra, per_channel=True)
    assert per_channel[0, :, 0, 0].tolist() == [-1, 1]


def test_adcs_range_and_parity():
    num_classes = 5
    images, labels = _random_data(num_classes=num_classes, per_class=3, size=8, seed=3)
    result = adcs(images, labels, num_classes, device="cpu")
    assert int(result.min()) >= 1 - num_classes
    assert int(result.max()) <= num_classes - 1
    # With no ties every one of the K - 1 terms is +1 or -1, so ADCS + K - 1 is even.
    assert bool(((result + num_classes - 1) % 2 == 0).all())
    # sign(a - b) = -sign(b - a), so the maps sum to zero over classes.
    assert bool((result.sum(dim=0) == 0).all())


def test_adcs_conjugate_symmetric():
    # Real images have |X(k)| == |X(-k)|, so every ADCS map equals its conjugate mirror.
    images, labels = _random_data(num_classes=3, per_class=4, size=7, seed=6)
    result = adcs(images, labels, 3, device="cpu")
    assert torch.equal(result, mirror(result))


def test_adcs_two_classes_antisymmetric():
    images, labels = _random_data(num_classes=2, per_class=4, seed=4)
    result = adcs(images, labels, 2, device="cpu")
    assert torch.equal(result[0], -result[1])
    assert set(result.unique().tolist()) <= {-1, 1}


def test_adcs_cosine_class_scores_max():
    num_classes, size, target = 4, 16, 2
    row_freq, col_freq = 3, 5
    images, labels = _random_data(num_classes=num_classes, per_class=4, size=size, seed=5)
    images = images * 0.1
    rows = torch.arange(size, dtype=torch.float32)[:, None]
    cols = torch.arange(size, dtype=torch.float32)[None, :]
    cosine = torch.cos(2 * torch.pi * (row_freq * rows + col_freq * cols) / size)  # (H, W)
    images[labels == target] += cosine
    result = adcs(images, labels, num_classes, device="cpu")
    centre = size // 2
    assert result[target, centre + row_freq, centre + col_freq].item() == num_classes - 1
    assert result[target, centre - row_freq, centre - col_freq].item() == num_classes - 1


def test_adcs_from_spectra_hand_computed():
    # (K=3, H=1, W=3) spectra without a channel axis; the last column is a three-way tie.
    spectra = torch.tensor([[[1.0, 3.0, 1.0]], [[2.0, 2.0, 1.0]], [[0.5, 2.5, 1.0]]], dtype=torch.float64)
    result = adcs_from_spectra(spectra)
    assert result[:, 0, 0].tolist() == [0, 2, -2]
    assert result[:, 0, 1].tolist() == [2, -2, 0]
    assert result[:, 0, 2].tolist() == [0, 0, 0]


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------


def test_labels_out_of_range():
    images, labels = _random_data(num_classes=3)
    with pytest.raises(InvalidInputError, match="num_classes is 2"):
        class_average_spectra(images, labels, 2, device="cpu")


def test_negative_labels():
    images, labels = _random_data(num_classes=3)
    labels[0] = -1
    with pytest.raises(InvalidInputError, match="got -1"):
        class_average_spectra(images, labels, 3, device="cpu")


def test_wrong_rank_images():
    images, labels = _random_data(num_classes=2)
    with pytest.raises(InvalidInputError, match=r"\(N, C, H, W\)"):
        class_average_spectra(images[:, 0], labels, 2, device="cpu")


def test_empty_class_named():
    images, labels = _random_data(num_classes=3)
    labels[labels == 1] = 0
    with pytest.raises(InvalidInputError, match="class 1 has no images"):
        class_average_spectra(images, labels, 3, device="cpu")


def test_empty_class_from_loader_classes():
    images, labels = _random_data(num_classes=3)
    dataset = TensorImageDataset(images, labels, classes=["a", "b", "c", "d"])
    with pytest.raises(InvalidInputError, match="class 3 has no images"):
        class_average_spectra(DataLoader(dataset, batch_size=4), device="cpu")


def test_mismatched_lengths():
    images, labels = _random_data(num_classes=3)
    with pytest.raises(InvalidInputError, match="labels for"):
        class_average_spectra(images, labels[:-1], 3, device="cpu")


def test_labels_required_with_tensor():
    images, _ = _random_data()
    with pytest.raises(InvalidInputError, match="labels"):
        class_average_spectra(images, None, 3, device="cpu")


def test_labels_rejected_with_loader():
    images, labels = _random_data()
    loader = DataLoader(TensorImageDataset(images, labels), batch_size=4)
    with pytest.raises(InvalidInputError, match="labels must be None"):
        class_average_spectra(loader, labels, device="cpu")


def test_float_labels_rejected():
    images, labels = _random_data()
    with pytest.raises(TypeError, match="integer class indices"):
        class_average_spectra(images, labels.float(), 3, device="cpu")


def test_numpy_images_rejected():
    images, labels = _random_data()
    with pytest.raises(TypeError, match="torch.as_tensor"):
        class_average_spectra(images.numpy(), labels, 3, device="cpu")


def test_bad_num_classes():
    images, labels = _random_data()
    with pytest.raises(InvalidInputError, match="num_classes"):
        class_average_spectra(images, labels, 0, device="cpu")


def test_mixed_batch_shapes():
    images, labels = _random_data(size=8)
    other = torch.rand(2, 3, 6, 6)
    batches = [(images, labels), (other, torch.tensor([0, 1]))]
    with pytest.raises(InvalidInputError, match="batch 1"):
        class_average_spectra(batches, device="cpu")


def test_adcs_needs_two_classes():
    with pytest.raises(InvalidInputError, match="at least 2"):
        adcs_from_spectra(torch.rand(1, 3, 4, 4, dtype=torch.float64))


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------


def test_plot_adcs_panels_and_range():
    maps = torch.randint(-3, 4, (4, 8, 8))
    fig = plot_adcs(maps, ["a", "b", "c", "d"])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 4
    assert images[0].get_clim() == (-3.5, 3.5)
    assert images[0].get_cmap().N == 7
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["a", "b", "c", "d"]
    plt.close(fig)


def test_plot_adcs_diverging_centre_is_neutral():
    fig = plot_adcs(torch.randint(-1, 2, (2, 4, 4)))
    cmap = fig.axes[0].images[0].get_cmap()
    low, mid, high = (np.array(cmap(x)[:3]) for x in (0.0, 0.5, 1.0))
    # The centre colour is lighter than both ends, which differ from each other.
    assert mid.sum() > low.sum()
    assert mid.sum() > high.sum()
    assert not np.allclose(low, high)
    plt.close(fig)


def test_plot_adcs_per_channel_panels():
    fig = plot_adcs(torch.randint(-2, 3, (3, 3, 4, 4)))
    assert sum(1 for ax in fig.axes if ax.images) == 9
    plt.close(fig)


def test_plot_adcs_names_mismatch():
    with pytest.raises(InvalidInputError, match="class_names"):
        plot_adcs(torch.zeros(3, 4, 4), ["a", "b"])


def test_plot_class_spectra_log():
    images, labels = _random_data(num_classes=3)
    spectra = class_average_spectra(images, labels, device="cpu")
    fig = plot_class_spectra(spectra, log=True)
    panels = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(panels) == 3
    expected = np.log10(spectra.mean(dim=1).numpy()[0] + 1e-12)
    np.testing.assert_allclose(np.asarray(panels[0].get_array()), expected)
    plt.close(fig)


# --------------------------------------------------------------------------
# fslib adcs
# --------------------------------------------------------------------------


def _write_dataset(folder, num_classes=3, size=8):
    folder.mkdir()
    for split, seed in (("train", 10), ("test", 11)):
        images, labels = _random_data(num_classes=num_classes, per_class=4, size=size, seed=seed)
        np.savez(folder / f"{split}.npz", images=images.numpy(), labels=labels.numpy().astype(np.int64))
    (folder / "spec.json").write_text(json.dumps({"class_names": ["red", "green", "blue"][:num_classes]}))


def test_cli_adcs_writes_maps(tmp_path, capsys):
    _write_dataset(tmp_path / "syn")
    out = tmp_path / "adcs.npz"
    figure = tmp_path / "adcs.png"
    code = main(["adcs", "--data", str(tmp_path / "syn"), "--split", "test", "--out", str(out),
                 "--figure", str(figure), "--device", "cpu"])
    assert code == 0
    with np.load(tmp_path / "syn" / "test.npz") as data:
        expected = adcs(torch.from_numpy(data["images"]), torch.from_numpy(data["labels"]), 3, device="cpu")
    with np.load(out, allow_pickle=False) as result:
        np.testing.assert_array_equal(result["adcs"], expected.numpy())
        assert result["classes"].tolist() == ["red", "green", "blue"]
        assert result["counts"].tolist() == [4, 4, 4]
        assert json.loads(str(result["header"]))["split"] == "test"
    assert figure.stat().st_size > 0
    assert "wrote ADCS maps" in capsys.readouterr().out


def test_cli_adcs_per_channel_npz_file(tmp_path):
    images, labels = _random_data(num_classes=2, per_class=3, size=4)
    data = tmp_path / "set.npz"
    np.savez(data, images=images.numpy(), labels=labels.numpy())
    out = tmp_path / "maps.npz"
    assert main(["adcs", "--data", str(data), "--out", str(out), "--per-channel", "--device", "cpu"]) == 0
    with np.load(out) as result:
        assert result["adcs"].shape == (2, 3, 4, 4)


def test_cli_adcs_missing_folder(tmp_path, capsys):
    code = main(["adcs", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "o.npz")])
    assert code == 2
    message = capsys.readouterr().err
    assert "train.npz" in message
    assert "does not exist" in message


def test_cli_adcs_folder_without_split(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = main(["adcs", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o.npz")])
    assert code == 2
    assert "has no train.npz" in capsys.readouterr().err


def test_cli_adcs_missing_arrays(tmp_path, capsys):
    data = tmp_path / "bad.npz"
    np.savez(data, pixels=np.zeros((2, 3, 4, 4), dtype=np.float32))
    code = main(["adcs", "--data", str(data), "--out", str(tmp_path / "o.npz")])
    assert code == 2
    assert "['images', 'labels']" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_cli_adcs_synth_folder(tmp_path):
    import dataclasses

    from fslib.synthetic import get_preset, load_dataset, save_dataset

    spec = dataclasses.replace(get_preset("syn1"), train_size=8, test_size=8)
    save_dataset(tmp_path / "syn", spec)
    out = tmp_path / "adcs.npz"
    assert main(["adcs", "--data", str(tmp_path / "syn"), "--out", str(out), "--device", "cpu"]) == 0
    images, labels = load_dataset(tmp_path / "syn", "train")
    expected = adcs(images, labels, len(spec.classes), device="cpu")
    with np.load(out) as result:
        np.testing.assert_array_equal(result["adcs"], expected.numpy())
        assert result["classes"].tolist() == [item.name for item in spec.classes]
