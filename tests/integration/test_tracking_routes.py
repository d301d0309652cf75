"""The public tracking routes through the ASGI app (any server, the test client), both backends:
tampered tokens are 404s, a click goes only to its stored link, the pixel's bytes and headers,
the unsubscribe page and RFC 8058 one-click, and hits turned into email events once each."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import func, select

from hookhub.core.crypto import Keyring, new_key, parse_key
from hookhub.core.tracking import tracking_signer
from hookhub.email.tracking_answers import PIXEL
from hookhub.services import Services
from hookhub.store.email_reads import EmailReads
from hookhub.store.schema_email import tracking_hits
from tests.support.tracking import (
    LINKS,
    apply_all,
    make_campaign,
    path,
    payloads,
    sent_email,
)

NO_STORE = "no-store, no-cache, must-revalidate, private"


def hits(services: Services) -> int:
    with services.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(tracking_hits)).scalar_one())


def tampered(token: str) -> list[str]:
    """Every byte of ``token`` flipped (to another token character), truncations, extensions."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = []
    for i, char in enumerate(token):
        other = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        variants.append(token[:i] + other + token[i + 1 :])
    variants += [token[:n] for n in range(len(token))]
    variants += [token + "A", token + "AAAA", token + "=", token.upper(), token + "%00"]
    return variants


def test_open_pixel_bytes_headers_and_one_hit(services: Services, anonymous: Any) -> None:
    email_id = sent_email(services)
    answer = anonymous.get(path(services, "o", email_id), headers={"user-agent": "Thunderbird/1"})
    assert answer.status_code == 200
    assert answer.content == PIXEL
    assert answer.content[:6] == b"GIF89a"
    assert len(answer.content) == 43
    assert answer.headers["content-type"] == "image/gif"
    assert answer.headers["cache-control"] == NO_STORE
    assert hits(services) == 1  # answered once durable
    head = anonymous.head(path(services, "o", email_id))
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "43"
    assert hits(services) == 1  # HEAD records nothing
    apply_all(services)
    assert hits(services) == 0
    (opened,) = payloads(services, "email.opened")
    assert opened["email_id"] == email_id
    assert (opened["first"], opened["proxy"]) == (True, False)


def test_tampered_tokens_are_404_and_record_nothing(services: Services, anonymous: Any) -> None:
    email_id = sent_email(services)
    for kind in ("o", "c", "u"):
        good = path(services, kind, email_id).rsplit("/", 1)[1]
        for token in tampered(good):
            answer = anonymous.get(f"/t/{kind}/{token}", follow_redirects=False)
            assert answer.status_code == 404, (kind, token)
            assert answer.json()["error"]["code"] == "not_found"
            assert "location" not in answer.headers
        for other in {"o", "c", "u"} - {kind}:  # a token of another kind
            answer = anonymous.get(f"/t/{other}/{good}", follow_redirects=False)
            assert answer.status_code == 404
    foreign = tracking_signer(Keyring(parse_key(new_key()))).token("c", email_id, 0)
    odd = [
        f"/t/c/{foreign}",
        "/t/c/" + "A" * 60_000,
        "/t/o/caf%C3%A9",
        "/t/o/" + base64.urlsafe_b64encode(b"\x01" * 21).decode(),
        "/t/x/abc",
        "/t/o/",
        "/t/",
        "/t/o/a/b",
        "/t/o/\u00e9\u00e9",
    ]
    for url in odd:
        answer = anonymous.get(url, follow_redirects=False)
        assert answer.status_code == 404, url
    assert anonymous.post(path(services, "o", email_id)).status_code == 405
    assert anonymous.delete(path(services, "u", email_id)).status_code == 405
    assert hits(services) == 0


def test_click_redirects_only_to_the_stored_link(services: Services, anonymous: Any) -> None:
    email_id = sent_email(services)
    for index, link in enumerate(LINKS):
        answer = anonymous.get(path(services, "c", email_id, index), follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"] == link
        assert answer.headers["cache-control"] == NO_STORE
    beyond = anonymous.get(path(services, "c", email_id, len(LINKS)), follow_redirects=False)
    assert beyond.status_code == 404
    gone = anonymous.get(path(services, "c", email_id + 1000, 0), follow_redirects=False)
    assert gone.status_code == 404
    assert hits(services) == 2
    apply_all(services)
    clicks = payloads(services, "email.clicked")
    assert [c["url"] for c in clicks] == LINKS
    assert [c["first"] for c in clicks] == [True, False]
    (opened,) = payloads(services, "email.opened") or [None]  # a click counts as an open...
    assert opened is None  # ...in opened_at, without an email.opened message
    with services.db.read() as conn:
        email = EmailReads(conn).get(email_id)
    assert email is not None
    assert email.opened_at is not None
    assert email.clicked_at is not None


def test_odd_links_never_inject_headers(services: Services, anonymous: Any) -> None:
    links = [
        "https://ex.example/a b\r\nset-cookie: x=1",
        "javascript:alert(1)",
        "https://ex.example/é",
    ]
    email_id = sent_email(services, links=links)
    first = anonymous.get(path(services, "c", email_id, 0), follow_redirects=False)
    assert first.status_code == 302
    assert first.headers["location"] == "https://ex.example/a%20b%0D%0Aset-cookie:%20x=1"
    assert "set-cookie" not in first.headers
    assert anonymous.get(path(services, "c", email_id, 1)).status_code == 404
    third = anonymous.get(path(services, "c", email_id, 2), follow_redirects=False)
    assert third.headers["location"] == "https://ex.example/%C3%A9"


def test_one_click_unsubscribe_names_email_and_campaign(services: Services, anonymous: Any) -> None:
    campaign = make_campaign(services)
    email_id = sent_email(services, "bob@example.com", campaign_id=campaign)
    answer = anonymous.post(
        path(services, "u", email_id),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert "bob@example.com" in answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    apply_all(services)
    (unsubscribed,) = payloads(services, "contact.unsubscribed")
    assert unsubscribed["email_id"] == email_id
    assert unsubscribed["campaign_id"] == campaign
    assert unsubscribed["source"] == "email"
    contact = anonymous.get(
        "/api/v1/contacts/bob@example.com",
        headers={"Authorization": "Bearer hh_test_key_0123456789abcdefghijklmnopqrstuvwxyz"},
    ).json()
    assert contact["unsubscribed"] is True


def test_unsubscribe_page_asks_then_its_form_unsubscribes(
    services: Services, anonymous: Any
) -> None:
    email_id = sent_email(services, "carol+news@example.com")
    page = anonymous.get(path(services, "u", email_id))
    assert page.status_code == 200
    assert "carol+news@example.com" in page.text
    assert '<form method="post">' in page.text
    assert '<html lang="en">' in page.text
    assert "<script" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert hits(services) == 0  # opening the page (or a scanner following it) changes nothing
    apply_all(services)
    assert payloads(services, "contact.unsubscribed") == []
    form = anonymous.post(path(services, "u", email_id), data={"List-Unsubscribe": "One-Click"})
    assert form.status_code == 200
    assert "unsubscribed" in form.text
    apply_all(services)
    assert len(payloads(services, "contact.unsubscribed")) == 1
    too_big = anonymous.post(path(services, "u", email_id), content=b"x" * 20_000)
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    ("agent", "sent_ago", "proxy"),
    [
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko)", 3600, False),
        ("Mozilla/5.0", 3600, True),  # Apple Mail Privacy Protection
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0"
            " (via ggpht.com GoogleImageProxy)",
            3600,
            True,
        ),
        ("", 3600, True),
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko)", 0.2, True),
    ],
)
def test_opens_flag_first_and_proxy(
    services: Services, anonymous: Any, agent: str, sent_ago: float, proxy: bool
) -> None:
    email_id = sent_email(services, sent_ago=sent_ago)
    for _ in range(2):
        answer = anonymous.get(path(services, "o", email_id), headers={"user-agent": agent})
        assert answer.status_code == 200
    apply_all(services)
    opens = payloads(services, "email.opened")
    assert [(o["first"], o["proxy"]) for o in opens] == [(True, proxy), (False, proxy)]


def test_many_links_within_a_second_are_a_scanner(services: Services, anonymous: Any) -> None:
    links = [f"https://shop.example.com/p/{n}" for n in range(5)]
    email_id = sent_email(services, links=links)
    agent = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0"}
    for index in range(5):
        anonymous.get(path(services, "c", email_id, index), headers=agent, follow_redirects=False)
    apply_all(services)
    clicks = payloads(services, "email.clicked")
    assert [c["proxy"] for c in clicks] == [False, False, True, True, True]


def test_a_hit_whose_email_is_gone_is_dropped(services: Services, anonymous: Any) -> None:
    email_id = sent_email(services)
    assert anonymous.get(path(services, "o", email_id)).status_code == 200
    assert anonymous.get(path(services, "o", email_id + 999)).status_code == 200
    applier = apply_all(services)
    assert (applier.applied, applier.dropped) == (1, 1)
    assert len(payloads(services, "email.opened")) == 1
    assert hits(services) == 0
