"""Tests for fslib.datasets: real-photo crops, corruptions, local folders, caching and statistics."""

from __future__ import annotations

import pickle
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.signal import fftconvolve
from torch.utils.data import DataLoader, Dataset

import fslib
from fslib.datasets import (
    CORRUPTIONS,
    IMAGENET10_CLASSES,
    PHOTO_CLASSES,
    TensorImageDataset,
    cifar10,
    corrupt,
    image_folder,
    imagenet10,
    load_photo,
    normalization_stats,
    normalize,
    real_photos,
    real_photos_ood,
    synthetic,
)
from fslib.datasets.photos import OOD_SOURCE, photo_path
from fslib.errors import InvalidFileError, UnsafePickleError

SMALL = {"crops_per_class": 4, "cache_dir": False}


@pytest.fixture(scope="module")
def small_sets():
    return {split: real_photos(split, seed=3, **SMALL) for split in ("train", "test")}


def _boxes_intersect(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise intersection test of half-open boxes (x0, y0, x1, y1): (len(a), len(b)) bool."""
    a, b = a[:, None, :], b[None, :, :]
    overlap_x = (a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2])
    overlap_y = (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3])
    return overlap_x & overlap_y


def _min_window_ssd(area: np.ndarray, patch: np.ndarray) -> float:
    """Smallest sum of squared differences between ``patch (C, h, w)`` and any window of ``area (C, H, W)``."""
    h, w = patch.shape[1:]
    ones = np.ones((h, w))
    ssd = np.zeros((area.shape[1] - h + 1, area.shape[2] - w + 1))
    for channel in range(area.shape[0]):
        image, template = area[channel], patch[channel]
        window_energy = fftconvolve(image ** 2, ones, mode="valid")
        cross = fftconvolve(image, template[::-1, ::-1], mode="valid")
        ssd += window_energy - 2.0 * cross + (template ** 2).sum()
    return float(ssd.min())


# --- real photographs -------------------------------------------------------------------------


def test_photo_files_ship_in_packages():
    for source in (*PHOTO_CLASSES, OOD_SOURCE):
        assert photo_path(source).is_file(), source.filename


def test_photo_table_mixes_kinds():
    kinds = {source.kind for source in PHOTO_CLASSES}
    assert kinds == {"texture", "object"}


def test_photo_grey_replicated():
    brick = load_photo("brick")
    assert torch.equal(brick[0], brick[2])


def test_photo_boxes_disjoint(small_sets):
    train, test = small_sets["train"], small_sets["test"]
    for label, name in enumerate(train.classes):
        train_boxes = train.boxes[train.labels == label]
        test_boxes = test.boxes[test.labels == label]
        assert not bool(_boxes_intersect(train_boxes, test_boxes).any()), name
        assert not bool(_boxes_intersect(torch.tensor([train.regions[name]]),
                                         torch.tensor([test.regions[name]])).any()), name


def test_photo_boxes_inside_regions(small_sets):
    for split, data in small_sets.items():
        for box, label in zip(data.boxes.tolist(), data.labels.tolist()):
            x0, y0, x1, y1 = data.regions[data.classes[label]]
            assert x0 <= box[0], (split, box)
            assert y0 <= box[1], (split, box)
            assert box[2] <= x1, (split, box)
            assert box[3] <= y1, (split, box)


@pytest.mark.parametrize("name, fraction", [("brick", 32 / 512), ("cat", 32 / 300)])
def test_photo_test_pixels_unseen(name, fraction):
    # Without rotation, flip or resizing a crop is a verbatim copy of its box, so an exact
    # match anywhere in the training region would be found as a zero sum of squared differences.
    options = {"photos": (name,), "crop_scale": (fraction, fraction), "max_rotation": 0.0, "flip": False,
               "cache_dir": False, "crops_per_class": 4}
    test = real_photos("test", **options)
    photo = load_photo(name).double().numpy()
    x0, y0, x1, y1 = real_photos("train", **options).regions[name]
    train_area = photo[:, y0:y1, x0:x1]

    box = test.boxes[0].tolist()
    verbatim = photo[:, box[1]:box[3], box[0]:box[2]]
    assert np.array_equal(test.images[0].double().numpy(), verbatim)
    assert _min_window_ssd(train_area, train_area[:, 5:37, 9:41]) < 1e-6
    for crop in test.images:
        assert _min_window_ssd(train_area, crop.double().numpy()) > 1e-3


def test_photo_deterministic(small_sets):
    first = small_sets["train"]
    second = real_photos("train", seed=3, **SMALL)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.boxes, second.boxes)


def test_photo_seed_changes_crops(small_sets):
    first = small_sets["test"]
    other = real_photos("test", seed=4, **SMALL)
    assert not torch.equal(first.images, other.images)


@pytest.mark.parametrize("size", [32, 224])
def test_photo_sizes(size):
    data = real_photos("test", size=size, photos=("cat", "gravel"), crops_per_class=2, cache_dir=False)
    assert tuple(data.images.shape) == (4, 3, size, size)
    assert float(data.images.min()) >= 0.0
    assert float(data.images.max()) <= 1.0


def test_photo_default_counts():
    data = real_photos("test", size=224, photos=("cat",), cache_dir=False)
    assert len(data) == 10


def test_photo_class_balance(small_sets):
    data = small_sets["train"]
    counts = torch.bincount(data.labels, minlength=len(PHOTO_CLASSES))
    assert counts.tolist() == [4] * len(PHOTO_CLASSES)


def test_photo_cache_same_bytes(tmp_path):
    fresh = real_photos("test", photos=("cat", "grass"), crops_per_class=3, cache_dir=False)
    stored = real_photos("test", photos=("cat", "grass"), crops_per_class=3, cache_dir=tmp_path)
    reread = real_photos("test", photos=("cat", "grass"), crops_per_class=3, cache_dir=tmp_path)
    assert torch.equal(fresh.images, stored.images)
    assert torch.equal(fresh.images, reread.images)
    assert stored.regions == reread.regions


def test_photo_crop_too_large():
    with pytest.raises(ValueError, match="crop_scale"):
        real_photos("test", photos=("cat",), crop_scale=(0.5, 0.6), cache_dir=False, crops_per_class=1)


def test_photo_unknown_class():
    with pytest.raises(ValueError, match="dog"):
        real_photos("train", photos=("dog",), cache_dir=False)


def test_ood_motorcycle_label():
    ood = real_photos_ood(n=5, cache_dir=False)
    expected = ood.classes.index("motorcycle")
    assert ood.labels.tolist() == [expected] * 5


def test_ood_classes_match_training(small_sets):
    ood = real_photos_ood(n=2, cache_dir=False)
    assert ood.classes == small_sets["train"].classes


def test_ood_reads_right_view():
    ood = real_photos_ood(n=3, max_rotation=0.0, flip=False, crop_scale=(0.064, 0.064), cache_dir=False)
    right = np.asarray(Image.open(photo_path(OOD_SOURCE)).convert("RGB"), dtype=np.float64) / 255.0
    x0, y0, x1, y1 = ood.boxes[0].tolist()
    expected = right[y0:y1, x0:x1].transpose(2, 0, 1)
    assert np.allclose(ood.images[0].double().numpy(), expected, atol=1e-7)


def test_ood_needs_motorcycle():
    with pytest.raises(ValueError, match="motorcycle"):
        real_photos_ood(photos=("cat", "brick"), cache_dir=False)


# --- corruptions ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crops():
    return real_photos("test", photos=("cat", "brick"), crops_per_class=3, cache_dir=False).images


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_changes_images(crops, kind):
    assert not torch.equal(corrupt(crops, kind, severity=3, seed=0), crops)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_deterministic(crops, kind):
    first = corrupt(crops, kind, severity=2, seed=7)
    second = corrupt(crops, kind, severity=2, seed=7)
    assert torch.equal(first, second)


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_in_range(crops, kind):
    result = corrupt(crops, kind, severity=5, seed=1)
    assert result.shape == crops.shape
    assert float(result.min()) >= 0.0
    assert float(result.max()) <= 1.0


def test_corrupt_noise_seed(crops):
    assert not torch.equal(corrupt(crops, "gaussian_noise", 3, seed=0), corrupt(crops, "gaussian_noise", 3, seed=1))


def test_corrupt_noise_std():
    flat = torch.full((4, 3, 64, 64), 0.5)
    noisy = corrupt(flat, "gaussian_noise", severity=1, seed=0)
    assert abs(float((noisy - flat).std()) - 0.04) < 0.002


def test_corrupt_contrast_scales_std(crops):
    # Contraction towards the image mean keeps values inside [0, 1], so no clipping happens.
    result = corrupt(crops, "contrast", severity=2)
    ratio = result.std(dim=(1, 2, 3)) / crops.std(dim=(1, 2, 3))
    assert torch.allclose(ratio, torch.full_like(ratio, 0.5), atol=1e-5)


def test_corrupt_blur_keeps_constant():
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(corrupt(flat, "gaussian_blur", severity=5), flat, atol=1e-6)


def test_corrupt_severity_monotone(crops):
    errors = [float((corrupt(crops, "jpeg", s) - crops).abs().mean()) for s in (1, 5)]
    assert errors[0] < errors[1]


def test_corrupt_bad_kind(crops):
    with pytest.raises(ValueError, match="kind"):
        corrupt(crops, "fog", 1)


# --- local folders ----------------------------------------------------------------------------


def _write_png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((40, 48, 3), value, dtype=np.uint8)).save(path)


def _fake_imagenet(root, split="train"):
    # Even classes use their WNID as folder name, odd ones their class name, so sorting the
    # folder names does not give the ImageNet-10 label order (airliner, wagon, ...).
    for index, (name, wnid) in enumerate(IMAGENET10_CLASSES):
        folder = wnid if index % 2 == 0 else name.replace(" ", "_")
        for copy in range(2):
            _write_png(root / split / folder / f"img{copy}.png", 20 * index + copy)


def test_imagenet10_class_order(tmp_path):
    _fake_imagenet(tmp_path)
    data = imagenet10(tmp_path, "train", size=16)
    assert data.classes == [name for name, _ in IMAGENET10_CLASSES]
    for index in range(len(data)):
        image, label = data[index]
        assert round(float(image[0, 0, 0]) * 255) // 20 == label


def test_imagenet10_item_shape(tmp_path):
    _fake_imagenet(tmp_path)
    image, _ = imagenet10(tmp_path, "train", size=16)[0]
    assert tuple(image.shape) == (3, 16, 16)
    assert image.dtype == torch.float32


def test_imagenet10_pickles(tmp_path):
    # DataLoader workers started with "spawn" receive the data set by pickling.
    _fake_imagenet(tmp_path)
    data = imagenet10(tmp_path, "train", size=16)
    copy = pickle.loads(pickle.dumps(data))
    assert torch.equal(copy[3][0], data[3][0])


def test_imagenet10_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="root") as info:
        imagenet10(tmp_path / "nowhere", "val")
    assert "n02690373" in str(info.value)


def test_imagenet10_missing_split(tmp_path):
    _fake_imagenet(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="val/"):
        imagenet10(tmp_path, "val")


def test_imagenet10_missing_class(tmp_path):
    _fake_imagenet(tmp_path)
    for path in (tmp_path / "train" / "zebra").iterdir():
        path.unlink()
    (tmp_path / "train" / "zebra").rmdir()
    with pytest.raises(FileNotFoundError, match="n02391049"):
        imagenet10(tmp_path, "train")


def test_image_folder_order(tmp_path):
    for index, name in enumerate(["apple", "banana", "cherry"]):
        _write_png(tmp_path / name / "a.png", 50 * index)
    data = image_folder(tmp_path, classes=["cherry", "apple"], size=8)
    assert data.classes == ["cherry", "apple"]
    assert len(data) == 2
    image, label = data[0]
    assert label == 0
    assert round(float(image[1, 3, 3]) * 255) == 100


def test_image_folder_missing_class(tmp_path):
    _write_png(tmp_path / "apple" / "a.png", 0)
    with pytest.raises(FileNotFoundError, match="pear"):
        image_folder(tmp_path, classes=["apple", "pear"])


def _fake_cifar(root, per_batch=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"batch_label": name, "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, per_batch)],
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = entry
    meta = {"label_names": ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


def test_cifar10_reads_batches(tmp_path):
    batches = _fake_cifar(tmp_path)
    train = cifar10(tmp_path, train=True)
    assert tuple(train.images.shape) == (15, 3, 32, 32)
    assert train.labels.tolist()[:3] == batches["data_batch_1"]["labels"]


def test_cifar10_pixel_layout(tmp_path):
    batches = _fake_cifar(tmp_path)
    test = cifar10(tmp_path / "cifar-10-batches-py", train=False)
    raw = batches["test_batch"]["data"][1]
    channel, row, column = 2, 5, 7
    assert round(float(test.images[1, channel, row, column]) * 255) == raw[channel * 1024 + row * 32 + column]


def test_cifar10_meta_classes(tmp_path):
    _fake_cifar(tmp_path)
    assert cifar10(tmp_path, train=False).classes[0] == "plane"


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        cifar10(tmp_path / "absent")


def test_cifar10_rejects_code(tmp_path):
    _fake_cifar(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (print, ("unpickled",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(UnsafePickleError):
        cifar10(tmp_path, train=False)


def test_cifar10_malformed(tmp_path):
    _fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": np.zeros(3)}))
    with pytest.raises(InvalidFileError, match="labels"):
        cifar10(tmp_path, train=False)


# --- synthetic data and the cache ------------------------------------------------------------


@dataclass(frozen=True)
class _FakeSpec:
    image_size: int = 8
    num_classes: int = 4

    def spec_hash(self) -> str:
        return f"fake{self.image_size}"


@pytest.fixture
def fake_synthetic(monkeypatch):
    """Replace fslib.synthetic by a stand-in that counts how often data are generated."""
    module = types.ModuleType("fslib.synthetic")
    module.SyntheticSpec = _FakeSpec
    module.calls = 0

    def get_preset(name):
        return _FakeSpec()

    def make_dataset(spec, split="train", seed=0):
        module.calls += 1
        generator = torch.Generator().manual_seed(seed * 2 + (split == "test"))
        images = torch.rand((10, 3, spec.image_size, spec.image_size), generator=generator)
        return images, torch.arange(10) % spec.num_classes

    module.get_preset = get_preset
    module.make_dataset = make_dataset
    monkeypatch.setitem(sys.modules, "fslib.synthetic", module)
    monkeypatch.setattr(fslib, "synthetic", module, raising=False)
    return module


def test_synthetic_cache_hit(fake_synthetic, tmp_path):
    first = synthetic("syn1", "train", seed=1, cache_dir=tmp_path)
    second = synthetic("syn1", "train", seed=1, cache_dir=tmp_path)
    assert fake_synthetic.calls == 1
    assert torch.equal(first.images, second.images)


def test_synthetic_cache_miss_on_seed(fake_synthetic, tmp_path):
    synthetic("syn1", "train", seed=1, cache_dir=tmp_path)
    synthetic("syn1", "train", seed=2, cache_dir=tmp_path)
    assert fake_synthetic.calls == 2


def test_synthetic_cache_corrupt(fake_synthetic, tmp_path):
    first = synthetic(_FakeSpec(), "test", seed=0, cache_dir=tmp_path)
    (entry,) = (tmp_path / "synthetic").glob("*.pt")
    raw = bytearray(entry.read_bytes())
    raw[-10] ^= 0xFF
    entry.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="SHA-256"):
        again = synthetic(_FakeSpec(), "test", seed=0, cache_dir=tmp_path)
    assert fake_synthetic.calls == 2
    assert torch.equal(first.images, again.images)


def test_synthetic_cache_env(fake_synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("FSLIB_CACHE", str(tmp_path / "env-cache"))
    synthetic("syn1", "train", cache_dir=None)
    assert len(list((tmp_path / "env-cache" / "synthetic").glob("*.pt"))) == 1


def test_synthetic_class_names(fake_synthetic, tmp_path):
    data = synthetic("syn1", cache_dir=False)
    assert data.classes == ["class 0", "class 1", "class 2", "class 3"]


def test_synthetic_rejects_number(fake_synthetic):
    with pytest.raises(TypeError, match="preset_or_spec"):
        synthetic(3, cache_dir=False)


def test_synthetic_real_module(tmp_path):
    module = pytest.importorskip("fslib.synthetic")
    spec = module.get_preset("syn1")
    data = synthetic("syn1", "test", seed=0, cache_dir=tmp_path)
    images, labels = module.make_dataset(spec, split="test", seed=0)
    assert torch.equal(data.images, torch.as_tensor(images, dtype=torch.float32))
    assert torch.equal(data.labels, torch.as_tensor(labels, dtype=torch.int64))


# --- normalisation statistics -----------------------------------------------------------------


@pytest.fixture(scope="module")
def random_images():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((37, 3, 5, 7), generator=generator)
    return images * torch.tensor([1.0, 0.2, 3.0])[:, None, None] + torch.tensor([0.0, 5.0, -1.0])[:, None, None]


def test_stats_match_numpy(random_images):
    mean, std = normalization_stats(random_images)
    array = random_images.double().numpy()
    assert np.allclose(mean.numpy(), array.mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(std.numpy(), array.std(axis=(0, 2, 3)), atol=1e-6)


def test_stats_streaming_loader(random_images):
    labels = torch.zeros(len(random_images), dtype=torch.int64)
    loader = DataLoader(TensorImageDataset(random_images, labels), batch_size=4)
    mean, std = normalization_stats(loader)
    array = random_images.double().numpy()
    assert np.allclose(mean.numpy(), array.mean(axis=(0, 2, 3)), atol=1e-6)
    assert np.allclose(std.numpy(), array.std(axis=(0, 2, 3)), atol=1e-6)


def test_stats_plain_dataset(random_images):
    class Items(Dataset):
        def __len__(self):
            return len(random_images)

        def __getitem__(self, index):
            return random_images[index], 0

    mean, _ = normalization_stats(Items(), batch_size=5)
    assert np.allclose(mean.numpy(), random_images.double().numpy().mean(axis=(0, 2, 3)), atol=1e-6)


def test_normalize_standardises(random_images):
    mean, std = normalization_stats(random_images)
    result = normalize(random_images, mean, std)
    assert torch.allclose(result.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(result.std(dim=(0, 2, 3), correction=0), torch.ones(3), atol=1e-5)


def test_normalize_single_image():
    image = torch.ones((3, 2, 2))
    result = normalize(image, [1.0, 0.0, 0.5], [1.0, 2.0, 0.25])
    assert result[:, 0, 0].tolist() == [0.0, 0.5, 2.0]


def test_normalize_bad_std(random_images):
    with pytest.raises(ValueError, match="std"):
        normalize(random_images, [0.0, 0.0, 0.0], [1.0, 0.0, 1.0])
