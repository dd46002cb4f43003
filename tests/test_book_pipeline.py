"""The book pipeline: profiles, overrides, hashing, failures, ``fslib run``, the .ipynb copies and the smoke build."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fslib.book.build import BookBuildError, ChapterFailedError, build_book, build_html, plan_runs
from fslib.book.params import Chapter, check_parameter_types, load_chapters, parse_parameters_cell, reference_page
from fslib.book.profiles import load_profile, parse_override, resolve_parameters
from fslib.book.store import ArtifactStore
from fslib.book.sync import check_pairs
from fslib.cli import main
from fslib.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[1]

HEADER = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
{extra}# ---
"""


def _notebook(depends: list[str] | None = None, body: str = "print(size * 2)") -> str:
    extra = f"#   fslib:\n#     depends: {depends}\n" if depends else ""
    return HEADER.format(extra=extra) + textwrap.dedent(f"""
        # %% [markdown]
        # # A test chapter

        # %% tags=["parameters"]
        size = 4  # image side in pixels
        name = "a"
        artifacts_dir = None
        upstream = None

        # %%
        x = 1

        # %%
        {body}
        """)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_first.py").write_text(_notebook())
    (tmp_path / "notebooks" / "02_second.py").write_text(_notebook(depends=["01_first"]))
    (tmp_path / "notebooks" / "03_third.py").write_text(_notebook())
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    profiles = tmp_path / "book" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "quick.yaml").write_text("01_first:\n  size: 8\n")
    return tmp_path


def test_parameters_cell_parsed():
    parameters = parse_parameters_cell("a = 3  # three\nb: float = 0.5\nc = 2 ** 4\n")
    assert parameters["a"].default == 3
    assert parameters["a"].description == "three"
    assert parameters["b"].default == 0.5
    assert parameters["c"].default == "2 ** 4"


def test_chapters_follow_dependencies(project):
    chapters = load_chapters(project)
    assert list(chapters) == ["01_first", "02_second", "03_third"]
    assert chapters["02_second"].depends == ("01_first",)


def test_profile_unknown_chapter(project):
    (project / "book" / "profiles" / "bad.yaml").write_text("04_missing:\n  size: 2\n")
    with pytest.raises(InvalidInputError, match="Unknown chapter '04_missing'"):
        load_profile(project, "bad", load_chapters(project))


def test_profile_unknown_parameter(project):
    (project / "book" / "profiles" / "bad.yaml").write_text("01_first:\n  width: 2\n")
    with pytest.raises(InvalidInputError, match="Valid parameters: size, name"):
        load_profile(project, "bad", load_chapters(project))


def test_profile_rejects_reserved(project):
    (project / "book" / "profiles" / "bad.yaml").write_text("01_first:\n  artifacts_dir: /tmp\n")
    with pytest.raises(InvalidInputError, match="build sets artifacts_dir"):
        load_profile(project, "bad", load_chapters(project))


def test_profile_extends(project, tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("extends: quick\n03_third:\n  name: b\n")
    values = load_profile(project, str(user), load_chapters(project))
    assert values["01_first"] == {"size": 8}
    assert values["03_third"] == {"name": "b"}


def test_unknown_profile_name(project):
    with pytest.raises(InvalidInputError, match="Expected one of quick"):
        load_profile(project, "fast", load_chapters(project))


@pytest.mark.parametrize("text, expected", [
    ("01_first.size=16", ("01_first", "size", 16)),
    ("01_first.name=abc", ("01_first", "name", "abc")),
    ("01_first.size=[1, 2]", ("01_first", "size", [1, 2])),
    ("01_first.size=0.5", ("01_first", "size", 0.5)),
    ("01_first.name=a=b", ("01_first", "name", "a=b")),
])
def test_override_parsed(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["size=3", "01_first.size", ".size=3"])
def test_override_invalid(text):
    with pytest.raises(InvalidInputError, match="CHAPTER.PARAMETER=VALUE"):
        parse_override(text)


def test_override_unknown_parameter(project):
    chapters = load_chapters(project)
    with pytest.raises(InvalidInputError, match="Unknown parameter 'width'"):
        resolve_parameters(chapters, {}, [("01_first", "width", 3)])


def test_override_beats_profile(project):
    chapters = load_chapters(project)
    values = resolve_parameters(chapters, load_profile(project, "quick", chapters), [("01_first", "size", 32)])
    assert values["01_first"] == {"size": 32}


def test_hash_changes_with_dependants(project):
    chapters = load_chapters(project)
    base = plan_runs(chapters, resolve_parameters(chapters, {}), code="c")
    changed = plan_runs(chapters, resolve_parameters(chapters, {}, [("01_first", "size", 5)]), code="c")
    assert changed["01_first"].key != base["01_first"].key
    assert changed["02_second"].key != base["02_second"].key
    assert changed["03_third"].key == base["03_third"].key


def test_hash_stable(project):
    chapters = load_chapters(project)
    first = plan_runs(chapters, resolve_parameters(chapters, {}), code="c")
    second = plan_runs(load_chapters(project), resolve_parameters(chapters, {}), code="c")
    assert {name: run.key for name, run in first.items()} == {name: run.key for name, run in second.items()}


def test_hash_follows_code_and_text(project):
    chapters = load_chapters(project)
    base = plan_runs(chapters, {}, code="c")
    assert plan_runs(chapters, {}, code="d")["03_third"].key != base["03_third"].key
    path = project / "notebooks" / "03_third.py"
    path.write_text(path.read_text() + "\n# %%\nx = 2\n")
    assert plan_runs(load_chapters(project), {}, code="c")["03_third"].key != base["03_third"].key


def test_failure_message_keeps_build(project, tmp_path):
    (project / "notebooks" / "02_second.py").write_text(_notebook(body="y = 1 / 0  # divide"))
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("previous build")
    with pytest.raises(ChapterFailedError) as info:
        build_book(project, "quick", html_dir=html, artifacts_dir=tmp_path / "store")
    message = str(info.value)
    assert "Chapter 02_second" in message
    assert "cell 3 ('y = 1 / 0  # divide')" in message
    assert "ZeroDivisionError" in message
    assert "\n" not in message
    assert (html / "index.html").read_text() == "previous build"
    assert [p.name for p in (tmp_path / "store" / "02_second").iterdir()] == ["last-failure.ipynb"]


@pytest.mark.book
def test_sphinx_failure_keeps_build(tmp_path):
    (tmp_path / "_config.yml").write_text('title: t\nexecute:\n  execute_notebooks: "off"\n')
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nSee {doc}`missing_page`.\n")
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("previous build")
    with pytest.raises(BookBuildError, match="missing_page"):
        build_html(tmp_path, {}, ArtifactStore(tmp_path / "store"), html, reference="# Parameters\n",
                   warnings_as_errors=True)
    assert (html / "index.html").read_text() == "previous build"


def test_run_unknown_parameter(project, capsys):
    status = main(["run", str(project / "notebooks" / "01_first.py"), "-p", "width", "3"])
    assert status == 2
    error = capsys.readouterr().err
    assert "Unknown parameter 'width'" in error
    assert "Valid parameters: size, name" in error


def test_run_writes_notebook(project, tmp_path, capfd):
    out = tmp_path / "run"
    status = main(["run", str(project / "notebooks" / "03_third.py"), "-p", "size", "21", "--out", str(out)])
    assert status == 0
    executed = (out / "03_third.ipynb").read_text()
    assert '"42\\n"' in executed
    # capfd also captures the kernel process, which writes its log to the inherited standard error.
    output = capfd.readouterr()
    assert "03_third.ipynb" in output.out
    assert "running over TCP" not in output.err


def test_ipynb_copies_in_sync():
    assert check_pairs(REPO) == []


@pytest.mark.parametrize("profile", ["quick", "paper", "smoke"])
def test_shipped_profile_valid(profile):
    values = load_profile(REPO, profile, load_chapters(REPO))
    assert values, f"profile {profile} sets no parameter"


def test_reference_page_complete():
    chapters = load_chapters(REPO)
    page = reference_page(chapters, {})
    for chapter in chapters.values():
        for name in chapter.settable():
            assert f"`{name}`" in page, f"{chapter.name}.{name} missing from the parameter reference"


_SMOKE_SITE: dict[str, tuple[Path, list[str]]] = {}


def smoke_site(config) -> tuple[Path, list[str]]:
    """Build the book with the smoke profile once per test run; return the HTML folder and the chapters.

    The artifact store lives in pytest's cache folder, so a later run with
    unchanged code only renders the HTML.
    """
    if "site" not in _SMOKE_SITE:
        store = config.cache.mkdir("fslib_book_artifacts")
        html = config.cache.mkdir("fslib_book_html") / "html"
        report = build_book(REPO, "smoke", html_dir=html, artifacts_dir=store, warnings_as_errors=True)
        _SMOKE_SITE["site"] = (html, list(report.runs))
    return _SMOKE_SITE["site"]


@pytest.mark.book
def test_smoke_build(request):
    html, chapters = smoke_site(request.config)
    assert (html / "index.html").is_file()
    for name in chapters:
        assert (html / "notebooks" / f"{name}.html").is_file()


def _chapter(cell: str):
    return Chapter(name="01_x", path=Path("01_x.py"), parameters=parse_parameters_cell(cell))


@pytest.mark.parametrize("cell, value", [
    ("a = 0.5", 2),
    ("a = 0.5", 2.5),
    ("a = 3", None),
    ("a = None", "text"),
    ("a = 2 ** 4", "text"),
    ("a = [1, 2]", [3]),
    ("a = True", False),
    ("a = 'x'", "y"),
])
def test_parameter_type_accepted(cell, value):
    check_parameter_types({"01_x": _chapter(cell)}, [("01_x", "a", value)])


@pytest.mark.parametrize("cell, value, expected", [
    ("a = 3", 2.5, "an int"),
    ("a = 3", True, "an int"),
    ("a = 0.5", "abc", "a number"),
    ("a = True", 1, "a bool"),
    ("a = 'x'", 3, "a string"),
    ("a = [1, 2]", "1", "a list"),
])
def test_parameter_type_rejected(cell, value, expected):
    with pytest.raises(InvalidInputError, match=f"expected {expected}"):
        check_parameter_types({"01_x": _chapter(cell)}, [("01_x", "a", value)])


def test_run_bad_type_stops_early(project, capsys):
    status = main(["run", str(project / "notebooks" / "01_first.py"), "-p", "size", "abc"])
    assert status == 2
    error = capsys.readouterr().err
    assert "Invalid value 'abc' for parameter 01_first.size" in error
    assert "expected an int" in error
    assert "Pass a value such as 4." in error
    assert not (project / "artifacts").exists()


def test_build_bad_type_stops_early(project, tmp_path):
    with pytest.raises(InvalidInputError, match="01_first.size"):
        build_book(project, "quick", [("01_first", "size", [1])], artifacts_dir=tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_book_list_aligned(project, capsys):
    assert main(["book", "--root", str(project), "list"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    chapters = load_chapters(project)
    runs = plan_runs(chapters, resolve_parameters(chapters, load_profile(project, "quick", chapters)))
    assert [line.split()[0] for line in lines] == list(runs)
    assert {line.index(runs[line.split()[0]].key) for line in lines} == {header.index("hash")}
    assert {line.index("to run") for line in lines} == {header.index("state")}


def test_book_params_text(project, capsys):
    assert main(["book", "--root", str(project), "params"]) == 0
    output = capsys.readouterr().out
    assert "`" not in output
    assert "|" not in output
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("  size")]
    for i in starts:
        assert lines[i].index("image side") == lines[i - 1].index("meaning")
    rows = [lines[i].split() for i in starts]
    assert rows[0] == ["size", "4", "8", "image", "side", "in", "pixels"]
    assert rows[1:] == [["size", "4", "image", "side", "in", "pixels"]] * 2


def test_book_params_myst(project, capsys):
    assert main(["book", "--root", str(project), "params", "--format", "myst"]) == 0
    chapters = load_chapters(project)
    expected = reference_page(chapters, {"quick": load_profile(project, "quick", chapters)})
    assert capsys.readouterr().out == expected + "\n"
