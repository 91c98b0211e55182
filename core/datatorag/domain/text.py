"""Text the embedding model sees for a chunk, built the same way everywhere."""

from __future__ import annotations

from pathlib import PurePosixPath


def source_label(path: str) -> str:
    """A file's place in its source as words: `benefits/us/parental-leave.pdf` ->
    `benefits / us / parental leave`. Folder and file names often say what a document is
    about, or whose it is, when its title does not."""
    stem = str(PurePosixPath(path).with_suffix(""))
    return stem.replace("/", " / ").replace("-", " ").replace("_", " ").strip()


def contextual_text(title: str, heading: str, text: str, source: str = "") -> str:
    """A chunk as embedded: where the document lives, its title and heading path, the passage.

    The header gives a passage the context ("Parental leave > Eligibility") that the passage
    itself leaves implicit; measured on the dev questions in docs/benchmarks.md.
    """
    header = " > ".join(part for part in (title, heading) if part)
    if source:
        header = f"{source}: {header}" if header else source
    return f"{header}\n{text}" if header else text
