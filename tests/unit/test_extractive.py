"""The extractive generator's parts: splitter, synonyms, scorer, thresholds."""

from __future__ import annotations

import pytest

from datatorag.adapters.generators.extractive import (
    HR_SYNONYMS,
    ExtractiveGenerator,
    split_sentences,
    terms,
)
from datatorag.adapters.generators.extractive.answer_type import expected_type
from datatorag.adapters.generators.extractive.generator import QUOTE_CAP
from datatorag.domain.models import SearchHit
from tests.contracts.answer_generator import (
    ANSWERABLE,
    HR_PASSAGES,
    UNANSWERABLE,
    assert_grounded,
)

pytestmark = pytest.mark.unit


def test_titles_and_headings_inside_a_passage_are_never_the_answer():
    passage = SearchHit(
        chunk_id="d:v:0",
        doc_id="d",
        title="Paid Parental Leave Policy",
        source_uri="file:///p.pdf",
        pages=[1],
        heading="Paid Parental Leave Policy > Eligibility",
        text="Paid Parental Leave Policy\nEligibility\n"
        "Eligible teammates receive 16 weeks of paid parental leave after a birth or adoption.",
        score=1.0,
    )
    answer = ExtractiveGenerator().generate("How many weeks of paid parental leave?", [passage])
    assert not answer.abstained
    texts = [s.text for s in answer.sentences]
    assert texts and all("16 weeks" in t for t in texts)


# --------------------------------------------------------------------------------------------
# The extractive generator's parts


class TestExtractiveDetails:
    def test_sentences_respect_abbreviations_lists_and_tables(self) -> None:
        text = (
            "Staff in the U.S. Army Reserve get military leave, e.g. for drills. Dr. Lee approves "
            "it. See No. 4 of the handbook.\n"
            "Eligible absences:\n"
            "- jury duty\n"
            "2) voting\n"
            "Plan\tEmployee cost\tCompany cost\n"
            "Total: 5 days."
        )
        assert [s for s, _ in split_sentences(text)] == [
            "Staff in the U.S. Army Reserve get military leave, e.g. for drills.",
            "Dr. Lee approves it.",
            "See No. 4 of the handbook.",
            "Eligible absences:",
            "- jury duty",
            "2) voting",
            "Plan\tEmployee cost\tCompany cost",
            "Total: 5 days.",
        ]
        assert [item for _, item in split_sentences(text)] == [
            False, False, False, False, True, True, True, False
        ]  # fmt: skip

    @pytest.mark.parametrize(
        ("employee_says", "policy_says"),
        [
            ("vacation", "paid time off"),
            ("PTO", "annual leave"),
            ("401(k)", "retirement plan"),
            ("401k", "401 (k)"),
            ("maternity leave", "parental leave"),
            ("FMLA", "Family and Medical Leave"),
            ("work from home", "telework"),
        ],
    )
    def test_hr_synonyms_meet(self, employee_says: str, policy_says: str) -> None:
        assert set(terms(employee_says)) & set(terms(policy_says)) & {f"@{c}" for c in HR_SYNONYMS}

    def test_synonym_bridges_question_and_passage(self) -> None:
        passage = SearchHit(
            chunk_id="c",
            doc_id="d",
            title="Leave",
            source_uri="file:///leave.pdf",
            pages=[2],
            heading="",
            text="Team members accrue 20 days of paid time off each year.\nOffices close at 6 pm.",
            score=1.0,
        )
        answer = ExtractiveGenerator().generate("How much vacation do I get?", [passage])
        assert answer.sentences[0].text.startswith(
            "Team members accrue 20 days of paid time off each year."
        )

    def test_faq_answer_follows_its_question(self) -> None:
        passage = SearchHit(
            chunk_id="c",
            doc_id="d",
            title="Benefits FAQ",
            source_uri="file:///faq.pdf",
            pages=[1],
            heading="",
            text="Q. Does the company match my 401k?\nNot at this time.\nQ. Who runs the plan?\n"
            "Human Interest administers it for US teammates.",
            score=1.0,
        )
        answer = ExtractiveGenerator().generate("Is there a 401(k) match?", [passage])
        # The answer is read with its question: "Not at this time." alone says nothing.
        assert answer.sentences[0].text == "Q. Does the company match my 401k?\nNot at this time."
        assert answer.sentences[0].quotes == (answer.sentences[0].text,)

    def test_answer_reads_in_passage_order_and_quotes_itself(self) -> None:
        answer = ExtractiveGenerator().generate(
            "How many PTO days carry over and how many days do I accrue?", list(HR_PASSAGES)
        )
        assert 1 <= len(answer.sentences) <= 3
        positions = [
            (s.sources[0], HR_PASSAGES[s.sources[0]].text.index(s.text)) for s in answer.sentences
        ]
        assert positions == sorted(positions)
        assert all(s.quotes == (s.text,) and len(s.sources) == 1 for s in answer.sentences)

    def test_support_separates_answerable_from_unanswerable(self) -> None:
        generator = ExtractiveGenerator()
        passages = list(HR_PASSAGES)
        answerable = [generator.support(q, passages) for q, _, _ in ANSWERABLE]
        unanswerable = [generator.support(q, passages) for q in UNANSWERABLE]
        assert min(answerable) > generator.min_support > max(unanswerable)
        assert all(0.0 <= s <= 1.0 for s in answerable + unanswerable)
        assert generator.support("What can I do?", passages) == 0.0  # only stop words

    def test_min_support_is_the_abstention_threshold(self) -> None:
        passages = list(HR_PASSAGES)
        support, question = min(
            (ExtractiveGenerator().support(q, passages), q) for q, _, _ in ANSWERABLE
        )
        assert 0.0 < support < 1.0
        assert not ExtractiveGenerator(min_support=support).generate(question, passages).abstained
        above = ExtractiveGenerator(min_support=support + 0.01)
        assert above.generate(question, passages).abstained
        with pytest.raises(ValueError, match="min_support"):
            ExtractiveGenerator(min_support=1.5)

    def test_max_sentences(self) -> None:
        answer = ExtractiveGenerator(max_sentences=1).generate(
            "How many PTO days carry over and how many days do I accrue?", list(HR_PASSAGES)
        )
        assert len(answer.sentences) == 1


def _passage(doc: str, text: str, heading: str = "", title: str = "Policy") -> SearchHit:
    return SearchHit(
        chunk_id=f"{doc}:v:0",
        doc_id=doc,
        title=title,
        source_uri=f"file:///{doc}.pdf",
        pages=[1],
        heading=heading,
        text=text,
        score=1.0,
    )


class TestAnswersStateTheFact:
    def test_a_table_row_with_its_header_carries_the_amount(self) -> None:
        passage = _passage(
            "gifts",
            "Anniversary gifts come from the team budget and are sent by the People team.\n"
            "Anniversary\tGift budget\nYear 2\t$100 USD\nYear 3\t$150 USD\nYear 4\t$200 USD",
            heading="Anniversary gifts",
        )
        answer = ExtractiveGenerator().generate(
            "What is the gift budget for my third anniversary?", [passage]
        )
        lead = answer.sentences[0]
        assert lead.text == "Year 3 | $150 USD (columns: Anniversary | Gift budget)"
        assert lead.quotes == ("Year 3\t$150 USD",)

    @pytest.mark.parametrize(
        ("question", "fact"),
        [
            ("How long do background checks look back?", "7 years"),
            ("When are expense reports due?", "within 30 days"),
            ("Who approves a remote work request?", "Head of People"),
        ],
    )
    def test_the_lead_states_the_kind_of_fact_asked(self, question: str, fact: str) -> None:
        passage = _passage(
            "misc",
            "Background checks are part of hiring and are run by an outside agency for "
            "background checks. Background checks look back 7 years. "
            "Expense reports cover travel and meals. Expense reports are due within 30 days. "
            "Remote work requests matter to us and remote work is common. "
            "A remote work request is approved by the Head of People.",
        )
        answer = ExtractiveGenerator().generate(question, [passage])
        assert fact in answer.sentences[0].text

    def test_no_sentence_of_the_asked_kind_abstains_with_a_confidence(self) -> None:
        passage = _passage(
            "hsa",
            "The company offers a health savings account (HSA) with the high-deductible plan. "
            "Teammates can contribute to the HSA through payroll.",
        )
        generator = ExtractiveGenerator()
        answer = generator.generate("How much does the company contribute to my HSA?", [passage])
        assert answer.abstained and answer.confidence is not None
        answered = generator.generate("Can I contribute to the HSA through payroll?", [passage])
        assert not answered.abstained
        assert answered.confidence is not None and 0.0 < answered.confidence <= 1.0

    def test_one_policy_per_answer_unless_the_question_compares(self) -> None:
        ours = _passage("acme/401k", "Q. Does Acme match my 401(k)?\nNot at this time.")
        theirs = _passage(
            "globex/401k", "Globex matches 401(k) contributions up to 4% of your salary."
        )
        generator = ExtractiveGenerator()
        answer = generator.generate("Is there a 401(k) match and how much?", [ours, theirs])
        assert len({s.sources[0] for s in answer.sentences}) == 1
        both = generator.generate(
            "Compare the 401(k) match of Acme and Globex: how much?", [ours, theirs]
        )
        assert {s.sources[0] for s in both.sentences} == {0, 1}

    def test_neighbouring_sentences_read_as_one_quote(self) -> None:
        text = (
            "Sick time covers illness of a week or less. A doctor's note is not required for "
            "sick time of a week or less. Longer absences use medical leave."
        )
        answer = ExtractiveGenerator().generate(
            "Is a doctor's note required for sick time?", [_passage("sick", text)]
        )
        for sentence in answer.sentences:
            (quote,) = sentence.quotes
            assert quote in text
        assert any("doctor's note" in s.quotes[0] for s in answer.sentences)


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What\u2019s the gift budget for my third anniversary?", "amount"),
        ("How much does the company match?", "amount"),
        ("How long do I have to finish the training?", "duration"),
        ("How many counseling sessions are free?", "count"),
        ("When is my self-assessment due?", "date"),
        ("Who approves my expense report?", "person"),
        ("Can I work from another country for a month?", "rule"),
        ("What is the dress code?", "any"),
    ],
)
def test_the_kind_of_fact_a_question_asks_for(question: str, kind: str) -> None:
    assert expected_type(question).value == kind


class TestAnswerShape:
    """The lead is quoted with its paragraph and the paragraphs after it (``QUOTE_CAP``)."""

    def test_the_lead_brings_its_paragraph_and_the_next_ones_within_the_cap(self) -> None:
        text = (
            "Counselling\n"
            "Counsellors help with stress and grief. You can receive six free sessions a year.\n"
            "Referrals beyond that depend on your insurance.\n"
            + "Unrelated filler sentence about the office plants and their watering. "
            * 20
        )
        answer = ExtractiveGenerator().generate(
            "How many free counselling sessions do I get?", [_passage("eap", text)]
        )
        (lead, *_) = answer.sentences
        assert lead.text.startswith("Counsellors help with stress and grief. You can receive six")
        assert "Referrals beyond that depend on your insurance." in lead.text
        assert "office plants" not in lead.text  # the next paragraph would pass the cap
        assert len(lead.quotes[0]) <= QUOTE_CAP and lead.quotes[0] in text

    def test_the_quote_stops_before_the_next_faq_question(self) -> None:
        text = (
            "Q. Can I carry over unused PTO?\nYes, up to five days carry over.\n"
            "Q. Who approves PTO?\nYour manager approves it in the HR system."
        )
        answer = ExtractiveGenerator().generate("Can unused PTO carry over?", [_passage("f", text)])
        assert answer.sentences[0].text == (
            "Q. Can I carry over unused PTO?\nYes, up to five days carry over."
        )

    def test_a_list_item_is_read_with_its_list(self) -> None:
        intro = "The People team sends these amounts per teammate:\n"
        items = "Year 2 anniversary gift: $100 USD\nYear 3 anniversary gift: $150 USD\n"
        text = "Gifts celebrate milestones at work.\n" + intro + items
        answer = ExtractiveGenerator().generate(
            "What is the anniversary gift for year 3?", [_passage("gifts", text)]
        )
        # The lead is the Year 3 item; its list's introducing line says what the amounts are.
        assert answer.sentences[0].quotes == ((intro + items).strip(),)
        sentence = "Every teammate gets an anniversary gift of $150 USD in year 3 of service."
        prose = ExtractiveGenerator().generate(
            "What is the anniversary gift for year 3?", [_passage("g", intro + sentence)]
        )
        assert prose.sentences[0].quotes == (sentence,)  # a sentence is no list item

    def test_possessives_meet_their_noun(self) -> None:
        assert terms("Sourcegraph's laptop's policy") == terms("Sourcegraph laptop policy")


def test_a_real_policy_answer_quotes_the_fact_with_its_paragraph(corpus_pdf):
    """A real corpus PDF through the processor's extractor and chunker: the answer states the
    fact, quoted with the rest of its paragraph (what the counselors can do beyond the free
    sessions), every quote found in the passage it cites."""
    from datatorag.settings import Settings
    from datatorag_processor.bootstrap import build_chunker
    from datatorag_processor.extract import extract

    path = corpus_pdf("libreoffice/18f/benefits-overview")
    doc = extract(path.read_bytes(), path.name, max_bytes=50 * 1024 * 1024, max_pages=1000)
    chunks = build_chunker(Settings(_env_file=None)).chunk("eap", "v" * 12, "Benefits", doc)
    passages = [
        SearchHit(
            chunk_id=c.chunk_id,
            doc_id="18f/benefits-overview",
            title="Benefits",
            source_uri=path.as_uri(),
            pages=c.pages,
            heading=c.heading,
            text=c.text,
            score=1.0,
        )
        for c in chunks
        if "Employee Assistance Program" in c.heading
    ]
    assert passages
    answer = ExtractiveGenerator().generate(
        "How many free counseling sessions can I get through the Employee Assistance Program?",
        passages,
    )
    assert not answer.abstained
    text = " ".join(" ".join(s.text.split()) for s in answer.sentences)
    assert "You can receive six free sessions for you or family members" in text
    assert "EAP counselors can provide referrals for assistance beyond the six sessions" in text
    assert_grounded(answer, passages)
