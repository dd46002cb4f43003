"""The model zoo (torchvision architectures sized for small images) and model checkpoints.

Every model takes normalised images ``(B, 3, H, W)`` with ``H == W ==
image_size`` and returns logits ``(B, num_classes)``. The architectures are
torchvision's classes (``ResNet``, ``VGG``, ``AlexNet``,
``VisionTransformer``) with the stem, stage widths or classifier replaced
where small images or CPU-sized variants need it.

``width`` is one number for every family, and ``width=64`` is the standard
size of each model:

- ResNet: channels of the stem and the first stage (torchvision: 64). Later
  stages double it (``2w``, ``4w``, ``8w``), and Bottleneck blocks expand by
  4 as usual.
- VGG: channels of the first convolution block (torchvision: 64). Every
  convolution of the configuration and the two hidden layers of the
  classifier (4096 at width 64) are scaled by ``width / 64``.
- AlexNet: every convolution and the two hidden classifier layers (4096 at
  width 64) are scaled by ``width / 64``.
- ViT-B: the size of one attention head (ViT-B/16: 64). The hidden size is
  ``12 * width``, the MLP size ``48 * width``; 12 heads and 12 layers stay.

A model built here carries ``model.fslib_build``, the arguments that rebuild
it; :func:`save_checkpoint` stores them so :func:`load_model` can rebuild the
model from the file alone.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any, Callable

import torch
from torch import nn
from torchvision.models.alexnet import AlexNet
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from torchvision.models.vgg import VGG, make_layers
from torchvision.models.vision_transformer import VisionTransformer

from ._io import atomic_write
from .errors import InvalidFileError, InvalidInputError

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fslib-checkpoint"
CHECKPOINT_VERSION = 1

_STEMS = ("cifar", "torchvision")

# torchvision's VGG configurations ("M" is a 2x2 max-pool), at width 64.
_VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def _scaled(channels: int, width: int) -> int:
    return max(1, int(round(channels * width / 64)))


def _check_min_size(name: str, image_size: int, minimum: int, reason: str) -> None:
    if image_size < minimum:
        raise InvalidInputError(
            f"Invalid image_size {image_size} for {name}: {reason}, so it needs at least "
            f"{minimum} px. Resize the images to {minimum} px or more, or choose another model."
        )


def _init_conv_bn_linear(module: nn.Module) -> None:
    """Initialise like torchvision's ResNet: Kaiming (fan-out) convolutions, unit BN, default linear."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


# --------------------------------------------------------------------------- ResNet


def _resnet(block: type, layers: list[int], name: str, num_classes: int, image_size: int,
            width: int, stem: str) -> ResNet:
    if stem == "cifar":
        # 3x3 stride-1 stem without max-pool: three stride-2 stages remain.
        _check_min_size(name, image_size, 8, "the CIFAR stem keeps 3 stride-2 stages")
    else:
        _check_min_size(name, image_size, 32, "the torchvision stem and stages downsample 5 times by 2")

    if width == 64:
        model = ResNet(block, layers, num_classes=num_classes)
    else:
        # torchvision's ResNet fixes 64 channels for the first stage, so build it
        # on the meta device (no memory, no initialisation) and rebuild every
        # layer with torchvision's own _make_layer at the requested width.
        with torch.device("meta"):
            model = ResNet(block, layers, num_classes=num_classes)
        model.inplanes = width
        model.layer1 = model._make_layer(block, width, layers[0])
        model.layer2 = model._make_layer(block, 2 * width, layers[1], stride=2)
        model.layer3 = model._make_layer(block, 4 * width, layers[2], stride=2)
        model.layer4 = model._make_layer(block, 8 * width, layers[3], stride=2)
        model.bn1 = nn.BatchNorm2d(width)
        model.fc = nn.Linear(8 * width * block.expansion, num_classes)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif width != 64:
        model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    _init_conv_bn_linear(model)
    return model


# --------------------------------------------------------------------------- VGG


class _VGG(VGG):
    """torchvision's VGG (same forward) with a classifier sized for the feature map.

    torchvision's constructor always builds the 224 px classifier (25088 x
    4096 weights); this class skips that and builds the classifier for
    ``image_size`` directly.
    """

    def __init__(self, features: nn.Module, channels: int, pooled: int, hidden: int, num_classes: int):
        nn.Module.__init__(self)
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pooled * pooled, hidden),
            nn.ReLU(True),
            nn.Dropout(p=0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(p=0.5),
            nn.Linear(hidden, num_classes),
        )
        # The initialisation of torchvision's VGG (init_weights=True).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)


def _vgg(name: str, num_classes: int, image_size: int, width: int) -> VGG:
    _check_min_size(name, image_size, 32, "its features downsample 5 times by 2")
    cfg = [v if v == "M" else _scaled(v, width) for v in _VGG_CONFIGS[name]]
    features = make_layers(cfg, batch_norm=True)
    # The feature map is image_size // 32 pixels wide: 1 at 32 px, 7 at 224 px as in torchvision.
    pooled = min(7, image_size // 32)
    return _VGG(features, cfg[-2], pooled, _scaled(4096, width), num_classes)


# --------------------------------------------------------------------------- AlexNet


class _AlexNet(AlexNet):
    """torchvision's AlexNet (same forward) with features sized for 32 px images.

    The 11x11 stride-4 first layer of the 224 px AlexNet would leave nothing
    of a 32 px image. Here the first convolution is 3x3 with stride 2 and the
    other kernels are 3x3. A 32 px image then leaves a 2x2 map of
    ``256 * w / 64`` channels before the classifier (dropout, two hidden
    layers, output), as in the common CIFAR variant of AlexNet.
    """

    def __init__(self, num_classes: int, width: int):
        nn.Module.__init__(self)
        c1, c2, c3, c4 = (_scaled(c, width) for c in (64, 192, 384, 256))
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        hidden = _scaled(4096, width)
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(c4 * 2 * 2, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )


def _alexnet(name: str, num_classes: int, image_size: int, width: int) -> AlexNet:
    _check_min_size(name, image_size, 32, "its features downsample 4 times by 2 to a 2x2 map at 32 px")
    return _AlexNet(num_classes, width)


# --------------------------------------------------------------------------- ViT-B


def _vit_b(name: str, num_classes: int, image_size: int, width: int, patch_size: int | None = None,
           num_layers: int = 12, dropout: float = 0.0) -> VisionTransformer:
    if patch_size is None:
        # ViT-B/16 at 224 px; 4 px patches (an 8x8 grid) at 32 px.
        patch_size = 16 if image_size >= 128 else 4
    if not isinstance(patch_size, int) or patch_size < 1:
        raise InvalidInputError(f"Invalid patch_size {patch_size!r} for {name}: expected a positive integer.")
    if image_size % patch_size != 0:
        below = image_size - image_size % patch_size
        sizes = ", ".join(str(s) for s in (below, below + patch_size) if s > 0)
        divisors = [d for d in (2, 4, 8, 16, 32) if image_size % d == 0]
        raise InvalidInputError(
            f"Invalid image_size {image_size} for {name} with patch_size {patch_size}: the image size "
            f"must be a multiple of the patch size. Use image_size {sizes}"
            + (f", or patch_size one of {divisors}." if divisors else ".")
        )
    return VisionTransformer(
        image_size=image_size,
        patch_size=patch_size,
        num_layers=num_layers,
        num_heads=12,
        hidden_dim=12 * width,
        mlp_dim=48 * width,
        dropout=dropout,
        num_classes=num_classes,
    )


# --------------------------------------------------------------------------- registry


def _build_resnet(block: type, layers: list[int]) -> Callable[..., nn.Module]:
    def build(name: str, num_classes: int, image_size: int, width: int, stem: str, **options: Any) -> nn.Module:
        _reject_options(name, options)
        return _resnet(block, layers, name, num_classes, image_size, width, stem)
    return build


def _build_vgg(name: str, num_classes: int, image_size: int, width: int, stem: str, **options: Any) -> nn.Module:
    _reject_options(name, options)
    return _vgg(name, num_classes, image_size, width)


def _build_alexnet(name: str, num_classes: int, image_size: int, width: int, stem: str, **options: Any) -> nn.Module:
    _reject_options(name, options)
    return _alexnet(name, num_classes, image_size, width)


def _build_vit(name: str, num_classes: int, image_size: int, width: int, stem: str, **options: Any) -> nn.Module:
    _reject_options(name, options, allowed=("patch_size", "num_layers", "dropout"))
    return _vit_b(name, num_classes, image_size, width, **options)


def _reject_options(name: str, options: dict, allowed: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        hint = f"; {name} accepts {', '.join(allowed)}" if allowed else f"; {name} takes no options"
        raise InvalidInputError(f"Invalid option(s) {', '.join(unknown)} for model {name}{hint}.")


_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "resnet18": _build_resnet(BasicBlock, [2, 2, 2, 2]),
    "resnet34": _build_resnet(BasicBlock, [3, 4, 6, 3]),
    "resnet50": _build_resnet(Bottleneck, [3, 4, 6, 3]),
    "vgg11": _build_vgg,
    "vgg16": _build_vgg,
    "alexnet": _build_alexnet,
    "vit_b": _build_vit,
}

# Families whose stem can be switched; the others take stem="cifar" (the default) only.
_HAS_STEM = {"resnet18", "resnet34", "resnet50"}


def list_models() -> list[str]:
    """Return the names that :func:`build_model` accepts, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, num_classes: int, image_size: int, *, width: int | None = None,
                stem: str = "cifar", seed: int | None = None, **options: Any) -> nn.Module:
    """Build an untrained classifier for ``(B, 3, image_size, image_size)`` normalised images.

    Args:
        name: one of :func:`list_models`: ``resnet18``, ``resnet34``, ``resnet50``,
            ``vgg11``, ``vgg16`` (both with batch norm), ``alexnet`` (a 32 px
            variant) and ``vit_b`` (ViT-B from scratch).
        num_classes: size of the output ``(B, num_classes)``.
        image_size: height and width of the input images in pixels.
        width: network width, see the module docstring; ``None`` means 64,
            the standard size. Small widths (4 to 16) give CPU-sized models.
        stem: ResNets only. ``"cifar"`` (default, as in the official code of
            Wang et al., ICCV 2023): a 3x3 stride-1 convolution and no max-pool, at any image
            size. ``"torchvision"``: the 7x7 stride-2 convolution and 3x3
            max-pool of torchvision's ResNet.
        seed: seed of the initial weights, drawn without touching the global
            random state, so the same seed gives the same model. ``None``
            draws them from torch's global generator.
        options: ``vit_b`` only: ``patch_size`` (default 16 for images of
            128 px or more, otherwise 4), ``num_layers`` (12), ``dropout`` (0.0).

    Returns:
        The model in train mode, with ``model.fslib_build`` holding the
        arguments that rebuild it.

    Raises:
        InvalidInputError: unknown name, unknown option, invalid width or
            stem, or an image size the model cannot take.
    """
    if name not in _REGISTRY:
        raise InvalidInputError(f"Unknown model {name!r}. Expected one of: {', '.join(list_models())}.")
    for label, value in (("num_classes", num_classes), ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"Invalid {label} {value!r}: expected a positive integer.")
    if num_classes < 2:
        raise InvalidInputError(f"Invalid num_classes {num_classes}: a classifier needs at least 2 classes.")
    if width is None:
        width = 64
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidInputError(f"Invalid width {width!r}: expected a positive integer such as 16 or 64, or None.")
    if stem not in _STEMS:
        raise InvalidInputError(f"Invalid stem {stem!r}: expected one of {', '.join(_STEMS)}.")
    if stem != "cifar" and name not in _HAS_STEM:
        raise InvalidInputError(f"Invalid stem {stem!r} for {name}: only ResNets have a switchable stem; omit stem.")

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInputError(f"Invalid seed {seed!r}: expected an integer or None.")

    builder = _REGISTRY[name]
    if seed is None:
        model = builder(name=name, num_classes=num_classes, image_size=image_size, width=width, stem=stem, **options)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = builder(name=name, num_classes=num_classes, image_size=image_size, width=width, stem=stem,
                            **options)
    model.fslib_build = {
        "name": name,
        "num_classes": num_classes,
        "image_size": image_size,
        "width": width,
        "stem": stem,
        "options": dict(options),
    }
    return model


# --------------------------------------------------------------------------- checkpoints


def _plain(value: Any, where: str) -> Any:
    """Check that ``value`` contains tensors and plain Python types only (what weights_only loads)."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, (str, int)):
                raise TypeError(f"Invalid checkpoint entry {where}: key {key!r} is not a str or int.")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"Invalid checkpoint entry {where}: {type(value).__name__} is not a tensor or plain Python type; "
        "convert it (for example to a list or a float) before saving."
    )


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict | None = None, **extra: Any) -> None:
    """Write the model's weights and ``meta`` to ``path`` atomically with ``torch.save``.

    ``meta`` is merged over ``model.fslib_build`` (set by :func:`build_model`)
    and should add ``classes`` (class names in label order) and
    ``normalization`` ``{"mean": [...], "std": [...]}``. ``extra`` entries
    (optimizer state, counters, ...) are stored beside them. Every value must
    be a tensor or a plain Python type, so that :func:`load_model` can read
    the file with ``torch.load(..., weights_only=True)``.
    """
    full_meta = dict(getattr(model, "fslib_build", {}))
    full_meta.update(meta or {})
    reserved = {"format", "version", "meta", "state_dict"} & set(extra)
    if reserved:
        raise InvalidInputError(f"Invalid extra checkpoint entries {sorted(reserved)}: these names are reserved.")
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "meta": _plain(copy.deepcopy(full_meta), "meta"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    for key, value in extra.items():
        payload[key] = _plain(value, key)
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a file written by :func:`save_checkpoint` with ``weights_only=True`` and check its format."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Checkpoint not found: {path}. Check the path, or train a model with 'fslib train'.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise InvalidFileError(
            f"Invalid checkpoint {path}: it is not a file written by torch.save, or it is damaged "
            f"(torch.load failed: {exc}). Pass the model.pt that 'fslib train' writes."
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InvalidFileError(
            f"Invalid checkpoint {path}: not an fslib checkpoint (expected format {CHECKPOINT_FORMAT!r}). "
            "Write it with fslib.models.save_checkpoint."
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise InvalidFileError(
            f"Invalid checkpoint {path}: version {payload.get('version')!r}, expected {CHECKPOINT_VERSION}."
        )
    return payload


def check_state_dict(model: nn.Module, state_dict: dict, source: str) -> None:
    """Raise InvalidFileError naming the keys and shapes where ``state_dict`` does not fit ``model``."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s) such as {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s) such as {', '.join(unexpected[:3])}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es) such as {'; '.join(wrong[:3])}")
    if problems:
        raise InvalidFileError(
            f"Checkpoint {source} does not match the model: {'; '.join(problems)}. "
            "Build the model with the name, width, stem and options the checkpoint was trained with."
        )


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model stored at ``path`` and load its weights.

    Returns ``(model, meta)``; the model is in eval mode on ``map_location``.
    ``meta`` contains ``name``, ``num_classes``, ``image_size``, ``width``,
    ``stem``, ``options``, and where saved ``classes`` and ``normalization``.

    Raises:
        FileNotFoundError: no file at ``path``.
        InvalidFileError: not an fslib checkpoint, no model description in
            its meta, or weights that do not match the described model.
    """
    payload = read_checkpoint(path, map_location=map_location)
    meta = payload.get("meta")
    required = ("name", "num_classes", "image_size", "width", "stem", "options")
    if not isinstance(meta, dict) or any(k not in meta for k in required):
        raise InvalidFileError(
            f"Invalid checkpoint {path}: its meta lacks the model description ({', '.join(required)}), "
            "so the model cannot be rebuilt. It was saved from a model not built by fslib.models.build_model; "
            "load its 'state_dict' entry into that model instead."
        )
    try:
        model = build_model(meta["name"], meta["num_classes"], meta["image_size"], width=meta["width"],
                            stem=meta["stem"], **meta["options"])
    except InvalidInputError as exc:
        raise InvalidFileError(f"Invalid checkpoint {path}: its model description cannot be built ({exc}).") from exc
    check_state_dict(model, payload["state_dict"], os.fspath(path))
    model.load_state_dict(payload["state_dict"])
    model.to(map_location)
    model.eval()
    return model, meta


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "build_model",
    "list_models",
    "save_checkpoint",
    "load_model",
    "read_checkpoint",
    "check_state_dict",
    "count_parameters",
]

