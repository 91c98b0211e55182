"""What every extractor returns: a document as a flat sequence of typed text blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["heading", "paragraph", "list_item", "table_row", "code"]


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    text: str  # for table_row: cells joined by "\t"
    page: int | None = None  # 1-based page number (None for formats without pages)
    level: int = 0  # heading level (1 = top) for headings
    headings: tuple[str, ...] = ()  # heading path in force here (for a heading: its parents)
    cells: tuple[str, ...] = ()  # table_row only
    header: tuple[str, ...] = ()  # table_row only: column headers (empty for the header row)


@dataclass(frozen=True)
class ExtractedDocument:
    title: str | None  # first heading or PDF metadata title
    blocks: tuple[Block, ...]
    page_count: int | None
    media_type: str  # detected from content (magic bytes), not trusted from the name
    ocr_pages: tuple[int, ...] = ()  # pages whose text was read by OCR (scans)
