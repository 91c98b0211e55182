"""``datatorag sources ...`` and ``datatorag keys create --role``: the real command, as a process,
on a data directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datatorag.settings import Settings
from datatorag_query_api.bootstrap import key_store

pytestmark = pytest.mark.integration

SECRET_URI = "sftp://alice:s3cr3t-pw@files.example.com:2222/hr"


def datatorag(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATATORAG_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "datatorag"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_keys_are_made_with_a_role(tmp_path: Path) -> None:
    made = datatorag(tmp_path, "keys", "create", "--tenant", "acme", "--role", "query")
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[-1]
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    info = key_store(settings).authenticate(key)
    assert info is not None and info.role == "query"
    bad = datatorag(tmp_path, "keys", "create", "--tenant", "acme", "--role", "root")
    assert bad.returncode == 1 and "role" in bad.stderr


def test_sources_add_list_show_sync_delete(tmp_path: Path) -> None:
    folder = tmp_path / "hr"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\nTwenty days.")
    added = datatorag(tmp_path, "sources", "add", SECRET_URI, "--tenant", "acme", "--tag", "x")
    assert added.returncode == 0, added.stderr
    source_id = added.stdout.split()[1]
    ingested = datatorag(tmp_path, "ingest", str(folder), "--tenant", "acme")
    assert ingested.returncode == 0, ingested.stderr
    listed = datatorag(tmp_path, "sources", "list", "--tenant", "acme", "--json")
    sources = {s["kind"]: s for s in json.loads(listed.stdout)}
    assert set(sources) == {"sftp", "file"}
    assert sources["sftp"]["syncs"] == [] and sources["file"]["syncs"][0]["new"] == 1
    assert sources["file"]["documents_source_id"]
    shown = datatorag(tmp_path, "sources", "show", source_id, "--tenant", "acme")
    assert json.loads(shown.stdout)["metadata"] == {"tags": ["x"]}
    synced = datatorag(tmp_path, "sources", "sync", source_id, "--tenant", "acme")
    assert synced.returncode == 0 and "requested" in synced.stdout
    table = datatorag(tmp_path, "sources", "list", "--tenant", "acme")
    everything = added.stdout + listed.stdout + shown.stdout + table.stdout + table.stderr
    assert "s3cr3t-pw" not in everything and "alice" not in everything
    file_id = sources["file"]["id"]
    deleted = datatorag(tmp_path, "sources", "delete", file_id, "--tenant", "acme")
    assert deleted.returncode == 0 and "1 documents removed" in deleted.stdout
    docs = datatorag(tmp_path, "documents", "--tenant", "acme", "--json")
    assert [d["status"] for d in json.loads(docs.stdout)] == ["deleted"]
    missing = datatorag(tmp_path, "sources", "show", file_id, "--tenant", "acme")
    assert missing.returncode == 1 and "no source" in missing.stderr
