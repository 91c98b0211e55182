"""Portal benchmark: first paint of each page in Debian's Chromium, and the screenshots in docs/.

    python bench/portal.py [--runs 20] [--screenshots docs/] [--json out.json]

Starts the stack, ingests examples/hr-policies into a tenant, asks a few questions (so analytics
and the audit log have content), signs an admin in and loads each page ``--runs`` times, reading
``first-contentful-paint`` from the browser's Performance API (cold: a fresh browser context per
load, so no cached CSS or JS). The ask page is loaded as an employee would open it (a signed
token in the URL fragment).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import Browser, sync_playwright

from bench.harness import REPO, ingest, running_stack
from datatorag.domain.employees import Employee
from datatorag_query_api.bootstrap import key_store, signing_secrets
from tests.fixtures.browser import CHROMIUM_ARGS, chromium_path

TENANT = "bench-portal"
# The first-contentful-paint entry, waiting for it if the page has not painted yet.
FCP = """new Promise((resolve) => new PerformanceObserver((list) => {
  const fcp = list.getEntries().find((e) => e.name === "first-contentful-paint");
  if (fcp) resolve(fcp.startTime);
}).observe({ type: "paint", buffered: true }))"""
PAGES = ["/portal/ask", "/portal/documents", "/portal/keys", "/portal/analytics", "/portal/audit"]
QUESTIONS = [
    "How many weeks of parental leave do I get?",
    "Can I carry over unused PTO?",
    "What is the per diem for travel?",
    "Is there a pet insurance benefit?",
]


def paint_ms(browser: Browser, url: str, cookies: list[dict[str, str]]) -> float:
    context = browser.new_context()
    context.add_cookies(cookies)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(url, wait_until="load")
    ms: float = page.evaluate(FCP)
    context.close()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with running_stack() as stack:
        settings = stack.settings
        ingest(settings, REPO / "examples" / "hr-policies", TENANT)
        key = key_store(settings).create(TENANT)
        signing = signing_secrets(settings)
        kid, secret = signing.create(TENANT)
        token = signing.mint(TENANT, kid, secret, Employee("E1", country="US"), ttl_s=3600)
        import httpx

        with httpx.Client(base_url=settings.api_url, headers={"X-API-Key": key}) as api:
            for question in QUESTIONS:
                answer = api.post("/v1/query", json={"question": question}).json()
                api.post(f"/v1/answers/{answer['answer_id']}/feedback", json={"helpful": True})
        with httpx.Client(base_url=settings.api_url) as client:
            csrf = client.get("/portal/login").cookies["dtr_login"]
            client.post("/portal/login", data={"api_key": key, "csrf": csrf})
            session = client.cookies["dtr_session"]
        cookies = [{"name": "dtr_session", "value": session, "url": settings.api_url}]
        results = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            for path in PAGES:
                url = settings.api_url + path + (f"#token={token}" if path.endswith("ask") else "")
                runs = [paint_ms(browser, url, cookies) for _ in range(args.runs)]
                results[path] = {
                    "p50_ms": round(statistics.median(runs), 1),
                    "p95_ms": round(statistics.quantiles(runs, n=20)[-1], 1),
                }
                print(
                    f"{path:22} first paint p50 {results[path]['p50_ms']:6.1f} ms"
                    f"  p95 {results[path]['p95_ms']:6.1f} ms"
                )
            if args.screenshots:
                shoot(browser, settings.api_url, cookies, token, args.screenshots)
            browser.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


def shoot(browser: Browser, url: str, cookies: list[dict[str, str]], token: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.add_cookies(cookies)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{url}/portal/ask#token={token}")
    page.get_by_label("Your question").fill("How many weeks of parental leave do I get?")
    page.get_by_role("button", name="Ask").click()
    page.wait_for_selector("#citations li")
    page.screenshot(path=str(out / "portal-ask.png"), full_page=False)
    for name in ("documents", "analytics", "audit", "keys"):
        page.goto(f"{url}/portal/{name}")
        page.screenshot(path=str(out / f"portal-{name}.png"), full_page=False)
    context.close()


if __name__ == "__main__":
    main()
