"""``fslib book``: build the companion book, list its chapters and parameters, clean the store."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from ..book.build import build_book, plan_runs, profile_tables
from ..book.params import check_parameter_types, find_project_root, load_chapters, parameter_table, reference_page
from ..book.profiles import load_profile, parse_override, resolve_parameters
from ..book.store import ArtifactStore
from ..book.sync import check_pairs, write_pairs


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "book", help="build the companion book and manage its artifacts",
        description="Build the companion book: execute the chapter notebooks with a profile (cached in "
        "artifacts/) and render the HTML with Jupyter Book into _build/html.",
    )
    parser.add_argument("--root", type=Path, default=None,
                        help="book project folder with _toc.yml and notebooks/ (default: found from the current folder)")
    commands = parser.add_subparsers(title="book commands", dest="book_command", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    build = commands.add_parser("build", help="execute changed chapters and build the HTML")
    _profile_options(build)
    build.add_argument("--html", type=Path, default=None, help="output folder for the HTML (default: _build/html)")
    build.add_argument("-W", "--warnings-as-errors", action="store_true",
                       help="fail on any Sphinx warning, as CI does")
    build.add_argument("--execute-only", action="store_true", help="execute the chapters, skip the HTML")
    build.add_argument("--force", action="store_true", help="re-execute every chapter even when cached")
    build.set_defaults(func=_build)

    listing = commands.add_parser("list", help="list the chapters, their dependencies and cache state")
    _profile_options(listing)
    listing.set_defaults(func=_list)

    params = commands.add_parser("params", help="print every chapter's parameters with their value in each profile")
    params.add_argument("--format", choices=("text", "myst"), default="text",
                        help="output format: text (aligned columns) or myst (the MyST page that the book shows "
                        "as its parameter reference) (default: text)")
    params.set_defaults(func=_params)

    clean = commands.add_parser("clean", help="remove cached runs and the built HTML")
    clean.add_argument("--keep-profile", default=None, metavar="PROFILE",
                       help="keep the runs that this profile uses, remove the others")
    clean.set_defaults(func=_clean)

    sync = commands.add_parser("sync", help="write or check the .ipynb copies of the chapters (for launch buttons)")
    sync.add_argument("--check", action="store_true", help="only check; exit 1 when a copy is out of date")
    sync.set_defaults(func=_sync)


def _profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="quick",
                        help="profile name (quick, paper, smoke) or YAML file (default: quick)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="CHAPTER.PARAM=VALUE",
                        help="override one parameter; VALUE is parsed as YAML; repeatable")


def _root(args) -> Path:
    return args.root if args.root is not None else find_project_root()


def _build(args) -> int:
    root = _root(args)
    # Show which chapter runs and how long it took, even at the default log level.
    build_logger = logging.getLogger("fslib.book.build")
    if build_logger.getEffectiveLevel() > logging.INFO:
        build_logger.setLevel(logging.INFO)
    overrides = [parse_override(text) for text in args.overrides]
    report = build_book(root, args.profile, overrides, html_dir=args.html, warnings_as_errors=args.warnings_as_errors,
                        execute_only=args.execute_only, force=args.force)
    cached = [name for name in report.runs if name not in report.executed]
    print(f"executed: {', '.join(report.executed) or 'none'}; cached: {', '.join(cached) or 'none'}")
    timings = ", ".join(f"{stage} {value:.1f} s" for stage, value in report.seconds.items())
    print(f"time: {timings}")
    if report.html_dir is not None:
        print(f"book: {report.html_dir / 'index.html'}")
    return 0


def _list(args) -> int:
    root = _root(args)
    chapters = load_chapters(root)
    overrides = [parse_override(text) for text in args.overrides]
    parameters = resolve_parameters(chapters, load_profile(root, args.profile, chapters), overrides)
    check_parameter_types(chapters, overrides)
    runs = plan_runs(chapters, parameters)
    store = ArtifactStore(root / "artifacts")
    rows = [["chapter", "hash", "state", "title", "reads"]]
    for name, run in runs.items():
        state = "cached" if store.has(name, run.key) else "to run"
        rows.append([name, run.key, state, run.chapter.title, ", ".join(run.chapter.depends)])
    print("\n".join(_aligned(rows)))
    return 0


def _params(args) -> int:
    root = _root(args)
    chapters = load_chapters(root)
    profiles = profile_tables(root, chapters)
    if args.format == "myst":
        sys.stdout.write(reference_page(chapters, profiles) + "\n")
        return 0
    lines = ["Each profile column shows the value that profile sets, blank where the notebook's default applies.",
             "Set a value with fslib run NOTEBOOK -p NAME VALUE or fslib book build --set CHAPTER.NAME=VALUE."]
    for chapter in chapters.values():
        lines += ["", chapter.name + (f": {chapter.title}" if chapter.title else "")]
        if chapter.depends:
            lines.append(f"reads the artifacts of {', '.join(chapter.depends)}")
        header, rows = parameter_table(chapter, profiles)
        lines += ["  " + line for line in _aligned([[word.lower() for word in header], *rows])]
    print("\n".join(lines))
    return 0


def _aligned(rows: list[list[str]]) -> list[str]:
    """Return the rows as lines of columns padded to their widest cell, two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    # The last column is not padded, so that lines carry no trailing spaces.
    widths[-1] = 0
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def _clean(args) -> int:
    root = _root(args)
    store = ArtifactStore(root / "artifacts")
    if args.keep_profile is not None:
        chapters = load_chapters(root)
        runs = plan_runs(chapters, resolve_parameters(chapters, load_profile(root, args.keep_profile, chapters)))
        removed = store.prune({name: run.key for name, run in runs.items()})
        print(f"removed {len(removed)} cached runs")
        return 0
    for folder in (store.root, root / "_build"):
        if folder.exists():
            shutil.rmtree(folder)
            print(f"removed {folder}")
    return 0


def _sync(args) -> int:
    root = _root(args)
    if args.check:
        stale = check_pairs(root)
        for path in stale:
            print(f"out of date: {path} (run fslib book sync)")
        return 1 if stale else 0
    for path in write_pairs(root):
        print(f"wrote {path}")
    return 0
