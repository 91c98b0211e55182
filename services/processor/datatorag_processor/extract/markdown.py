"""Markdown through markdown-it-py's token stream (CommonMark plus GFM tables)."""

from __future__ import annotations

import re
from typing import Any

from datatorag_processor.extract.blocks import clean, first_heading, table_rows, with_heading_paths
from datatorag_processor.extract.model import Block, BlockKind, ExtractedDocument

MEDIA_TYPE = "text/markdown"
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n(?:---|\.\.\.)\s*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:\s*(.+?)\s*$", re.MULTILINE)


def extract_markdown(text: str) -> ExtractedDocument:
    from markdown_it import MarkdownIt

    title = None
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FRONT_TITLE.search(front.group(1))
        title = found.group(1).strip("\"'") if found else None
        text = text[front.end() :]
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    blocks = with_heading_paths(_blocks(tokens))
    return ExtractedDocument(
        title=title or first_heading(blocks),
        blocks=blocks,
        page_count=None,
        media_type=MEDIA_TYPE,
    )


def _blocks(tokens: list[Any]) -> list[Block]:
    blocks: list[Block] = []
    kind: BlockKind = "paragraph"
    level = 0
    list_depth = 0
    item_open = False  # the first paragraph of a list item is the item's text
    table: list[list[str]] = []
    row: list[str] | None = None
    for i, token in enumerate(tokens):
        t = token.type
        if t == "heading_open":
            kind, level = "heading", int(token.tag[1])
        elif t == "paragraph_open":
            kind = "list_item" if item_open else "paragraph"
            item_open = False
        elif t in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif t in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif t == "list_item_open":
            item_open = True
        elif t in ("fence", "code_block"):
            code = token.content.rstrip("\n")
            if code.strip():
                blocks.append(Block("code", code))
        elif t == "html_block":
            blocks.extend(_html_blocks(token.content))
        elif t == "tr_open":
            row = []
        elif t == "tr_close" and row is not None:
            table.append(row)
            row = None
        elif t == "table_close":
            blocks.extend(table_rows(table))
            table = []
        elif t == "inline":
            text = clean(_inline_text(token.children or []))
            if row is not None:
                row.append(text)
            elif text and tokens[i - 1].type in ("heading_open", "paragraph_open"):
                blocks.append(Block(kind, text, level=level if kind == "heading" else 0))
            kind, level = "paragraph", 0
    return blocks


def _inline_text(children: list[Any]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "image":
            parts.append(_inline_text(child.children or []))
    return "".join(parts)


def _html_blocks(html: str) -> list[Block]:
    """Raw HTML inside Markdown (tables, details) read as HTML."""
    from datatorag_processor.extract.html import html_blocks

    return html_blocks(html)
