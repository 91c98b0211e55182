"""The words the extractive generator knows: HR synonyms, stop words, generic and quantity words."""

from __future__ import annotations

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

# Numbers written as words meet their digits ("six sessions" / "6 sessions", "third" / "Year 3").
NUMBER_WORDS: dict[str, str] = {
    word: str(n)
    for n, words in enumerate(
        (
            (),
            ("one", "first"),
            ("two", "second"),
            ("three", "third"),
            ("four", "fourth"),
            ("five", "fifth"),
            ("six", "sixth"),
            ("seven", "seventh"),
            ("eight", "eighth"),
            ("nine", "ninth"),
            ("ten", "tenth"),
            ("eleven", "eleventh"),
            ("twelve", "twelfth"),
        )
    )
    for word in words
}
