"""What kind of fact a question asks for, and whether a sentence states one.

"How much ...?" wants an amount, "how long" a duration, "how many" a count, "when" a date or a
deadline, "who" a person or a role, "can I / must I" a rule (a modal verb or a yes/no). A
sentence that shares the question's words but states no such fact (a heading, an introduction,
a neighbouring policy) is not the answer. Questions of no known type ("what is the policy on
...") accept any sentence.
"""

from __future__ import annotations

import re
from enum import Enum


class AnswerType(Enum):
    AMOUNT = "amount"
    DURATION = "duration"
    COUNT = "count"
    DATE = "date"
    PERSON = "person"
    RULE = "rule"
    ANY = "any"


_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|sixty|ninety|hundred|thousand|half|a|an|several|unlimited|no"
)
_NUMBER = rf"(?:\d[\d,.]*|\b(?:{_NUMBER_WORDS})\b)"
_UNIT = (
    r"(?:business |working |calendar |consecutive |full |paid |unpaid )*"
    r"(?:minutes?|hours?|days?|weeks?|months?|years?|quarters?|sessions?|shifts?)"
)
_MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_WEEKDAY = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"

_FACTS: dict[AnswerType, re.Pattern[str]] = {
    AnswerType.AMOUNT: re.compile(
        r"[$\u00a3\u20ac]\s?\d|\d\s?%|\b\d[\d,.]*\s?(?:usd|eur|gbp|dollars?|euros?|pounds?)\b|"
        r"\bpercent\b|\b(?:full|half|no|unlimited|flexible)\b|\d",
        re.I,
    ),
    AnswerType.DURATION: re.compile(
        rf"{_NUMBER}[\s-]+{_UNIT}|\b(?:unlimited|indefinite\w*|no (?:set )?limit|flexible)\b|"
        rf"\b(?:daily|weekly|monthly|annually|yearly)\b|\d",
        re.I,
    ),
    AnswerType.COUNT: re.compile(rf"\d|\b(?:{_NUMBER_WORDS}|unlimited|no limit)\b", re.I),
    AnswerType.DATE: re.compile(
        rf"\b(?:{_MONTH})\b|\b(?:{_WEEKDAY})s?\b|\d|\b(?:before|after|within|by|until|"
        r"prior to|following|once|during|at the (?:start|end|beginning)|first|last|next|"
        r"each|every|annual\w*|quarter\w*|month\w*|week\w*|day)\b",
        re.I,
    ),
    AnswerType.PERSON: re.compile(
        r"(?i:\b(?:manager|supervisor|lead|head|director|team|department|hr|people|ops|partner|"
        r"officer|committee|ceo|cfo|coo|founder|executive|administrator|admin|representative|"
        r"recruiter|payroll|finance|benefits|owner|advisor|contact|channel|email|slack)\w*\b)|"
        r"\b[A-Z][a-z]+ [A-Z][a-z]+\b",
    ),
    AnswerType.RULE: re.compile(
        r"\b(?:may|must|can|cannot|can't|should|shall|will|need|needs|required?|requires|"
        r"allowed|permitted|prohibited|eligible|entitled|not|no|yes|only|never|always|"
        r"encouraged?|expected|welcome|approval|approve[sd]?|ok|okay|free to|up to)\b",
        re.I,
    ),
}

# First match wins: the more specific asks before the general ones.
_ASKS: tuple[tuple[re.Pattern[str], AnswerType], ...] = (
    (re.compile(r"\bhow (?:long|soon|far in advance|early|late)\b", re.I), AnswerType.DURATION),
    (re.compile(r"\bhow (?:many|often)\b|\bnumber of\b", re.I), AnswerType.COUNT),
    (
        re.compile(
            r"\bhow much\b|\bwhat(?: is|'s| are) the (?:\w+ )?(?:amount|budget|limit|cap|most|"
            r"rate|maximum|minimum|match|stipend|allowance|cost|fee|percentage)\b|"
            r"\bwhat percentage\b|\bcost\b|\bpay(?:s)? (?:for|back)\b",
            re.I,
        ),
        AnswerType.AMOUNT,
    ),
    (
        re.compile(r"\bwhen\b|\bwhat (?:date|day|time)\b|\bdeadline\b|\bby when\b", re.I),
        AnswerType.DATE,
    ),
    (re.compile(r"\bwho(?:m)?\b|\bwhich (?:team|person|department)\b", re.I), AnswerType.PERSON),
    (
        re.compile(
            r"^(?!\s*(?:what|which|where|why|how)\b)\s*(?:\w+[,:]?\s+){0,12}?"
            r"(?:can|may|must|should|do|does|is|are|am|will|"
            r"have to|need to|allowed)\b[^?]*\?",
            re.I,
        ),
        AnswerType.RULE,
    ),
)


def expected_type(question: str) -> AnswerType:
    """The kind of fact the question asks for (``ANY`` when it does not say)."""
    question = question.replace("\u2019", "'")
    for pattern, kind in _ASKS:
        if pattern.search(question):
            return kind
    return AnswerType.ANY


def states(kind: AnswerType, text: str) -> bool:
    """Whether ``text`` states a fact of that kind (always true for ``ANY``)."""
    pattern = _FACTS.get(kind)
    return pattern is None or pattern.search(text) is not None
