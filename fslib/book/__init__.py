"""The companion book: chapters, profiles, the artifact store and the build.

Each chapter is a jupytext ``py:percent`` notebook ``notebooks/NN_name.py``
with a cell tagged ``parameters``. A profile (``book/profiles/*.yaml``) sets
parameters per chapter. :func:`fslib.book.build.build_book` executes every
chapter with papermill into the artifact store
``artifacts/<chapter>/<hash>/``, reusing what a hash of the parameters and
the code still matches, and builds the HTML with Jupyter Book 1.
"""

from __future__ import annotations

from .params import Chapter, find_project_root, load_chapters
from .profiles import load_profile, parse_override, resolve_parameters
from .store import ArtifactStore, chapter_dir, upstream_dir, write_metrics

__all__ = [
    "ArtifactStore",
    "Chapter",
    "chapter_dir",
    "find_project_root",
    "load_chapters",
    "load_profile",
    "parse_override",
    "resolve_parameters",
    "upstream_dir",
    "write_metrics",
]
