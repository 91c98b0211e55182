"""Keyword search rules every index backend shares, so that both rank the same words alike."""

from __future__ import annotations

# How much a hit in the title, the heading and the text counts (see bench/index_latency.py
# --quality): the embedded index weighs term frequencies by column, OpenSearch repeats each part.
BM25_WEIGHTS = (2.0, 1.0, 1.0)
MAX_QUERY_TERMS = 64  # caps the cost of one keyword query

# Short function words that match nearly every chunk: they add cost to an OR query, not rank.
STOP_WORDS = frozenset(
    """a about above after again all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not of off on once only or other our ours out over own same she should so some such
    than that the their theirs them then there these they this those through to too under until
    up very was we were what when where which while who whom why will with would you your yours
    s t d ll m re ve also get got many much
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def content_words(words: list[str]) -> list[str]:
    """The distinct words a keyword query looks for: stop words are dropped unless nothing else
    is left, and at most ``MAX_QUERY_TERMS`` are kept."""
    distinct = list(dict.fromkeys(words))
    return ([w for w in distinct if w not in STOP_WORDS] or distinct)[:MAX_QUERY_TERMS]
