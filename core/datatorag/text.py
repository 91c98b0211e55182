"""Text the index and the embedding model see, built the same way everywhere."""

from __future__ import annotations


def contextual_text(title: str, heading: str, text: str) -> str:
    """A chunk as embedded and keyword-indexed: document title and heading path, then the passage.

    The header gives a passage its context ("Parental leave > Eligibility") that the passage
    itself often leaves implicit.
    """
    header = " > ".join(part for part in (title, heading) if part)
    return f"{header}\n{text}" if header else text
