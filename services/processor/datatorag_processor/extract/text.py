"""Plain text: paragraphs are separated by blank lines; lines with a bullet or number are items."""

from __future__ import annotations

import re

from datatorag_processor.extract.blocks import clean, strip_marker
from datatorag_processor.extract.model import Block, ExtractedDocument

MEDIA_TYPE = "text/plain"


def extract_text(text: str) -> ExtractedDocument:
    blocks: list[Block] = []
    for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        blocks.extend(_chunk_blocks(chunk))
    return ExtractedDocument(
        title=None, blocks=tuple(blocks), page_count=None, media_type=MEDIA_TYPE
    )


def _chunk_blocks(chunk: str) -> list[Block]:
    """A paragraph, or one list item per marked line (unmarked lines go on the item before)."""
    lines = [line for line in chunk.split("\n") if line.strip()]
    if not lines:
        return []
    if not strip_marker(lines[0])[0]:
        text = clean(" ".join(line.strip() for line in lines))
        return [Block("paragraph", text)] if text else []
    items: list[str] = []
    for line in lines:
        marked, rest = strip_marker(line)
        if marked or not items:
            items.append(rest.strip())
        else:
            items[-1] += " " + line.strip()
    return [Block("list_item", clean(item)) for item in items if clean(item)]
