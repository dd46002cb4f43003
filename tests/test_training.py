"""Tests of the training loop, its checkpoints and the ``fslib train`` command."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from fslib.datasets import TensorImageDataset
from fslib.errors import InvalidInputError
from fslib.models import build_model, load_model
from fslib.training import Callback, TrainConfig, evaluate, train

# Class-specific spatial frequencies (cycles per image along y and x).
_FREQUENCIES = [(1, 0), (0, 2), (3, 3), (5, 1)]


def cosine_dataset(n: int = 256, size: int = 16, seed: int = 0) -> TensorImageDataset:
    """Four classes of images in [0, 1], each a strong cosine at its own frequency plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    fy = torch.tensor([f[0] for f in _FREQUENCIES])[labels].view(n, 1, 1, 1)
    fx = torch.tensor([f[1] for f in _FREQUENCIES])[labels].view(n, 1, 1, 1)
    phase = torch.rand(n, 1, 1, 1, generator=generator) * 2 * math.pi
    pattern = torch.cos(2 * math.pi * (fy * yy + fx * xx) / size + phase)  # (n, 1, H, W)
    images = 0.5 + 0.3 * pattern + 0.05 * torch.randn(n, 3, size, size, generator=generator)
    return TensorImageDataset(images.clamp(0, 1).float(), labels, ["a", "b", "c", "d"])


def fast_config(**changes) -> TrainConfig:
    options = dict(batch_size=32, progress=False, device="cpu", augment="none", iterations=10)
    options.update(changes)
    return TrainConfig(**options)


def test_easy_data_learned(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", 4, 16, width=4)
    data = cosine_dataset(256)
    result = train(model, data, None, fast_config(iterations=40), out_dir=tmp_path)
    # Chance is 0.25 for four balanced classes.
    assert result.metrics["val"]["accuracy"] >= 0.8
    assert result.metrics["train"]["accuracy"] >= 0.8


def test_outputs_written(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet18", 4, 16, width=4)
    result = train(model, cosine_dataset(64), None, fast_config(iterations=4, batch_size=16), out_dir=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 4
    assert set(metrics) >= {"train", "val"}
    assert (tmp_path / "config.json").exists()
    assert result.paths["checkpoint"].exists()
    loaded, meta = load_model(tmp_path / "model.pt")
    assert meta["classes"] == ["a", "b", "c", "d"]
    assert len(meta["normalization"]["mean"]) == 3
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value.cpu()), key


def test_history_per_epoch():
    torch.manual_seed(0)
    model = build_model("resnet18", 4, 16, width=4)
    # 60 training images (64 minus a 10% split of 6, rounded) in batches of 30: 2 steps per epoch.
    result = train(model, cosine_dataset(64), None, fast_config(iterations=None, epochs=3, batch_size=29))
    assert result.history["epoch"] == [1, 2, 3]
    assert len(result.history["val_loss"]) == 3
    assert result.iterations == 3 * math.ceil(58 / 29)


def test_normalization_from_training_data():
    data = cosine_dataset(40)
    result = train(build_model("resnet18", 4, 16, width=4), data, cosine_dataset(8, seed=1), fast_config(iterations=1))
    mean, std = result.normalization
    assert torch.allclose(mean, data.images.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std, data.images.std(dim=(0, 2, 3), unbiased=False), atol=1e-6)


class _StopAt(Callback):
    """Raise after a given iteration, as a killed run would stop."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def on_iteration_end(self, state):
        if state.iteration == self.iteration:
            raise KeyboardInterrupt("simulated kill")


class _Recorder(Callback):
    """Record the iterations seen; its records must survive a resume."""

    def __init__(self):
        self.seen: list[int] = []

    def on_iteration_end(self, state):
        self.seen.append(state.iteration)

    def state_dict(self):
        return {"seen": list(self.seen)}

    def load_state_dict(self, state):
        self.seen = list(state["seen"])


def _resume_setup():
    # VGG has dropout (global generator) and the "paper" augmentation draws per image:
    # both must continue exactly after a resume.
    data = cosine_dataset(64, size=32)
    config = fast_config(iterations=10, batch_size=16, augment="paper", checkpoint_iterations=4,
                         checkpoint_epochs=None, val_fraction=0.25)
    return data, config


def _fresh_model():
    torch.manual_seed(1)
    return build_model("vgg11", 4, 32, width=4)


def test_resume_after_kill_identical(tmp_path):
    data, config = _resume_setup()
    reference_model = _fresh_model()
    reference_recorder = _Recorder()
    reference = train(reference_model, data, None, config, callbacks=[reference_recorder], out_dir=tmp_path / "a")

    killed_model = _fresh_model()
    with pytest.raises(KeyboardInterrupt):
        train(killed_model, data, None, config, callbacks=[_Recorder(), _StopAt(7)], out_dir=tmp_path / "b")
    resumed_model = _fresh_model()
    recorder = _Recorder()
    resumed = train(resumed_model, data, None, config, callbacks=[recorder, Callback()], out_dir=tmp_path / "b")

    assert resumed.resumed_from == 4
    for key, value in reference_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key
    assert recorder.seen == list(range(1, 11))
    assert resumed.history == reference.history
    assert reference_recorder.seen == recorder.seen


def test_resume_longer_run_identical(tmp_path):
    data, config = _resume_setup()
    reference_model = _fresh_model()
    train(reference_model, data, None, config, out_dir=tmp_path / "a")

    short = TrainConfig(**{**config.to_dict(), "iterations": 5, "crop_scale": config.crop_scale})
    train(_fresh_model(), data, None, short, out_dir=tmp_path / "b")
    resumed_model = _fresh_model()
    resumed = train(resumed_model, data, None, config, out_dir=tmp_path / "b")

    assert resumed.resumed_from == 5
    for key, value in reference_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key


def test_global_rng_untouched():
    data = cosine_dataset(64)
    model = build_model("resnet18", 4, 16, width=4)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, data, None, fast_config(iterations=2, augment="paper"))
    assert torch.equal(torch.rand(3), expected)


def test_other_config_same_dir_rejected(tmp_path):
    data = cosine_dataset(64)
    train(build_model("resnet18", 4, 16, width=4), data, None, fast_config(iterations=2), out_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="another training configuration"):
        train(build_model("resnet18", 4, 16, width=4), data, None, fast_config(iterations=2, lr=0.1), out_dir=tmp_path)


def test_config_json_round_trip():
    config = TrainConfig(epochs=3, crop_scale=(0.3, 0.9), normalization=((0.1, 0.2, 0.3), (1.0, 2.0, 3.0)),
                         augment="augmix", stylized_folder="sin")
    assert TrainConfig.from_json(config.to_json()) == config


def test_config_defaults_recipe():
    config = TrainConfig()
    assert (config.lr, config.momentum, config.nesterov, config.weight_decay) == (0.01, 0.9, True, 1e-4)
    assert (config.batch_size, config.epochs, config.val_fraction) == (64, 200, 0.1)
    assert config.plateau_factor == 0.1


@pytest.mark.parametrize("changes,match", [
    ({"augment": "mixup"}, "augment"),
    ({"lr": 0}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"crop_scale": (0.9, 0.5)}, "crop_scale"),
])
def test_invalid_config_rejected(changes, match):
    with pytest.raises(InvalidInputError, match=match):
        TrainConfig(**changes)


def test_config_unknown_key_rejected():
    with pytest.raises(InvalidInputError, match="keys"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_empty_class_rejected():
    data = cosine_dataset(32)
    only_three = TensorImageDataset(data.images[data.labels < 3], data.labels[data.labels < 3], ["a", "b", "c", "d"])
    with pytest.raises(InvalidInputError, match="'d'"):
        train(build_model("resnet18", 4, 16, width=4), only_three, None, fast_config())


def test_labels_out_of_range_rejected():
    data = cosine_dataset(32)
    val = TensorImageDataset(data.images[:8], torch.full((8,), 5), [str(i) for i in range(6)])
    with pytest.raises(InvalidInputError, match="labels must lie in"):
        train(build_model("resnet18", 4, 16, width=4), data, val, fast_config())


def test_model_class_count_mismatch_rejected():
    with pytest.raises(InvalidInputError, match="num_classes=4"):
        train(build_model("resnet18", 10, 16, width=4), cosine_dataset(32), None, fast_config())


def test_missing_stylized_folder_rejected(tmp_path):
    config = fast_config(stylized_folder=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="Stylised image folder"):
        train(build_model("resnet18", 4, 16, width=4), cosine_dataset(32), None, config)


@pytest.mark.parametrize("augment", ["autoaugment", "augmix"])
def test_uint8_augmentations_run(augment):
    model = build_model("resnet18", 4, 16, width=4)
    result = train(model, cosine_dataset(32), None, fast_config(iterations=1, augment=augment))
    assert result.iterations == 1


def test_evaluate_confusion_matrix():
    data = cosine_dataset(16)

    class Constant(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 4)
            logits[:, 2] = 1.0
            return logits

    result = evaluate(Constant(), data, ([0.0] * 3, [1.0] * 3), "cpu")
    assert result["confusion_matrix"][2] == [0, 0, 4, 0]
    assert result["confusion_matrix"][0] == [0, 0, 4, 0]
    assert result["accuracy"] == 0.25
    assert result["per_class_accuracy"] == [0.0, 0.0, 1.0, 0.0]
    expected_loss = -torch.log_softmax(torch.tensor([0.0, 0.0, 1.0, 0.0]), 0)
    assert result["loss"] == pytest.approx(float(expected_loss[[0, 1, 2, 3]].mean()), rel=1e-6)


def test_cli_help(capsys):
    from fslib.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--track-every" in help_text
    assert "--checkpoint-every" in help_text


def test_cli_choices_match_library():
    from fslib.cli import train as train_cli
    from fslib.models import list_models
    from fslib.training import AUGMENTATIONS

    defaults = TrainConfig()
    assert sorted(train_cli.MODEL_NAMES) == list_models()
    assert train_cli.AUGMENTATIONS == AUGMENTATIONS
    for key, value in train_cli.DEFAULTS.items():
        assert getattr(defaults, key) == value, key


def test_cli_run_writes_outputs(tmp_path):
    import dataclasses

    from fslib.cli import main
    from fslib.synthetic import get_preset, save_dataset

    spec = dataclasses.replace(get_preset("syn1"), train_size=80, test_size=40)
    save_dataset(tmp_path / "data", spec, seed=0)
    argv = ["train", "--data", str(tmp_path / "data"), "--model", "resnet18", "--width", "4",
            "--iterations", "6", "--batch-size", "16", "--track-every", "3", "--band-stop", "B1+B2", "B3+B4",
            "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["count"] == 40
    assert metrics["iterations"] == 6
    assert (tmp_path / "run" / "dynamics.csv").exists()
    filters = set(pd.read_csv(tmp_path / "run" / "dynamics.csv")["filter"])
    assert {"stop B1+B2", "stop B3+B4"} <= filters
    assert "stop B1+B3" not in filters
    assert (tmp_path / "run" / "figures" / "training_curves.png").exists()
    # The same command again resumes the finished run; another learning rate is rejected.
    assert main(argv) == 0
    assert main(argv + ["--lr", "0.1"]) == 2
