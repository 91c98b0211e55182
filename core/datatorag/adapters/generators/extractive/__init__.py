"""An answer made of the passages' own sentences: no model, deterministic, a few milliseconds.

Passages are cut into sentences (a list item or table row is a sentence of its own; "e.g." and
"U.S." end none), each scored against the question with BM25 over lightly stemmed terms, with
HR synonyms folded into one concept term ("vacation", "PTO" and "paid time off" all match;
``HR_SYNONYMS``), and weighted by its passage's rank. A sentence also borrows, in part, the
terms of the FAQ question or label just before it and of its passage's title and heading. The
best one to three sentences are returned in reading order, each citing its passage with itself
as the quote.

``support(question, passages)`` is the weighted share (0..1) of the question's terms that the
best-covered sentence holds; below ``min_support`` the generator abstains. Words every handbook
uses ("employee", "policy", "paid") weigh less, so sharing only those is not support.

The package follows those seams: ``vocabulary`` (word lists), ``terms`` (stemmer and synonym
folding), ``sentences`` (the splitter), ``scorer`` (BM25 and support) and ``generator``.
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
