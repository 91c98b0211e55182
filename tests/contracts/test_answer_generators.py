"""The AnswerGenerator contract on the extractive generator and on the two generative adapters.

The generative adapters talk to fake endpoints on loopback that follow the vendors' documented
wire formats (``tests/fixtures/llm_servers.py``): the real httpx client for OpenAI-compatible
endpoints, the real boto3 ``bedrock-runtime`` client for Bedrock. The fakes reply with the text
each test scripts; the contract runs them as a careful model (``well_behaved_model``). Adapter-only
tests live in ``tests/unit/test_extractive.py`` and ``tests/unit/test_generative_generators.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from datatorag.adapters.generators.bedrock import BedrockGenerator
from datatorag.adapters.generators.extractive import ExtractiveGenerator
from datatorag.adapters.generators.openai_compatible import OpenAICompatibleGenerator
from tests.contracts.answer_generator import AnswerGeneratorContract
from tests.fixtures.llm_servers import (
    FakeBedrockRuntimeServer,
    FakeOpenAIServer,
    well_behaved_model,
)

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
OPENAI_MODEL = "gpt-4o-mini"
API_KEY = "sk-test-0123456789abcdef"


# --------------------------------------------------------------------------------------------
# The contract


@pytest.mark.unit
class TestExtractiveGenerator(AnswerGeneratorContract):
    @pytest.fixture
    def answer_generator(self) -> ExtractiveGenerator:
        return ExtractiveGenerator()


@pytest.mark.integration
class TestOpenAICompatibleGenerator(AnswerGeneratorContract):
    @pytest.fixture
    def answer_generator(
        self, fake_openai_server: FakeOpenAIServer
    ) -> Iterator[OpenAICompatibleGenerator]:
        fake_openai_server.respond(well_behaved_model)
        with OpenAICompatibleGenerator(
            fake_openai_server.base_url, OPENAI_MODEL, api_key=API_KEY, timeout=10
        ) as generator:
            yield generator


@pytest.mark.integration
class TestBedrockGenerator(AnswerGeneratorContract):
    @pytest.fixture
    def answer_generator(
        self,
        fake_bedrock_server: FakeBedrockRuntimeServer,
        bedrock_runtime_client_for: Callable[..., Any],
    ) -> BedrockGenerator:
        fake_bedrock_server.respond(well_behaved_model)
        return BedrockGenerator(bedrock_runtime_client_for(fake_bedrock_server.url), MODEL_ID)
