"""On-disk cache of generated data sets, with a checksum per entry.

An entry is one file: a header line ``fslib-cache 1 <sha256>`` followed by a
``torch.save`` payload of tensors and plain values. The SHA-256 covers the
payload, so a truncated or altered entry is detected on reading, reported
with a warning and regenerated. Entries are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from .._io import atomic_write

logger = logging.getLogger(__name__)

_MAGIC = b"fslib-cache 1 "


def default_cache_dir() -> Path:
    """Return ``$FSLIB_CACHE`` if it is set, else ``~/.cache/fslib``."""
    env = os.environ.get("FSLIB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fslib"


def resolve_cache_dir(cache_dir: str | os.PathLike | None | bool) -> Path | None:
    """Map the ``cache_dir`` argument to a folder, or ``None`` when caching is off (``False``)."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        return default_cache_dir()
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(
            f"Invalid cache_dir: expected a path, None (default folder) or False (no cache), got {cache_dir!r}."
        )
    return Path(cache_dir).expanduser()


def cache_key(params: dict[str, Any]) -> str:
    """Return a short hex key for a JSON-serialisable parameter dict."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def write_entry(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (tensors and plain values) to ``path`` with its checksum."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest().encode("ascii")
    with atomic_write(path, "wb") as handle:
        handle.write(_MAGIC + digest + b"\n")
        handle.write(data)


def read_entry(path: Path) -> dict[str, Any] | None:
    """Return the payload stored at ``path``, or ``None`` if it is missing or corrupt.

    A corrupt entry (bad header, checksum mismatch, unreadable payload) is
    reported with a ``RuntimeWarning``; the caller regenerates it.
    """
    if not path.is_file():
        return None
    raw = path.read_bytes()
    header, _, data = raw.partition(b"\n")
    if not header.startswith(_MAGIC):
        warnings.warn(f"Cache entry {path} has no valid header; regenerating it.", RuntimeWarning, stacklevel=3)
        return None
    expected = header[len(_MAGIC):].decode("ascii", errors="replace")
    if hashlib.sha256(data).hexdigest() != expected:
        warnings.warn(f"Cache entry {path} failed its SHA-256 check; regenerating it.", RuntimeWarning, stacklevel=3)
        return None
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises several types for bad payloads
        warnings.warn(f"Cache entry {path} could not be read ({exc}); regenerating it.", RuntimeWarning, stacklevel=3)
        return None


def cached(path: Path | None, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Return the payload at ``path``, building and storing it on a miss.

    With ``path=None`` the payload is built and nothing is stored.
    """
    if path is None:
        return build()
    payload = read_entry(path)
    if payload is not None:
        logger.debug("Cache hit: %s", path)
        return payload
    logger.info("Cache miss, generating: %s", path)
    payload = build()
    write_entry(path, payload)
    return payload
