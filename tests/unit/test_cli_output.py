"""What the CLI prints when its output is not a terminal (a pipe, a file, CI): whole lines."""

from __future__ import annotations

import pytest

from datatorag.settings import Settings
from datatorag_cli import cli

pytestmark = pytest.mark.unit


def test_the_welcome_curl_line_is_not_wrapped(capsys, tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "a-rather-long-data-directory-name")
    key = "k" * 43
    cli._print_welcome(settings, "demo", key)
    err = capsys.readouterr().err
    curl = next(line for line in err.splitlines() if line.startswith("Try:"))
    assert curl.endswith('"top_k": 3}\'') and key in curl, err
    assert len(curl) > 80


def test_commands_that_read_the_store_refuse_a_data_dir_without_data(monkeypatch, tmp_path):
    monkeypatch.setenv("DATATORAG_DATA_DIR", str(tmp_path / "nothing-here"))
    # The CLI points the log at the runner's stderr, closed after each run: keep the suite's.
    monkeypatch.setattr("datatorag.log.configure", lambda *_, **__: None)
    from typer.testing import CliRunner

    for args in (
        ["documents", "--tenant", "acme"],
        ["search", "leave", "--tenant", "acme"],
        ["ask", "How much leave?", "--tenant", "acme"],
        ["retry", "--tenant", "acme"],
        ["delete", "doc_x", "--tenant", "acme"],
    ):
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 1, (args, result.output)
        assert "no DatatoRAG data in" in result.output and "DATATORAG_DATA_DIR" in result.output
    assert not (tmp_path / "nothing-here").exists()  # and created nothing there
