"""Tests for fslib.dfm.io (DFM files in the fslib and the authors' formats) and ``fslib dfm inspect``."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fslib._io import restricted_pickle_loads  # noqa: E402
from fslib.cli import main  # noqa: E402
from fslib.dfm import DFM_LAYOUT, load_dfm, map_summary, plot_dfm, save_dfm  # noqa: E402
from fslib.errors import InvalidFileError, InvalidInputError, UnsafePickleError  # noqa: E402
from fslib.fourier import is_conjugate_symmetric  # noqa: E402

AUTHORS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "authors-dfm"
AUTHORS_FILES = ["resnet18.pkl", "vgg11.pkl"]


def _random_maps(num_classes=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(num_classes, size, size, generator=generator) < 0.3).float()


def _numpy_mismatch_count(grid: np.ndarray) -> int:
    """Count positions whose conjugate mirror differs, with the mirror index written out by hand."""
    height, width = grid.shape
    count = 0
    for i in range(height):
        for j in range(width):
            # Centred index i is frequency i - H // 2; its negation sits at index H // 2 - (i - H // 2), mod H.
            mi = (2 * (height // 2) - i) % height
            mj = (2 * (width // 2) - j) % width
            count += int(grid[i, j] != grid[mi, mj])
    return count


def _write_authors_pickle(path: Path, maps: np.ndarray, as_lists: bool = True, protocol: int = 3) -> None:
    content = {c: (maps[c].astype(np.float64).tolist() if as_lists else maps[c].astype(np.float64))
               for c in range(maps.shape[0])}
    path.write_bytes(pickle.dumps(content, protocol=protocol))


class _RunsShell:
    """Pickles into a call of os.system, as a malicious file would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


def test_fslib_round_trip(tmp_path):
    maps = _random_maps()
    path = save_dfm(maps, tmp_path / "maps.npz", patch_size=1, top_percent=5, model="resnet18",
                    data="syn1", classes=["a", "b", "c"], extra={"seed": 3})
    loaded = load_dfm(path)
    assert loaded.format == "fslib"
    assert loaded.maps.dtype == torch.float32
    assert torch.equal(loaded.maps, maps)
    assert loaded.header["top_percent"] == 5
    assert loaded.header["classes"] == ["a", "b", "c"]
    assert loaded.header["image_size"] == [8, 8]
    assert loaded.header["layout"] == DFM_LAYOUT
    assert loaded.header["extra"] == {"seed": 3}
    assert loaded.classes == ["a", "b", "c"]


def test_fslib_file_contents(tmp_path):
    path = save_dfm(_random_maps(num_classes=2), tmp_path / "maps.npz", model="vgg11")
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["header", "maps"]
        assert archive["maps"].dtype == np.uint8
        header = json.loads(str(archive["header"]))
    assert header["format_version"] == 1
    assert header["num_classes"] == 2
    assert header["patch_size"] is None


def test_fslib_reads_float32_maps(tmp_path):
    maps = _random_maps().numpy()
    header = {"format_version": 1, "layout": DFM_LAYOUT, "image_size": [8, 8], "num_classes": 3}
    np.savez(tmp_path / "f.npz", maps=maps.astype(np.float32), header=np.array(json.dumps(header)))
    assert np.array_equal(load_dfm(tmp_path / "f.npz").maps.numpy(), maps)


def test_authors_round_trip(tmp_path):
    maps = _random_maps(num_classes=4, size=6)
    path = save_dfm(maps, tmp_path / "maps.pkl", format="authors")
    loaded = load_dfm(path)
    assert loaded.format == "authors"
    assert torch.equal(loaded.maps, maps)
    assert loaded.header["image_size"] == [6, 6]


def test_authors_written_as_plain_lists(tmp_path):
    maps = _random_maps(num_classes=2, size=4)
    path = save_dfm(maps, tmp_path / "maps.pkl", format="authors")
    with open(path, "rb") as handle:
        content = pickle.load(handle)  # trusted: written by the line above
    assert sorted(content) == [0, 1]
    assert isinstance(content[0], list)
    assert np.array_equal(np.array(content[1]), maps[1].numpy().astype(np.float64))


def test_authors_numpy_arrays_read(tmp_path):
    maps = _random_maps().numpy()
    _write_authors_pickle(tmp_path / "a.pkl", maps, as_lists=False, protocol=4)
    assert np.array_equal(load_dfm(tmp_path / "a.pkl").maps.numpy(), maps)


def test_authors_nested_lists_read(tmp_path):
    maps = _random_maps(seed=1).numpy()
    _write_authors_pickle(tmp_path / "a.pkl", maps, as_lists=True, protocol=3)
    assert np.array_equal(load_dfm(tmp_path / "a.pkl").maps.numpy(), maps)


def test_authors_header_dropped_with_warning(tmp_path, caplog):
    save_dfm(_random_maps(), tmp_path / "a.pkl", format="authors", model="resnet18")
    assert "dropped keys: ['model']" in caplog.text


# --------------------------------------------------------------------------
# Unsafe, corrupt and invalid files
# --------------------------------------------------------------------------


def test_malicious_pickle_rejected(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({0: _RunsShell(marker)}, protocol=4))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        load_dfm(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dfm(tmp_path / "absent.npz")


def test_truncated_npz(tmp_path):
    path = save_dfm(_random_maps(), tmp_path / "maps.npz")
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(InvalidFileError, match="Corrupt"):
        load_dfm(path)


def test_truncated_pickle(tmp_path):
    path = save_dfm(_random_maps(), tmp_path / "maps.pkl", format="authors")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(InvalidFileError, match="Could not read"):
        load_dfm(path)


def test_unknown_content(tmp_path):
    path = tmp_path / "maps.npz"
    path.write_bytes(b"hello, not a map")
    with pytest.raises(InvalidFileError, match="Unknown DFM file format"):
        load_dfm(path)


def test_suffix_disagrees_with_content(tmp_path):
    path = save_dfm(_random_maps(), tmp_path / "maps.npz")
    renamed = path.rename(tmp_path / "maps.pkl")
    with pytest.raises(InvalidFileError, match="Rename the file"):
        load_dfm(renamed)


def test_save_wrong_suffix(tmp_path):
    with pytest.raises(InvalidInputError, match=r"\.npz"):
        save_dfm(_random_maps(), tmp_path / "maps.txt")
    with pytest.raises(InvalidInputError, match=r"\.pkl"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", format="authors")


def test_save_unknown_format(tmp_path):
    with pytest.raises(InvalidInputError, match="'fslib', 'authors'"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", format="matlab")


def test_save_maps_not_binary(tmp_path):
    maps = _random_maps()
    maps[1, 2, 3] = 0.5
    with pytest.raises(InvalidInputError, match=r"0\.5 at \(class, row, col\) \(1, 2, 3\)"):
        save_dfm(maps, tmp_path / "maps.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_wrong_rank(tmp_path):
    with pytest.raises(InvalidInputError, match=r"\(K, H, W\)"):
        save_dfm(_random_maps()[0], tmp_path / "maps.npz")


def test_save_unknown_header_key(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown key"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", topk=5)


def test_save_automatic_header_key(tmp_path):
    with pytest.raises(InvalidInputError, match="set from the maps"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", num_classes=3)


def test_save_bad_header_values(tmp_path):
    with pytest.raises(InvalidInputError, match="top_percent"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", top_percent=150)
    with pytest.raises(InvalidInputError, match="classes"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", classes=["a"])
    with pytest.raises(InvalidInputError, match="image_size"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", image_size=16)
    with pytest.raises(InvalidInputError, match="JSON"):
        save_dfm(_random_maps(), tmp_path / "maps.npz", extra={"f": object()})


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pickle, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        save_dfm(_random_maps(), tmp_path / "maps.pkl", format="authors")
    assert list(tmp_path.iterdir()) == []


def test_load_header_missing_key(tmp_path):
    header = {"format_version": 1, "layout": DFM_LAYOUT, "image_size": [8, 8]}
    np.savez(tmp_path / "f.npz", maps=_random_maps().numpy().astype(np.uint8), header=np.array(json.dumps(header)))
    with pytest.raises(InvalidFileError, match="num_classes"):
        load_dfm(tmp_path / "f.npz")


def test_load_future_version(tmp_path):
    header = {"format_version": 99, "layout": DFM_LAYOUT, "image_size": [8, 8], "num_classes": 3}
    np.savez(tmp_path / "f.npz", maps=_random_maps().numpy().astype(np.uint8), header=np.array(json.dumps(header)))
    with pytest.raises(InvalidFileError, match="format version 99"):
        load_dfm(tmp_path / "f.npz")


def test_load_unknown_header_key_kept(tmp_path, caplog):
    header = {"format_version": 1, "layout": DFM_LAYOUT, "image_size": [8, 8], "num_classes": 3, "notes": "x"}
    np.savez(tmp_path / "f.npz", maps=_random_maps().numpy().astype(np.uint8), header=np.array(json.dumps(header)))
    assert load_dfm(tmp_path / "f.npz").header["notes"] == "x"
    assert "notes" in caplog.text


def test_load_npz_without_maps(tmp_path):
    np.savez(tmp_path / "f.npz", images=np.zeros(3))
    with pytest.raises(InvalidFileError, match="not an fslib DFM file"):
        load_dfm(tmp_path / "f.npz")


def test_load_npz_maps_not_binary(tmp_path):
    header = {"format_version": 1, "layout": DFM_LAYOUT, "image_size": [8, 8], "num_classes": 3}
    np.savez(tmp_path / "f.npz", maps=np.full((3, 8, 8), 2, np.uint8), header=np.array(json.dumps(header)))
    with pytest.raises(InvalidFileError, match="only 0 and 1"):
        load_dfm(tmp_path / "f.npz")


def test_authors_not_binary(tmp_path):
    maps = _random_maps().numpy()
    maps[0, 0, 0] = 0.7
    _write_authors_pickle(tmp_path / "a.pkl", maps)
    with pytest.raises(InvalidFileError, match="only 0 and 1"):
        load_dfm(tmp_path / "a.pkl")


def test_authors_gap_in_class_indices(tmp_path):
    maps = _random_maps(num_classes=2).numpy()
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({0: maps[0].tolist(), 2: maps[1].tolist()}))
    with pytest.raises(InvalidFileError, match="from 0 to 1"):
        load_dfm(tmp_path / "a.pkl")


def test_authors_wrong_rank(tmp_path):
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({0: [0.0, 1.0, 1.0]}))
    with pytest.raises(InvalidFileError, match=r"expected \(H, W\)"):
        load_dfm(tmp_path / "a.pkl")


def test_authors_not_a_dict(tmp_path):
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([[0.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(InvalidFileError, match="expected a pickled dict"):
        load_dfm(tmp_path / "a.pkl")


# --------------------------------------------------------------------------
# Summary and figure
# --------------------------------------------------------------------------


def test_map_summary_counts():
    maps = torch.zeros(2, 4, 4)
    maps[0, 2, 2] = 1.0  # zero frequency: its own mirror
    maps[1, 1, 3] = 1.0  # frequency (-1, 1) without its mirror (1, -1) at index (3, 1)
    rows = map_summary(maps)
    assert rows[0]["kept_percent"] == pytest.approx(100 / 16)
    assert rows[0]["conjugate_symmetric"] is True
    assert rows[1]["conjugate_symmetric"] is False
    assert rows[1]["asymmetric_positions"] == 2


def test_plot_dfm_panels():
    fig = plot_dfm(_random_maps(num_classes=3), ["a", "b", "c"])
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 3
    assert titles[0].startswith("a (")
    plt.close(fig)


# --------------------------------------------------------------------------
# fslib dfm inspect
# --------------------------------------------------------------------------


def _parse_table(text: str) -> dict[int, tuple[float, str, int]]:
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\s*(\d+)\s+\S+\s+([\d.]+)\s+(yes|no)\s+(\d+)", line)
        if match:
            rows[int(match.group(1))] = (float(match.group(2)), match.group(3), int(match.group(4)))
    return rows


def test_inspect_small_authors_file(tmp_path, capsys):
    maps = np.zeros((2, 8, 8))
    maps[0, 4, 4] = 1.0
    maps[1, 1, 4] = 1.0  # no mirror at (7, 4)
    _write_authors_pickle(tmp_path / "a.pkl", maps)
    assert main(["dfm", "inspect", str(tmp_path / "a.pkl")]) == 0
    rows = _parse_table(capsys.readouterr().out)
    assert rows[0] == (pytest.approx(100 / 64, abs=0.005), "yes", 0)
    assert rows[1] == (pytest.approx(100 / 64, abs=0.005), "no", 2)


def test_inspect_symmetrize_convert(tmp_path, capsys):
    maps = np.zeros((2, 8, 8))
    maps[1, 1, 4] = 1.0
    maps[0, 4, 4] = 1.0
    _write_authors_pickle(tmp_path / "a.pkl", maps)
    out = tmp_path / "sym.npz"
    code = main(["dfm", "inspect", str(tmp_path / "a.pkl"), "--symmetrize", "union", "--convert", str(out),
                 "--classes", "cat,dog", "--plot", str(tmp_path / "maps.png")])
    assert code == 0
    converted = load_dfm(out)
    assert is_conjugate_symmetric(converted.maps)
    assert converted.maps[1, 7, 4].item() == 1.0
    assert converted.header["classes"] == ["cat", "dog"]
    assert converted.header["extra"] == {"symmetrized": "union"}
    assert (tmp_path / "maps.png").stat().st_size > 0
    assert "kept_%_symmetrized" in capsys.readouterr().out


def test_inspect_convert_to_authors(tmp_path):
    maps = _random_maps(seed=2)
    save_dfm(maps, tmp_path / "m.npz", top_percent=5)
    assert main(["dfm", "inspect", str(tmp_path / "m.npz"), "--convert", str(tmp_path / "m.pkl"),
                 "--format", "authors"]) == 0
    assert torch.equal(load_dfm(tmp_path / "m.pkl").maps, maps)


def test_inspect_bad_file(tmp_path, capsys):
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04garbage")
    assert main(["dfm", "inspect", str(tmp_path / "x.pkl")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fslib dfm inspect: error:")
    assert "Traceback" not in error


def test_inspect_classes_mismatch(tmp_path, capsys):
    save_dfm(_random_maps(), tmp_path / "m.npz")
    assert main(["dfm", "inspect", str(tmp_path / "m.npz"), "--classes", "a,b"]) == 2
    assert "--classes" in capsys.readouterr().err


# --------------------------------------------------------------------------
# The authors' published files
# --------------------------------------------------------------------------


@pytest.fixture(params=AUTHORS_FILES)
def authors_file(request) -> Path:
    path = AUTHORS_DIR / request.param
    if not path.is_file():
        pytest.skip(f"the authors' DFM file {path} is not present next to the repository")
    return path


def test_authors_file_loads(authors_file):
    dfm = load_dfm(authors_file)
    assert dfm.format == "authors"
    assert tuple(dfm.maps.shape) == (10, 32, 32)
    assert not is_conjugate_symmetric(dfm.maps)


def test_authors_file_counts_match_inspect(authors_file, capsys):
    raw = restricted_pickle_loads(authors_file.read_bytes())
    assert main(["dfm", "inspect", str(authors_file)]) == 0
    rows = _parse_table(capsys.readouterr().out)
    assert sorted(rows) == list(range(10))
    for c in range(10):
        grid = np.asarray(raw[c], dtype=np.float64)
        assert rows[c][0] == pytest.approx(100.0 * grid.sum() / grid.size, abs=0.005)
        assert rows[c][2] == _numpy_mismatch_count(grid)


def test_authors_file_rewrite_identical(authors_file, tmp_path):
    original = restricted_pickle_loads(authors_file.read_bytes())
    path = save_dfm(load_dfm(authors_file).maps, tmp_path / "copy.pkl", format="authors")
    assert restricted_pickle_loads(path.read_bytes()) == original


def test_authors_file_symmetrize_union(authors_file, tmp_path):
    out = tmp_path / "sym.npz"
    assert main(["dfm", "inspect", str(authors_file), "--symmetrize", "union", "--convert", str(out)]) == 0
    symmetric = load_dfm(out).maps
    original = load_dfm(authors_file).maps
    assert is_conjugate_symmetric(symmetric)
    assert bool((symmetric >= original).all())

