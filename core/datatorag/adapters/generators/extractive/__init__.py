"""An answer made of the passages' own sentences: no model, deterministic, a few milliseconds.

Passages are cut into sentences (a list item or table row is a sentence of its own; "e.g." and
"U.S." end none; a table row carries its header row), each scored against the question with
BM25 over lightly stemmed terms (a possessive is its noun), with HR synonyms folded into one
concept term ("vacation", "PTO" and "paid time off" all match; ``HR_SYNONYMS``; "six"/"6"), and
weighted by its passage's rank. A sentence also borrows, in part, the terms of the FAQ question
or label just before it and of its passage's title and heading, and gains when it states the
kind of fact the question asks for (``answer_type``: an amount for "how much", a duration, a
count, a date, a person or role, a rule for "can I / must I").

The answer leads with the best sentence that covers at least ``min_support`` of the question's
weighted terms and states the kind of fact asked; up to two more follow, in reading order, from
the same document only (one policy per answer) unless the question compares. With no such
sentence the generator abstains. The lead is quoted with the rest of its paragraph and the
paragraphs after it (a list item from its list's introducing line), up to ``QUOTE_CAP`` (800)
characters and never past a FAQ's next question: the fact asked for is often the sentence
beside the one whose words match the question. Each further sentence quotes itself (neighbours
as one quote), and the answer's confidence is the lead's coverage. Words every handbook uses
("employee", "policy", "paid") weigh less, so sharing only those is not support.

The package follows those seams: ``vocabulary`` (word lists), ``terms`` (stemmer and synonym
folding), ``sentences`` (the splitter), ``answer_type`` (what a question asks for),
``scorer`` (BM25 and support) and ``generator``.
"""

from datatorag.adapters.generators.extractive.generator import (
    DEFAULT_MIN_SUPPORT,
    ExtractiveGenerator,
)
from datatorag.adapters.generators.extractive.sentences import split_sentences
from datatorag.adapters.generators.extractive.terms import stem, terms
from datatorag.adapters.generators.extractive.vocabulary import HR_SYNONYMS

__all__ = [
    "DEFAULT_MIN_SUPPORT",
    "HR_SYNONYMS",
    "ExtractiveGenerator",
    "split_sentences",
    "stem",
    "terms",
]
