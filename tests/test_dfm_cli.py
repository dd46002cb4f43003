"""Tests of the ``fslib dfm search`` and ``fslib dfm evaluate`` commands."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from fslib.cli import main
from fslib.datasets import normalize
from fslib.dfm import load_dfm
from fslib.models import build_model, load_model, save_checkpoint
from fslib.synthetic import get_preset, load_dataset, save_dataset


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """A small saved syn1 data set (2 test images per class) and an untrained tiny checkpoint."""
    root = tmp_path_factory.mktemp("dfm_cli")
    spec = dataclasses.replace(get_preset("syn1"), train_size=8, test_size=8)
    save_dataset(root / "data", spec, seed=0)
    model = build_model("resnet18", 4, 32, width=4, seed=0)
    meta = {"classes": list(spec.class_names), "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}}
    save_checkpoint(root / "model.pt", model, meta)
    return root


def _search_argv(root, out, *extra):
    return ["dfm", "search", "--checkpoint", str(root / "model.pt"), "--data", str(root / "data"),
            "--top", "5", "--device", "cpu", "--no-progress", "--out", str(out), *extra]


def test_search_then_evaluate(run_inputs, tmp_path):
    assert main(_search_argv(run_inputs, tmp_path / "search")) == 0
    maps = load_dfm(tmp_path / "search" / "dfm_top5.npz").maps
    assert tuple(maps.shape) == (4, 32, 32)
    metrics = json.loads((tmp_path / "search" / "metrics.json").read_text())
    assert metrics["method"] == "exact"

    argv = ["dfm", "evaluate", "--checkpoint", str(run_inputs / "model.pt"), "--data", str(run_inputs / "data"),
            "--maps", str(tmp_path / "search" / "dfm_top5.npz"), "--device", "cpu", "--out", str(tmp_path / "eval")]
    assert main(argv) == 0
    assert (tmp_path / "eval" / "shortcut_table.csv").is_file()
    assert (tmp_path / "eval" / "metrics.json").is_file()


def test_search_missing_checkpoint_leaves_no_folder(run_inputs, tmp_path, capsys):
    argv = _search_argv(run_inputs, tmp_path / "out")
    argv[argv.index("--checkpoint") + 1] = str(tmp_path / "missing.pt")
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("fslib dfm search: error: Checkpoint not found")
    assert not (tmp_path / "out").exists()


def test_search_bad_patch_size_leaves_no_folder(run_inputs, tmp_path, capsys):
    assert main(_search_argv(run_inputs, tmp_path / "out", "--patch-size", "3")) == 2
    error = capsys.readouterr().err
    assert "Invalid --patch-size: 3" in error
    assert "[1, 2, 4, 8, 16, 32]" in error
    assert not (tmp_path / "out").exists()


def test_evaluate_missing_maps_leaves_no_folder(run_inputs, tmp_path):
    argv = ["dfm", "evaluate", "--checkpoint", str(run_inputs / "model.pt"), "--data", str(run_inputs / "data"),
            "--maps", str(tmp_path / "missing.npz"), "--device", "cpu", "--out", str(tmp_path / "eval")]
    assert main(argv) == 2
    assert not (tmp_path / "eval").exists()


def test_search_rerun_keeps_seconds(run_inputs, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(_search_argv(run_inputs, out)) == 0
    assert (out / "loss_maps.npz").is_file()
    assert not (out / "search_checkpoint.pt").exists()
    first = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(_search_argv(run_inputs, out, "--top", "10")) == 0
    second = json.loads((out / "metrics.json").read_text())
    assert second["seconds"] == first["seconds"]
    assert second["reused_result"] is True
    assert "reused the finished search" in capsys.readouterr().out
    assert (out / "dfm_top10.npz").is_file()


def test_search_rerun_other_setting(run_inputs, tmp_path, capsys):
    out = tmp_path / "search"
    assert main(_search_argv(run_inputs, out)) == 0
    capsys.readouterr()
    assert main(_search_argv(run_inputs, out, "--patch-size", "2")) == 2
    error = capsys.readouterr().err
    assert "Invalid --out" in error
    assert "delete" in error
    assert load_dfm(out / "dfm_top5.npz").maps.shape[-1] == 32


def test_search_per_class_first_images(run_inputs, tmp_path):
    out = tmp_path / "search"
    assert main(_search_argv(run_inputs, out, "--per-class", "1")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["per_class"] == 1
    assert metrics["images_per_class"] == [1, 1, 1, 1]

    # Independent check: the baseline loss of each class is the loss of its first test image.
    model, meta = load_model(run_inputs / "model.pt")
    images, labels = load_dataset(run_inputs / "data", "test")
    first = [int(np.flatnonzero(labels.numpy() == k)[0]) for k in range(4)]
    inputs = normalize(images[first], meta["normalization"]["mean"], meta["normalization"]["std"])
    with torch.no_grad():
        losses = torch.nn.functional.cross_entropy(model.eval()(inputs).double(), torch.arange(4),
                                                   reduction="none")
    assert np.allclose(metrics["baseline_loss"], losses.numpy(), rtol=1e-4, atol=1e-6)


def test_search_per_class_above_count(run_inputs, tmp_path, caplog):
    out = tmp_path / "search"
    assert main(_search_argv(run_inputs, out, "--per-class", "5")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images_per_class"] == [2, 2, 2, 2]
    assert "fewer images" in caplog.text


@pytest.mark.parametrize("value", ["0", "-3"])
def test_search_bad_per_class(run_inputs, tmp_path, capsys, value):
    assert main(_search_argv(run_inputs, tmp_path / "out", "--per-class", value)) == 2
    error = capsys.readouterr().err
    assert f"Invalid --per-class: {value}" in error
    assert "--per-class 10" in error
    assert not (tmp_path / "out").exists()


def test_search_fast_options_recorded(run_inputs, tmp_path):
    argv = _search_argv(run_inputs, tmp_path / "fast", "--method", "fast", "--fast-order", "first_order",
                        "--fast-margin", "2")
    assert main(argv) == 0
    metadata = json.loads((tmp_path / "fast" / "metrics.json").read_text())["metadata"]
    assert metadata["fast_order"] == "first_order"
    assert metadata["fast_margin"] == 2.0


@pytest.mark.parametrize("value", ["-1", "nan", "0"])
def test_search_bad_fast_margin_leaves_no_folder(run_inputs, tmp_path, capsys, value):
    argv = _search_argv(run_inputs, tmp_path / "out", "--method", "fast", "--fast-margin", value)
    assert main(argv) == 2
    assert "Invalid --fast-margin" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_search_fast_option_needs_fast_method(run_inputs, tmp_path, capsys):
    assert main(_search_argv(run_inputs, tmp_path / "out", "--fast-order", "first_order")) == 2
    assert "Invalid --fast-order" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_search_fast_rerun_names_changed_top(run_inputs, tmp_path, capsys):
    out = tmp_path / "fast"
    assert main(_search_argv(run_inputs, out, "--method", "fast")) == 0
    argv = _search_argv(run_inputs, out, "--method", "fast")
    argv[argv.index("--top") + 1] = "10"
    assert main(argv) == 2
    assert "changed: top_percent 5.0 -> 10.0" in capsys.readouterr().err
