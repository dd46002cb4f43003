"""Messages of the ``fslib synth`` command line."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fslib.cli import main
from fslib.synthetic import get_preset, save_dataset


@pytest.fixture()
def saved_spec(tmp_path):
    """A spec file of a small syn1 and a folder holding that data set."""
    spec = dataclasses.replace(get_preset("syn1"), train_size=8, test_size=8)
    save_dataset(tmp_path / "data", spec, seed=0)
    (tmp_path / "spec.json").write_text(spec.to_json())
    return tmp_path


def test_synth_existing_names_option(saved_spec, capsys):
    status = main(["synth", "--spec", str(saved_spec / "spec.json"), "--out", str(saved_spec / "data")])
    assert status == 2
    error = capsys.readouterr().err
    assert "Invalid --out:" in error
    assert "Pass --overwrite to replace it" in error
    assert "overwrite=True" not in error


def test_synth_bad_seed_names_option(saved_spec, capsys):
    status = main(["synth", "--spec", str(saved_spec / "spec.json"), "--out", str(saved_spec / "new"),
                   "--seed", "-1"])
    assert status == 2
    assert "Invalid --seed: expected an int >= 0, got -1." in capsys.readouterr().err
    assert not (saved_spec / "new").exists()


def test_synth_overwrite_replaces(saved_spec, capsys):
    status = main(["synth", "--spec", str(saved_spec / "spec.json"), "--out", str(saved_spec / "data"),
                   "--seed", "1", "--overwrite"])
    assert status == 0
    assert "seed 1" in capsys.readouterr().out
    assert json.loads((saved_spec / "data" / "checksums.json").read_text())["seed"] == 1


def test_existing_path_is_one_line_error(monkeypatch, capsys):
    import fslib.cli.synth as synth_cli

    def occupied(args):
        raise FileExistsError("[Errno 17] File exists: 'out'")

    monkeypatch.setattr(synth_cli, "run", occupied)
    assert main(["synth", "--preset", "syn1", "--out", "out"]) == 2
    assert capsys.readouterr().err.startswith("fslib synth: error: [Errno 17]")


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["dfm", "search", "--method", "slow"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("fslib dfm search: error: argument --method: invalid choice: 'slow'")
    assert lines[0].endswith("Run 'fslib dfm search --help' for the options.")
