"""Build profiles: parameter values per chapter, read from YAML.

A profile file maps chapter names to ``{parameter: value}``::

    extends: quick            # optional: start from another profile
    description: one line     # optional
    02_synthetic_data:
      n_per_class: 64

The shipped profiles live in ``book/profiles/``: ``quick`` (CPU, the
default), ``paper`` (GPU, the paper's models and epochs) and ``smoke``
(tiny, for CI). ``extends`` names a shipped profile or a path relative to
the file that extends it. A chapter or parameter that no notebook
declares is an error, not a silent no-op.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..errors import InvalidFileError, InvalidInputError
from .params import Chapter, check_parameter_names

PROFILE_KEYS = ("extends", "description")
_MAX_EXTENDS_DEPTH = 10


def profiles_dir(root: str | os.PathLike) -> Path:
    """Return the folder of the shipped profiles of a project."""
    return Path(root) / "book" / "profiles"


def shipped_profiles(root: str | os.PathLike) -> list[str]:
    """Return the names of the shipped profiles (``quick``, ``paper``, ``smoke``, ...)."""
    return sorted(path.stem for path in profiles_dir(root).glob("*.yaml"))


def _profile_path(root: Path, name_or_path: str | os.PathLike, relative_to: Path | None) -> Path:
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        path = Path(text).expanduser()
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise FileNotFoundError(f"Profile file not found: {path}. Pass a YAML file or one of: "
                                    f"{', '.join(shipped_profiles(root))}.")
        return path
    path = profiles_dir(root) / f"{text}.yaml"
    if not path.is_file():
        raise InvalidInputError(
            f"Unknown profile {text!r}. Expected one of {', '.join(shipped_profiles(root))} or a path to a YAML file."
        )
    return path


def _read_profile_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidFileError(f"Invalid YAML in profile {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidFileError(f"Invalid profile {path}: expected a mapping of chapter names, got {type(data).__name__}.")
    return data


def load_profile(root: str | os.PathLike, name_or_path: str | os.PathLike,
                 chapters: Mapping[str, Chapter]) -> dict[str, dict[str, Any]]:
    """Read a profile (following ``extends``) and check every chapter and parameter name.

    Returns ``{chapter: {parameter: value}}`` with only the values the profile
    chain sets; :func:`resolve_parameters` adds the notebooks' defaults.
    """
    root = Path(root)
    chain: list[Path] = []
    path = _profile_path(root, name_or_path, None)
    while True:
        if path.resolve() in chain:
            raise InvalidFileError(f"Profile {path} extends itself through {', '.join(map(str, chain))}.")
        chain.append(path.resolve())
        if len(chain) > _MAX_EXTENDS_DEPTH:
            raise InvalidFileError(f"Profile {chain[0]} has more than {_MAX_EXTENDS_DEPTH} levels of extends.")
        parent = _read_profile_file(path).get("extends")
        if parent is None:
            break
        if not isinstance(parent, str):
            raise InvalidFileError(f"Invalid extends in {path}: expected a profile name or path, got {parent!r}.")
        path = _profile_path(root, parent, path.parent)

    values: dict[str, dict[str, Any]] = {}
    for path in reversed(chain):
        for chapter_name, chapter_values in _read_profile_file(path).items():
            if chapter_name in PROFILE_KEYS:
                continue
            _check_chapter_values(path, chapter_name, chapter_values, chapters)
            values.setdefault(chapter_name, {}).update(copy.deepcopy(chapter_values or {}))
    return values


def _check_chapter_values(path: Path, chapter_name: Any, chapter_values: Any,
                          chapters: Mapping[str, Chapter]) -> None:
    if chapter_name not in chapters:
        raise InvalidInputError(
            f"Unknown chapter {chapter_name!r} in profile {path}. Known chapters: {', '.join(chapters)}."
        )
    if chapter_values is None:
        return
    if not isinstance(chapter_values, dict):
        raise InvalidFileError(
            f"Invalid entry for chapter {chapter_name} in profile {path}: expected a mapping of parameters, "
            f"got {type(chapter_values).__name__}."
        )
    check_parameter_names(chapters[chapter_name], chapter_values, origin=f"profile {path}")


def parse_override(text: str) -> tuple[str, str, Any]:
    """Split ``chapter.param=value`` into its parts; the value is parsed as YAML (``3``, ``0.1``, ``[1, 2]``)."""
    key, sep, value = text.partition("=")
    chapter, dot, name = key.strip().partition(".")
    if not sep or not dot or not chapter or not name:
        raise InvalidInputError(
            f"Invalid override {text!r}: expected CHAPTER.PARAMETER=VALUE, e.g. 01_fourier_primer.image_size=64."
        )
    return chapter, name.strip(), parse_value(value)


def parse_value(text: str) -> Any:
    """Parse a parameter value given on the command line as YAML; plain text stays a string."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def resolve_parameters(chapters: Mapping[str, Chapter], profile: Mapping[str, Mapping[str, Any]],
                       overrides: Sequence[tuple[str, str, Any]] = ()) -> dict[str, dict[str, Any]]:
    """Return ``{chapter: {parameter: value}}`` that the build injects: the profile's values, then overrides.

    Parameters set by neither keep the notebook's default, which the
    notebook text (part of every chapter's hash) already fixes.
    """
    resolved: dict[str, dict[str, Any]] = {name: {} for name in chapters}
    for chapter_name, values in profile.items():
        resolved[chapter_name].update(copy.deepcopy(dict(values)))
    for chapter_name, name, value in overrides:
        if chapter_name not in chapters:
            raise InvalidInputError(
                f"Unknown chapter {chapter_name!r} in override {chapter_name}.{name}. "
                f"Known chapters: {', '.join(chapters)}."
            )
        check_parameter_names(chapters[chapter_name], [name], origin="the overrides (--set or -p)")
        resolved[chapter_name][name] = value
    return resolved
