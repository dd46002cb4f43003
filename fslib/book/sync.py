"""The ``.ipynb`` copies of the chapters, kept next to each ``notebooks/NN_name.py``.

Binder and Colab open ``.ipynb`` files only, and the book's launch buttons
point at ``notebooks/NN_name.ipynb`` in the repository. These copies hold
no outputs and are paired with the ``.py`` files through jupytext
(``formats: ipynb,py:percent``), so editing either one in Jupyter with
jupytext installed updates both. ``fslib book sync`` rewrites them from the
``.py`` files, and ``fslib book sync --check`` lists the copies whose cells
differ.
"""

from __future__ import annotations

import os
from pathlib import Path

PAIRED_FORMATS = "ipynb,py:percent"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _chapter_sources(root: Path) -> list[Path]:
    return sorted((Path(root) / "notebooks").glob("[0-9][0-9]_*.py"))


def _cells(notebook) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(cell.cell_type, cell.source.strip(), tuple(cell.metadata.get("tags", []))) for cell in notebook.cells]


def paired_notebook(py_path: str | os.PathLike):
    """Return the output-free ``.ipynb`` notebook that pairs with a chapter's ``.py`` file."""
    import jupytext

    notebook = jupytext.read(Path(py_path))
    notebook.metadata.setdefault("jupytext", {})["formats"] = PAIRED_FORMATS
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    for index, cell in enumerate(notebook.cells):
        # Stable ids keep the copy byte-identical between runs.
        cell["id"] = f"cell-{index}"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def write_pairs(root: str | os.PathLike) -> list[Path]:
    """Write ``notebooks/NN_name.ipynb`` for every chapter; return the paths that changed."""
    import nbformat

    written = []
    for source in _chapter_sources(Path(root)):
        target = source.with_suffix(".ipynb")
        text = nbformat.writes(paired_notebook(source)) + "\n"
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def check_pairs(root: str | os.PathLike) -> list[Path]:
    """Return the ``.ipynb`` copies that are missing, hold outputs, or whose cells differ from the ``.py``."""
    import jupytext
    import nbformat

    stale = []
    for source in _chapter_sources(Path(root)):
        target = source.with_suffix(".ipynb")
        if not target.is_file():
            stale.append(target)
            continue
        copy = nbformat.read(target, as_version=4)
        has_outputs = any(cell.get("outputs") for cell in copy.cells if cell.cell_type == "code")
        if has_outputs or _cells(copy) != _cells(jupytext.read(source)):
            stale.append(target)
    return stale
