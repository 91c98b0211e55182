"""The portal in a real browser (Debian's Chromium through pytest-playwright): an HR admin logs
in, uploads, watches the document reach indexed, asks, gives feedback, sees it in analytics and
the audit log, revokes the key and is signed out; an employee link works and a tampered one is
refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from datatorag.domain.employees import Employee
from datatorag_query_api.bootstrap import signing_secrets
from tests.fixtures.file_servers import FTP_PASSWORD, ftp_uri, running_ftp_server
from tests.fixtures.stack import RunningStack

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]
POLICY = Path(__file__).resolve().parents[2] / "examples/hr-policies/sourcegraph/parental-leave.pdf"
TENANT = "portal-browser"


def sign_in(page: Page, stack: RunningStack, key: str) -> None:
    page.goto(stack.url + "/")
    expect(page).to_have_url(re.compile(r"/portal/login$"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/portal/documents$"))


def test_an_admin_journey(page: Page, running_stack: RunningStack) -> None:
    key = running_stack.key(TENANT)
    sign_in(page, running_stack, key)

    page.set_input_files("#files", str(POLICY))
    upload = page.locator("#uploads li").first
    expect(upload).to_have_attribute("data-status", "indexed", timeout=180_000)
    page.reload()
    expect(page.locator("td.status-indexed")).to_have_count(1)

    page.get_by_role("link", name="Ask").click()
    page.get_by_label("Your question").fill("How many weeks of parental leave do I get?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#answer")).not_to_be_empty(timeout=60_000)
    expect(page.locator("#citations li").first).to_contain_text("parental")
    expect(page.locator("#citations mark").first).to_be_visible()
    page.get_by_label("Comment (optional)").fill("Clear, thanks")
    page.get_by_role("button", name="Helpful", exact=True).click()
    expect(page.locator("#feedback-status")).to_have_text("Thank you for your feedback.")

    page.get_by_role("link", name="Analytics").click()
    expect(page.locator("#total-questions")).to_have_text("1")
    expect(page.locator("#comments")).to_contain_text("Clear, thanks")

    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("#answers")).to_contain_text("parental leave")
    expect(page.locator("#admin-actions")).to_contain_text("document.upload")

    page.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name="Create a key").click()
    expect(page.locator("#new-key")).to_contain_text("dtr_")
    page.once("dialog", lambda dialog: dialog.accept())
    key_id = key.split("_")[1]
    page.locator(f'tr[data-key-id="{key_id}"]').get_by_role("button", name="Revoke").click()
    expect(page).to_have_url(re.compile(r"/portal/login$"))  # the revoked key's session ended
    page.goto(running_stack.url + "/portal/analytics")
    expect(page).to_have_url(re.compile(r"/portal/login$"))


def test_an_employee_link_answers_and_a_tampered_one_is_refused(
    page: Page, running_stack: RunningStack
) -> None:
    running_stack.ingest(POLICY.parent, TENANT)
    signing = signing_secrets(running_stack.settings)
    kid, secret = signing.create(TENANT)
    token = signing.mint(TENANT, kid, secret, Employee("E42", country="US"), ttl_s=600)

    page.goto(f"{running_stack.url}/portal/ask#token={token}")
    expect(page).to_have_url(re.compile(r"/portal/ask$"))  # the token leaves the address bar
    page.get_by_label("Your question").fill("How much PTO do I get?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#answer")).not_to_be_empty(timeout=60_000)
    expect(page.get_by_role("link", name="Documents")).to_have_count(0)  # no admin pages

    tampered = token[:-3] + ("abc" if not token.endswith("abc") else "xyz")
    page.evaluate("sessionStorage.clear()")
    page.goto("about:blank")  # a fresh page load, not a same-document fragment change
    page.goto(f"{running_stack.url}/portal/ask#token={tampered}")
    page.get_by_label("Your question").fill("How much PTO do I get?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#status")).to_contain_text("expired or is not valid")


def test_an_admin_adds_an_ftp_source_and_sees_its_sync(
    page: Page, running_stack: RunningStack, tmp_path: Path
) -> None:
    root = tmp_path / "drop"
    root.mkdir()
    (root / "bereavement.md").write_text("# Bereavement leave\n\nFive paid days for family.\n")
    with running_ftp_server(root) as port:
        sign_in(page, running_stack, running_stack.key(TENANT + "-src"))
        page.get_by_role("link", name="Sources").click()
        page.get_by_label("Source URI").fill(ftp_uri(port))
        page.get_by_role("button", name="Add source").click()
        row = page.locator("#sources tbody tr").first
        expect(row).to_contain_text("ftp://127.0.0.1")
        expect(row).not_to_contain_text(FTP_PASSWORD)  # credentials are never shown
        for _ in range(60):  # the connector polls every 2 s
            if "succeeded" in row.inner_text():
                break
            page.wait_for_timeout(1000)
            page.reload()
        expect(row).to_contain_text("succeeded")
        expect(row).to_contain_text("1 / 1 / 0 / 0 / 0")
        page.get_by_role("link", name="Audit log").click()
        expect(page.locator("#admin-actions")).to_contain_text("source.add")
