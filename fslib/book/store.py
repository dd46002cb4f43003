"""The artifact store: one folder per chapter and hash of everything the chapter's output depends on.

Layout::

    artifacts/<chapter>/<hash>/
        <chapter>.ipynb     the executed notebook
        params.json         the injected parameters and the hash inputs
        metrics.json        machine-readable results written by the chapter
        ...                 figures, data sets, checkpoints, maps

The hash covers the chapter name, the notebook text, the parameters the
build injects, the fslib source files (except the command line and the
build machinery, see :data:`_NOT_HASHED`) and the
hashes of the chapters it depends on, so changing one parameter redoes that
chapter and its dependants only. A chapter runs in a temporary sibling
folder that is renamed into place when it succeeds, so a folder under its
final name is always complete.

Notebooks use :func:`chapter_dir` and :func:`upstream_dir` to find their
folders, which also works when a notebook runs by hand in Jupyter.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from .._io import atomic_write
from ..errors import InvalidInputError

logger = logging.getLogger(__name__)

#: Bump when the store layout or the hash inputs change, so old folders are not reused.
STORE_FORMAT = 1
HASH_LENGTH = 16


def _package_dir() -> Path:
    return Path(__file__).resolve().parents[1]


#: Build machinery that does not change what a chapter computes, left out of the hash.
_NOT_HASHED = ("cli/", "book/build.py", "book/params.py", "book/profiles.py", "book/sync.py")


def code_fingerprint(package_dir: str | os.PathLike | None = None) -> str:
    """Hash every ``.py`` file of the fslib package except the command line and the build machinery."""
    package_dir = _package_dir() if package_dir is None else Path(package_dir)
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).as_posix()
        if relative.startswith(_NOT_HASHED) or "__pycache__" in relative:
            continue
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def chapter_hash(name: str, notebook_text: str, parameters: Mapping[str, Any], code: str,
                 upstream_hashes: Mapping[str, str]) -> str:
    """Return the store key of a chapter run (hex, :data:`HASH_LENGTH` characters)."""
    payload = {
        "format": STORE_FORMAT,
        "chapter": name,
        "notebook": hashlib.sha256(notebook_text.encode("utf-8")).hexdigest(),
        "parameters": parameters,
        "code": code,
        "upstream": dict(upstream_hashes),
    }
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()[:HASH_LENGTH]


class ArtifactStore:
    """The folder ``artifacts/`` of a project, with one complete folder per chapter run."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, chapter: str, key: str) -> Path:
        """Return ``artifacts/<chapter>/<key>/``, which may not exist yet."""
        return self.root / chapter / key

    def notebook_path(self, chapter: str, key: str) -> Path:
        """Return the executed notebook of a run."""
        return self.path(chapter, key) / f"{chapter}.ipynb"

    def has(self, chapter: str, key: str) -> bool:
        """Return whether a complete run of ``chapter`` under ``key`` exists."""
        return self.notebook_path(chapter, key).is_file()

    @contextmanager
    def staging(self, chapter: str, key: str) -> Iterator[Path]:
        """Yield a temporary folder that becomes ``path(chapter, key)`` when the block succeeds.

        On an exception the temporary folder is removed and the store is unchanged.
        """
        final = self.path(chapter, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".tmp", dir=final.parent))
        try:
            yield temporary
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        if final.exists():
            # Another build finished the same run first; both are equal by construction.
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            os.replace(temporary, final)

    def runs(self, chapter: str | None = None) -> list[Path]:
        """Return the complete run folders, of one chapter or of all."""
        folders = [self.root / chapter] if chapter else self._chapter_folders()
        runs = []
        for folder in folders:
            runs += [p for p in sorted(folder.glob("*")) if p.is_dir() and (p / f"{folder.name}.ipynb").is_file()]
        return runs

    def _chapter_folders(self) -> list[Path]:
        # Hidden folders (the build's kernelspec) are not chapters.
        return sorted(p for p in self.root.glob("*") if p.is_dir() and not p.name.startswith("."))

    def prune(self, keep: Mapping[str, str]) -> list[Path]:
        """Remove every run and leftover temporary folder except ``{chapter: key}`` in ``keep``."""
        removed = []
        for folder in self._chapter_folders():
            for run in sorted(folder.glob("*")):
                if run.is_dir() and keep.get(folder.name) != run.name:
                    shutil.rmtree(run)
                    removed.append(run)
        return removed


def chapter_dir(artifacts_dir: str | os.PathLike | None, chapter: str = "chapter") -> Path:
    """Return the folder a chapter writes its artifacts to, creating it.

    The build passes ``artifacts_dir``. When a notebook runs by hand with
    ``artifacts_dir = None``, a new temporary folder is used and logged.
    """
    if artifacts_dir is None:
        folder = Path(tempfile.mkdtemp(prefix=f"fslib-{chapter}-"))
        logger.warning("artifacts_dir is None; writing the artifacts of %s to %s", chapter, folder)
        return folder
    folder = Path(artifacts_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def upstream_dir(upstream: Mapping[str, str] | None, name: str) -> Path:
    """Return the artifact folder of chapter ``name`` that the build passed in ``upstream``."""
    if not upstream or name not in upstream:
        raise InvalidInputError(
            f"Missing upstream chapter {name!r}: this chapter reads its artifacts. Run it through "
            f"`fslib run` or `fslib book build`, which pass them, or set upstream = {{{name!r}: 'PATH'}} "
            "to a folder under artifacts/."
        )
    folder = Path(upstream[name])
    if not folder.is_dir():
        raise FileNotFoundError(f"Artifact folder of upstream chapter {name} not found: {folder}.")
    return folder


def write_metrics(artifacts_dir: str | os.PathLike, metrics: Mapping[str, Any]) -> Path:
    """Merge ``metrics`` into ``<artifacts_dir>/metrics.json`` (written atomically) and return its path."""
    path = Path(artifacts_dir) / "metrics.json"
    current: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    current.update(metrics)
    with atomic_write(path, "w") as handle:
        json.dump(current, handle, indent=2, sort_keys=True, default=float)
        handle.write("\n")
    return path


def read_metrics(folder: str | os.PathLike) -> dict[str, Any]:
    """Return the ``metrics.json`` of a run folder, or ``{}`` when the chapter wrote none."""
    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}
