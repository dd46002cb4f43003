"""Chapters of the book and the parameters their notebooks declare.

A chapter is a jupytext ``py:percent`` notebook ``notebooks/NN_name.py``.
Its parameters are the assignments in the cell tagged ``parameters``
(``# %% tags=["parameters"]``), read here with :mod:`ast` so that a name
the notebook does not declare can be rejected before anything runs
(papermill only warns about such names). A trailing comment on an
assignment is that parameter's description in the reference page.

A chapter that reads another chapter's artifacts names it in the
notebook's jupytext header::

    # ---
    # jupyter:
    #   fslib:
    #     depends: [02_synthetic_data]
    # ---
"""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import InvalidFileError, InvalidInputError

#: Parameters that the build injects into every chapter; profiles cannot set them.
RESERVED_PARAMETERS = ("artifacts_dir", "upstream")

_CHAPTER_NAME = re.compile(r"^\d\d_[a-z0-9_]+$")


@dataclass(frozen=True)
class Parameter:
    """One assignment of a chapter's parameters cell."""

    name: str
    default: Any
    source: str
    description: str = ""
    #: False when the default is an expression such as ``2 ** 10``. ``default`` then contains its source text.
    literal: bool = True


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook, its declared parameters and the chapters it reads from."""

    name: str
    path: Path
    parameters: dict[str, Parameter] = field(hash=False)
    depends: tuple[str, ...] = ()
    title: str = ""

    def defaults(self) -> dict[str, Any]:
        """Return ``{name: default}`` for the parameters a profile may set."""
        return {
            name: parameter.default
            for name, parameter in self.parameters.items()
            if name not in RESERVED_PARAMETERS
        }

    def settable(self) -> list[str]:
        """Return the names a profile or override may set, in cell order."""
        return [name for name in self.parameters if name not in RESERVED_PARAMETERS]


def find_project_root(start: str | os.PathLike | None = None) -> Path:
    """Return the nearest folder at or above ``start`` holding ``_toc.yml`` and ``notebooks/``."""
    start = Path.cwd() if start is None else Path(start)
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        f"No book project found at or above {start}: expected a folder with _toc.yml and notebooks/. "
        "Run the command from the repository root or pass --root."
    )


def _literal_or_source(node: ast.expr, source: str) -> tuple[Any, bool]:
    """Return ``(value, True)`` for a literal and ``(source text, False)`` for another expression."""
    try:
        return ast.literal_eval(node), True
    except ValueError:
        # An expression such as ``2 ** 10`` or ``None if x else y``: keep its text.
        return ast.get_source_segment(source, node), False


def _line_comments(source: str) -> dict[int, str]:
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return comments


def parse_parameters_cell(source: str, *, origin: str = "<parameters cell>") -> dict[str, Parameter]:
    """Return the parameters that the assignments of a ``parameters`` cell declare, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise InvalidFileError(f"Invalid parameters cell in {origin}: {exc.msg} on line {exc.lineno}.") from exc
    comments = _line_comments(source)
    parameters: dict[str, Parameter] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        default, literal = _literal_or_source(value, source)
        parameters[name] = Parameter(
            name=name,
            default=default,
            source=ast.get_source_segment(source, value) or "",
            description=comments.get(node.end_lineno or node.lineno, ""),
            literal=literal,
        )
    return parameters


def read_notebook(path: str | os.PathLike):
    """Read a chapter notebook (any jupytext format) as an ``nbformat`` notebook."""
    import jupytext

    return jupytext.read(Path(path))


def _title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def load_chapter(path: str | os.PathLike) -> Chapter:
    """Read one chapter notebook: its name, parameters, dependencies and title."""
    path = Path(path)
    name = path.stem
    if not _CHAPTER_NAME.match(name):
        raise InvalidFileError(
            f"Invalid chapter file name {path.name!r}: expected NN_name.py with two digits, "
            "an underscore and lower-case letters, digits or underscores, e.g. 03_learning_dynamics.py."
        )
    notebook = read_notebook(path)
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(cells) != 1:
        raise InvalidFileError(
            f"Invalid chapter {path}: expected exactly one cell tagged 'parameters', found {len(cells)}. "
            "Mark it with # %% tags=[\"parameters\"]."
        )
    parameters = parse_parameters_cell(cells[0].source, origin=str(path))
    for reserved in RESERVED_PARAMETERS:
        if reserved not in parameters:
            raise InvalidFileError(
                f"Invalid chapter {path}: its parameters cell must declare {reserved!r} "
                f"(e.g. {reserved} = None), which the build sets."
            )
    depends = notebook.metadata.get("fslib", {}).get("depends", []) or []
    if isinstance(depends, str) or not all(isinstance(item, str) for item in depends):
        raise InvalidFileError(
            f"Invalid fslib.depends in the header of {path}: expected a list of chapter names, got {depends!r}."
        )
    return Chapter(name=name, path=path, parameters=parameters, depends=tuple(depends), title=_title(notebook))


def load_chapters(root: str | os.PathLike) -> dict[str, Chapter]:
    """Read every ``notebooks/NN_*.py`` chapter of a project, ordered so each follows its dependencies."""
    root = Path(root)
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))
    chapters = {path.stem: load_chapter(path) for path in paths}
    for chapter in chapters.values():
        for dependency in chapter.depends:
            if dependency not in chapters:
                raise InvalidFileError(
                    f"Chapter {chapter.name} depends on unknown chapter {dependency!r}. "
                    f"Known chapters: {', '.join(chapters) or 'none'}."
                )
    return _topological_order(chapters)


def _topological_order(chapters: dict[str, Chapter]) -> dict[str, Chapter]:
    ordered: dict[str, Chapter] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise InvalidFileError(f"Chapter dependencies form a cycle through {name}; remove one fslib.depends entry.")
        visiting.add(name)
        for dependency in chapters[name].depends:
            visit(dependency)
        visiting.discard(name)
        ordered[name] = chapters[name]

    for name in chapters:
        visit(name)
    return ordered


def dependants(chapters: dict[str, Chapter], name: str) -> list[str]:
    """Return the chapters that read ``name``'s artifacts, directly or through others."""
    result: list[str] = []
    for chapter in chapters.values():
        if any(dep == name or dep in result for dep in chapter.depends):
            result.append(chapter.name)
    return result


def check_parameter_names(chapter: Chapter, names, *, origin: str) -> None:
    """Raise :class:`InvalidInputError` for a name that ``chapter`` does not declare or that the build sets."""
    valid = chapter.settable()
    for name in names:
        if name in RESERVED_PARAMETERS:
            raise InvalidInputError(
                f"Invalid parameter {chapter.name}.{name} in {origin}: the build sets {name} itself. "
                f"Settable parameters: {', '.join(valid)}."
            )
        if name not in chapter.parameters:
            raise InvalidInputError(
                f"Unknown parameter {name!r} for chapter {chapter.name} in {origin}. "
                f"Valid parameters: {', '.join(valid)}."
            )


def _expected_type(default: Any) -> tuple[tuple[type, ...], str] | None:
    """Return the types a value may have where ``default`` is the notebook's value, and their name."""
    if isinstance(default, bool):
        return (bool,), "a bool (true or false)"
    if isinstance(default, int):
        return (int,), "an int"
    if isinstance(default, float):
        return (int, float), "a number"
    if isinstance(default, str):
        return (str,), "a string"
    if isinstance(default, (list, tuple)):
        return (list, tuple), "a list"
    if isinstance(default, dict):
        return (dict,), "a mapping"
    return None


def _yaml_text(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    return text.removesuffix("...").strip()


def check_parameter_types(chapters: dict[str, Chapter], values: Iterable[tuple[str, str, Any]]) -> None:
    """Raise :class:`InvalidInputError` for a ``(chapter, name, value)`` whose type does not match the default.

    The type of the notebook's default decides: a bool, an int, a number (an
    int or a float), a string, a list or a mapping. ``None`` passes for
    every parameter, because several chapters accept it in place of a number
    (for example ``train_size = 1000  # None: the preset's size``) and the
    notebook checks it. A parameter whose default is ``None`` or an
    expression accepts any value. Unknown chapters and names are left to
    :func:`check_parameter_names`.
    """
    for chapter_name, name, value in values:
        chapter = chapters.get(chapter_name)
        parameter = chapter.parameters.get(name) if chapter is not None else None
        if parameter is None or not parameter.literal or value is None:
            continue
        expected = _expected_type(parameter.default)
        if expected is None:
            continue
        types, type_name = expected
        if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
            continue
        raise InvalidInputError(
            f"Invalid value {value!r} for parameter {chapter_name}.{name}: expected {type_name} like its "
            f"default {parameter.source}, got {type(value).__name__}. Pass a value such as "
            f"{_yaml_text(parameter.default)}."
        )


def reference_page(chapters: dict[str, Chapter], profiles: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Write the MyST page listing every chapter's parameters with their value in each profile."""
    lines = [
        "(parameters)=",
        "# Parameters of every chapter",
        "",
        "Each chapter declares its parameters in a cell tagged `parameters`. The table gives the "
        "notebook's default and the value each shipped profile sets (blank: the default). "
        "Change them with `fslib run notebooks/<chapter>.py -p NAME VALUE` or "
        "`fslib book build --set <chapter>.NAME=VALUE`; see {doc}`rerun`.",
        "",
        "This page is generated from the notebooks and `book/profiles/*.yaml` at build time.",
        "",
    ]
    for chapter in chapters.values():
        heading = f"`{chapter.name}`" + (f": {chapter.title}" if chapter.title else "")
        lines += [f"## {heading}", ""]
        if chapter.depends:
            lines += ["Reads the artifacts of: " + ", ".join(f"`{dep}`" for dep in chapter.depends) + ".", ""]
        header, rows = parameter_table(chapter, profiles)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for name, default, *values, description in rows:
            cells = [f"`{name}`", _cell(default), *(_cell(value) for value in values), _cell(description, code=False)]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parameter_table(chapter: Chapter,
                    profiles: dict[str, dict[str, dict[str, Any]]]) -> tuple[list[str], list[list[str]]]:
    """Return the header and the rows of a chapter's parameter table, as plain text.

    Each row is the name, the default's source text, the ``repr`` of the
    value each profile sets (``""`` where it keeps the default) and the
    description.
    """
    header = ["Parameter", "Default", *profiles, "Meaning"]
    rows = []
    for name in chapter.settable():
        parameter = chapter.parameters[name]
        values = []
        for profile_values in profiles.values():
            chapter_values = profile_values.get(chapter.name, {})
            values.append(repr(chapter_values[name]) if name in chapter_values else "")
        rows.append([name, parameter.source, *values, parameter.description])
    return header, rows


def _cell(text: str, *, code: bool = True) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    if not text:
        return ""
    return f"`{text}`" if code else text
