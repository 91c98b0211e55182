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
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from datatorag.domain.models import SearchHit
from datatorag.ports import AnswerSentence, GeneratedAnswer

# Terms an employee and a policy use for the same thing: each phrase becomes the concept's term.
HR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "pto": (
        "pto",
        "paid time off",
        "time off",
        "vacation",
        "annual leave",
        "days off",
        "day off",
        "holiday allowance",
        "leave allowance",
    ),
    "fmla": (
        "fmla",
        "family and medical leave",
        "family medical leave",
        "family and medical leave act",
        "medical leave",
    ),
    "retirement": (
        "401k",
        "403b",
        "retirement",
        "retirement plan",
        "retirement savings",
        "pension",
        "thrift savings plan",
        "tsp",
    ),
    "parental": (
        "parental",
        "parental leave",
        "maternity",
        "maternity leave",
        "paternity",
        "paternity leave",
        "parent",
        "parents",
        "new parent",
        "childbirth",
        "newborn",
    ),
    "sick": ("sick", "sick leave", "illness", "ill"),
    "holiday": ("holiday", "public holiday", "bank holiday", "federal holiday"),
    "health_insurance": (
        "health insurance",
        "medical insurance",
        "health plan",
        "medical plan",
        "health coverage",
        "medical coverage",
        "health benefits",
    ),
    "remote": (
        "remote",
        "remote work",
        "remotely",
        "work from home",
        "working from home",
        "wfh",
        "telework",
        "teleworking",
        "telecommute",
    ),
    "pay": (
        "salary",
        "pay",
        "payday",
        "compensation",
        "wage",
        "wages",
        "paycheck",
        "payroll",
    ),
    "expense": ("expense", "expenses", "reimbursement", "reimburse", "reimbursed", "expensed"),
    "bereavement": ("bereavement", "funeral", "death in the family", "grief"),
    "termination": ("termination", "terminated", "fired", "dismissal", "dismissed", "laid off"),
    "manager": ("manager", "supervisor", "boss", "line manager"),
    "new_hire": ("onboarding", "new hire", "new hires", "first day", "first week"),
    "review": ("performance review", "impact review", "appraisal", "performance evaluation"),
    "jury": ("jury duty", "jury service", "jury"),
    "overtime": ("overtime", "extra hours"),
    "stipend": ("stipend", "allowance", "budget"),
    "laptop": ("laptop", "computer", "equipment", "hardware"),
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _words(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't could couldn't did didn't do does doesn't doing don't
    down during each few for from further get gets getting had has have having he her here hers
    herself him himself his how i i'd i'll i'm i've if in into is isn't it it's its itself just let
    let's me might more most must my myself no nor not of off on once only or other ought our ours
    ourselves out over own same shall she should so some such than that that's the their theirs
    them themselves then there there's these they this those through to too under until up upon us
    very was we we're were what what's when where which while who whom why will with would you
    you're your yours yourself yourselves also still may many much anything something actually
    really need needs want know tell please okay ok hi hello thanks
    """
)

# Words every HR handbook uses everywhere: matching one says little about whether a sentence
# answers, so a question's generic words weigh GENERIC_WEIGHT of a specific word.
GENERIC_TERMS = _words(
    """
    employee employees staff teammate teammates team member members company organization
    organisation policy policies work working job paid day days week weeks month months year
    years time request requests approve approved approval people person process information
    use used include includes provide provides require required make take give new help
    """
)

# Abbreviations whose full stop does not end a sentence.
ABBREVIATIONS = _words(
    """
    e.g i.e etc vs approx incl esp dept est min max no nos fig mr mrs ms dr prof sr jr st inc ltd
    co corp jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun ca cf al
    """
)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_FOUR_O_ONE_K = re.compile(r"\b(40[13])\s*(?:\(\s*([kb])\s*\)|([kb])\b)", re.I)
_BOUNDARY = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022\u25aa\u25cf]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s+")
_INITIALISM = re.compile(r"(?:\b[A-Za-z]\.){2,}$")
_ASKS_QUANTITY = re.compile(
    r"\bhow (?:much|many|long|far|often|soon|early|late)\b|\bwhen\b|\bwhat (?:is|'s) the "
    r"(?:most|least|maximum|minimum|limit|amount|cap)\b|\bdeadline\b",
    re.I,
)
_DIGIT_OR_UNIT = re.compile(r"[\d$\u00a3\u20ac%]")
_QUANTITY_WORDS = """
    one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty half
    twice daily weekly biweekly monthly quarterly annually yearly unlimited limit maximum minimum
"""

# Below this share of the question's weighted terms, no sentence is taken as an answer. Low on
# purpose: it turns away passages that share no real term with the question (or only generic
# words); calibrate it on a dev set with ``support``.
DEFAULT_MIN_SUPPORT = 0.15
K1 = 1.2
B = 0.75
RANK_DECAY = 0.15  # a sentence from the passage ranked r counts 1 / (1 + RANK_DECAY * r)
CONTEXT_WEIGHT = 0.4  # title and heading terms count this much in a sentence's score
LEAD_WEIGHT = 0.7  # terms of the question or label just before a sentence count this much
SPREAD_DISCOUNT = 0.75  # a term found in every passage keeps a quarter of its weight
MIN_WORDS = 4  # shorter lines (headings, labels) are context, not answers
MIN_ITEM_WORDS = 3  # the same for list items; table rows always count
QUANTITY_BONUS = 1.3  # "how much/many/long" questions favour sentences that state a quantity
FOLLOWER_SHARE = 0.5  # a further sentence must score at least this share of the best one
REDUNDANT_OVERLAP = 0.7  # Jaccard overlap above which a further sentence repeats a chosen one
GENERIC_WEIGHT = 0.3  # a GENERIC_TERMS word weighs this share of a specific word


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stripper: "leaves"/"leave", "accrued"/"accrues", "taking"/"take" meet."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


@lru_cache(maxsize=1)
def _phrases() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """Synonym phrases as stemmed word tuples, by first word, longest first."""
    table: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for concept, phrases in HR_SYNONYMS.items():
        for phrase in phrases:
            words = tuple(stem(w) for w in _WORD.findall(_normalise(phrase)))
            table.setdefault(words[0], []).append((words, "@" + concept))
    for options in table.values():
        options.sort(key=lambda option: -len(option[0]))
    return table


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").lower()
    return _FOUR_O_ONE_K.sub(lambda m: m.group(1) + (m.group(2) or m.group(3)), text)


def terms(text: str, *, query: bool = False) -> list[str]:
    """Index terms of a text: stemmed content words, plus a concept term per synonym phrase.

    In a question a phrase stands for its concept alone: "vacation" asks for time off, and a
    passage that says "paid time off" answers it fully. A passage keeps the phrase's words too.
    """
    stems = [stem(w) for w in _WORD.findall(_normalise(text))]
    table = _phrases()
    out: list[str] = []
    done = 0  # stems before this index are in ``out`` already
    for i in [i for i, s in enumerate(stems) if s in table]:
        if i < done:
            continue  # inside a phrase found already
        size, concept = _phrase_at(stems, i, table)
        if not concept:
            continue
        out += [s for s in stems[done:i] if s not in _STOP_STEMS]
        out.append(concept)
        if not query:
            out += [s for s in stems[i : i + size] if s not in _STOP_STEMS]
        done = i + size
    out += [s for s in stems[done:] if s not in _STOP_STEMS]
    return out


def _phrase_at(
    stems: list[str], i: int, table: dict[str, list[tuple[tuple[str, ...], str]]]
) -> tuple[int, str]:
    """Length and concept of the synonym phrase starting at ``i`` (1 and "" when none)."""
    for words, concept in table.get(stems[i], ()):
        if tuple(stems[i : i + len(words)]) == words:
            return len(words), concept
    return 1, ""


_STOP_STEMS = frozenset(STOPWORDS | {stem(w) for w in STOPWORDS})
_QUANTITY_TERMS = frozenset(stem(w) for w in _QUANTITY_WORDS.split())
_GENERIC_STEMS = frozenset(stem(w) for w in GENERIC_TERMS)


@dataclass(frozen=True)
class Sentence:
    """A sentence of a passage: its exact text (a substring of the passage) and where it lies."""

    passage: int
    position: int  # order within the passage
    text: str
    terms: tuple[str, ...]
    is_list_item: bool
    lead: frozenset[str]  # terms of the question or label just before it
    is_candidate: bool  # can be an answer: not a question, a heading or a label
    states_quantity: bool  # holds a number, an amount or a frequency


def _sentence(
    passage: int,
    position: int,
    text: str,
    is_item: bool,
    lead: frozenset[str],
    labels: frozenset[str] = frozenset(),
) -> Sentence:
    words = terms(text)
    count = len(text.split())
    if text.rstrip().endswith("?") or text.strip().casefold() in labels:
        candidate = False  # a question, or the document's title or a heading: context only
    elif is_item:
        candidate = "\t" in text or " | " in text or count >= MIN_ITEM_WORDS
    else:
        candidate = count >= MIN_WORDS
    quantity = _DIGIT_OR_UNIT.search(text) is not None or not _QUANTITY_TERMS.isdisjoint(words)
    return Sentence(passage, position, text, tuple(words), is_item, lead, candidate, quantity)


def split_sentences(text: str) -> Iterator[tuple[str, bool]]:
    """Sentences of a passage, exact substrings, in order; flags list items and table rows."""
    for line in text.splitlines():
        if not line.strip():
            continue
        if _LIST_ITEM.match(line) or "\t" in line or " | " in line:
            yield line.strip(), True
            continue
        yield from ((s, False) for s in _split_line(line))


def _split_line(line: str) -> Iterator[str]:
    start = 0
    for match in _BOUNDARY.finditer(line):
        end = match.end()
        if end >= len(line) or not _starts_sentence(line[end]):
            continue
        if _is_abbreviation(line[start : match.start() + 1]):
            continue
        piece = line[start:end].strip()
        if piece:
            yield piece
        start = end
    piece = line[start:].strip()
    if piece:
        yield piece


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit() or char in "\"'\u201c\u2018(["


def _is_abbreviation(text_to_stop: str) -> bool:
    """Whether the word ending at this full stop is an abbreviation ("e.g.", "U.S.", "Dr.")."""
    if not text_to_stop.endswith("."):
        return False
    word = text_to_stop.rsplit(None, 1)[-1] if text_to_stop.split() else ""
    if _INITIALISM.search(word):
        return True
    bare = word.rstrip(".").lstrip("(\"'").lower()
    return bare in ABBREVIATIONS or (len(bare) == 1 and bare.isalpha())


class ExtractiveGenerator:
    """Answers with the passages' best-matching sentences; abstains when support is too low."""

    def __init__(self, *, min_support: float = DEFAULT_MIN_SUPPORT, max_sentences: int = 3) -> None:
        if not 0.0 <= min_support <= 1.0:
            raise ValueError("min_support is a share of the question's terms, from 0 to 1")
        if max_sentences < 1:
            raise ValueError("max_sentences must be at least 1")
        self.min_support = min_support
        self.max_sentences = max_sentences

    def generate(self, question: str, passages: Sequence[SearchHit]) -> GeneratedAnswer:
        scored = _Scorer(question, passages)
        if not scored.sentences or scored.support() < self.min_support:
            return GeneratedAnswer(sentences=(), abstained=True)
        chosen = self._choose(scored)
        if not chosen:
            return GeneratedAnswer(sentences=(), abstained=True)
        chosen.sort(key=lambda s: (s.passage, s.position))
        return GeneratedAnswer(
            sentences=tuple(AnswerSentence(s.text, (s.passage,), (s.text,)) for s in chosen),
            abstained=False,
        )

    def support(self, question: str, passages: Sequence[SearchHit]) -> float:
        """Share (0..1) of the question's weighted terms that the best sentence covers."""
        return _Scorer(question, passages).support()

    def _choose(self, scored: _Scorer) -> list[Sentence]:
        ranked = sorted(
            (i for i, s in enumerate(scored.scores) if s > 0),
            key=lambda i: (-scored.scores[i], i),
        )
        if not ranked:
            return []
        best = scored.sentences[ranked[0]]
        chosen = [best, *self._list_after(scored, ranked[0])]
        for index in ranked[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if scored.scores[index] < FOLLOWER_SHARE * scored.scores[ranked[0]]:
                break
            candidate = scored.sentences[index]
            if not any(_redundant(candidate, c) for c in chosen):
                chosen.append(candidate)
        return chosen[: self.max_sentences]

    def _list_after(self, scored: _Scorer, index: int) -> list[Sentence]:
        """A sentence that introduces a list ("...as follows:") brings its first items along."""
        sentence = scored.sentences[index]
        if not sentence.text.rstrip().endswith(":"):
            return []
        items = []
        for follower in scored.sentences[index + 1 : index + self.max_sentences]:
            if follower.passage != sentence.passage or not follower.is_list_item:
                break
            items.append(follower)
        return items


def _redundant(a: Sentence, b: Sentence) -> bool:
    if a.text == b.text:
        return True
    union = set(a.terms) | set(b.terms)
    return bool(union) and len(set(a.terms) & set(b.terms)) / len(union) > REDUNDANT_OVERLAP


class _Scorer:
    """BM25 of every candidate sentence against the question, over the passages handed in.

    A term's weight is its inverse sentence frequency, lowered when it occurs in most passages
    (the employer's name in every passage says nothing about which sentence answers). A term
    missing from the sentence still counts, partly, when the question or label just before it
    (a FAQ's "Q. ...?") or its passage's title and heading carry it.
    """

    def __init__(self, question: str, passages: Sequence[SearchHit]) -> None:
        self.query = list(dict.fromkeys(terms(question, query=True)))
        self.asks_quantity = _ASKS_QUANTITY.search(question) is not None
        every = list(_sentences(passages))
        self.sentences = [s for s in every if s.is_candidate]
        self.context = [frozenset(terms(f"{p.title} {p.heading}")) for p in passages]
        self.idf, self.weight = self._weights(every, passages)
        self.total_idf = sum(self.idf.values())
        lengths = [len(s.terms) for s in self.sentences]
        self.avg_length = (sum(lengths) / len(lengths)) if lengths else 1.0
        self.scores = [self._score(s) for s in self.sentences]

    def _weights(
        self, every: list[Sentence], passages: Sequence[SearchHit]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Each question term's rarity among the sentences, and that rarity after the discount."""
        n = len(every)
        query = set(self.query)
        df: Counter[str] = Counter()
        in_passage: list[set[str]] = [set(c & query) for c in self.context]
        for sentence in every:
            present = query.intersection(sentence.terms)
            df.update(present)
            in_passage[sentence.passage].update(present)
        pf: Counter[str] = Counter(t for found in in_passage for t in found)
        spread = max(len(passages), 1)
        idf = {
            t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            * (GENERIC_WEIGHT if t in _GENERIC_STEMS else 1.0)
            for t in self.query
        }
        weight = {t: idf[t] * (1 - SPREAD_DISCOUNT * pf[t] / spread) for t in self.query}
        return idf, weight

    def _score(self, sentence: Sentence) -> float:
        counts = Counter(sentence.terms)
        norm = K1 * (1 - B + B * len(sentence.terms) / (self.avg_length or 1.0))
        score = 0.0
        for term in self.query:
            tf = counts.get(term, 0)
            if tf:
                score += self.weight[term] * tf * (K1 + 1) / (tf + norm)
            else:
                score += self.weight[term] * self._borrowed(term, sentence)
        if self.asks_quantity and sentence.states_quantity:
            score *= QUANTITY_BONUS
        return score / (1 + RANK_DECAY * sentence.passage)

    def _borrowed(self, term: str, sentence: Sentence) -> float:
        if term in sentence.lead:
            return LEAD_WEIGHT
        if term in self.context[sentence.passage]:
            return CONTEXT_WEIGHT
        return 0.0

    def coverage(self, sentence: Sentence) -> float:
        """Weighted share of the question's terms the sentence (or its lead and context) holds.

        Weighted by rarity among the sentences only: the spread discount steers the choice
        between passages, but every question term counts toward whether an answer exists.
        """
        present = set(sentence.terms)
        if self.total_idf <= 0 or not (present | sentence.lead).intersection(self.query):
            return 0.0  # title and heading terms alone do not make a sentence an answer
        covered = sum(
            self.idf[t] * (1.0 if t in present else self._borrowed(t, sentence)) for t in self.query
        )
        return covered / self.total_idf

    def support(self) -> float:
        return max((self.coverage(s) for s in self.sentences), default=0.0)


def _sentences(passages: Sequence[SearchHit]) -> Iterator[Sentence]:
    for p_index, passage in enumerate(passages):
        lead: frozenset[str] = frozenset()
        labels = frozenset(
            part.strip().casefold() for part in (passage.title, *passage.heading.split(" > "))
        )
        for position, (text, is_item) in enumerate(split_sentences(passage.text)):
            sentence = _sentence(p_index, position, text, is_item, lead, labels)
            yield sentence
            # A question or a label hands its terms to the sentence after it (FAQ answers).
            lead = frozenset(sentence.terms) if not sentence.is_candidate else frozenset()
