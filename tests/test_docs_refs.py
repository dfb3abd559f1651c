"""The repository carries its own documentation: nothing points outside it, and every citation resolves.

- No tracked file refers to the specification
  that used to live outside the repository (the parent folder's shared docs, or its upper-case methods file).
- Every ``docs/methods.md section X`` (also ``docs/methods.md X``, ``sections X, Y``, ``X and Y``) cited anywhere
  names a numbered heading of ``docs/methods.md``, and every ``docs/methods.md, "Title"`` a heading containing it.
- Every ``docs/<name>.md`` cited exists, and every in-page link ``(#anchor)`` of the docs written for this project
  points at a heading of the same file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "docs" / "methods.md"
OWN_DOCS = ("docs/methods.md", "docs/extending.md", "docs/performance.md")
EXCLUDED_PREFIXES: tuple[str, ...] = ()
EXCLUDED_FILES = ("tests/test_docs_refs.py",)  # its own docstring shows the citation forms
# Split so that this file does not match itself.
OUTSIDE_REFERENCES = (("shared" + "/docs").encode(), ("METHODS" + ".md").encode())

NUMBER = r"\d+[a-z]?(?:\.\d+)?"
SECTION_CITATION = re.compile(rf"docs/methods\.md,?\s+(?:sections?\s+)?({NUMBER}(?:\s*(?:,|and)\s*{NUMBER})*)")
TITLE_CITATION = re.compile(r'docs/methods\.md,?\s*"([^"]+)"')
DOC_PATH = re.compile(r"\bdocs/([\w-]+)\.md\b")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
HEADING_NUMBER = re.compile(rf"^({NUMBER})\.?\s")
ANCHOR_LINK = re.compile(r"\]\(#([^)\s]+)\)")


def tracked_files() -> list[str]:
    """Paths of the files git tracks (the test is skipped outside a git checkout)."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not available")
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in done.stdout.decode().split("\0") if name]


def readable(name: str) -> bool:
    path = ROOT / name
    return path.is_file() and not path.is_symlink()


def scanned_files() -> list[str]:
    """Tracked files outside the exclusions, plus this project's docs (tracked or not yet)."""
    names = {n for n in tracked_files()
             if not n.startswith(EXCLUDED_PREFIXES) and n not in EXCLUDED_FILES and readable(n)}
    names |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    return sorted(names)


def text_of(name: str) -> str:
    """The file's text with every run of whitespace (line breaks included) made one space."""
    return re.sub(r"\s+", " ", (ROOT / name).read_text(encoding="utf-8", errors="replace"))


def headings(path: Path) -> list[str]:
    return HEADING.findall(path.read_text(encoding="utf-8"))


def section_numbers() -> set[str]:
    """The numbers of docs/methods.md's numbered headings: ``1``, ``1.1``, ``2a``, ..."""
    found = set()
    for heading in headings(METHODS):
        match = HEADING_NUMBER.match(heading)
        if match:
            found.add(match.group(1))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_no_file_refers_to_the_outside_specification():
    offenders = []
    for name in tracked_files():
        if name.startswith(EXCLUDED_PREFIXES) or name in EXCLUDED_FILES or not readable(name):
            continue
        content = (ROOT / name).read_bytes()
        offenders += [f"{name}: {ref.decode()}" for ref in OUTSIDE_REFERENCES if ref in content]
    assert not offenders, "cite docs/methods.md instead: " + ", ".join(offenders)


def test_every_cited_section_of_the_methods_doc_exists():
    numbers = section_numbers()
    titles = headings(METHODS)
    assert {"1", "2", "2a", "3", "4", "5", "6"} <= numbers  # the sections the code has always cited
    missing, cited = [], 0
    for name in scanned_files():
        text = text_of(name)
        for match in SECTION_CITATION.finditer(text):
            for number in re.findall(NUMBER, match.group(1)):
                cited += 1
                if number not in numbers:
                    missing.append(f"{name}: section {number}")
        for match in TITLE_CITATION.finditer(text):
            cited += 1
            if not any(match.group(1).lower() in title.lower() for title in titles):
                missing.append(f'{name}: "{match.group(1)}"')
    assert cited > 0, "no citation of docs/methods.md found: the pattern no longer matches the code"
    assert not missing, "cited but not a heading of docs/methods.md: " + ", ".join(missing)


def test_cited_docs_exist_and_in_page_links_resolve():
    missing = sorted({f"{name}: docs/{doc}.md" for name in scanned_files()
                      for doc in DOC_PATH.findall(text_of(name)) if not (ROOT / "docs" / f"{doc}.md").is_file()})
    assert not missing, "cited docs that do not exist: " + ", ".join(missing)
    broken = []
    for name in OWN_DOCS:
        path = ROOT / name
        anchors = {slug(h) for h in headings(path)}
        broken += [f"{name}: #{a}" for a in ANCHOR_LINK.findall(path.read_text(encoding="utf-8")) if a not in anchors]
    assert not broken, "in-page links without a heading: " + ", ".join(broken)
