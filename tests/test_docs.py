"""The README and docs/ stay honest: short, no private tracker references, no dead paths, and
no measurements left in code comments (they belong in docs/performance.md)."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINKED_DOCS = [README, ROOT / "docs" / "architecture.md"]

# A timing figure: a number followed by a time unit ("0.58 ms", "61 us", "97 -> 69 µs").
TIMING = re.compile(r"(?<![\w.])\d+(?:\.\d+)? ?(?:ms|us|µs|ns)\b")
# `path/like/this.py`, `kernels/cpu/`, `README.md`: something in backticks that names a file.
BACKTICKED = re.compile(r"`([^`\s]+)`")
REPO_PATH = re.compile(r"^[\w.\-/]+$")
FILE_SUFFIXES = (".py", ".md", ".cu", ".cpp", ".h")
SOURCE_DIRS = ("tinygrad_like", "kernels", "tests", "benchmarks", "docs")


def _readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def test_readme_is_short():
    assert len(_readme_lines()) <= 260, "README.md is the front door; history goes to docs/"


def test_readme_lines_fit_in_100_columns():
    long = [(n, len(line)) for n, line in enumerate(_readme_lines(), 1) if len(line) > 100]
    assert not long, f"README.md lines over 100 characters (line, length): {long}"


def test_readme_names_no_tracker_issues():
    pattern = re.compile(r"\bissues? \d+|(?<![\w&])#\d+\b", re.IGNORECASE)
    found = [(n, line) for n, line in enumerate(_readme_lines(), 1) if pattern.search(line)]
    assert not found, f"README.md refers to a tracker its readers cannot see: {found}"


def _mentioned_paths(text: str) -> set[str]:
    paths = set()
    for name in BACKTICKED.findall(text):
        name = name.rstrip(".,:;")
        if not REPO_PATH.match(name) or name.startswith(("-", "/", ".")) or "://" in name:
            continue
        folders = name.split("/")[:-1]
        if any("." in folder for folder in folders):  # `tg.cuda.get_rng_state/set_rng_state`
            continue
        if folders or name.endswith(FILE_SUFFIXES):
            paths.add(name)
    return paths


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: p.name)
def test_paths_in_docs_exist(doc: Path):
    mentioned = _mentioned_paths(doc.read_text(encoding="utf-8"))
    assert mentioned, f"{doc.name} names no repository paths; is the pattern still right?"
    # a bare file name (`conv2d.py`) may live anywhere in the tree, a path must resolve
    missing = sorted(p for p in mentioned if not (ROOT / p).exists()
                     and ("/" in p or not any(any((ROOT / top).rglob(p)) for top in SOURCE_DIRS)))
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def _python_comment_lines(source: str) -> list[tuple[int, str]]:
    """Comments and docstrings (string statements) of a Python file, line by line."""
    found, previous = [], tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found.append((token.start[0], token.string))
        elif token.type == tokenize.STRING and previous in (
                tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT):
            found.extend(enumerate(token.string.splitlines(), token.start[0]))
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return found


def _c_comment_lines(source: str) -> list[tuple[int, str]]:
    found, in_block = [], False
    for number, line in enumerate(source.splitlines(), 1):
        if in_block:
            found.append((number, line))
            in_block = "*/" not in line
        elif "/*" in line:
            found.append((number, line[line.index("/*"):]))
            in_block = "*/" not in line[line.index("/*") + 2:]
        elif "//" in line:
            found.append((number, line[line.index("//"):]))
    return found


def _timing_comments() -> list[str]:
    found = []
    sources = [*(ROOT / "tinygrad_like").rglob("*.py"), *(ROOT / "kernels").rglob("*.py")]
    for path in sources:
        for number, text in _python_comment_lines(path.read_text(encoding="utf-8")):
            if TIMING.search(text):
                found.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()}")
    for suffix in ("*.cpp", "*.h", "*.cu"):
        for path in (ROOT / "kernels").rglob(suffix):
            for number, text in _c_comment_lines(path.read_text(encoding="utf-8")):
                if TIMING.search(text):
                    found.append(f"{path.relative_to(ROOT)}:{number}: {text.strip()}")
    cmake = ROOT / "CMakeLists.txt"
    for number, line in enumerate(cmake.read_text(encoding="utf-8").splitlines(), 1):
        if "#" in line and TIMING.search(line[line.index("#"):]):
            found.append(f"CMakeLists.txt:{number}: {line.strip()}")
    return found


def test_no_timings_in_source_comments():
    found = _timing_comments()
    assert not found, ("timing figures belong in docs/performance.md, which the comment "
                       "should name:\n" + "\n".join(found))


def test_docstring_and_comment_scanner_finds_what_it_should():
    source = 'def f():\n    """took 5 ms."""\n    x = "H100 ms"  # 3 us here\n    return "2 ms"\n'
    lines = [text for _, text in _python_comment_lines(source)]
    assert [bool(TIMING.search(t)) for t in lines] == [True, True]
    assert _c_comment_lines("int x;  // 4 us\n/* a\n 2 ms */\nint y;\n") == [
        (1, "// 4 us"), (2, "/* a"), (3, " 2 ms */")]
