"""Tables in the docs are generated, never typed: ``hashee-report --docs docs/results.md [--check]``.

A generated block in a markdown file is delimited by two comments naming the study folder (relative to the
repository root: the nearest folder above the docs file that holds ``pyproject.toml``) and the report section (:func:`hashee.reports.build.markdown_sections`):

    <!-- hashee-report results/verdict_sst2 equal -->
    ...the table, as the report writes it...
    <!-- /hashee-report -->

The study may also be one record file: a ``hashee-timing`` record (section ``timing``) or a ``hashee-scaling`` one
(section ``scaling``), e.g. ``<!-- hashee-report results/timing/ceiling.json scaling -->``, or a
``hashee-generation-exits`` one (section ``generation_exits``) or a ``hashee-scaling --profile`` one
(``profile.json``: section ``profile``); a folder of
``experiment=difficulty_model`` runs gives ``difficulty`` (and ``difficulty_claim``, its claim lines alone).

``--docs`` rewrites every block from the committed runs; ``--check`` only compares and names every block that
differs (``make docs-check`` and a test run it), so a typed or stale figure cannot stay in the docs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

BLOCK = re.compile(r"(<!-- hashee-report (?P<study>\S+) (?P<section>\w+) -->\n)(?P<body>.*?)(<!-- /hashee-report -->)",
                   re.DOTALL)


@lru_cache(maxsize=None)
def _sections(study: Path) -> dict[str, str]:
    """A study folder's report sections; a timing record (``hashee-timing``'s ``timing.json``) gives ``timing``, a
    ``hashee-scaling`` record (its ``scaling.json``, under any name) gives ``scaling``."""
    import json

    from hashee.reports import difficulty, generation, scaling, timing
    from hashee.reports.build import load_rows, markdown_sections

    if study.is_file():
        record = json.loads(study.read_text())
        if "scenarios" in record:
            return {"timing": timing.markdown(record)}
        if record.get("kind") == "generation_exits":
            return {"generation_exits": generation.exits_markdown(record)}
        if "profiles" in record:
            return {"profile": scaling.profile_markdown(record)}
        return {"scaling": scaling.markdown(record["rows"])}
    if difficulty.is_study(study):
        return {"difficulty": difficulty.markdown(study), "difficulty_claim": difficulty.claim_markdown(study)}
    return markdown_sections(load_rows(study)[0])


def render(study: Path, section: str) -> str:
    """The markdown of one report section of a study, as a block body (ends with a newline)."""
    sections = _sections(study)
    if section not in sections:
        raise SystemExit(f"error: no report section {section!r}; known: {', '.join(sections)}")
    return sections[section].rstrip("\n") + "\n"


def repository_root(doc: Path) -> Path:
    """The nearest folder above ``doc`` that holds ``pyproject.toml`` (the docs file's own folder first)."""
    for folder in doc.resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    raise SystemExit(f"error: no pyproject.toml above {doc}: cannot resolve its study folders")


def regenerate(doc: Path) -> tuple[str, list[str]]:
    """The docs file with every block regenerated, and the blocks (``study section``) whose text changed."""
    root = repository_root(doc)
    text, changed = doc.read_text(), []

    def replace(match: re.Match) -> str:
        body = render(root / match["study"], match["section"])
        if body != match["body"]:
            changed.append(f"{match['study']} {match['section']}")
        return match.group(1) + body + match.group(5)

    return BLOCK.sub(replace, text), changed


def update_docs(doc: Path, check: bool) -> list[str]:
    """Rewrite ``doc``'s generated blocks (``check``: only compare); returns the blocks that differ(ed)."""
    text, changed = regenerate(doc)
    if not check and changed:
        doc.write_text(text)
    return changed
