"""The SMTP transport's pure parts: the URL, the wire format, how replies are read and judged."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookhub.email.smtp_url import InvalidSmtpUrl, SmtpConfig, parse_smtp_url
from hookhub.email.smtp_wire import ReplyReader, to_wire
from hookhub.email.transport import classify

# -- HOOKHUB_SMTP_URL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:pass@mail.example.com:587",
            SmtpConfig("mail.example.com", 587, "opportunistic", "user", "pass"),
        ),
        (
            "smtp://user:pass@mail.example.com:587?tls=required",
            SmtpConfig("mail.example.com", 587, "required", "user", "pass"),
        ),
        (
            "smtps://user:pass@mail.example.com:465",
            SmtpConfig("mail.example.com", 465, "implicit", "user", "pass"),
        ),
        ("smtps://mail.example.com", SmtpConfig("mail.example.com", 465, "implicit")),
        ("smtp://localhost:25?tls=off", SmtpConfig("localhost", 25, "off")),
        ("smtp://localhost", SmtpConfig("localhost", 25, "opportunistic")),
        (
            "SMTP://apikey:p%40ss%3Aw%2Frd%25@[::1]:2525?verify=off&helo=mx.example.com",
            SmtpConfig(
                "::1", 2525, "opportunistic", "apikey", "p@ss:w/rd%", False, "mx.example.com"
            ),
        ),
        (
            "smtp://user%40example.com@host:587",
            SmtpConfig("host", 587, "opportunistic", "user@example.com"),
        ),
    ],
)
def test_urls_name_the_server_tls_and_decoded_credentials(url: str, expected: SmtpConfig) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://user:hunter2@host:25", "smtp:// or smtps://"),
        ("mail.example.com:25", "smtp:// or smtps://"),
        ("smtp://user:hunter2@:25", "no host"),
        ("smtp://user:hunter2@host:port", "valid host and port"),
        ("smtp://user:hunter2@host:99999", "valid host and port"),
        ("smtp://user:hunter2@host:0", "port 0"),
        ("smtp://user:hunter2@host:25/inbox", "no path"),
        ("smtp://user:hunter2@host:25?tls=maybe", "tls= takes"),
        ("smtps://user:hunter2@host:465?tls=off", "always TLS"),
        ("smtp://user:hunter2@host:25?verify=sometimes", "verify= takes"),
        ("smtp://user:hunter2@host:25?hunter2=1", "unknown option"),
        ("smtp://:hunter2@host:25", "no user name"),
        ("smtp://user:hunter2%0D%0A@host:25", "control character"),
        ("", "smtp:// or smtps://"),
    ],
)
def test_nonsense_is_refused_clearly_without_the_password(url: str, says: str) -> None:
    with pytest.raises(InvalidSmtpUrl) as refused:
        parse_smtp_url(url)
    assert says in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_the_password_never_shows_in_repr_str_or_description() -> None:
    config = parse_smtp_url("smtp://mailer:hunter2@mail.example.com:587?verify=off")

    for shown in (repr(config), str(config), config.describe(), f"{config}", f"{config!r}"):
        assert "hunter2" not in shown
    assert config.describe() == (
        "smtp://mailer@mail.example.com:587 (STARTTLS when offered, certificate NOT verified)"
    )
    assert parse_smtp_url("smtps://[::1]:465").describe() == "smtps://[::1]:465 (implicit TLS)"
    assert parse_smtp_url("smtp://h:25?tls=off").describe() == "smtp://h:25 (no TLS)"


def test_verify_off_accepts_any_certificate_and_the_default_verifies() -> None:
    import ssl

    strict = parse_smtp_url("smtp://host").ssl_context()
    lenient = parse_smtp_url("smtp://host?verify=off").ssl_context()
    assert (strict.verify_mode, strict.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert (lenient.verify_mode, lenient.check_hostname) == (ssl.CERT_NONE, False)


# -- what goes on the wire -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n..b\n", b"a\r\n...b\r\n.\r\n"),
        (b"a\rb\r\n\n.c", b"a\r\nb\r\n\r\n..c\r\n.\r\n"),
        (b"a.b\r\n x.\r\n", b"a.b\r\n x.\r\n.\r\n"),
    ],
)
def test_content_is_crlf_dot_stuffed_and_terminated(data: bytes, wire: bytes) -> None:
    assert to_wire(data) == wire


def undo(wire: bytes) -> bytes:
    """What a receiving server stores: the lines before the lone dot, un-stuffed."""
    assert wire.endswith(b"\r\n.\r\n") or wire == b".\r\n"
    lines = wire[:-3].split(b"\r\n")[:-1] if wire != b".\r\n" else []
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


@given(st.lists(st.sampled_from([b".", b"..", b"a", b"\r\n", b"\n", b"\r", b" ", b"\xc3\xa9"])))
def test_the_server_gets_back_the_crlf_normalized_message(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    wire = to_wire(data)
    normalized = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if normalized and not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    assert undo(wire) == normalized
    assert b"\r\n.\r\n" not in wire[:-3]  # no early end of data
    assert wire.count(b"\n") == wire.count(b"\r\n") == wire.count(b"\r")


# -- replies -------------------------------------------------------------------------------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


async def test_replies_are_cut_from_any_chunking() -> None:
    stream = (
        b"250-smtp.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
        b"250 2.1.0 Ok\r\n550 5.1.1 no such user\n354 go ahead\r\n"
    )
    for size in (1, 2, 7, len(stream)):
        reader = ReplyReader(asyncio.get_running_loop())
        reader.connection_made(FakeTransport())
        for start in range(0, len(stream), size):
            reader.data_received(stream[start : start + size])
        assert list(reader.replies) == [
            (250, b"smtp.example.com\nPIPELINING\nSIZE 1000\n8BITMIME"),
            (250, b"2.1.0 Ok"),
            (550, b"5.1.1 no such user"),
            (354, b"go ahead"),
        ]


async def test_waiting_wakes_on_enough_replies_a_lost_connection_or_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    reader = ReplyReader(loop)
    reader.connection_made(FakeTransport())
    loop.call_soon(reader.data_received, b"250 one\r\n")
    loop.call_soon(reader.data_received, b"250 two\r\n")
    assert await reader.wait(2, 5.0)
    assert not await reader.wait(3, 0.01)
    assert reader.timed_out

    lost = ReplyReader(loop)
    lost.connection_made(FakeTransport())
    loop.call_soon(lost.connection_lost, ConnectionResetError("reset by peer"))
    assert not await lost.wait(1, 5.0)
    assert (lost.lost, lost.timed_out) == (True, False)
    assert lost.error == "ConnectionResetError: reset by peer"


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 400 Bad Request\r\n", b"25O ok\r\n", b"250x\r\n"])
async def test_a_server_that_does_not_speak_smtp_is_dropped(garbage: bytes) -> None:
    reader = ReplyReader(asyncio.get_running_loop())
    transport = FakeTransport()
    reader.connection_made(transport)
    reader.data_received(garbage)
    assert transport.aborted
    assert "protocol error" in reader.error
    assert not reader.replies


async def test_an_endless_reply_is_dropped() -> None:
    reader = ReplyReader(asyncio.get_running_loop())
    transport = FakeTransport()
    reader.connection_made(transport)
    for _ in range(100):
        reader.data_received(b"250-" + b"x" * 1000 + b"\r\n")
    assert transport.aborted


# -- judging replies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "phase", "outcome"),
    [
        (250, "data", "sent"),
        (421, "rcpt", "deferred"),
        (451, "data", "deferred"),
        (452, "rcpt", "deferred"),
        (550, "rcpt", "bounced"),
        (553, "mail", "bounced"),
        (552, "data", "bounced"),
        (554, "data", "bounced"),
        (554, "greeting", "deferred"),
        (502, "ehlo", "deferred"),
        (535, "auth", "deferred"),
        (530, "mail", "deferred"),  # "authentication required": our configuration
        (554, "starttls", "deferred"),
    ],
)
def test_classification(code: int, phase: str, outcome: str) -> None:
    assert classify(code, phase) == outcome  # type: ignore[arg-type]


# -- pacing --------------------------------------------------------------------------------------


async def test_the_pacer_lets_a_burst_through_then_spaces_events_out() -> None:
    from hookhub.email.pacing import Pacer

    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(10.0, burst=3, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        await pacer.wait()
    assert sleeps == [0.1, 0.1, 0.1]  # three at once, then one every 0.1 s
    assert now[0] == pytest.approx(0.3)

    now[0] += 10.0  # a quiet spell refills the burst, no more
    sleeps.clear()
    for _ in range(4):
        await pacer.wait()
    assert sleeps == [0.1]
