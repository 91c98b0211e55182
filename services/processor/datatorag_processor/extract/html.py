"""HTML through BeautifulSoup: headings, paragraphs, list items, table rows, code; no scripts,
styles or navigation."""

from __future__ import annotations

from typing import Any

from datatorag.domain.errors import DocumentRejected
from datatorag_processor.extract.blocks import clean, first_heading, table_rows, with_heading_paths
from datatorag_processor.extract.model import Block, BlockKind, ExtractedDocument

MEDIA_TYPE = "text/html"
_SKIP = {
    "script", "style", "noscript", "template", "svg", "canvas", "nav", "iframe", "object",
    "button", "select", "head", "math",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_CONTAINERS = {
    "html", "body", "main", "article", "section", "div", "header", "footer", "aside", "ul", "ol",
    "dl", "dd", "dt", "blockquote", "figure", "figcaption", "form", "fieldset", "address",
    "details", "summary", "center", "hgroup", "menu",
}  # fmt: skip
_LISTS = {"ul", "ol", "menu"}
# The walk recurses about twice per level; this keeps it well inside Python's recursion limit,
# and no real page nests this deep (libxml2 allows XML 256 levels by default, too).
MAX_DEPTH = 256


def extract_html(text: str) -> ExtractedDocument:
    soup = _parse(text)
    title_tag = soup.find("title")
    title = clean(title_tag.get_text(" ")) if title_tag else ""
    blocks = with_heading_paths(_Walker().run(soup))
    return ExtractedDocument(
        title=title or first_heading(blocks),
        blocks=blocks,
        page_count=None,
        media_type=MEDIA_TYPE,
    )


def html_blocks(html: str) -> list[Block]:
    """Blocks of an HTML fragment (used for raw HTML inside Markdown)."""
    return _Walker().run(_parse(html))


def _parse(text: str) -> Any:
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception:  # noqa: BLE001 - lxml missing or refusing the input: the stdlib parser copes
        soup = BeautifulSoup(text, "html.parser")
    _check_depth(soup)
    return soup


def _check_depth(root: Any) -> None:
    """Refuse a tree nested deeper than ``MAX_DEPTH`` elements (measured without recursing)."""
    from bs4.element import Tag

    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentRejected(
                f"the HTML is nested too deeply to read (more than {MAX_DEPTH} levels of "
                "elements); save it again from its editor, or as PDF or Word"
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tag))


class _Walker:
    """Depth-first walk: block elements become blocks, loose inline text becomes paragraphs."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.buffer: list[str] = []

    def run(self, root: Any) -> list[Block]:
        self._walk(root)
        self._flush()
        return self.blocks

    def _walk(self, node: Any) -> None:
        from bs4.element import NavigableString, Tag

        for child in node.children:
            if _markup(child):
                continue
            if isinstance(child, NavigableString):
                self.buffer.append(str(child))
            elif isinstance(child, Tag):
                self._element(child)

    def _element(self, el: Any) -> None:
        name = el.name
        if name in _SKIP:
            return
        if name == "br":
            self.buffer.append("\n")
        elif name in _HEADINGS:
            self._emit("heading", _inline(el), level=_HEADINGS[name])
        elif name == "p":
            self._emit("paragraph", _inline(el))
        elif name == "li":
            self._emit("list_item", _inline(el, skip=_LISTS))
            for nested in el.find_all(_LISTS, recursive=False):
                self._flush()
                self._walk(nested)
        elif name == "pre":
            self._flush()
            code = el.get_text().strip("\n")
            if code.strip():
                self.blocks.append(Block("code", code))
        elif name == "table":
            self._flush()
            self.blocks.extend(table_rows(_table(el)))
        elif name in _CONTAINERS or name == "hr":
            self._flush()
            self._walk(el)
            self._flush()
        else:
            self._walk(el)  # inline element: its text joins the running paragraph

    def _emit(self, kind: BlockKind, text: str, level: int = 0) -> None:
        self._flush()
        text = clean(text) if kind != "heading" else clean(text).replace("\n", " ")
        if text:
            self.blocks.append(Block(kind, text, level=level))

    def _flush(self) -> None:
        text = clean("".join(self.buffer))
        self.buffer = []
        if text:
            self.blocks.append(Block("paragraph", text))


def _inline(el: Any, skip: set[str] | None = None) -> str:
    """Text of an element with <br> as a line break, leaving out ``skip`` children and scripts."""
    from bs4.element import NavigableString, Tag

    parts: list[str] = []
    for child in el.children:
        if _markup(child):
            continue
        if isinstance(child, NavigableString):
            parts.append(str(child))
        elif isinstance(child, Tag) and child.name not in _SKIP and child.name not in (skip or ()):
            parts.append("\n" if child.name == "br" else _inline(child, skip))
            if child.name in ("p", "div") and parts[-1]:
                parts.append("\n")
    return "".join(parts)


def _markup(node: Any) -> bool:
    """Comments, doctypes and processing instructions: strings that are not text."""
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    return isinstance(node, Comment | Declaration | Doctype | ProcessingInstruction)


def _table(table: Any) -> list[list[str]]:
    rows: list[list[str]] = []
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is not table:
            continue  # a row of a nested table
        rows.append(
            [" ".join(_inline(c).split()) for c in tr.find_all(["th", "td"], recursive=False)]
        )
    return rows
