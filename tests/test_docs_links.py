"""The README and the pages under docs/: every relative link and #anchor resolves, and the README
stays one screen per question (at most 300 lines)."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 300

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def prose(text):
    """The text outside fenced code blocks and inline code spans."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)       # a link keeps its text
    text = re.sub(r"[`*_~]|<[^>]+>", lambda m: "_" if m.group() == "_" else "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor a page's headings give, the second of a name getting -1, the third -2, …"""
    found, seen = set(), {}
    for match in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(match.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path):
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def test_slug_is_githubs():
    assert slug("The demo's results") == "the-demos-results"
    assert slug("GPUs: one device slot per job") == "gpus-one-device-slot-per-job"
    assert slug("Packs: many students per job") == "packs-many-students-per-job"
    assert slug("Are the differences real?") == "are-the-differences-real"
    assert slug("Quantum GAF: Q-GASF and Q-GADF") == "quantum-gaf-q-gasf-and-q-gadf"
    assert slug("`split.kind` and the folder") == "splitkind-and-the-folder"


def test_the_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](#nowhere) `[code](#skipped)`\n\n"
                    "```bash\n[also code](#skipped)\n```\n")
    assert links(page) == ["#a-section", "#nowhere"]
    assert anchors(page) == {"title", "a-section"}


def test_readme_is_at_most_300_lines():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move a section to docs/"


def test_readme_links_every_docs_page():
    linked = {(REPO / target.split("#")[0]).resolve() for target in links(REPO / "README.md")}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"README.md links no docs page named {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):     # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(REPO) if file.is_relative_to(REPO) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading in {file.name} gives #{anchor}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)
