"""The learning path in docs/: every stage note opens the same way, the reading map reaches every
note and notebook, and the links between the pages lead somewhere (issue 18, item 4)."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

DOCS = ROOT / "docs"
NOTES = sorted(p.name for p in DOCS.glob("[0-9][0-9]-*.md"))
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
MARKDOWN = [
    *sorted(DOCS.glob("*.md")),
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "exercises" / "README.md",
    *sorted((ROOT / "src" / "byollm" / "exercises" / "statements").glob("*.md")),
]
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_there_are_notes_and_notebooks():
    assert len(NOTES) >= 10 and len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("name", NOTES)
def test_every_note_opens_with_what_you_build_and_need(name):
    text = (DOCS / name).read_text(encoding="utf-8")
    opening = text.split("\n## ", 1)[0]  # the title and what comes before the first section
    assert "**What you will build:**" in opening, f"docs/{name}: no 'What you will build'"
    assert "**What you should know first:**" in opening, f"docs/{name}: no 'What you should know'"
    assert opening.index("What you will build") < opening.index("What you should know first")


def test_the_reading_map_reaches_every_note_notebook_and_page():
    reading_map = (DOCS / "README.md").read_text(encoding="utf-8")
    missing = [n for n in NOTES if f"]({n})" not in reading_map]
    missing += [n for n in NOTEBOOKS if f"](../notebooks/{n})" not in reading_map]
    missing += [n for n in ("glossary.md", "journal.md") if f"]({n})" not in reading_map]
    assert missing == [], f"docs/README.md links none of {missing}"
    # the notebook table gives every notebook a row
    table = reading_map.split("## The notebooks", 1)[1]
    assert [n for n in NOTEBOOKS if f"](../notebooks/{n})" not in table] == []


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files(page):
    broken = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or a heading of the same page
        if not (page.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert broken == [], f"{page.relative_to(ROOT)}: links to nothing: {broken}"
