"""``fslib run``: execute one chapter notebook with new parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._io import atomic_directory
from ..book.build import ensure_kernel, execute_chapter, plan_runs, run_chapters
from ..book.params import check_parameter_types, find_project_root, load_chapter, load_chapters
from ..book.profiles import load_profile, parse_value, resolve_parameters
from ..book.store import ArtifactStore
from ..errors import InvalidInputError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="execute one chapter notebook with new parameters",
        description="Execute one chapter (notebooks/NN_name.py) with papermill. Parameters come from the "
        "notebook's defaults, then the profile, then -p. Chapters it depends on are taken from the "
        "artifact store, and executed there first when missing.",
    )
    parser.add_argument("notebook", help="chapter notebook, e.g. notebooks/01_fourier_primer.py")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="set a parameter; VALUE is parsed as YAML (3, 0.1, [1, 2], text, null) and must "
                        "have the type of the notebook's default, where an int passes for a float; repeatable")
    parser.add_argument("--profile", default="quick",
                        help="profile name (quick, paper, smoke) or YAML file (default: quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the executed notebook and the artifacts; replaced when the run "
                        "succeeds (default: the chapter's folder in artifacts/)")
    parser.add_argument("--root", type=Path, default=None,
                        help="book project folder with _toc.yml and notebooks/ (default: found from the notebook)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    notebook = Path(args.notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"Notebook not found: {notebook}. Pass a chapter such as notebooks/01_fourier_primer.py.")
    root = args.root if args.root is not None else find_project_root(notebook.resolve().parent)
    chapters = load_chapters(root)
    name = load_chapter(notebook).name
    if name not in chapters:
        raise InvalidInputError(f"Invalid notebook {notebook}: it is not a chapter of {root / 'notebooks'}.")

    overrides = [(name, key, parse_value(value)) for key, value in args.parameter]
    parameters = resolve_parameters(chapters, load_profile(root, args.profile, chapters), overrides)
    # Checked before any chapter runs, so a mistyped value does not fail halfway through the notebook.
    check_parameter_types(chapters, overrides)
    runs = plan_runs(chapters, parameters)
    store = ArtifactStore(Path(root) / "artifacts")
    kernel_name = ensure_kernel(store.root / ".jupyter")

    needed = _ancestors(chapters, name)
    run_chapters({dep: runs[dep] for dep in runs if dep in needed}, store, kernel_name=kernel_name)
    run = runs[name]
    if args.out is None:
        run_chapters({name: run}, store, kernel_name=kernel_name, force=True)
        folder = store.path(name, run.key)
    else:
        upstream = {dep: str(store.path(dep, key).resolve()) for dep, key in run.upstream.items()}
        with atomic_directory(args.out) as folder:
            execute_chapter(run.chapter, run.parameters, upstream, folder, kernel_name=kernel_name,
                            failure_copy=Path(str(args.out) + ".failed.ipynb"))
        folder = args.out
    print(f"{name}: executed notebook {folder / (name + '.ipynb')}", file=sys.stdout)
    return 0


def _ancestors(chapters, name: str) -> set[str]:
    found: set[str] = set()
    stack = list(chapters[name].depends)
    while stack:
        dep = stack.pop()
        if dep not in found:
            found.add(dep)
            stack.extend(chapters[dep].depends)
    return found
