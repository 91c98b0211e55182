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
