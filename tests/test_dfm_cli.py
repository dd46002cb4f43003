"""Tests of the ``fslib dfm search`` and ``fslib dfm evaluate`` commands."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fslib.cli import main
from fslib.dfm import load_dfm
from fslib.models import build_model, save_checkpoint
from fslib.synthetic import get_preset, save_dataset


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
