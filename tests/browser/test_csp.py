"""The site's pages and /api/docs/ under the Content-Security-Policy, in Chromium, with no network but the site.

Every page is opened with a listener for ``securitypolicyviolation`` events: an inline script or style, an
``eval``, a request to another origin would show up there. Requests to any other origin are aborted and
recorded, so /api/docs/ must render from the site's own files (drf-spectacular-sidecar).
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import Site, offline_context

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def _open(context, url: str, outside: list[str], *, ready: str | None = None):
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status < 400, (url, response and response.status)
    assert "default-src 'self'" in response.headers["content-security-policy"]
    if ready:
        page.wait_for_selector(ready, timeout=30_000)
    page.wait_for_timeout(500)  # late scripts (WebSocket connect, countdowns) have run
    violations = page.evaluate("window.__csp") + messages
    assert violations == [], (url, violations)
    return page


def test_pages_and_api_docs_pass_the_csp_offline(site: Site, browser) -> None:
    ids = site.scenario("setup", "--seconds", "120")
    site.env["ALLEYCAT_ADMIN_PASSWORD"] = "staff-password-for-csp"
    site.run("manage.py", "ensure_staff")
    context, outside = offline_context(browser, site)
    context.add_init_script(WATCH_CSP)
    try:
        # The watcher sees a violation: an inline script added to a page is blocked and reported.
        control = _open(context, f"{site.url}/", outside)
        control.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
            " document.body.appendChild(s); }"
        )
        control.wait_for_timeout(300)
        assert control.evaluate("window.__ran") is None
        assert any("script-src" in v for v in control.evaluate("window.__csp"))
        control.close()
        for path in (
            "/",
            f"/classes/{ids['classId']}/",
            f"/classes/{ids['classId']}/leaderboard/",
            f"/races/{ids['raceA']}/",
            "/racers/1/",
            "/accounts/login/",
        ):
            _open(context, site.url + path, outside).close()

        docs = _open(context, f"{site.url}/api/docs/", outside, ready=".swagger-ui .info .title")
        assert "Alleycat API" in docs.inner_text(".swagger-ui .info .title")
        assert docs.locator(".opblock").count() >= 10  # every operation listed
        docs.close()

        rider = context.new_page()
        rider.goto(f"{site.url}/accounts/login/")
        rider.fill("#id_username", "rider")
        rider.fill("#id_password", site.rider_password)
        rider.click("[type=submit]")
        rider.wait_for_url(f"{site.url}/ride/")
        rider.close()
        _open(context, f"{site.url}/ride/", outside).close()

        login = context.new_page()
        login.goto(f"{site.url}/admin/login/")
        login.fill("#id_username", "admin")
        login.fill("#id_password", "staff-password-for-csp")
        login.click("input[type=submit]")
        login.wait_for_url(f"{site.url}/admin/")
        login.close()
        for path in ("/admin/", "/admin/races/race/", f"/admin/races/race/{ids['raceA']}/change/", "/admin/pipeline/"):
            _open(context, site.url + path, outside).close()
    finally:
        context.close()
    assert outside == []
