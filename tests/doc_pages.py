"""The README and docs/ pages as the doc tests read them: code blocks with their markers, links,
headings and their anchors. Plain text parsing, no TensorFlow (tests/test_docs.py, tests/test_readme_api.py).

A code block may be marked by an HTML comment on the line just before its fence (it does not show on the
rendered page):

    <!-- doc-test: run -->             before a bash block: the slow doc test runs it
    <!-- doc-test: skip (REASON) -->   before a python block: the slow doc test skips it, giving REASON

Unmarked python blocks run; unmarked bash blocks are only parsed (`bash -n`) and checked for the flag
files and modules they name.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, "README.md")
DOCS = os.path.join(REPO, "docs")
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"  # as hiabp_tf/experiments/claims.py

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- doc-test: (.*?) -->$")
_HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def pages() -> list[str]:
    """README.md and every docs/*.md, as paths relative to the repository root."""
    docs = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(DOCS, "*.md")))
    return ["README.md"] + docs


def results_pages() -> list[str]:
    """Every page under results/ (written by the code: report.py, claims.py, tools/performance.py, ...)."""
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "results", "**", "*.md"),
                                                               recursive=True))


def read(page: str) -> str:
    with open(os.path.join(REPO, page)) as f:
        return f.read()


# Blocks of a hand-written page that the code writes (their numbers are the generator's business).
GENERATED_BLOCKS = (("<!-- diagnostics:start -->", "<!-- diagnostics:end -->"),)


def without_generated_blocks(text: str) -> str:
    """A page's text without its generated blocks (README's results block and GENERATED_BLOCKS)."""
    text = without_results_block(text)
    for start, end in GENERATED_BLOCKS:
        while start in text and end in text:
            text = text[:text.index(start)] + text[text.index(end) + len(end):]
    return text


def without_results_block(text: str) -> str:
    """The README's hand-written text: the generated results block (markers included) left out."""
    if RESULTS_START not in text:
        return text
    start, end = text.index(RESULTS_START), text.index(RESULTS_END) + len(RESULTS_END)
    return text[:start] + text[end:]


@dataclasses.dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # the doc-test marker's text ("run", "skip (REASON)"), if any

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}:{self.lang}"

    @property
    def skip_reason(self) -> str | None:
        match = re.fullmatch(r"skip \((.+)\)", self.marker or "")
        return match.group(1) if match else None


def blocks(page: str) -> list[Block]:
    """Every fenced code block of a page, in order."""
    lines = read(page).splitlines()
    out, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, lang, body = i, match.group(1), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        previous = lines[start - 1] if start else ""
        marker = _MARKER.match(previous)
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker.group(1) if marker else None))
        i += 1
    return out


def markers(page: str) -> list[tuple[int, str]]:
    """(line, text) of every doc-test marker on a page."""
    return [(n, m.group(1)) for n, line in enumerate(read(page).splitlines(), 1) if (m := _MARKER.match(line))]


def prose_lines(page: str):
    """(line number, text) of the lines outside code blocks."""
    inside = False
    for number, line in enumerate(read(page).splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            yield number, line


def without_inline_code(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: str) -> set[str]:
    """The anchors of a page's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen, out = {}, set()
    for _, line in prose_lines(page):
        match = _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


# Inline code that is a path from the repository root into one of its committed folders names a file or
# folder of the repository. Placeholders are not names: <name>, {a,b}, globs, and a segment in capitals
# without an extension (results/SCALE/, results/cpu/models/NAME).
_CODE_SPAN = re.compile(r"`([^`\s]+)`")
COMMITTED_FOLDERS = ("results", "flags", "docs", "hiabp_tf", "tests")
_PLACEHOLDER = re.compile(r"[<>{}*?\[\]]|(?:^|/)[A-Z][A-Z0-9_]*(?:/|$)")


def paths_in(line: str) -> list[str]:
    """The repository paths a line names in inline code (`results/cpu/table1.md`, `flags/cpu.flags`)."""
    return [token for token in _CODE_SPAN.findall(line)
            if token.split("/", 1)[0] in COMMITTED_FOLDERS and "/" in token and not _PLACEHOLDER.search(token)]


def named_paths(page: str) -> list[tuple[int, str]]:
    """(line, path) of every repository path a page names in inline code outside its code blocks."""
    return [(number, path) for number, line in prose_lines(page) for path in paths_in(line)]


def links(page: str) -> list[tuple[int, str]]:
    """(line, target) of every relative link or image of a page (web and mail links left out)."""
    out = []
    for number, line in prose_lines(page):
        for target in _LINK.findall(without_inline_code(line)):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                out.append((number, target))
    return out
