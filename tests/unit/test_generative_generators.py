"""The OpenAI-compatible and Bedrock generators against fake endpoints (wire formats, sloppy
replies, errors) and the shared reply checks of ``prompt.py``.

Moved from the contract suite, which keeps only the behaviour every adapter shows.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from structlog.testing import capture_logs

from datatorag import wiring
from datatorag.adapters.generators.bedrock import BedrockGenerator
from datatorag.adapters.generators.openai_compatible import OpenAICompatibleGenerator
from datatorag.adapters.generators.prompt import (
    SYSTEM_PROMPT,
    GeneratorRequestRejected,
    build_user_prompt,
    locate_quote,
    parse_answer,
)
from datatorag.domain.errors import PermanentError, RetryableError
from datatorag.ports import AnswerGenerator, AnswerSentence
from datatorag.settings import Settings
from tests.contracts.answer_generator import (
    ANSWERABLE,
    HR_PASSAGES,
    assert_grounded,
)
from tests.fixtures.llm_servers import (
    FakeBedrockRuntimeServer,
    FakeOpenAIServer,
    prompt_passages,
    well_behaved_model,
)

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
OPENAI_MODEL = "gpt-4o-mini"
API_KEY = "sk-test-0123456789abcdef"
PASSAGES = list(HR_PASSAGES[:3])  # PTO, parental leave, 401(k): numbered [1], [2], [3]
PARENTAL = 1
GOOD_QUOTE = "Birthing parents receive 16 weeks of fully paid leave"
GOOD = {
    "sentence": "Birthing parents get 16 weeks of fully paid leave [2].",
    "citations": [{"passage": 2, "quote": GOOD_QUOTE}],
}


def _reply(*items: dict[str, Any], abstain: bool = False) -> str:
    return json.dumps({"answer": list(items), "abstain": abstain})


# --------------------------------------------------------------------------------------------
# Both generative adapters against a sloppy model


@dataclass
class Vendor:
    name: str
    generator: AnswerGenerator
    server: FakeOpenAIServer | FakeBedrockRuntimeServer


@pytest.fixture(params=["openai", "bedrock"])
def vendor(request: pytest.FixtureRequest) -> Iterator[Vendor]:
    if request.param == "openai":
        server: FakeOpenAIServer = request.getfixturevalue("fake_openai_server")
        with OpenAICompatibleGenerator(server.base_url, OPENAI_MODEL, timeout=0.5) as generator:
            yield Vendor("openai", generator, server)
        return
    fake: FakeBedrockRuntimeServer = request.getfixturevalue("fake_bedrock_server")
    make_client: Callable[..., Any] = request.getfixturevalue("bedrock_runtime_client_for")
    client = make_client(fake.url, read_timeout=0.5)
    yield Vendor("bedrock", BedrockGenerator(client, MODEL_ID), fake)


@pytest.mark.integration
class TestGenerativeReplies:
    QUESTION = ANSWERABLE[0][0]

    def test_citation_of_a_passage_not_given_is_dropped(self, vendor: Vendor) -> None:
        invented = {
            "sentence": "Adoptive parents get 20 weeks.",
            "citations": [{"passage": 7, "quote": GOOD_QUOTE}],
        }
        zero = {
            "sentence": "Leave is unlimited.",
            "citations": [{"passage": 0, "quote": GOOD_QUOTE}],
        }
        vendor.server.reply(_reply(GOOD, invented, zero))
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        assert not answer.abstained
        assert answer.sentences == (
            AnswerSentence(
                "Birthing parents get 16 weeks of fully paid leave.", (PARENTAL,), (GOOD_QUOTE,)
            ),
        )

    def test_quote_that_is_not_in_the_passage_is_dropped(self, vendor: Vendor) -> None:
        made_up = {
            "sentence": "Non-birthing parents get 20 weeks.",
            "citations": [
                {"passage": 2, "quote": "non-birthing parents receive 20 weeks of leave"}
            ],
        }
        wrong_passage = {  # a real quote, but from another passage than the one cited
            "sentence": "PTO accrues at 1.25 days a month.",
            "citations": [{"passage": 2, "quote": "earned at 1.25 days per month of service"}],
        }
        vendor.server.reply(_reply(made_up, GOOD, wrong_passage))
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        assert [s.text for s in answer.sentences] == [
            "Birthing parents get 16 weeks of fully paid leave."
        ]

    def test_a_sentence_keeps_only_its_verified_citations(self, vendor: Vendor) -> None:
        mixed = {
            "sentence": "Leave is fully paid for 16 weeks, within 12 months of the birth.",
            "citations": [
                {"passage": 9, "quote": GOOD_QUOTE},
                {"passage": 2, "quote": "within 12 months of the birth or adoption"},
                {"passage": 2, "quote": GOOD_QUOTE},  # a second quote of the same passage
                {"passage": 1, "quote": "invented words"},
            ],
        }
        vendor.server.reply(_reply(mixed))
        (sentence,) = vendor.generator.generate(self.QUESTION, PASSAGES).sentences
        assert sentence.sources == (PARENTAL,)
        assert sentence.quotes == ("within 12 months of the birth or adoption",)

    def test_nothing_verifiable_abstains(self, vendor: Vendor) -> None:
        bare = {"sentence": "Parents get 16 weeks.", "citations": [2]}  # no quote to check
        vendor.server.reply(_reply(bare, {"sentence": "No source at all.", "citations": []}))
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        assert answer.abstained
        assert answer.sentences == ()

    @pytest.mark.parametrize(
        "reply",
        [
            "NOT_IN_DOCUMENTS",
            "NOT_IN_DOCUMENTS\n\nThe passages cover PTO and retirement, not this.",
            "`not in documents`",
            '{"answer": [], "abstain": true}',
            _reply(GOOD, abstain=True),  # the flag wins over sentences
            "",
        ],
    )
    def test_model_says_not_in_documents(self, vendor: Vendor, reply: str) -> None:
        vendor.server.reply(reply)
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        assert answer.abstained
        assert answer.sentences == ()

    @pytest.mark.parametrize(
        "reply",
        [
            f"```json\n{_reply(GOOD)}\n```",
            f"Here is the answer:\n{_reply(GOOD)}\nI hope this helps.",
            f"```\n{_reply(GOOD)}\n```\nNote: passage 1 is about PTO.",
            # cut short by max tokens: the complete sentence object is kept
            _reply(GOOD, {"sentence": "Non-birthing parents get 12 weeks"})[:-20] + '", "cita',
            # prose instead of JSON, in the cited style the prompt asks for
            f'Birthing parents get 16 weeks of fully paid leave [2: "{GOOD_QUOTE}"].',
            f'- Birthing parents get 16 weeks of fully paid leave. [2] "{GOOD_QUOTE}"',
            f'Birthing parents get 16 weeks of fully paid leave [2] "{GOOD_QUOTE}". '
            "Adoption pay is not in the documents.",
        ],
        ids=[
            "fenced",
            "prose-around",
            "fenced-then-prose",
            "truncated",
            "prose",
            "bullet",
            "prose-partly-not-in-documents",
        ],
    )
    def test_replies_in_loose_formats_are_parsed(self, vendor: Vendor, reply: str) -> None:
        vendor.server.reply(reply)
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        assert [(s.text, s.sources, s.quotes) for s in answer.sentences] == [
            ("Birthing parents get 16 weeks of fully paid leave.", (PARENTAL,), (GOOD_QUOTE,))
        ]

    @pytest.mark.parametrize(
        "reply",
        [
            '{"answer": [{"sentence": "Parents get 16 weeks", "citations": [{"passage": 2, "quo',
            "{not json at all",
            '{"answer": "16 weeks", "abstain": false}',
            '{"answer": [42, null, {"sentence": 3}], "abstain": false}',
            "Birthing parents get 16 weeks.",  # no citation
            "[]",
        ],
    )
    def test_malformed_replies_abstain(self, vendor: Vendor, reply: str) -> None:
        vendor.server.reply(reply)
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        assert answer.abstained
        assert answer.sentences == ()

    def test_no_passages_costs_no_call(self, vendor: Vendor) -> None:
        vendor.server.reply(_reply(GOOD))
        assert vendor.generator.generate(self.QUESTION, []).abstained
        assert vendor.generator.generate("   ", PASSAGES).abstained
        assert vendor.server.requests == []

    @pytest.mark.parametrize(
        ("status", "bedrock_code"),
        [
            (429, "ThrottlingException"),
            (429, "ModelNotReadyException"),
            (408, "ModelTimeoutException"),
            (500, "InternalServerException"),
            (503, "ServiceUnavailableException"),
        ],
    )
    def test_throttling_and_server_errors_are_retryable(
        self, vendor: Vendor, status: int, bedrock_code: str
    ) -> None:
        vendor.server.fail(status, bedrock_code if vendor.name == "bedrock" else "")
        with pytest.raises(RetryableError, match=str(status)):
            vendor.generator.generate(self.QUESTION, PASSAGES)

    @pytest.mark.parametrize(
        ("status", "bedrock_code"),
        [
            (400, "ValidationException"),
            (403, "AccessDeniedException"),
            (404, "ResourceNotFoundException"),
        ],
    )
    def test_refused_requests_are_permanent(
        self, vendor: Vendor, status: int, bedrock_code: str
    ) -> None:
        vendor.server.fail(status, bedrock_code if vendor.name == "bedrock" else "")
        with pytest.raises(GeneratorRequestRejected, match=str(status)) as caught:
            vendor.generator.generate(self.QUESTION, PASSAGES)
        assert isinstance(caught.value, PermanentError)
        assert not isinstance(caught.value, RetryableError)

    def test_timeout_is_retryable(self, vendor: Vendor) -> None:
        vendor.server.stall(2.0)
        vendor.server.reply(_reply(GOOD))
        started = time.monotonic()
        with pytest.raises(RetryableError):
            vendor.generator.generate(self.QUESTION, PASSAGES)
        assert time.monotonic() - started < 1.9  # the client gave up, not the server

    def test_model_is_the_passages_only_source(self, vendor: Vendor) -> None:
        vendor.server.respond(well_behaved_model)
        answer = vendor.generator.generate(self.QUESTION, PASSAGES)
        system, user = vendor.server.prompts(vendor.server.requests[-1].body)
        assert system == SYSTEM_PROMPT
        assert user == build_user_prompt(self.QUESTION, PASSAGES)
        question, passages = prompt_passages(user)
        assert question == self.QUESTION
        assert [p.text for p in passages] == [p.text for p in PASSAGES]
        assert_grounded(answer, PASSAGES)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.integration
class TestOpenAIWireFormat:
    def test_request_follows_chat_completions(self, fake_openai_server: FakeOpenAIServer) -> None:
        fake_openai_server.reply(_reply(GOOD))
        with OpenAICompatibleGenerator(
            fake_openai_server.base_url + "/", OPENAI_MODEL, api_key=API_KEY, max_tokens=300
        ) as generator:
            generator.generate("How long is parental leave?", PASSAGES)
        (request,) = fake_openai_server.requests
        assert (request.method, request.path) == ("POST", "/v1/chat/completions")
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["content-type"] == "application/json"
        body = request.body
        assert body["model"] == OPENAI_MODEL
        assert body["temperature"] == 0
        assert body["max_tokens"] == 300
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == SYSTEM_PROMPT
        user = body["messages"][1]["content"]
        assert "How long is parental leave?" in user
        for number, passage in enumerate(PASSAGES, start=1):
            assert f'<passage id="{number}" title="{passage.title}"' in user
            assert passage.text in user

    def test_no_key_no_authorization_header(self, fake_openai_server: FakeOpenAIServer) -> None:
        fake_openai_server.reply("NOT_IN_DOCUMENTS")
        with OpenAICompatibleGenerator(fake_openai_server.base_url, OPENAI_MODEL) as generator:
            generator.generate("How long is parental leave?", PASSAGES)
        assert "authorization" not in fake_openai_server.requests[0].headers

    def test_from_settings(
        self, fake_openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATATORAG_GENERATOR_BACKEND", "openai")
        monkeypatch.setenv("DATATORAG_OPENAI_BASE_URL", fake_openai_server.base_url)
        monkeypatch.setenv("DATATORAG_OPENAI_MODEL", "llama3.1:8b")
        monkeypatch.setenv("DATATORAG_OPENAI_API_KEY", API_KEY)
        generator = wiring.answer_generator(Settings())
        assert isinstance(generator, OpenAICompatibleGenerator)
        fake_openai_server.reply(_reply(GOOD))
        answer = generator.generate("How long is parental leave?", PASSAGES)
        assert answer.sentences[0].sources == (PARENTAL,)
        request = fake_openai_server.requests[0]
        assert request.body["model"] == "llama3.1:8b"
        assert request.headers["authorization"] == f"Bearer {API_KEY}"

    def test_unreachable_endpoint_is_retryable(self) -> None:
        url = f"http://127.0.0.1:{_closed_port()}/v1"
        with (
            OpenAICompatibleGenerator(url, OPENAI_MODEL, timeout=2) as generator,
            pytest.raises(RetryableError, match="unreachable"),
        ):
            generator.generate("How long is parental leave?", PASSAGES)

    @pytest.mark.parametrize(
        "payload", [b"<html>Bad gateway</html>", {"choices": []}, {"id": "x"}, []]
    )
    def test_malformed_response_is_retryable(
        self, fake_openai_server: FakeOpenAIServer, payload: Any
    ) -> None:
        fake_openai_server.rewrite(lambda _payload: payload)
        with (
            OpenAICompatibleGenerator(fake_openai_server.base_url, OPENAI_MODEL) as generator,
            pytest.raises(RetryableError),
        ):
            generator.generate("How long is parental leave?", PASSAGES)

    def test_refusal_abstains(self, fake_openai_server: FakeOpenAIServer) -> None:
        def refuse(payload: dict[str, Any]) -> dict[str, Any]:
            payload["choices"][0]["message"].update(content=None, refusal="I can't help.")
            return payload

        fake_openai_server.reply(_reply(GOOD))
        fake_openai_server.rewrite(refuse)
        with OpenAICompatibleGenerator(fake_openai_server.base_url, OPENAI_MODEL) as generator:
            answer = generator.generate("How long is parental leave?", PASSAGES)
        assert answer.abstained

    def test_content_parts_are_joined(self, fake_openai_server: FakeOpenAIServer) -> None:
        def as_parts(payload: dict[str, Any]) -> dict[str, Any]:
            text = payload["choices"][0]["message"]["content"]
            half = len(text) // 2
            payload["choices"][0]["message"]["content"] = [
                {"type": "text", "text": text[:half]},
                {"type": "text", "text": text[half:]},
            ]
            return payload

        fake_openai_server.reply(_reply(GOOD))
        fake_openai_server.rewrite(as_parts)
        with OpenAICompatibleGenerator(fake_openai_server.base_url, OPENAI_MODEL) as generator:
            answer = generator.generate("How long is parental leave?", PASSAGES)
        assert answer.sentences[0].quotes == (GOOD_QUOTE,)

    def test_the_api_key_and_the_texts_stay_out_of_logs_and_errors(
        self, fake_openai_server: FakeOpenAIServer
    ) -> None:
        fake_openai_server.reply(_reply(GOOD))
        with (
            capture_logs() as logs,
            OpenAICompatibleGenerator(
                fake_openai_server.base_url, OPENAI_MODEL, api_key=API_KEY
            ) as generator,
        ):
            answer = generator.generate("How long is parental leave?", PASSAGES)
            fake_openai_server.fail(401, "invalid_api_key", "Incorrect API key provided")
            with pytest.raises(GeneratorRequestRejected) as caught:
                generator.generate("How long is parental leave?", PASSAGES)
        assert any(entry["event"] == "answer.generated" for entry in logs), logs
        logged = json.dumps(logs, default=str)
        assert API_KEY not in logged
        assert API_KEY not in str(caught.value)
        assert API_KEY not in repr(generator.__dict__)
        info = json.dumps([e for e in logs if e["log_level"] != "debug"], default=str)
        for secret in (answer.sentences[0].text, GOOD_QUOTE, PASSAGES[0].text[:40]):
            assert secret not in info


@pytest.mark.integration
class TestBedrockWireFormat:
    def test_request_follows_converse(
        self,
        fake_bedrock_server: FakeBedrockRuntimeServer,
        bedrock_runtime_client_for: Callable[..., Any],
    ) -> None:
        fake_bedrock_server.reply(_reply(GOOD))
        client = bedrock_runtime_client_for(fake_bedrock_server.url)
        answer = BedrockGenerator(client, MODEL_ID, max_tokens=300).generate(
            "How long is parental leave?", PASSAGES
        )
        assert answer.sentences[0].sources == (PARENTAL,)
        (request,) = fake_bedrock_server.requests
        assert request.method == "POST"
        assert fake_bedrock_server.model_ids() == [MODEL_ID]
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]
        body = request.body
        assert set(body) == {"messages", "system", "inferenceConfig"}  # modelId is in the path
        assert body["system"] == [{"text": SYSTEM_PROMPT}]
        assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0}
        (message,) = body["messages"]
        assert message["role"] == "user"
        (block,) = message["content"]
        assert block["text"] == build_user_prompt("How long is parental leave?", PASSAGES)

    def test_from_settings(
        self, fake_bedrock_server: FakeBedrockRuntimeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setenv("DATATORAG_GENERATOR_BACKEND", "bedrock")
        monkeypatch.setenv("DATATORAG_AWS_ENDPOINT_URL", fake_bedrock_server.url)
        monkeypatch.setenv("DATATORAG_BEDROCK_MODEL_ID", "amazon.nova-lite-v1:0")
        generator = wiring.answer_generator(Settings())
        assert isinstance(generator, BedrockGenerator)
        fake_bedrock_server.reply(_reply(GOOD))
        assert generator.generate("How long is parental leave?", PASSAGES).sentences
        assert fake_bedrock_server.model_ids() == ["amazon.nova-lite-v1:0"]

    def test_throttling_is_retried_once_by_default(
        self, fake_bedrock_server: FakeBedrockRuntimeServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        settings = Settings(aws_endpoint_url=fake_bedrock_server.url, aws_region="us-east-1")
        fake_bedrock_server.fail(429, "ThrottlingException", "Too many requests")
        with pytest.raises(RetryableError, match="ThrottlingException"):
            BedrockGenerator.from_settings(settings).generate("Parental leave?", PASSAGES)
        assert len(fake_bedrock_server.requests) == 2

    def test_unreachable_endpoint_is_retryable(
        self, bedrock_runtime_client_for: Callable[..., Any]
    ) -> None:
        client = bedrock_runtime_client_for(f"http://127.0.0.1:{_closed_port()}")
        with pytest.raises(RetryableError, match="unreachable"):
            BedrockGenerator(client, MODEL_ID).generate("Parental leave?", PASSAGES)

    @pytest.mark.parametrize("stop_reason", ["guardrail_intervened", "content_filtered"])
    def test_blocked_output_abstains(
        self,
        fake_bedrock_server: FakeBedrockRuntimeServer,
        bedrock_runtime_client_for: Callable[..., Any],
        stop_reason: str,
    ) -> None:
        fake_bedrock_server.reply(_reply(GOOD))
        fake_bedrock_server.rewrite(lambda payload: {**payload, "stopReason": stop_reason})
        client = bedrock_runtime_client_for(fake_bedrock_server.url)
        answer = BedrockGenerator(client, MODEL_ID).generate("Parental leave?", PASSAGES)
        assert answer.abstained


# --------------------------------------------------------------------------------------------
# The reply checks, directly


@pytest.mark.unit
class TestQuoteVerification:
    PASSAGE = (
        "Birthing parents receive 16 weeks of fully paid leave, and non-birthing parents "
        "receive 12 weeks.\n"
        "Leave must be taken within 12\u00a0months \u2014 see the \u201cPolicy\u201d."
    )

    @pytest.mark.parametrize(
        ("quote", "expected"),
        [
            ("Birthing parents receive 16 weeks", "Birthing parents receive 16 weeks"),
            ("  birthing   PARENTS receive\n16 weeks ", "Birthing parents receive 16 weeks"),
            ('"receive 12 weeks."', "receive 12 weeks."),
            ("receive 12 weeks!", "receive 12 weeks"),
            (
                'within 12 months - see the "Policy"',
                "within 12\u00a0months \u2014 see the \u201cPolicy\u201d",
            ),
            ("12 weeks. Leave must", "12 weeks.\nLeave must"),
            (
                "Birthing parents receive ... non-birthing parents",
                "Birthing parents receive 16 weeks of fully paid leave, and non-birthing parents",
            ),
        ],
    )
    def test_found_quotes_are_the_passages_own_words(self, quote: str, expected: str) -> None:
        found = locate_quote(quote, self.PASSAGE)
        assert found == expected
        assert found in self.PASSAGE

    @pytest.mark.parametrize(
        "quote",
        [
            "",
            "of the",  # too short to be evidence
            "weeks",
            "Birthing parents receive 20 weeks",
            "non-birthing parents ... Birthing parents",  # parts out of order
            "16 weeks of fully paid vacation",
        ],
    )
    def test_quotes_not_in_the_passage_are_refused(self, quote: str) -> None:
        assert locate_quote(quote, self.PASSAGE) is None

    def test_passage_numbers_are_one_based_and_checked(self) -> None:
        def cite(number: Any) -> str:
            return _reply(
                {"sentence": "x y z.", "citations": [{"passage": number, "quote": GOOD_QUOTE}]}
            )

        valid: list[Any] = [2, "2", "[2]", 2.0, "Passage 2"]
        for number in valid:
            assert parse_answer(cite(number), PASSAGES).sentences[0].sources == (PARENTAL,)
        invalid: list[Any] = [0, -1, 4, 1.5, True, None, "two", [2]]
        for number in invalid:
            assert parse_answer(cite(number), PASSAGES).abstained, number

    def test_markers_and_bullets_leave_the_sentence_text(self) -> None:
        reply = _reply(
            {
                "sentence": "  - Parents get 16 weeks [2] [1, 3] .",
                "citations": [{"passage": 2, "quote": GOOD_QUOTE}],
            }
        )
        assert parse_answer(reply, PASSAGES).sentences[0].text == "Parents get 16 weeks."

    def test_sentence_cap(self) -> None:
        reply = _reply(*[GOOD] * 30)
        assert len(parse_answer(reply, PASSAGES).sentences) == 10
