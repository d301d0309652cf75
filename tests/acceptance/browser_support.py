"""The dashboard's browser-test harness: a real ``hookhub serve``, users made with the CLI,
Debian's chromium driven by Playwright, and an axe-core accessibility check.

Fixtures (registered in tests/acceptance/conftest.py):

- ``dashboard_server`` (one per test module): ``hookhub serve`` on a free loopback port with a
  temporary SQLite database; an admin and a viewer created with ``hookhub users create
  --password-stdin``. Its ``url``, ``db_url``, ``admin_email``, ``viewer_email``, ``password``,
  ``env`` (for more CLI calls: :func:`hookhub_cli`), ``api()`` (an httpx client of the REST API
  with an admin key, to set things up) and ``log()``.
- ``browser`` (one per test module): chromium at /usr/bin/chromium. Without it the tests are skipped
  with the reason, except under ``CI=true``, where they fail.
- ``admin_page`` / ``viewer_page``: a fresh page already signed in as that user (cookies of one
  sign-in per module, so every test starts clean and quick); ``anonymous_page``: not signed in.
- ``axe_check(page)``: runs the vendored axe-core on the page; fails on serious or critical
  violations, naming the rule and the elements.

Mark browser tests ``@pytest.mark.browser``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from tests.support.processes import free_port, hookhub_env, start, stop, wait_http

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 15_000


@dataclass
class DashboardServer:
    url: str
    db_url: str
    env: dict[str, str]
    log_path: Path
    api_key: str = API_KEY
    admin_email: str = "admin@example.com"
    viewer_email: str = "viewer@example.com"
    password: str = PASSWORD
    _states: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def api(self) -> Any:
        """An HTTP client for the REST API (``/api/v1``) with an admin key, to set things up."""
        import httpx2

        return httpx2.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )


def hookhub_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m hookhub <args>`` with the server's environment; fails the test on a
    non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", "hookhub", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"hookhub {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def chromium_or_skip() -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    chromium_or_skip()
    tmp = tmp_path_factory.mktemp("dashboard")
    db_url = f"sqlite:///{tmp / 'hookhub.db'}"
    # DEBUG, so that the check that no password or token is ever logged sees everything.
    env = hookhub_env(db_url, HOOKHUB_API_KEY=API_KEY, HOOKHUB_LOG_LEVEL="DEBUG")
    server = DashboardServer(url="", db_url=db_url, env=env, log_path=tmp / "serve.log")
    hookhub_cli(env, "users", "create", server.admin_email, "--role", "admin",
                "--password-stdin", stdin=PASSWORD + "\n")
    hookhub_cli(env, "users", "create", server.viewer_email, "--role", "viewer",
                "--password-stdin", stdin=PASSWORD + "\n")
    port = free_port()
    with server.log_path.open("wb") as log:
        process = start(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
        server.url = f"http://127.0.0.1:{port}"
        try:
            wait_http(server.url + "/healthz", timeout=60, process=process)
            yield server
        finally:
            stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: while Playwright's sync API is started, its event loop
    # counts as running in this thread, and an asyncio test run meanwhile in the same
    # (xdist) worker fails with "Cannot run the event loop while another loop is running".
    # Pytest ends module fixtures when a worker moves on to another module.
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page: Any, server: DashboardServer, email: str, password: str = PASSWORD) -> None:
    """Signs in through the form, as a person would."""
    page.goto(server.url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")


def _signed_in_page(browser: Any, server: DashboardServer, email: str) -> Iterator[Any]:
    state = server._states.get(email)
    if state is None:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, server, email)
        state = context.storage_state()
        context.close()
        server._states[email] = state
    context = browser.new_context(storage_state=state, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def admin_page(browser: Any, dashboard_server: DashboardServer) -> Iterator[Any]:
    yield from _signed_in_page(browser, dashboard_server, dashboard_server.admin_email)


@pytest.fixture
def viewer_page(browser: Any, dashboard_server: DashboardServer) -> Iterator[Any]:
    yield from _signed_in_page(browser, dashboard_server, dashboard_server.viewer_email)


@pytest.fixture
def anonymous_page(browser: Any, dashboard_server: DashboardServer) -> Iterator[Any]:
    context = browser.new_context(base_url=dashboard_server.url)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield page
    finally:
        context.close()


def axe_check(page: Any, *, exclude: list[str] | None = None) -> None:
    """axe-core on the page as it stands: no serious or critical violation (``exclude``: CSS
    selectors to leave out, for content the page does not control)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    context: dict[str, Any] = {"exclude": [[s] for s in exclude]} if exclude else {}
    result = page.evaluate(
        "async (ctx) => await axe.run(Object.keys(ctx).length ? ctx : document,"
        " {resultTypes: ['violations']})",
        context,
    )
    bad = [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
    if bad:
        lines = [f"axe on {page.url}:"]
        for violation in bad:
            targets = [", ".join(map(str, node["target"])) for node in violation["nodes"][:5]]
            lines.append(
                f"- {violation['impact']} {violation['id']}: {violation['help']} -> {targets}"
            )
        pytest.fail("\n".join(lines))
