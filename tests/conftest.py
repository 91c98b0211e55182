"""Shared test configuration. Fixtures that start real servers live in tests/fixtures/."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.corpus",  # paths into ../shared/corpus
    "tests.fixtures.embedding",  # the real embedding endpoint on loopback
    "tests.fixtures.aws",  # moto in server mode (S3, SQS)
    "tests.fixtures.file_servers",  # real FTP (pyftpdlib) and SFTP (OpenSSH sshd) servers
    "tests.fixtures.stack",  # the whole stack as processes
    "tests.fixtures.browser",  # Debian's Chromium for pytest-playwright
    "tests.fixtures.llm_servers",  # named fakes of the OpenAI and Bedrock Converse wire formats
    "tests.fixtures.hr_servers",  # named fakes of BambooHR, Workday, Rippling and ADP
    "tests.fixtures.rerank_server",  # a named fake of the Bedrock Rerank API
    "tests.fixtures.opensearch",  # a real OpenSearch cluster (OPENSEARCH_URL or a container)
    "tests.fixtures.opensearch_fake",  # a named fake of the OpenSearch REST API (request shapes)
    "tests.fixtures.textract",  # a named fake of Amazon Textract's JSON API (reads with Tesseract)
]

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not beside the checkout ({CORPUS})")
    return CORPUS
