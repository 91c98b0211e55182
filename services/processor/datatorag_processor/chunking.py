"""Structure-aware chunking, counted in the embedding model's own tokenizer.

Blocks are cut into units (a short block, or a sentence of a long one) and packed greedily into
chunks that follow the heading structure: a heading starts a new chunk once the current one holds
enough text, table chunks repeat the table's header row, and consecutive chunks overlap by whole
units. Every chunk, with its contextual header, fits the model's window: nothing is truncated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from datatorag.domain.models import Chunk
from datatorag.domain.text import contextual_text
from datatorag_processor.extract.model import Block, ExtractedDocument

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[\"'(\[]?[A-Z0-9])")


class TokenCounter:
    """Counts word pieces the way the model will see them (no padding, no truncation)."""

    def __init__(self, tokenizer_file: Path) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: list[str]) -> list[int]:
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def split(self, text: str, max_tokens: int) -> list[str]:
        """Cut a text with no usable sentence breaks at word-piece offsets."""
        enc = self._tokenizer.encode(text, add_special_tokens=False)
        pieces = []
        for start in range(0, len(enc.offsets), max_tokens):
            window = enc.offsets[start : start + max_tokens]
            pieces.append(text[window[0][0] : window[-1][1]].strip())
        return [p for p in pieces if p]


@dataclass
class _Unit:
    text: str
    page: int | None
    tokens: int
    headings: tuple[str, ...]
    starts_section: bool  # a heading block: a natural place to start a chunk
    table_header: str | None = None  # the header row of the table this row belongs to
    continues: bool = False  # a later piece of the same block: rendered on the same line


@dataclass
class _Draft:
    units: list[_Unit] = field(default_factory=list)


class Chunker:
    def __init__(self, counter: TokenCounter, max_tokens: int, overlap_tokens: int) -> None:
        if overlap_tokens >= max_tokens // 2:
            raise ValueError("chunk overlap must be under half the chunk size")
        self.counter = counter
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.min_tokens = max_tokens // 4
        self._counts: dict[str, int] = {}

    def chunk(
        self, doc_id: str, version: str, title: str, doc: ExtractedDocument, source: str = ""
    ) -> list[Chunk]:
        """Chunks whose contextual text (``datatorag.domain.text.contextual_text`` with this
        title and source label) fits the model's window."""
        units = list(self._units(doc.blocks))
        chunks = []
        for ordinal, draft in enumerate(self._pack(units, title, source)):
            heading = " > ".join(draft.units[0].headings)
            text = self._render(draft.units)
            pages = sorted({u.page for u in draft.units if u.page is not None})
            chunks.append(
                Chunk(
                    chunk_id=f"{doc_id}:{version[:12]}:{ordinal}",
                    doc_id=doc_id,
                    ordinal=ordinal,
                    text=text,
                    pages=pages,
                    ocr_pages=[page for page in pages if page in doc.ocr_pages],
                    heading=heading,
                    token_count=self.counter.count(contextual_text(title, heading, text, source)),
                )
            )
        return chunks

    # -- units ---------------------------------------------------------------------------
    def _units(self, blocks: Iterable[Block]) -> Iterator[_Unit]:
        blocks = list(blocks)
        texts = [b.text for b in blocks]
        counts = self.counter.count_many(texts) if texts else []
        budget = self._unit_budget()
        for block, tokens in zip(blocks, counts, strict=True):
            path = block.headings + ((block.text,) if block.kind == "heading" else ())
            header = "\t".join(block.header) if block.kind == "table_row" and block.header else None
            pieces = [block.text] if tokens <= budget else self._split(block.text, budget)
            for i, piece in enumerate(pieces):
                yield _Unit(
                    text=piece,
                    page=block.page,
                    tokens=tokens if len(pieces) == 1 else self.counter.count(piece),
                    headings=path,
                    starts_section=block.kind == "heading" and i == 0,
                    table_header=header,
                    continues=i > 0,
                )

    def _unit_budget(self) -> int:
        # Room for the contextual header (title, heading path) and a repeated table header.
        return self.max_tokens // 2

    def _split(self, text: str, budget: int) -> list[str]:
        pieces: list[str] = []
        for sentence in _SENTENCE_END.split(text):
            if self.counter.count(sentence) <= budget:
                pieces.append(sentence)
            else:
                pieces.extend(self.counter.split(sentence, budget))
        # Re-join very short neighbouring sentences, keeping units small enough to overlap.
        merged: list[str] = []
        for piece in pieces:
            if merged and self.counter.count(merged[-1] + " " + piece) <= self.overlap_tokens:
                merged[-1] = merged[-1] + " " + piece
            else:
                merged.append(piece)
        return merged

    # -- packing -------------------------------------------------------------------------
    def _pack(self, units: list[_Unit], title: str, source: str) -> Iterator[_Draft]:
        draft = _Draft()
        for unit in units:
            starts_new = (
                unit.starts_section and sum(u.tokens for u in draft.units) >= self.min_tokens
            )
            if draft.units and (starts_new or not self._fits(draft, unit, title, source)):
                yield draft
                draft = _Draft(self._overlap(draft) if not unit.starts_section else [])
                while draft.units and not self._fits(draft, unit, title, source):
                    draft.units.pop(0)
            draft.units.append(unit)
        if draft.units:
            yield draft

    def _fits(self, draft: _Draft, unit: _Unit, title: str, source: str) -> bool:
        # BERT's pre-tokenizer splits on whitespace, so the count of the rendered chunk is the
        # sum of its parts' counts: no need to tokenize the whole draft again.
        units = [*draft.units, unit]
        header = contextual_text(title, " > ".join(units[0].headings), "", source)
        tables = {u.table_header for u in units if u.table_header}
        tokens = self._count_cached(header) + sum(self._count_cached(t) for t in tables)
        return tokens + sum(u.tokens for u in units) <= self.max_tokens

    def _count_cached(self, text: str) -> int:
        if text not in self._counts:
            self._counts[text] = self.counter.count(text)
        return self._counts[text]

    def _overlap(self, previous: _Draft) -> list[_Unit]:
        carried: list[_Unit] = []
        total = 0
        for unit in reversed(previous.units):
            if total + unit.tokens > self.overlap_tokens:
                break
            carried.insert(0, unit)
            total += unit.tokens
        return carried

    @staticmethod
    def _render(units: list[_Unit]) -> str:
        lines: list[str] = []
        table_header: str | None = None
        for unit in units:
            if unit.table_header and unit.table_header != table_header:
                lines.append(unit.table_header)  # keep a table's column headers with its rows
            table_header = unit.table_header
            if unit.continues and lines:
                lines[-1] += " " + unit.text
            else:
                lines.append(unit.text)
        return "\n".join(lines)
