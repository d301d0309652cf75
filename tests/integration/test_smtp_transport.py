"""The SMTP transport against a real SMTP server (aiosmtpd) on loopback.

What a user would notice: mail arrives byte for byte, once; TLS and logins work and a wrong
password is a clear deferral that never blocks a contact and never shows the password; a
server's refusals become "deferred" or "bounced" as the contract says; a connection that breaks
is replaced; a batch uses the connections it is given; the rate limit holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from hookhub.config import load_settings
from hookhub.email.pool import SmtpPool, SmtpTransport, transport_from_settings, transport_from_url
from hookhub.email.smtp_url import InvalidSmtpUrl, parse_smtp_url
from hookhub.email.transport import CaptureTransport, Envelope, MailTransport, SendResult
from tests.support.smtp import SmtpServer, running_smtp_server

PASSWORD = "s3cr3t p@ss/word"
MESSAGE = (
    b"From: Shop <shop@example.com>\r\n"
    b"To: ada@example.org\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <order-1@example.com>\r\n"
    b"\r\n"
    b"Thank you for your order.\r\n"
)


def envelope(recipient: str = "ada@example.org", data: bytes = MESSAGE, ref: int = 0) -> Envelope:
    return Envelope("shop@example.com", recipient, data, ref)


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with running_smtp_server() as running:
        yield running


def make_pool(server: SmtpServer, url: str | None = None, **options: Any) -> SmtpPool:
    options.setdefault("timeout", 10.0)
    if server.tls != "none":
        options.setdefault("ssl_context", server.client_context())
    return SmtpPool(parse_smtp_url(url or server.url()), **options)


@pytest.fixture
async def pool(server: SmtpServer) -> AsyncIterator[SmtpPool]:
    smtp = make_pool(server)
    yield smtp
    await smtp.aclose()


def assert_sent(result: SendResult) -> None:
    assert (result.outcome, result.code, result.phase) == ("sent", 250, "data"), result


# -- plain sending -------------------------------------------------------------------------------


async def test_a_message_arrives_with_its_envelope_and_exact_bytes(
    server: SmtpServer, pool: SmtpPool
) -> None:
    result = await pool.send(envelope())

    assert_sent(result)
    assert result.duration >= 0
    [mail] = server.messages
    assert (mail.sender, mail.recipients, mail.data) == (
        "shop@example.com",
        ["ada@example.org"],
        MESSAGE,
    )
    assert f"SIZE={len(MESSAGE)}" in mail.mail_options
    assert not mail.tls


async def test_the_seam_describes_the_server_without_the_password(server: SmtpServer) -> None:
    url = server.url(user="mailer", password=PASSWORD)
    transport = transport_from_url(url, connections=3, rate=5)

    assert isinstance(transport, SmtpTransport)
    assert isinstance(transport, MailTransport)
    described = transport.describe()
    assert f"smtp://mailer@127.0.0.1:{server.port}" in described
    assert "3 connections" in described
    assert "5 messages/s" in described
    assert "p@ss" not in described
    assert "s3cr3t" not in described
    assert "s3cr3t" not in repr(transport.pool.config)


async def test_the_settings_choose_the_transport(server: SmtpServer) -> None:
    url = server.url(user="mailer", password=PASSWORD)
    settings = load_settings(smtp_url=url, smtp_connections=3, email_rate=2.5, smtp_timeout=7)

    transport = transport_from_settings(settings)

    assert isinstance(transport, SmtpTransport)
    pool = transport.pool
    assert (pool.size, pool.rate, pool.timeout) == (3, 2.5, 7)
    assert pool.config.password == PASSWORD
    assert isinstance(transport_from_settings(load_settings()), CaptureTransport)
    with pytest.raises(InvalidSmtpUrl) as refused:
        transport_from_settings(load_settings(smtp_url="smtp://mailer:" + PASSWORD + "@host:x"))
    assert PASSWORD not in str(refused.value)


async def test_without_a_url_email_is_captured_and_sent_nowhere(server: SmtpServer) -> None:
    transport = transport_from_url(None)

    assert isinstance(transport, CaptureTransport)
    results = await transport.send_many([envelope(), envelope("bob@example.org")])
    assert [(r.outcome, r.reply) for r in results] == [("sent", "captured")] * 2
    assert (await transport.send(envelope())).reply == "captured"
    assert "capture" in transport.describe()
    assert server.connections == 0


async def test_lines_starting_with_a_dot_arrive_byte_exact(
    server: SmtpServer, pool: SmtpPool
) -> None:
    body = (
        b".starts with a dot\r\n"
        b"Subject: dots\r\n\r\n"
        b".\r\n"
        b"..\r\n"
        b"..two dots\r\n"
        b"a line\r\n"
        b".\r\n"
        b"...\r\n"
        b"last ."
    )
    lf_only = b"Subject: bare line feeds\n\nfirst\n.\nsecond\r\nthird\rfourth\n"

    results = await pool.send_many([envelope(data=body), envelope(data=lf_only)])

    assert [r.outcome for r in results] == ["sent", "sent"]
    first, second = sorted(server.messages, key=lambda mail: mail.data)
    assert {first.data, second.data} == {
        body + b"\r\n",  # the last line gets its line ending
        b"Subject: bare line feeds\r\n\r\nfirst\r\n.\r\nsecond\r\nthird\r\nfourth\r\n",
    }


async def test_an_eight_bit_body_is_declared_and_a_utf8_address_needs_smtputf8() -> None:
    body = "Subject: café\r\n\r\nZoë\r\n".encode()
    with running_smtp_server(smtputf8=True) as server:
        smtp = make_pool(server)
        try:
            results = await smtp.send_many(
                [envelope(data=body), Envelope("shop@example.com", "zoë@exämple.org", MESSAGE)]
            )
        finally:
            await smtp.aclose()
        assert [r.outcome for r in results] == ["sent", "sent"]
        by_recipient = {mail.recipients[0]: mail for mail in server.messages}
        assert "BODY=8BITMIME" in by_recipient["ada@example.org"].mail_options
        assert by_recipient["ada@example.org"].data == body
        assert "SMTPUTF8" in by_recipient["zoë@exämple.org"].mail_options

    with running_smtp_server() as server:  # no SMTPUTF8: deferred, never garbled
        smtp = make_pool(server)
        try:
            result = await smtp.send(Envelope("shop@example.com", "zoë@exämple.org", MESSAGE))
        finally:
            await smtp.aclose()
        assert (result.outcome, result.phase) == ("deferred", "mail")
        assert "SMTPUTF8" in result.reply
        assert server.messages == []


async def test_an_address_that_would_inject_a_command_is_never_sent(
    server: SmtpServer, pool: SmtpPool
) -> None:
    result = await pool.send(envelope("ada@example.org>\r\nRCPT TO:<eve@example.net"))

    assert (result.outcome, result.phase) == ("bounced", "rcpt")
    assert_sent(await pool.send(envelope()))
    assert server.recipients() == ["ada@example.org"]


async def test_without_pipelining_each_command_waits_for_its_answer() -> None:
    with running_smtp_server(pipelining=False) as server:
        smtp = make_pool(server)
        try:
            server.fail("rcpt", 550)
            refused = await smtp.send(envelope("gone@example.org"))
            results = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(5)])
        finally:
            await smtp.aclose()
    assert (refused.outcome, refused.code, refused.phase) == ("bounced", 550, "rcpt")
    assert [r.outcome for r in results] == ["sent"] * 5
    assert sorted(server.recipients()) == sorted(f"r{i}@example.org" for i in range(5))


# -- TLS and logins ------------------------------------------------------------------------------


@pytest.mark.parametrize("without", [(), ("PLAIN",)], ids=["plain", "login"])
async def test_starttls_and_login_deliver_encrypted_mail(without: tuple[str, ...]) -> None:
    auth = ("mailer", PASSWORD)
    with running_smtp_server(tls="starttls", auth=auth, auth_exclude=without) as server:
        smtp = make_pool(server, server.url(user="mailer", password=PASSWORD, tls="required"))
        try:
            result = await smtp.send(envelope())
        finally:
            await smtp.aclose()
    assert_sent(result)
    [mail] = server.messages
    assert mail.tls
    assert mail.login == "mailer"


async def test_a_wrong_password_is_a_deferral_logged_once_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hookhub")
    with running_smtp_server(tls="starttls", auth=("mailer", PASSWORD)) as server:
        url = server.url(user="mailer", password="wrong " + PASSWORD)
        smtp = make_pool(server, url)
        try:
            first = await smtp.send(envelope())
            batch = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(20)])
        finally:
            await smtp.aclose()

    for result in [first, *batch]:
        assert (result.outcome, result.code, result.phase) == ("deferred", 535, "auth")
        assert PASSWORD not in result.reply
    assert server.messages == []
    assert server.logins_refused == 1  # the rest were deferred without trying again
    logged = [r for r in caplog.records if r.name.startswith("hookhub")]
    assert [r.getMessage() for r in logged] == ["smtp.setup_failed"]
    record = logged[0]
    assert record.levelno == logging.WARNING
    assert (record.phase, record.code) == ("auth", 535)  # type: ignore[attr-defined]
    assert "password" in record.hint  # type: ignore[attr-defined]
    everything = " ".join(f"{k}={v}" for r in logged for k, v in vars(r).items())
    assert "mailer@127.0.0.1" in everything
    for secret in (PASSWORD, "s3cr3t", "p%40ss", "wrong"):
        assert secret not in everything
    assert PASSWORD not in caplog.text


async def test_a_certificate_that_does_not_verify_is_refused_unless_verify_is_off() -> None:
    with running_smtp_server(tls="starttls") as server:
        strict = SmtpPool(parse_smtp_url(server.url()), timeout=10.0)  # the system's CAs
        lenient = SmtpPool(parse_smtp_url(server.url(verify="off")), timeout=10.0)
        try:
            refused = await strict.send(envelope())
            accepted = await lenient.send(envelope())
        finally:
            await strict.aclose()
            await lenient.aclose()
    assert (refused.outcome, refused.code, refused.phase) == ("deferred", None, "starttls")
    assert "certificate" in refused.reply.lower()
    assert_sent(accepted)
    assert len(server.messages) == 1


async def test_the_password_is_never_sent_in_clear_text() -> None:
    with running_smtp_server(auth=("mailer", PASSWORD), auth_require_tls=False) as server:
        guarded = make_pool(server, server.url(user="mailer", password=PASSWORD, tls="auto"))
        plain = make_pool(server, server.url(user="mailer", password=PASSWORD, tls="off"))
        try:
            refused = await guarded.send(envelope())
            accepted = await plain.send(envelope())
        finally:
            await guarded.aclose()
            await plain.aclose()
    assert (refused.outcome, refused.phase) == ("deferred", "starttls")
    assert "tls=off" in refused.reply
    assert_sent(accepted)
    assert [mail.login for mail in server.messages] == ["mailer"]


async def test_tls_required_refuses_a_server_without_starttls(server: SmtpServer) -> None:
    smtp = make_pool(server, server.url(tls="required"))
    try:
        result = await smtp.send(envelope())
    finally:
        await smtp.aclose()
    assert (result.outcome, result.phase) == ("deferred", "starttls")
    assert server.messages == []


async def test_implicit_tls_with_a_login() -> None:
    with running_smtp_server(tls="implicit", auth=("mailer", PASSWORD)) as server:
        url = server.url(user="mailer", password=PASSWORD)
        assert url.startswith("smtps://")
        smtp = make_pool(server, url)
        try:
            result = await smtp.send(envelope())
        finally:
            await smtp.aclose()
    assert_sent(result)
    [mail] = server.messages
    assert mail.tls
    assert mail.login == "mailer"


# -- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "code"), [("rcpt", 421), ("rcpt", 451), ("data", 451)])
async def test_a_temporary_refusal_is_deferred_then_the_retry_is_sent(
    server: SmtpServer, pool: SmtpPool, step: str, code: int
) -> None:
    server.fail(step, code)  # type: ignore[arg-type]

    deferred = await pool.send(envelope())
    sent = await pool.send(envelope())

    assert (deferred.outcome, deferred.code, deferred.phase) == ("deferred", code, step)
    assert_sent(sent)
    assert server.recipients() == ["ada@example.org"]
    # A 421 closes the connection (the retry needs a new one); any other refusal keeps it.
    assert server.connections == (2 if code == 421 else 1)


async def test_550_on_rcpt_bounces_and_the_connection_carries_on(
    server: SmtpServer, pool: SmtpPool
) -> None:
    server.fail("rcpt", 550, text="5.1.1 <gone@example.org>: Recipient address rejected")

    bounced = await pool.send(envelope("gone@example.org"))
    sent = await pool.send(envelope("ada@example.org"))

    assert (bounced.outcome, bounced.code, bounced.phase) == ("bounced", 550, "rcpt")
    assert "Recipient address rejected" in bounced.reply
    assert_sent(sent)
    assert server.recipients() == ["ada@example.org"]
    assert server.connections == 1


@pytest.mark.parametrize("code", [552, 554])
async def test_a_permanent_refusal_of_the_content_bounces(
    server: SmtpServer, pool: SmtpPool, code: int
) -> None:
    server.fail("data", code)

    bounced = await pool.send(envelope())
    sent = await pool.send(envelope())

    assert (bounced.outcome, bounced.code, bounced.phase) == ("bounced", code, "data")
    assert_sent(sent)
    assert server.connections == 1


async def test_a_refused_sender_bounces_on_mail(server: SmtpServer, pool: SmtpPool) -> None:
    server.fail("mail", 553)

    result = await pool.send(envelope())

    assert (result.outcome, result.code, result.phase) == ("bounced", 553, "mail")
    assert_sent(await pool.send(envelope()))


async def test_a_connection_dropped_during_data_is_deferred_and_the_next_uses_a_new_one(
    server: SmtpServer, pool: SmtpPool
) -> None:
    server.drop_data()

    dropped = await pool.send(envelope("first@example.org"))
    sent = await pool.send(envelope("second@example.org"))

    assert (dropped.outcome, dropped.code, dropped.phase) == ("deferred", None, "data")
    assert "connection lost" in dropped.reply
    assert_sent(sent)
    assert server.recipients() == ["second@example.org"]
    assert server.connections == 2


async def test_a_pooled_connection_the_server_closed_is_replaced_without_a_deferral(
    server: SmtpServer, pool: SmtpPool
) -> None:
    assert_sent(await pool.send(envelope("first@example.org")))
    server.disconnect_all()

    result = await pool.send(envelope("second@example.org"))

    assert_sent(result)
    assert server.recipients() == ["first@example.org", "second@example.org"]
    assert server.connections == 2


async def test_a_slow_server_times_out_as_a_deferral() -> None:
    with running_smtp_server(delay=2.0) as server:
        smtp = make_pool(server, timeout=0.3)
        try:
            result = await smtp.send(envelope())
        finally:
            await smtp.aclose()
    assert (result.outcome, result.code, result.phase) == ("deferred", None, "mail")
    assert "timed out" in result.reply


async def test_a_server_that_is_down_is_a_deferral_at_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_smtp_server() as server:
        url = server.url()
    smtp = SmtpPool(parse_smtp_url(url), timeout=5.0)  # the port is closed now

    results = [await smtp.send(envelope()) for _ in range(3)]

    assert {(r.outcome, r.code, r.phase) for r in results} == {("deferred", None, "connect")}
    assert [r.getMessage() for r in caplog.records if r.name.startswith("hookhub")] == [
        "smtp.setup_failed"
    ]
    await smtp.aclose()


async def test_many_concurrent_sends_to_a_server_that_is_down_all_return() -> None:
    with running_smtp_server() as server:
        url = server.url()
    smtp = SmtpPool(parse_smtp_url(url), connections=2, timeout=5.0)

    results = await asyncio.wait_for(
        asyncio.gather(*(smtp.send(envelope()) for _ in range(30))), timeout=20
    )

    assert {(r.outcome, r.phase) for r in results} == {("deferred", "connect")}
    assert smtp.open_connections == 0
    await smtp.aclose()


# -- the pool ------------------------------------------------------------------------------------


async def test_a_thousand_messages_over_four_connections_arrive_once_each(
    server: SmtpServer,
) -> None:
    smtp = make_pool(server, connections=4)
    envelopes = [envelope(f"r{i}@example.org", MESSAGE + b"#%d\r\n" % i, i) for i in range(1000)]
    try:
        results = await smtp.send_many(envelopes)
    finally:
        await smtp.aclose()

    assert [r.outcome for r in results] == ["sent"] * 1000
    received = {mail.recipients[0]: mail.data for mail in server.messages}
    assert len(server.messages) == 1000
    assert received == {e.recipient: e.data for e in envelopes}
    assert server.connections == 4
    assert len({mail.peer_port for mail in server.messages}) == 4
    queued = [r.reply for r in results]
    assert len(set(queued)) == 1000  # each result is its own message's answer


@pytest.mark.parametrize(
    ("script", "first"),
    [
        (lambda server: server.fail("data", 421), ("deferred", 421, "data")),
        (lambda server: server.fail("data", 554), ("bounced", 554, "data")),
        (lambda server: server.fail("rcpt", 550), ("bounced", 550, "rcpt")),
        (lambda server: server.fail("rcpt", 421), ("deferred", 421, "rcpt")),
        (lambda server: server.drop_data(), ("deferred", None, "data")),
    ],
)
async def test_a_refusal_inside_a_pipelined_batch_touches_only_its_own_message(
    server: SmtpServer, script: Any, first: tuple[str, int | None, str]
) -> None:
    # One connection: the batch goes in order, each content carrying the next one's commands.
    smtp = make_pool(server, connections=1)
    server.refuse("r3@example.org")
    script(server)
    try:
        results = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(8)])
    finally:
        await smtp.aclose()

    assert (results[0].outcome, results[0].code, results[0].phase) == first
    assert (results[3].outcome, results[3].code, results[3].phase) == ("bounced", 550, "rcpt")
    assert [r.outcome for i, r in enumerate(results) if i not in (0, 3)] == ["sent"] * 6
    expected = {f"r{i}@example.org" for i in (1, 2, 4, 5, 6, 7)}
    assert sorted(server.recipients()) == sorted(expected)  # each once


async def test_a_refused_new_connection_defers_one_message_and_the_rest_wait_for_a_good_one(
    server: SmtpServer,
) -> None:
    smtp = make_pool(server, connections=2)
    try:
        assert_sent(await smtp.send(envelope("first@example.org")))  # one connection open
        server.refuse_connections(1)
        results = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(10)])
    finally:
        await smtp.aclose()

    refused = [r for r in results if r.outcome != "sent"]
    assert [(r.outcome, r.code, r.phase) for r in refused] == [("deferred", 554, "greeting")]
    assert len(server.recipients()) == 10


async def test_a_connection_is_recycled_after_its_message_budget(server: SmtpServer) -> None:
    smtp = make_pool(server, connections=1, recycle_after=10)
    try:
        results = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(25)])
    finally:
        await smtp.aclose()
    assert [r.outcome for r in results] == ["sent"] * 25
    assert server.connections == 3
    assert len({mail.peer_port for mail in server.messages}) == 3


async def test_concurrent_sends_share_at_most_the_pool_connections(server: SmtpServer) -> None:
    smtp = make_pool(server, connections=2)
    try:
        results = await asyncio.gather(
            *(smtp.send(envelope(f"r{i}@example.org")) for i in range(30))
        )
        assert smtp.open_connections <= 2
    finally:
        await smtp.aclose()
    assert [r.outcome for r in results] == ["sent"] * 30
    assert server.connections <= 2
    assert sorted(server.recipients()) == sorted(f"r{i}@example.org" for i in range(30))


class FakeClock:
    """Time that passes only when the pool sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = self.now + seconds
        self.slept += seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


async def test_the_rate_limit_spaces_messages_out(server: SmtpServer) -> None:
    clock = FakeClock()
    smtp = make_pool(server, connections=4, rate=20.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    try:
        results = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(100)])
        single = await smtp.send(envelope("late@example.org"))
    finally:
        await smtp.aclose()

    assert [r.outcome for r in results] == ["sent"] * 100
    assert_sent(single)
    # 101 messages at 20/s with a burst of 2: the pool waited ~(101 - 2) / 20 s of its clock.
    assert clock.now - start == pytest.approx(99 / 20, abs=0.2)
    assert len(server.messages) == 101


# -- servers aiosmtpd cannot play ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def scripted_server(answers: dict[bytes, bytes]) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A line-based server answering each command by its first word (``answers[b"EHLO"]``);
    ``b"DATA-END"`` answers the end of a message. Yields its port and the commands it saw."""
    seen: list[bytes] = []
    sessions: list[asyncio.Task[Any]] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sessions.append(asyncio.current_task())  # type: ignore[arg-type]
        writer.write(b"220 scripted ESMTP\r\n")
        in_data = False
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                if in_data:
                    if line == b".\r\n":
                        in_data = False
                        writer.write(answers.get(b"DATA-END", b"250 queued\r\n"))
                    continue
                word = line.split()[0].upper() if line.strip() else b""
                seen.append(line.rstrip())
                writer.write(answers.get(word, b"250 ok\r\n"))
                in_data = word == b"DATA" and answers.get(b"DATA", b"354").startswith(b"354")
                if word == b"QUIT":
                    break
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(asyncio.gather(*sessions, return_exceptions=True), 10)


async def test_a_server_refusing_ehlo_is_greeted_with_helo() -> None:
    answers = {b"EHLO": b"502 5.5.1 EHLO not implemented\r\n", b"DATA": b"354 go\r\n"}
    async with scripted_server(answers) as (port, seen):
        url = f"smtp://127.0.0.1:{port}?tls=off&helo=mx.example.com"
        smtp = SmtpPool(parse_smtp_url(url))
        try:
            result = await smtp.send(envelope())
        finally:
            await smtp.aclose()
    assert_sent(result)
    assert seen[:2] == [b"EHLO mx.example.com", b"HELO mx.example.com"]
    assert b"MAIL FROM:<shop@example.com>" in seen  # no SIZE= without EHLO


async def test_bytes_after_the_starttls_go_ahead_are_refused() -> None:
    answers = {
        b"EHLO": b"250-scripted\r\n250 STARTTLS\r\n",
        b"STARTTLS": b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n",
    }
    async with scripted_server(answers) as (port, seen):
        smtp = SmtpPool(parse_smtp_url(f"smtp://127.0.0.1:{port}"), timeout=5.0)
        try:
            result = await smtp.send(envelope())
        finally:
            await smtp.aclose()
    assert (result.outcome, result.phase) == ("deferred", "starttls")
    # (Were the bytes to arrive after the 220 in another read, the handshake would fail.)
    assert "after 220" in result.reply or "TLS failed" in result.reply
    assert not any(command.startswith(b"MAIL") for command in seen)


# -- on uvloop (hookhub serve and worker run on it) ----------------------------------------------


def test_the_pool_works_on_uvloop() -> None:
    import uvloop

    async def scenario(server: SmtpServer, slow: SmtpServer) -> list[SendResult]:
        url = server.url(user="mailer", password=PASSWORD, tls="required")
        smtp = make_pool(server, url, connections=3)
        hanging = make_pool(slow, timeout=0.3)
        try:
            server.refuse("r5@example.org")
            results = await smtp.send_many([envelope(f"r{i}@example.org") for i in range(20)])
            results.append(await hanging.send(envelope()))
        finally:
            await smtp.aclose()
            await hanging.aclose()
        return results

    with (
        running_smtp_server(tls="starttls", auth=("mailer", PASSWORD)) as server,
        running_smtp_server(delay=2.0) as slow,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        results = runner.run(scenario(server, slow))

    *batch, timed_out = results
    assert [r.outcome for i, r in enumerate(batch) if i != 5] == ["sent"] * 19
    assert (batch[5].outcome, batch[5].code) == ("bounced", 550)
    assert (timed_out.outcome, timed_out.phase) == ("deferred", "mail")
    assert "timed out" in timed_out.reply
    assert all(mail.tls and mail.login == "mailer" for mail in server.messages)
    assert len(server.messages) == 19
