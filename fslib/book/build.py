"""Execute the chapters with papermill and build the HTML with Jupyter Book 1.

:func:`build_book` is what ``fslib book build`` and ``make book`` run:

1. read the chapters (``notebooks/NN_*.py``) and the profile;
2. for each chapter, in dependency order, compute its hash and execute it
   into the artifact store unless a complete run with that hash exists;
3. copy the book pages and the executed notebooks into a temporary source
   folder, generate the parameter reference page, and run
   ``jupyter-book build`` there with execution off;
4. replace ``_build/html`` with the new HTML only when everything succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._io import atomic_directory, atomic_write
from ..errors import FslibError
from .params import Chapter, check_parameter_types, load_chapters, read_notebook, reference_page
from .profiles import load_profile, resolve_parameters, shipped_profiles
from .store import ArtifactStore, chapter_hash, code_fingerprint

logger = logging.getLogger(__name__)

KERNEL_NAME = "fslib-book"
INJECTED_TAG = "injected-parameters"
BOOK_FILES = ("_config.yml", "_toc.yml")
BOOK_FOLDERS = ("book",)


class ChapterFailedError(FslibError):
    """A chapter notebook raised while it was executed."""


class BookBuildError(FslibError):
    """Jupyter Book failed to turn the executed chapters into HTML."""


@dataclass(frozen=True)
class ChapterRun:
    """One chapter's place in a build: its hash, injected parameters and upstream hashes."""

    chapter: Chapter
    key: str
    parameters: dict[str, Any] = field(hash=False)
    upstream: dict[str, str] = field(hash=False)


@dataclass
class BuildReport:
    """Outcome of a build: the chapter runs, the executed chapters and the seconds each stage took."""

    runs: dict[str, ChapterRun]
    executed: list[str]
    html_dir: Path | None
    seconds: dict[str, float]


def ensure_kernel(folder: str | os.PathLike) -> str:
    """Write a kernelspec that runs this interpreter and put ``folder`` on ``JUPYTER_PATH``.

    Papermill then starts the chapters with the same Python (and so the same
    installed fslib) as the build, whatever kernels the machine has. The
    spec's metadata is the installed ipykernel's own, so it declares CurveZMQ
    transport encryption exactly when that ipykernel supports it.
    """
    from ipykernel.kernelspec import get_kernel_dict

    folder = Path(folder).resolve()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (fslib book)",
        "language": "python",
        "metadata": get_kernel_dict().get("metadata", {}),
    }
    path = folder / "kernels" / KERNEL_NAME / "kernel.json"
    if not path.is_file() or json.loads(path.read_text()) != spec:
        with atomic_write(path, "w") as handle:
            json.dump(spec, handle, indent=1)
    entries = [entry for entry in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if entry]
    if str(folder) not in entries:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(folder), *entries])
    return KERNEL_NAME


def plan_runs(chapters: Mapping[str, Chapter], parameters: Mapping[str, Mapping[str, Any]],
              code: str | None = None) -> dict[str, ChapterRun]:
    """Compute every chapter's hash from its notebook text, parameters, the code and its upstream hashes."""
    code = code_fingerprint() if code is None else code
    runs: dict[str, ChapterRun] = {}
    for name, chapter in chapters.items():
        upstream = {dep: runs[dep].key for dep in chapter.depends}
        text = chapter.path.read_text(encoding="utf-8")
        key = chapter_hash(name, text, parameters.get(name, {}), code, upstream)
        runs[name] = ChapterRun(chapter=chapter, key=key, parameters=dict(parameters.get(name, {})),
                                upstream=upstream)
    return runs


def _kernel_config():
    """Return the traitlets config under which papermill starts a chapter's kernel.

    Where pyzmq has CurveZMQ, the kernel manager gives the kernel encryption
    keys, so ipykernel 7.4 does not log its warning about unencrypted
    TCP on every start. Cell errors still reach papermill, which raises.
    NOTE: checked with jupyter_client 8.10. A release without the
    ``transport_encryption`` option does not apply it, and its kernel
    then runs unencrypted and logs the warning as before.
    """
    import zmq
    from traitlets.config import Config

    if not zmq.has("curve"):
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return ""


def execute_chapter(chapter: Chapter, parameters: Mapping[str, Any], upstream: Mapping[str, str],
                    out_dir: str | os.PathLike, *, kernel_name: str, failure_copy: Path | None = None,
                    timeout: float | None = None) -> Path:
    """Execute one chapter with papermill into ``out_dir`` and return the executed notebook's path.

    The notebook gets ``parameters`` plus ``artifacts_dir`` (``out_dir``) and
    ``upstream`` (``{chapter: folder}``) and runs with ``out_dir`` as its
    working folder. A failing cell raises :class:`ChapterFailedError` with
    one line naming the chapter, the cell (its index in the ``.py``
    notebook, counting from 0) and the error.
    """
    import jupytext
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{chapter.name}.ipynb"
    notebook = jupytext.read(chapter.path)
    injected = {**parameters, "artifacts_dir": str(out_dir.resolve()), "upstream": dict(upstream)}
    with tempfile.TemporaryDirectory(prefix="fslib-book-") as scratch:
        source = Path(scratch) / f"{chapter.name}.ipynb"
        nbformat.write(notebook, source)
        try:
            papermill.execute_notebook(
                str(source), str(output), parameters=injected, kernel_name=kernel_name, cwd=str(out_dir),
                progress_bar=False, request_save_on_cell_execute=False, execution_timeout=timeout,
                config=_kernel_config(),
            )
        except PapermillExecutionError as exc:
            raise _failure(chapter, exc, output, failure_copy) from None
    return output


def _failure(chapter: Chapter, exc, output: Path, failure_copy: Path | None) -> ChapterFailedError:
    cell_index = exc.cell_index
    if output.is_file():
        executed = read_notebook(output)
        injected_at = [i for i, cell in enumerate(executed.cells) if INJECTED_TAG in cell.metadata.get("tags", [])]
        if injected_at and cell_index > injected_at[0]:
            cell_index -= 1
        if failure_copy is not None:
            failure_copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(output, failure_copy)
    evalue = " ".join(str(exc.evalue).split())
    message = (f"Chapter {chapter.name} failed in cell {cell_index} ({_first_line(exc.source)!r}): "
               f"{exc.ename}: {evalue}")
    if failure_copy is not None and failure_copy.is_file():
        message += f" (executed notebook: {failure_copy})"
    return ChapterFailedError(message)


def run_chapters(runs: Mapping[str, ChapterRun], store: ArtifactStore, *, kernel_name: str,
                 force: bool = False) -> list[str]:
    """Execute every run that the store lacks, in order; return the names of the executed chapters."""
    executed = []
    for name, run in runs.items():
        if store.has(name, run.key) and not force:
            logger.info("%s: reusing %s", name, store.path(name, run.key))
            continue
        upstream = {dep: str(store.path(dep, key).resolve()) for dep, key in run.upstream.items()}
        logger.info("%s: executing into %s", name, store.path(name, run.key))
        start = time.perf_counter()
        if force and store.path(name, run.key).exists():
            shutil.rmtree(store.path(name, run.key))
        with store.staging(name, run.key) as folder:
            execute_chapter(run.chapter, run.parameters, upstream, folder, kernel_name=kernel_name,
                            failure_copy=store.root / name / "last-failure.ipynb")
            _write_params(folder / "params.json", run)
        logger.info("%s: executed in %.1f s", name, time.perf_counter() - start)
        executed.append(name)
    return executed


def _write_params(path: Path, run: ChapterRun) -> None:
    with atomic_write(path, "w") as handle:
        json.dump({"chapter": run.chapter.name, "hash": run.key, "parameters": run.parameters,
                   "upstream": run.upstream}, handle, indent=2, sort_keys=True, default=repr)
        handle.write("\n")


def book_notebook(executed_path: str | os.PathLike, run: ChapterRun):
    """Return the executed notebook as the book shows it.

    The injected-parameters cell lists only the values the profile set (not
    the build's folder paths), and the kernelspec is the plain ``python3``
    one, so a downloaded notebook opens in any Jupyter.
    """
    import nbformat

    notebook = nbformat.read(executed_path, as_version=4)
    cells = []
    for cell in notebook.cells:
        if INJECTED_TAG in cell.metadata.get("tags", []):
            if not run.parameters:
                continue
            lines = ["# Parameters set by the build profile"]
            lines += [f"{name} = {value!r}" for name, value in run.parameters.items()]
            cell.source = "\n".join(lines)
        cells.append(cell)
    notebook.cells = cells
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return notebook


def _stage_sources(root: Path, runs: Mapping[str, ChapterRun], store: ArtifactStore, staging: Path,
                   reference: str) -> None:
    import nbformat

    for name in BOOK_FILES:
        shutil.copy2(root / name, staging / name)
    for name in BOOK_FOLDERS:
        shutil.copytree(root / name, staging / name)
    (staging / "book" / "parameters.md").write_text(reference, encoding="utf-8")
    (staging / "notebooks").mkdir()
    for name, run in runs.items():
        notebook = book_notebook(store.notebook_path(name, run.key), run)
        nbformat.write(notebook, staging / "notebooks" / f"{name}.ipynb")


def jupyter_book_command() -> list[str]:
    """Return the command that runs Jupyter Book with this interpreter's installation."""
    script = Path(sys.executable).parent / "jupyter-book"
    if script.is_file():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found is None:
        raise BookBuildError("jupyter-book not found: install the book extra with pip install -e '.[book]'.")
    return [found]


def build_html(root: str | os.PathLike, runs: Mapping[str, ChapterRun], store: ArtifactStore,
               html_dir: str | os.PathLike, *, reference: str, warnings_as_errors: bool = False) -> Path:
    """Build the HTML from the executed chapters and replace ``html_dir`` only when the build succeeds."""
    root = Path(root)
    html_dir = Path(html_dir)
    html_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".jupyter-book-", dir=html_dir.parent) as scratch:
        staging = Path(scratch) / "source"
        staging.mkdir()
        _stage_sources(root, runs, store, staging, reference)
        command = [*jupyter_book_command(), "build", str(staging), "--path-output", str(Path(scratch) / "out"),
                   "--builder", "html"]
        if warnings_as_errors:
            command += ["--warningiserror", "--keep-going"]
        logger.info("running %s", " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True, cwd=staging)
        built = Path(scratch) / "out" / "_build" / "html"
        failed = result.returncode != 0 or not (built / "index.html").is_file()
        if failed or "Traceback" in result.stdout:
            details = _sphinx_problems(result.stdout + "\n" + result.stderr, staging)
            raise BookBuildError(f"Jupyter Book build failed (exit status {result.returncode}): {details}")
        with atomic_directory(html_dir) as target:
            shutil.copytree(built, target, dirs_exist_ok=True)
    return html_dir


def _sphinx_problems(output: str, staging: Path) -> str:
    lines = [line.replace(str(staging) + os.sep, "") for line in output.splitlines()]
    problems = [line for line in lines if "WARNING" in line or "ERROR" in line or "Error" in line]
    return " | ".join(problems[:10]) or " | ".join(lines[-5:])


def profile_tables(root: Path, chapters: Mapping[str, Chapter]) -> dict[str, dict[str, dict[str, Any]]]:
    """Return the values of every shipped profile, for the parameter reference page."""
    return {name: load_profile(root, name, chapters) for name in shipped_profiles(root)}


def build_book(root: str | os.PathLike, profile: str | os.PathLike = "quick",
               overrides: Sequence[tuple[str, str, Any]] = (), *, html_dir: str | os.PathLike | None = None,
               artifacts_dir: str | os.PathLike | None = None, warnings_as_errors: bool = False,
               execute_only: bool = False, force: bool = False) -> BuildReport:
    """Execute what changed and build the book's HTML (``_build/html`` unless ``html_dir`` is given)."""
    root = Path(root).resolve()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    chapters = load_chapters(root)
    profile_values = load_profile(root, profile, chapters)
    parameters = resolve_parameters(chapters, profile_values, overrides)
    check_parameter_types(chapters, overrides)
    runs = plan_runs(chapters, parameters)
    reference = reference_page(chapters, profile_tables(root, chapters))

    store = ArtifactStore(root / "artifacts" if artifacts_dir is None else artifacts_dir)
    kernel_name = ensure_kernel(store.root / ".jupyter")
    executed = run_chapters(runs, store, kernel_name=kernel_name, force=force)
    seconds["execute"] = time.perf_counter() - start

    if execute_only:
        return BuildReport(runs=runs, executed=executed, html_dir=None, seconds=seconds)
    html_dir = root / "_build" / "html" if html_dir is None else Path(html_dir)
    start = time.perf_counter()
    build_html(root, runs, store, html_dir, reference=reference, warnings_as_errors=warnings_as_errors)
    seconds["html"] = time.perf_counter() - start
    return BuildReport(runs=runs, executed=executed, html_dir=html_dir, seconds=seconds)
