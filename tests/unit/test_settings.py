import pytest
from pydantic import ValidationError

from datatorag.settings import Settings

pytestmark = pytest.mark.unit


def test_chunk_size_follows_the_model_window():
    settings = Settings(_env_file=None)
    assert settings.model_max_tokens == 256  # all-MiniLM-L6-v2
    assert settings.effective_chunk_tokens == 254  # room for [CLS] and [SEP]
    assert 0 < settings.effective_chunk_overlap < settings.effective_chunk_tokens // 2


def test_a_configured_chunk_size_never_exceeds_the_window():
    assert Settings(_env_file=None, chunk_tokens=512).effective_chunk_tokens == 254
    assert Settings(_env_file=None, chunk_tokens=128).effective_chunk_tokens == 128


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DATATORAG_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATATORAG_PORT", "8123")
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path
    assert settings.api_url.endswith(":8123")


def test_production_refuses_the_development_pepper():
    with pytest.raises(ValidationError, match="API_KEY_PEPPER"):
        Settings(_env_file=None, environment="production")
    Settings(_env_file=None, environment="production", api_key_pepper="a-real-secret-value")


def test_the_embedding_url_follows_the_embedding_port(monkeypatch):
    """A fixed default sent every stack on a machine to the one endpoint on 8081."""
    monkeypatch.delenv("DATATORAG_EMBEDDING_URL", raising=False)
    monkeypatch.setenv("DATATORAG_EMBEDDING_PORT", "9123")
    assert Settings(_env_file=None).embedding_url == "http://127.0.0.1:9123"
    monkeypatch.setenv("DATATORAG_EMBEDDING_URL", "http://embeddings.internal:80")
    assert Settings(_env_file=None).embedding_url == "http://embeddings.internal:80"


def test_the_ocr_backend_and_budget_come_from_settings(monkeypatch):
    from datatorag import wiring
    from datatorag.adapters.ocr.tesseract import TesseractOcr
    from datatorag.adapters.ocr.textract import TextractOcr
    from datatorag_processor.bootstrap import build_ocr

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert isinstance(wiring.ocr(Settings(_env_file=None)), TesseractOcr)  # the default
    assert wiring.ocr(Settings(_env_file=None, ocr_backend="none")) is None
    assert build_ocr(Settings(_env_file=None, ocr_backend="none")) is None
    textract = Settings(
        _env_file=None,
        ocr_backend="textract",
        aws_endpoint_url="http://127.0.0.1:9",
        s3_bucket="scans",
        textract_async_min_pages=4,
    )
    ocr = wiring.ocr(textract)
    assert isinstance(ocr, TextractOcr) and ocr.bucket == "scans" and ocr.async_min_pages == 4
    assert ocr.textract.meta.endpoint_url == "http://127.0.0.1:9"
    options = build_ocr(Settings(_env_file=None, ocr_dpi=200, ocr_max_pages=7, ocr_timeout_s=30))
    assert options is not None
    assert (options.dpi, options.max_pages, options.timeout_s) == (200, 7, 30.0)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, ocr_dpi=20)
