"""Tests for fslib._io: atomic writes and the restricted loader of pickled arrays."""

from __future__ import annotations

import builtins
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from fslib._io import atomic_directory, atomic_write, load_array_file, restricted_pickle_loads, sha256_file
from fslib.errors import InvalidFileError, UnsafePickleError


class _RunsShell:
    """Pickles into a call of os.system, as a malicious file would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _RunsEval:
    def __reduce__(self):
        return (builtins.eval, ("1 + 1",))


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def test_atomic_write_success(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_write(target) as handle:
        handle.write(b"data")
    assert target.read_bytes() == b"data"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_keeps_old(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target, "w") as handle:
            handle.write("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_directory_success_replaces(tmp_path):
    target = tmp_path / "artifact"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as folder:
        (folder / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_atomic_directory_failure_leaves_nothing(tmp_path):
    target = tmp_path / "artifact"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(target) as folder:
            (folder / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_sha256_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path, chunk_size=7) == hashlib.sha256(b"abc" * 1000).hexdigest()


# --------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------


def test_restricted_accepts_arrays_and_containers():
    content = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "b": [1, 2.5, (3, "x")], 4: {1, 2}}
    loaded = restricted_pickle_loads(pickle.dumps(content, protocol=4))
    assert np.array_equal(loaded["a"], content["a"])
    assert loaded["b"] == [1, 2.5, (3, "x")]
    assert loaded[4] == {1, 2}


def test_restricted_accepts_protocol_2_arrays():
    array = np.eye(3, dtype=np.float32)
    assert np.array_equal(restricted_pickle_loads(pickle.dumps(array, protocol=2)), array)


def test_restricted_rejects_os_system(tmp_path):
    marker = tmp_path / "marker"
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_pickle_loads(pickle.dumps({"x": _RunsShell(marker)}))
    assert not marker.exists()


def test_restricted_rejects_eval():
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        restricted_pickle_loads(pickle.dumps(_RunsEval()))


def test_restricted_corrupt_bytes():
    with pytest.raises(InvalidFileError, match="<bytes>"):
        restricted_pickle_loads(b"\x80\x04not a pickle")


# --------------------------------------------------------------------------
# load_array_file
# --------------------------------------------------------------------------


def test_load_npy(tmp_path):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    np.save(tmp_path / "a.npy", array)
    loaded = load_array_file(tmp_path / "a.npy")
    assert loaded.dtype == np.int16
    assert np.array_equal(loaded, array)


def test_load_npy_fortran_order(tmp_path):
    array = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.save(tmp_path / "f.npy", array)
    assert np.array_equal(load_array_file(tmp_path / "f.npy"), array)


def test_load_npz(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones(3), y=np.zeros((2, 2)))
    loaded = load_array_file(tmp_path / "a.npz")
    assert sorted(loaded) == ["x", "y"]
    assert np.array_equal(loaded["y"], np.zeros((2, 2)))


def test_load_npz_with_objects_rejected(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UnsafePickleError, match="pickled objects"):
        load_array_file(tmp_path / "a.npz")


def test_load_object_npy_malicious(tmp_path):
    marker = tmp_path / "marker"
    np.save(tmp_path / "o.npy", np.array([_RunsShell(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="system"):
        load_array_file(tmp_path / "o.npy")
    assert not marker.exists()


def test_load_object_npy_plain(tmp_path):
    np.save(tmp_path / "o.npy", np.array([[1.0, 2.0], "x"], dtype=object), allow_pickle=True)
    loaded = load_array_file(tmp_path / "o.npy")
    assert loaded[1] == "x"


def test_load_torch_save(tmp_path):
    tensor = torch.arange(5.0)
    torch.save({"t": tensor}, tmp_path / "t.pt")
    assert torch.equal(load_array_file(tmp_path / "t.pt")["t"], tensor)


def test_load_raw_pickle_malicious(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "evil.bin").write_bytes(pickle.dumps([_RunsShell(marker)]))
    with pytest.raises(UnsafePickleError, match="system"):
        load_array_file(tmp_path / "evil.bin")
    assert not marker.exists()


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npy"):
        load_array_file(tmp_path / "absent.npy")


def test_load_corrupt_npy(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(4))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:12])
    with pytest.raises(InvalidFileError, match="Corrupt .npy"):
        load_array_file(tmp_path / "a.npy")


def test_load_corrupt_zip(tmp_path):
    (tmp_path / "a.npz").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(InvalidFileError, match="Corrupt zip"):
        load_array_file(tmp_path / "a.npz")
