"""Atomic file writes and a restricted loader for pickled arrays.

Writes go to a temporary name in the target's folder and are renamed into
place, so an interrupted run never leaves a half-written file that looks
complete. Pickles are read with an unpickler that builds numpy arrays and
plain containers only, so that loading a file cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from .errors import InvalidFileError, UnsafePickleError

# Globals that a pickle of numpy arrays, scalars and plain containers needs.
# Anything else (os.system, builtins.eval, torch internals, ...) is rejected.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "bytearray"),
    ("_codecs", "encode"),
}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` and rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file with mode 0600; give it the mode open() would.
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` once the block succeeds.

    An existing ``path`` is replaced only after the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        # mkdtemp creates the folder with mode 0700; give it the mode mkdir() would.
        os.chmod(tmp, 0o777 & ~_current_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"Rejected {module}.{name} in a pickle: only numpy arrays and plain "
            "containers are allowed. If the file comes from a source you trust, "
            "convert it to .npy or .npz without pickled objects first."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            "Rejected a persistent reference in a pickle: the file is not a plain "
            "pickle of numpy arrays. If it was written by torch.save, it is read "
            "with torch.load(weights_only=True) instead; check the file type."
        )


def restricted_pickle_loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only numpy arrays and plain containers."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # pickle raises many types for corrupt input
        raise InvalidFileError(
            f"Could not read {source} as a pickle of arrays: {exc}. "
            "Check that the file is complete and was written by pickle or numpy."
        ) from exc


def _load_npy_with_objects(handle: IO[bytes], source: str) -> np.ndarray:
    version = np.lib.format.read_magic(handle)
    # numpy 2 no longer exports the private _read_array_header; the public readers
    # cover format 1.0 and 2.0 (3.0 differs from 2.0 only in the header's text encoding).
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    if dtype.hasobject:
        return restricted_pickle_loads(handle.read(), source=source)
    count = int(np.prod(shape)) if shape else 1
    data = np.frombuffer(handle.read(count * dtype.itemsize), dtype=dtype, count=count)
    order = "F" if fortran_order else "C"
    return data.reshape(shape, order=order).copy()


def load_array_file(path: str | os.PathLike) -> Any:
    """Read an array, a tensor or a plain container of them from ``path``.

    Accepted: ``.npy`` files (object arrays are unpickled with the restricted
    loader), ``.npz`` files without pickled objects, files written by
    ``torch.save`` (read with ``weights_only=True``) and raw pickles of numpy
    arrays and plain containers, whatever the file's suffix.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafePickleError: the pickle asks for anything but arrays and containers.
        InvalidFileError: the file is corrupt or of an unknown kind.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"File not found: {path}. Check the path.")
    with open(path, "rb") as handle:
        head = handle.read(8)

    if head.startswith(b"\x93NUMPY"):
        with open(path, "rb") as handle:
            try:
                return _load_npy_with_objects(handle, str(path))
            except UnsafePickleError:  # a ValueError too, but it must keep its own type
                raise
            except (ValueError, EOFError) as exc:
                raise InvalidFileError(f"Corrupt .npy file {path}: {exc}.") from exc

    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            raise InvalidFileError(f"Corrupt zip archive {path}; regenerate or re-download it.")
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if names and all(name.endswith(".npy") for name in names):
            try:
                with np.load(path, allow_pickle=False) as npz:
                    return {key: npz[key] for key in npz.files}
            except ValueError as exc:
                raise UnsafePickleError(
                    f"{path} holds pickled objects inside an .npz archive, which "
                    "fslib does not unpickle. Save plain numeric arrays instead."
                ) from exc
        import torch

        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
            raise InvalidFileError(
                f"Could not read {path} with torch.load(weights_only=True): {exc}. "
                "Only tensors, arrays and plain containers are accepted."
            ) from exc

    return restricted_pickle_loads(path.read_bytes(), source=str(path))
