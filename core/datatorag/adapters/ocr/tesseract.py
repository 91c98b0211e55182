"""Ocr with the Tesseract command line (Debian's ``tesseract-ocr`` and ``tesseract-ocr-eng``).

One ``tesseract`` process per page, its words read from the TSV output (``tesseract in.png stdout
tsv``). A process runs in its own time slice of the budget and is killed when it runs past it, so
a page that makes Tesseract hang cannot hang the processor. ``OMP_THREAD_LIMIT=1``: the processor
already runs one document per core, and Tesseract's OpenMP threads only contend for them.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from datatorag.domain.errors import OcrTimeout, PermanentError
from datatorag.domain.reading_order import Word, in_reading_order
from datatorag.ports import OcrLine

_WORD_LEVEL = "5"


class TesseractOcr:
    """Reads page images with Tesseract's LSTM engine and automatic page segmentation."""

    def __init__(self, binary: str = "tesseract", language: str = "eng") -> None:
        self.binary = binary
        self.language = language
        self.env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def recognise(self, images: Sequence[bytes], *, timeout_s: float) -> list[list[OcrLine]]:
        deadline = time.monotonic() + timeout_s
        with tempfile.TemporaryDirectory(prefix="datatorag-ocr-") as tmp:
            return [self._page(image, Path(tmp) / "page.png", deadline) for image in images]

    def _page(self, image: bytes, path: Path, deadline: float) -> list[OcrLine]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise OcrTimeout("reading the scanned pages ran out of its time budget")
        path.write_bytes(image)
        argv = [self.binary, str(path), "stdout", "-l", self.language, "--psm", "3", "tsv"]
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                argv, capture_output=True, timeout=left, env=self.env, check=False
            )
        except FileNotFoundError:
            raise PermanentError(
                f"OCR is unavailable: {self.binary!r} is not installed (Debian: tesseract-ocr "
                "and tesseract-ocr-eng; scripts/system-packages.sh installs them)"
            ) from None
        except subprocess.TimeoutExpired:  # run() has killed the process
            raise OcrTimeout("reading the scanned pages ran out of its time budget") from None
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no detail"]
            raise PermanentError(f"tesseract could not read a page image: {detail[0]}")
        return parse_tsv(done.stdout.decode("utf-8", errors="replace"))


def parse_tsv(tsv: str) -> list[OcrLine]:
    """Tesseract's TSV (one row per page, block, paragraph, line and word) as lines of words.

    A line is the words sharing its block, paragraph and line numbers, its box their union in
    fractions of the page; lines come in Tesseract's order, except that where it ran lines across
    the gutter of two columns they are cut there and read column by column
    (``domain.reading_order``). A table's ruling lines come out as words of ``|`` only: they are
    dropped, so they neither show in the text nor make the line box (the font size the layout
    infers) taller.
    """
    rows = list(csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE))
    page = next((r for r in rows if r["level"] == "1"), None)
    if page is None:
        return []
    width, height = float(page["width"]), float(page["height"])
    words = [
        Word(
            text=row["text"].strip(),
            left=int(row["left"]),
            top=int(row["top"]),
            right=int(row["left"]) + int(row["width"]),
            bottom=int(row["top"]) + int(row["height"]),
            confidence=max(0.0, float(row["conf"])),
            line=(row["block_num"], row["par_num"], row["line_num"]),
        )
        for row in rows
        if row["level"] == _WORD_LEVEL and (row.get("text") or "").strip(" |")
    ]
    return [_line(line, width, height) for line in in_reading_order(words)]


def _line(words: list[Word], width: float, height: float) -> OcrLine:
    """The words of one line as an ``OcrLine`` (their box in pixels becomes page fractions)."""
    left, top = min(w.left for w in words), min(w.top for w in words)
    return OcrLine(
        text=" ".join(w.text for w in words),
        left=left / width,
        top=top / height,
        width=(max(w.right for w in words) - left) / width,
        height=(max(w.bottom for w in words) - top) / height,
        confidence=sum(w.confidence for w in words) / len(words),
    )
