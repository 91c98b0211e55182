"""An upload whose API process died between storing it and announcing it is still processed.

``POST /v1/documents`` stores the file, writes the record (``fetched``) and sends the processor
its message. A process killed between the record and the message left the document ``fetched``
for ever: uploads have no source sync to announce them again. Every API process now sweeps at
start (and every ``REANNOUNCE_AFTER``) and announces such uploads again.

The test kills a real process (SIGKILL) at that point, as the dead API left things, then starts
the whole stack on that data directory: the document ends indexed, with no client involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datatorag import wiring
from datatorag.domain.messages import DOCUMENTS_QUEUE
from datatorag.domain.models import DocumentStatus, utcnow
from datatorag.settings import Settings
from datatorag.usecases.announce import REANNOUNCE_AFTER
from datatorag_query_api.bootstrap import key_store
from tests.fixtures.stack import start_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT = "acme"
POLICY = b"# Annual leave\n\nEvery employee gets 25 days of paid annual leave a year.\n"

# The API's own upload path, in a process that dies (SIGKILL) as it is about to send the message.
DIES_BEFORE_ANNOUNCING = f"""
import os, signal
from datatorag import wiring
from datatorag.settings import Settings
from datatorag_query_api.uploads import UploadForm, Uploads

class DiesOnSend:
    def send(self, body):
        os.kill(os.getpid(), signal.SIGKILL)

settings = Settings()
uploads = Uploads(wiring.blob_store(settings), wiring.search_index(settings), DiesOnSend())
uploads.store({TENANT!r}, UploadForm(filename="leave.md", data={POLICY!r}))
"""


def test_an_upload_cut_off_before_its_announcement_is_processed_after_a_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data_dir = tmp_path_factory.mktemp("upload-recovery")
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    key_store(settings).create(TENANT)  # the dead API served this tenant's key
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATATORAG_")}
    env["DATATORAG_DATA_DIR"] = str(data_dir)
    died = subprocess.run(
        [sys.executable, "-c", DIES_BEFORE_ANNOUNCING], env=env, cwd=data_dir, timeout=120
    )
    assert died.returncode == -9

    index = wiring.search_index(settings)
    (doc,) = index.list_documents(TENANT)
    assert doc.status == DocumentStatus.FETCHED and doc.version
    assert wiring.queue(settings, DOCUMENTS_QUEUE).depth() == 0  # no message: stuck as it was
    # It died that long ago (a document announced moments ago may still be on its way).
    index.upsert_document(doc.model_copy(update={"updated_at": utcnow() - REANNOUNCE_AFTER * 2}))
    index.close()

    stack = start_stack(tmp_path_factory, data_dir=data_dir)
    next(stack)
    try:
        deadline = time.monotonic() + 240
        while True:
            index = wiring.search_index(settings)
            try:
                found = index.get_document(TENANT, doc.doc_id)
            finally:
                index.close()
            assert found is not None
            if found.status == DocumentStatus.INDEXED:
                break
            assert found.status in {DocumentStatus.FETCHED, DocumentStatus.PROCESSING}, found
            assert time.monotonic() < deadline, f"still {found.status} ({found.reason})"
            time.sleep(1)
        assert found.version == doc.version and found.chunk_count >= 1
    finally:
        stack.close()


def test_a_fresh_upload_is_not_announced_twice(tmp_path: Path) -> None:
    """The sweep leaves alone what was announced moments ago (it may still be on its way)."""
    from datatorag_query_api.uploads import UploadForm, Uploads

    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    queue = wiring.queue(settings, DOCUMENTS_QUEUE)
    uploads = Uploads(wiring.blob_store(settings), wiring.search_index(settings), queue)
    uploads.store(TENANT, UploadForm(filename="leave.md", data=POLICY))
    assert uploads.reannounce_stalled([TENANT]) == 0
    assert queue.depth() == 1
