"""A small real-photo data set built from photographs shipped inside scikit-image and scikit-learn.

Every class is one photograph. The photographs are read from the files in
the installed packages (``skimage/data/*.png|jpg`` and
``sklearn/datasets/images/*.jpg``) and never downloaded. scikit-image 0.26
ships only a subset of its gallery in the wheel and fetches the rest with
pooch, so the table below uses only files that the wheel contains.
``rough_wall`` (not in the wheel) and ``china.jpg`` (a landscape scene with
no single subject) are left out.

The ten classes mix texture-like photographs, whose crops are stationary
patterns, with object-like photographs, whose crops show parts of one
subject (fur, porcelain, a rocket body, a face or a flag, petals, a
motorcycle). Three photographs are greyscale and are replicated to three
channels: brick, grass and gravel, all textures; every object is in colour.

========================  ===================================  =======  ======  =====================================
class                     source                               kind     colour  licence (as the package documents it)
========================  ===================================  =======  ======  =====================================
brick                     skimage.data.brick                   texture  grey    CC0 (CC0Textures)
grass                     skimage.data.grass                   texture  grey    CC0 (DeviantArt, linolafett)
gravel                    skimage.data.gravel                  texture  grey    CC0 (CC0Textures)
immunohistochemistry      skimage.data.immunohistochemistry    texture  colour  no known copyright restrictions
cat                       skimage.data.chelsea                 object   colour  CC0 (Stefan van der Walt)
coffee                    skimage.data.coffee                  object   colour  CC0 (Rachel Michetti)
rocket                    skimage.data.rocket                  object   colour  public domain (SpaceX)
astronaut                 skimage.data.astronaut               object   colour  public domain (NASA)
flower                    sklearn load_sample_images           object   colour  CC BY 2.0 (Flickr, vultilion)
motorcycle                skimage.data.stereo_motorcycle left  object   colour  Middlebury 2014 stereo benchmark
========================  ===================================  =======  ======  =====================================

Crops. Each photograph is split into a training region (the left part) and
a test region (the right-hand vertical strip, ``test_fraction`` of the
width, 0.3 by default). A crop is drawn as follows: a side ``s`` in source
pixels uniformly from ``crop_scale`` times the photograph's shorter side
(0.15 to 0.25 by default), an angle uniformly within ``±max_rotation``
degrees (5 by default) and a horizontal flip with probability 1/2. The
square support box that the rotated crop reads from (``s`` plus a margin
covering the rotation and the bilinear interpolation) lies fully inside the
split's region, so a test crop never reads a pixel that any training crop
reads. The box of every crop is stored in ``dataset.boxes`` and the regions
in ``dataset.regions``, both in source-photograph pixel coordinates.

NOTE: the held-out strip is the same for every photograph, so for some
object photographs the test crops show less of the subject than the
training crops (the rocket's right strip is mostly sky, the flower's is
mostly dark leaves). Test accuracy therefore also measures a shift in
content, not only generalisation to unseen pixels. A per-photograph
choice of held-out region would reduce that shift.

Sizes. The crop is rotated at source resolution, cut to ``s × s`` and
resized to ``size × size`` with antialiasing. At 32 px this downsamples by
about 1.4 to 4. At 224 px it upsamples by about 1.8 to 5, because the
smallest photograph (the cat, 300 px high) allows crops of only 45 to 75
source pixels: such images carry little content above a fraction of their
Nyquist frequency. Pixel values are rounded to multiples of 1/255 so that a
cached data set has the same bytes as a freshly generated one.

Default sizes: 200 training and 50 test crops per class at ``size <= 64``
(2,000 and 500 images, about 25 MB and 6 MB as float32 at 32 px), and 40
and 10 per class above 64 px (400 and 100 images, about 240 MB and 60 MB
as float32 at 224 px). The cache stores uint8, a quarter of that.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from .._checks import as_size, check_choice, check_number, check_tensor
from ..errors import InvalidInputError
from . import _cache
from .base import TensorImageDataset

SPLITS = ("train", "test")


@dataclass(frozen=True)
class PhotoSource:
    """One class of the real-photo set: a photograph file inside an installed package."""

    name: str
    source: str
    package: str
    filename: str
    kind: str
    colour: str
    licence: str


PHOTO_CLASSES: tuple[PhotoSource, ...] = (
    PhotoSource("brick", "skimage.data.brick", "skimage", "brick.png", "texture", "grey",
                "CC0 (CC0Textures)"),
    PhotoSource("grass", "skimage.data.grass", "skimage", "grass.png", "texture", "grey",
                "CC0 (DeviantArt, linolafett)"),
    PhotoSource("gravel", "skimage.data.gravel", "skimage", "gravel.png", "texture", "grey",
                "CC0 (CC0Textures)"),
    PhotoSource("immunohistochemistry", "skimage.data.immunohistochemistry", "skimage", "ihc.png", "texture",
                "colour", "no known copyright restrictions"),
    PhotoSource("cat", "skimage.data.chelsea", "skimage", "chelsea.png", "object", "colour",
                "CC0 (Stefan van der Walt)"),
    PhotoSource("coffee", "skimage.data.coffee", "skimage", "coffee.png", "object", "colour",
                "CC0 (Rachel Michetti)"),
    PhotoSource("rocket", "skimage.data.rocket", "skimage", "rocket.jpg", "object", "colour",
                "public domain (SpaceX)"),
    PhotoSource("astronaut", "skimage.data.astronaut", "skimage", "astronaut.png", "object", "colour",
                "public domain (NASA)"),
    PhotoSource("flower", "sklearn.datasets.load_sample_images", "sklearn", "flower.jpg", "object", "colour",
                "CC BY 2.0 (Flickr, vultilion)"),
    PhotoSource("motorcycle", "skimage.data.stereo_motorcycle (left view)", "skimage", "motorcycle_left.png",
                "object", "colour", "Middlebury 2014 stereo benchmark"),
)

# The right view of the stereo pair, kept out of training for the out-of-distribution set.
OOD_SOURCE = PhotoSource("motorcycle", "skimage.data.stereo_motorcycle (right view)", "skimage",
                         "motorcycle_right.png", "object", "colour", "Middlebury 2014 stereo benchmark")
OOD_CLASS = "motorcycle"

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast", "jpeg")

# Severity 1..5 parameters, for images in [0, 1] at the output resolution.
_NOISE_STD = (0.04, 0.06, 0.08, 0.10, 0.14)
_BLUR_SIGMA = (0.5, 0.75, 1.0, 1.5, 2.0)
_CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.2)
_JPEG_QUALITY = (80, 60, 40, 25, 10)


def _package_folder(package: str) -> Path:
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images"


def photo_path(source: PhotoSource) -> Path:
    """Return the path of a photograph inside its installed package.

    Raises:
        FileNotFoundError: the installed package does not contain the file.
    """
    path = _package_folder(source.package) / source.filename
    if not path.is_file():
        raise FileNotFoundError(
            f"Photograph {source.filename} for class {source.name!r} ({source.source}) is missing from the "
            f"installed {source.package} package at {path}. Reinstall {source.package} from a wheel, or pass "
            f"photos= without {source.name!r}."
        )
    return path


@functools.lru_cache(maxsize=16)
def _read_photo(path: str) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # (3, H, W) uint8


def load_photo(name: str) -> torch.Tensor:
    """Return the photograph of class ``name`` as a float tensor ``(3, H, W)`` in [0, 1].

    Greyscale photographs are replicated to three channels.
    """
    source = _source_by_name(name)
    return _read_photo(str(photo_path(source))).float() / 255.0


def _source_by_name(name: str) -> PhotoSource:
    for source in PHOTO_CLASSES:
        if source.name == name:
            return source
    raise InvalidInputError(
        f"Invalid photo class {name!r}: expected one of {', '.join(s.name for s in PHOTO_CLASSES)}."
    )


def _resolve_photos(photos: Sequence[str] | None) -> list[PhotoSource]:
    if photos is None:
        return list(PHOTO_CLASSES)
    if isinstance(photos, str):
        raise TypeError(f"Invalid photos: expected a sequence of class names, got the string {photos!r}. "
                        f"Pass e.g. ({photos!r},).")
    names = list(photos)
    if not names:
        raise InvalidInputError("Invalid photos: the sequence is empty. Pass at least one class name or None.")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"Invalid photos: {names} repeats a class name. Pass each class once.")
    return [_source_by_name(name) for name in names]


def split_regions(height: int, width: int, test_fraction: float) -> dict[str, tuple[int, int, int, int]]:
    """Return the training and test regions ``(x0, y0, x1, y1)`` (half-open) of a photograph.

    The test region is the right-hand vertical strip of ``test_fraction`` of the width.
    """
    split_x = int(math.floor(width * (1.0 - test_fraction)))
    return {"train": (0, 0, split_x, height), "test": (split_x, 0, width, height)}


def _rotation_margin(side: int, angle: float) -> int:
    """Margin in pixels around a ``side × side`` square that a rotation by ``angle`` degrees reads.

    The rotated square's corners reach ``side / 2 * (|cos| + |sin|)`` from the centre and bilinear
    interpolation reads one more pixel, so the margin covers both.
    """
    if angle == 0.0:
        return 0
    radians = math.radians(angle)
    spread = abs(math.cos(radians)) + abs(math.sin(radians)) - 1.0
    return int(math.ceil(side / 2.0 * spread)) + 1


@dataclass(frozen=True)
class _CropParams:
    size: tuple[int, int]
    crop_scale: tuple[float, float]
    max_rotation: float
    flip: bool


def _sample_crops(photo: torch.Tensor, region: tuple[int, int, int, int], count: int, params: _CropParams,
                  rng: np.random.Generator, class_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``count`` crops of ``photo (3, H, W) uint8`` inside ``region``.

    Returns:
        crops ``(count, 3, size_h, size_w)`` uint8 and boxes ``(count, 4)`` int64 ``(x0, y0, x1, y1)``.
    """
    _, height, width = photo.shape
    rx0, ry0, rx1, ry1 = region
    shorter = min(height, width)
    side_min = max(1, int(round(params.crop_scale[0] * shorter)))
    side_max = max(side_min, int(round(params.crop_scale[1] * shorter)))
    worst_box = side_max + 2 * _rotation_margin(side_max, params.max_rotation if params.max_rotation else 0.0)
    if worst_box > min(rx1 - rx0, ry1 - ry0):
        raise InvalidInputError(
            f"Invalid crop_scale {params.crop_scale}: crops of class {class_name!r} need up to {worst_box} px "
            f"with rotation, but its region {region} is {rx1 - rx0} x {ry1 - ry0} px. Lower crop_scale, "
            "max_rotation or test_fraction."
        )

    photo_float = photo.float() / 255.0
    crops = torch.empty((count, 3, *params.size), dtype=torch.uint8)
    boxes = torch.empty((count, 4), dtype=torch.int64)
    with _single_thread():
        _fill_crops(photo_float, region, params, rng, side_min, side_max, crops, boxes)
    return crops, boxes


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block and restore the setting afterwards.

    Each crop is a few small tensor operations, and on a busy machine thread
    synchronisation costs far more than the operations do. Measured on a 2-core machine at
    load average 8, 40 crops took about 35 times longer with 2 threads than with 1. The
    setting is process-wide while the block runs.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fill_crops(photo_float: torch.Tensor, region: tuple[int, int, int, int], params: _CropParams,
                rng: np.random.Generator, side_min: int, side_max: int, crops: torch.Tensor,
                boxes: torch.Tensor) -> None:
    rx0, ry0, rx1, ry1 = region
    for index in range(crops.shape[0]):
        side = int(rng.integers(side_min, side_max + 1))
        angle = float(rng.uniform(-params.max_rotation, params.max_rotation)) if params.max_rotation else 0.0
        flipped = bool(rng.integers(0, 2)) if params.flip else False
        margin = _rotation_margin(side, angle)
        box_side = side + 2 * margin
        x0 = int(rng.integers(rx0, rx1 - box_side + 1))
        y0 = int(rng.integers(ry0, ry1 - box_side + 1))

        # Rotate the support box about its centre, then cut the central side x side square.
        patch = photo_float[:, y0:y0 + box_side, x0:x0 + box_side]
        if angle != 0.0:
            patch = TF.rotate(patch, angle, interpolation=TF.InterpolationMode.BILINEAR)
        patch = patch[:, margin:margin + side, margin:margin + side]
        patch = TF.resize(patch, list(params.size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        if flipped:
            patch = TF.horizontal_flip(patch)

        crops[index] = (patch.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        boxes[index] = torch.tensor([x0, y0, x0 + box_side, y0 + box_side])


class PhotoCropDataset(TensorImageDataset):
    """Crops of photographs with the source box of every crop.

    Attributes:
        boxes: ``(N, 4)`` int64 ``(x0, y0, x1, y1)``, half-open, in source-photograph pixels: the
            square that the crop (with its rotation and interpolation support) reads from.
        regions: class name -> ``(x0, y0, x1, y1)`` region of that class's photograph the crops
            were drawn from.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str],
                 boxes: torch.Tensor, regions: dict[str, tuple[int, int, int, int]]):
        super().__init__(images, labels, classes)
        self.boxes = boxes
        self.regions = regions


def _check_common(size: Any, seed: Any, crop_scale: Any, max_rotation: Any) -> tuple[tuple[int, int], tuple[float, float], float]:
    pair = as_size(size, "size")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"Invalid seed: expected an int, got {seed!r}.")
    if not isinstance(crop_scale, (tuple, list)) or len(crop_scale) != 2:
        raise TypeError(f"Invalid crop_scale: expected a (min, max) pair of fractions, got {crop_scale!r}.")
    low = check_number(crop_scale[0], "crop_scale[0]", minimum=0.0, maximum=1.0, min_inclusive=False)
    high = check_number(crop_scale[1], "crop_scale[1]", minimum=0.0, maximum=1.0, min_inclusive=False)
    if low > high:
        raise InvalidInputError(f"Invalid crop_scale {crop_scale}: the minimum exceeds the maximum. Pass (min, max).")
    rotation = check_number(max_rotation, "max_rotation", minimum=0.0, maximum=45.0)
    return pair, (low, high), rotation


def _default_count(split: str, size: tuple[int, int]) -> int:
    small = max(size) <= 64
    if split == "train":
        return 200 if small else 40
    return 50 if small else 10


def _check_count(count: Any, name: str) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInputError(f"Invalid {name}: expected a positive int, got {count!r}.")
    return count


def _payload_to_dataset(payload: dict[str, Any], classes: list[str]) -> PhotoCropDataset:
    regions = {name: tuple(int(v) for v in row) for name, row in zip(classes, payload["regions"].tolist())}
    images = payload["images"].float() / 255.0
    return PhotoCropDataset(images, payload["labels"], classes, payload["boxes"], regions)


def real_photos(split: str = "train", size: int | tuple[int, int] = 32, seed: int = 0,
                crops_per_class: int | None = None, *, photos: Sequence[str] | None = None,
                crop_scale: tuple[float, float] = (0.15, 0.25), max_rotation: float = 5.0, flip: bool = True,
                test_fraction: float = 0.3,
                cache_dir: str | os.PathLike | None | bool = None) -> PhotoCropDataset:
    """Build the real-photo data set: random crops of photographs shipped with scikit-image and scikit-learn.

    Args:
        split: "train" (crops from the left part of each photograph) or "test" (crops from the
            right-hand strip of ``test_fraction`` of the width).
        size: output size, an int or ``(H, W)``; 32 and 224 are the sizes the chapters use.
        seed: the same seed gives the same bytes.
        crops_per_class: crops per class; default 200 (train) and 50 (test) for sizes up to 64 px,
            40 and 10 above.
        photos: class names from ``PHOTO_CLASSES`` in label order; default all ten.
        crop_scale: (min, max) crop side as a fraction of the photograph's shorter side.
        max_rotation: maximum absolute rotation in degrees.
        flip: flip half of the crops horizontally.
        test_fraction: width fraction of the right-hand strip kept for test crops.
        cache_dir: cache folder; ``None`` uses ``$FSLIB_CACHE`` or ``~/.cache/fslib``,
            ``False`` switches caching off.

    Returns:
        A ``PhotoCropDataset`` with images ``(N, 3, H, W)`` in [0, 1], labels ``(N,)`` grouped by
        class, ``boxes (N, 4)`` and ``regions``.
    """
    check_choice(split, "split", SPLITS)
    pair, scale, rotation = _check_common(size, seed, crop_scale, max_rotation)
    fraction = check_number(test_fraction, "test_fraction", minimum=0.0, maximum=1.0,
                            min_inclusive=False, max_inclusive=False)
    count = _default_count(split, pair) if crops_per_class is None else _check_count(crops_per_class, "crops_per_class")
    sources = _resolve_photos(photos)
    classes = [source.name for source in sources]
    params = _CropParams(pair, scale, rotation, bool(flip))

    key = _cache.cache_key({"kind": "real_photos", "version": 1, "split": split, "size": pair, "seed": seed,
                            "count": count, "photos": classes, "crop_scale": scale, "max_rotation": rotation,
                            "flip": bool(flip), "test_fraction": fraction})
    folder = _cache.resolve_cache_dir(cache_dir)
    path = None if folder is None else folder / "real_photos" / f"{key}.pt"

    def build() -> dict[str, Any]:
        images, labels, boxes, regions = [], [], [], []
        split_index = SPLITS.index(split)
        for label, source in enumerate(sources):
            photo = _read_photo(str(photo_path(source)))
            region = split_regions(photo.shape[1], photo.shape[2], fraction)[split]
            rng = np.random.default_rng([seed, split_index, label])
            crops, crop_boxes = _sample_crops(photo, region, count, params, rng, source.name)
            images.append(crops)
            boxes.append(crop_boxes)
            labels.append(torch.full((count,), label, dtype=torch.int64))
            regions.append(torch.tensor(region, dtype=torch.int64))
        return {"images": torch.cat(images), "labels": torch.cat(labels), "boxes": torch.cat(boxes),
                "regions": torch.stack(regions)}

    return _payload_to_dataset(_cache.cached(path, build), classes)


def real_photos_ood(size: int | tuple[int, int] = 32, seed: int = 0, n: int | None = None, *,
                    photos: Sequence[str] | None = None, crop_scale: tuple[float, float] = (0.15, 0.25),
                    max_rotation: float = 5.0, flip: bool = True,
                    cache_dir: str | os.PathLike | None | bool = None) -> PhotoCropDataset:
    """Build out-of-distribution crops: the right view of the stereo pair whose left view is the motorcycle class.

    ``skimage.data.stereo_motorcycle`` is a rectified stereo pair of the same scene. The motorcycle
    class of :func:`real_photos` is trained on the left view only. This set draws ``n`` crops from
    anywhere in the right view, with the same crop parameters, and labels them as the motorcycle class.
    The right view shows the same subject from a camera shifted by the stereo baseline, so its
    crops overlap the left view's content but never its pixels.

    Args:
        size, seed, crop_scale, max_rotation, flip, cache_dir: as in :func:`real_photos`.
        n: number of crops; default the test crop count of :func:`real_photos` (50 up to 64 px, 10 above).
        photos: the class list of the matching :func:`real_photos` set, which must contain "motorcycle".

    Returns:
        A ``PhotoCropDataset`` ``(n, 3, H, W)`` whose labels all equal ``classes.index("motorcycle")``;
        ``boxes`` are in right-view pixels.
    """
    pair, scale, rotation = _check_common(size, seed, crop_scale, max_rotation)
    count = _default_count("test", pair) if n is None else _check_count(n, "n")
    classes = [source.name for source in _resolve_photos(photos)]
    if OOD_CLASS not in classes:
        raise InvalidInputError(
            f"Invalid photos: {classes} has no {OOD_CLASS!r} class, which the out-of-distribution set "
            f"labels its crops with. Add {OOD_CLASS!r} to photos."
        )
    label = classes.index(OOD_CLASS)
    params = _CropParams(pair, scale, rotation, bool(flip))

    key = _cache.cache_key({"kind": "real_photos_ood", "version": 1, "size": pair, "seed": seed, "count": count,
                            "photos": classes, "crop_scale": scale, "max_rotation": rotation, "flip": bool(flip)})
    folder = _cache.resolve_cache_dir(cache_dir)
    path = None if folder is None else folder / "real_photos" / f"ood-{key}.pt"

    def build() -> dict[str, Any]:
        photo = _read_photo(str(photo_path(OOD_SOURCE)))
        region = (0, 0, photo.shape[2], photo.shape[1])
        rng = np.random.default_rng([seed, len(SPLITS), label])
        crops, boxes = _sample_crops(photo, region, count, params, rng, OOD_CLASS)
        regions = torch.zeros((len(classes), 4), dtype=torch.int64)
        regions[label] = torch.tensor(region)
        return {"images": crops, "labels": torch.full((count,), label, dtype=torch.int64), "boxes": boxes,
                "regions": regions}

    dataset = _payload_to_dataset(_cache.cached(path, build), classes)
    dataset.regions = {OOD_CLASS: dataset.regions[OOD_CLASS]}
    return dataset


def corrupt(images: torch.Tensor, kind: str, severity: int = 3, seed: int = 0) -> torch.Tensor:
    """Apply a common corruption to images ``(B, C, H, W)`` in [0, 1].

    Kinds and their parameter for severity 1..5 (pixel units at the images' resolution):

    - ``gaussian_noise``: additive noise with standard deviation 0.04, 0.06, 0.08, 0.10, 0.14.
    - ``gaussian_blur``: Gaussian blur with sigma 0.5, 0.75, 1, 1.5, 2 px, kernel ``2 * ceil(3 sigma) + 1``,
      reflected borders.
    - ``contrast``: ``(x - m) * c + m`` with ``m`` each image's mean and ``c`` 0.75, 0.5, 0.4, 0.3, 0.2.
    - ``jpeg``: JPEG round trip with Pillow at quality 80, 60, 40, 25, 10; needs 1 or 3 channels.
      (``torchvision.io.encode_jpeg`` is deprecated as of torchvision 0.29, so Pillow's libjpeg is used.)

    The result is clipped to [0, 1]. Only the noise is random; it is drawn from a
    ``torch.Generator`` seeded with ``seed``, so the same call gives the same bytes.

    Returns:
        Corrupted images ``(B, C, H, W)`` of the input's dtype, on the input's device.
    """
    check_tensor(images, "images", ndim=4, shape_doc="(B, C, H, W)")
    check_choice(kind, "kind", CORRUPTIONS)
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise InvalidInputError(f"Invalid severity: expected an int in 1..5, got {severity!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"Invalid seed: expected an int, got {seed!r}.")
    level = severity - 1

    if kind == "gaussian_noise":
        generator = torch.Generator(device="cpu").manual_seed(seed)
        noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
        result = images + _NOISE_STD[level] * noise.to(device=images.device, dtype=images.dtype)
    elif kind == "gaussian_blur":
        sigma = _BLUR_SIGMA[level]
        kernel = 2 * int(math.ceil(3.0 * sigma)) + 1
        result = TF.gaussian_blur(images, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    elif kind == "contrast":
        mean = images.mean(dim=(1, 2, 3), keepdim=True)
        result = (images - mean) * _CONTRAST_FACTOR[level] + mean
    else:
        result = _jpeg_round_trip(images, _JPEG_QUALITY[level])
    return result.clamp(0.0, 1.0)


def _jpeg_round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode every image as JPEG with Pillow (libjpeg, 4:2:0 chroma subsampling)."""
    from PIL import Image

    if images.shape[1] not in (1, 3):
        raise InvalidInputError(
            f"Invalid images: JPEG needs 1 or 3 channels, got {images.shape[1]} in shape {tuple(images.shape)}."
        )
    as_bytes = (images.detach().cpu().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    as_bytes = as_bytes.permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
    decoded = []
    for array in as_bytes:
        buffer = io.BytesIO()
        Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(buffer, format="JPEG",
                                                                                  quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as image:
            decoded.append(np.asarray(image, dtype=np.uint8).reshape(array.shape))
    result = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(dtype=images.dtype) / 255.0
    return result.to(images.device)
