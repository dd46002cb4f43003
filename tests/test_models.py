"""Tests of the model zoo and model checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fslib.errors import InvalidFileError, InvalidInputError
from fslib.models import build_model, list_models, load_model, save_checkpoint


def test_list_models_names():
    expected = {"resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "alexnet", "vit_b"}
    assert expected <= set(list_models())


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "alexnet", "vit_b"])
def test_forward_shape_32px(name):
    torch.manual_seed(0)
    model = build_model(name, 5, 32, width=4)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 5)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("stem", ["cifar", "torchvision"])
def test_resnet_224px_stems(stem):
    model = build_model("resnet18", 10, 224, width=4, stem=stem).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_cifar_stem_layout():
    model = build_model("resnet18", 10, 32, width=8)
    assert model.conv1.kernel_size == (3, 3)
    assert model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)


def test_torchvision_stem_layout():
    model = build_model("resnet18", 10, 224, stem="torchvision")
    assert model.conv1.kernel_size == (7, 7)
    assert model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)


def test_resnet_width_doubles():
    model = build_model("resnet18", 10, 32, width=16)
    assert model.conv1.out_channels == 16
    assert model.layer1[0].conv1.out_channels == 16
    assert model.layer4[0].conv1.out_channels == 128
    assert model.fc.in_features == 128


def test_resnet50_bottleneck_expansion():
    model = build_model("resnet50", 10, 32, width=8)
    assert model.fc.in_features == 8 * 8 * 4


def test_resnet18_default_parameter_count():
    # torchvision's resnet18 has 11,689,512 parameters with 1000 classes. The
    # CIFAR stem replaces the 7x7 convolution (64*3*49 weights) with a 3x3 one
    # (64*3*9), and 10 classes shrink the final layer from 512*1000+1000.
    model = build_model("resnet18", 10, 32)
    expected = 11_689_512 - 64 * 3 * 49 + 64 * 3 * 9 - (512 * 1000 + 1000) + (512 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_vgg_width_scales_channels():
    model = build_model("vgg16", 10, 32, width=16)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs[0].out_channels == 16
    assert convs[-1].out_channels == 128
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.features)


def test_vit_width_sets_hidden_dim():
    model = build_model("vit_b", 10, 32, width=4)
    assert model.hidden_dim == 48
    assert model.patch_size == 4


def test_vit_b_standard_size():
    # ViT-B/16: hidden size 768, 12 layers, 12 heads, patch 16 at 224 px. The
    # meta device builds the 86M-parameter model without allocating memory.
    with torch.device("meta"):
        model = build_model("vit_b", 10, 224)
    assert model.hidden_dim == 768
    assert model.patch_size == 16
    assert len(model.encoder.layers) == 12


def test_vit_rejects_indivisible_size():
    with pytest.raises(InvalidInputError, match="multiple of the patch size"):
        build_model("vit_b", 10, 30, width=4)


def test_unknown_name_lists_models():
    with pytest.raises(InvalidInputError, match="resnet18"):
        build_model("resnet19", 10, 32)


@pytest.mark.parametrize("name,size", [("alexnet", 16), ("vgg11", 16), ("vgg16", 31), ("resnet18", 4)])
def test_too_small_image_rejected(name, size):
    with pytest.raises(InvalidInputError, match="image_size"):
        build_model(name, 10, size, width=4)


def test_torchvision_stem_needs_32px():
    with pytest.raises(InvalidInputError, match="at least 32"):
        build_model("resnet18", 10, 16, width=4, stem="torchvision")


def test_stem_only_for_resnets():
    with pytest.raises(InvalidInputError, match="stem"):
        build_model("vgg11", 10, 32, width=4, stem="torchvision")


def test_invalid_width_rejected():
    with pytest.raises(InvalidInputError, match="width"):
        build_model("resnet18", 10, 32, width=0)


def test_unknown_option_rejected():
    with pytest.raises(InvalidInputError, match="patch_size"):
        build_model("resnet18", 10, 32, width=4, patch_size=4)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model("vgg11", 3, 32, width=4)
    meta = {"classes": ["a", "b", "c"], "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, loaded_meta = load_model(tmp_path / "m.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded_meta["classes"] == ["a", "b", "c"]
    assert loaded_meta["normalization"]["std"] == [0.25] * 3
    assert loaded_meta["width"] == 4


def test_checkpoint_keeps_options(tmp_path):
    model = build_model("vit_b", 3, 32, width=2, patch_size=8, num_layers=2)
    save_checkpoint(tmp_path / "v.pt", model, {})
    loaded, meta = load_model(tmp_path / "v.pt")
    assert loaded.patch_size == 8
    assert meta["options"] == {"patch_size": 8, "num_layers": 2}


def test_checkpoint_mismatch_rejected(tmp_path):
    model = build_model("resnet18", 3, 32, width=4)
    save_checkpoint(tmp_path / "m.pt", model, {})
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["meta"]["width"] = 8
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(InvalidFileError, match="shape mismatch"):
        load_model(tmp_path / "bad.pt")


def test_foreign_file_rejected(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InvalidFileError, match="not an fslib checkpoint"):
        load_model(tmp_path / "other.pt")


def test_missing_checkpoint_rejected(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.pt")


def test_unsafe_meta_rejected(tmp_path):
    model = build_model("resnet18", 3, 32, width=4)
    with pytest.raises(TypeError, match="plain Python type"):
        save_checkpoint(tmp_path / "m.pt", model, {"note": object()})
    assert not (tmp_path / "m.pt").exists()


def test_seed_gives_same_weights():
    first = build_model("resnet18", 4, 32, width=4, seed=3)
    second = build_model("resnet18", 4, 32, width=4, seed=3)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_seed_differs_between_seeds():
    first = build_model("resnet18", 4, 32, width=4, seed=3)
    second = build_model("resnet18", 4, 32, width=4, seed=4)
    assert not torch.equal(first.conv1.weight, second.conv1.weight)


def test_seed_leaves_global_state():
    before = torch.random.get_rng_state()
    build_model("resnet18", 4, 32, width=4, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_seed_must_be_integer():
    with pytest.raises(InvalidInputError, match="Invalid seed"):
        build_model("resnet18", 4, 32, width=4, seed=1.5)
