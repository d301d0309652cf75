"""Email through the real ``hookhub serve`` process: an API call, the server's own email worker,
a real SMTP server (STARTTLS and AUTH) on loopback; and capture mode when no server is set.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.conftest import API_KEY
from tests.support import processes
from tests.support.smtp import running_smtp_server

PASSWORD = "e2e-Secret-pa55"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _send(base: str, to: str) -> dict[str, Any]:
    body = {
        "to": [{"email": to, "name": "Ada Lovelace"}],
        "subject": "Welcome {{ contact.email }}",
        "html": '<p>Hello! <a href="https://example.com/start">Start</a></p>',
        "tags": ["welcome"],
    }
    answer = httpx.post(f"{base}/api/v1/emails", json=body, headers=HEADERS, timeout=10)
    assert answer.status_code == 202, answer.text
    queued: dict[str, Any] = answer.json()["data"][0]
    return queued


def _wait_status(base: str, email_id: int, status: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        email: dict[str, Any] = httpx.get(
            f"{base}/api/v1/emails/{email_id}", headers=HEADERS, timeout=10
        ).json()
        if email["status"] == status or time.monotonic() > deadline:
            return email
        time.sleep(0.05)


def test_serve_sends_email_over_starttls_and_auth(db_url: str, tmp_path: Path) -> None:
    with running_smtp_server(tls="starttls", auth=("mailer", PASSWORD)) as smtp:
        url = smtp.url(user="mailer", password=PASSWORD, verify="off")
        env = {"HOOKHUB_API_KEY": API_KEY, "HOOKHUB_SMTP_URL": url}
        with processes.serving(db_url, tmp_path, **env) as base:
            ready = httpx.get(f"{base}/readyz", timeout=10).json()
            queued = _send(base, "ada@example.com")
            [mail] = smtp.wait_for(1)
            email = _wait_status(base, queued["id"], "sent")
            raw = httpx.get(f"{base}/api/v1/emails/{queued['id']}/raw", headers=HEADERS)
    assert "email" in ready["loops"]
    assert mail.tls
    assert mail.login == "mailer"
    assert mail.recipients == ["ada@example.com"]
    assert email["status"] == "sent"
    assert raw.content == mail.data
    assert f"<{queued['message_id']}>".encode() in mail.data
    log = b"".join(p.read_bytes() for p in tmp_path.glob("serve-*.log")).decode()
    assert PASSWORD not in log
    assert "Email goes to" in log


def test_serve_without_smtp_url_captures_email(db_url: str, tmp_path: Path) -> None:
    with processes.serving(db_url, tmp_path, HOOKHUB_API_KEY=API_KEY) as base:
        queued = _send(base, "bob@example.com")
        email = _wait_status(base, queued["id"], "sent")
        raw = httpx.get(f"{base}/api/v1/emails/{queued['id']}/raw", headers=HEADERS)
    assert email["events"][-1]["detail"]["reply"] == "captured"
    assert raw.status_code == 200
    assert b"Subject: Welcome bob@example.com" in raw.content
    log = b"".join(p.read_bytes() for p in tmp_path.glob("serve-*.log")).decode()
    assert "Email is captured, not sent" in log
