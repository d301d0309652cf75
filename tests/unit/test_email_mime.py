"""Built messages read back by the standard library's parser: headers, encodings, bodies, safety."""

from __future__ import annotations

import binascii
import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookhub.email.mime import (
    Address,
    OutgoingMessage,
    build_message,
    encode_body,
    make_message_id,
    quoted_printable,
)
from hookhub.errors import HeaderInvalid, ValidationFailed

DATE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def message(**overrides: Any) -> OutgoingMessage:
    fields: dict[str, Any] = {
        "message_id": make_message_id(42, "mail.example.com", "n0nce"),
        "sender": Address("news@example.com", "Example News"),
        "to": Address("ann@example.org", "Ann"),
        "subject": "Your order",
        "html": "<p>Hello</p>\n",
        "text": "Hello\n",
        "date": DATE,
    }
    fields.update(overrides)
    return OutgoingMessage(**fields)


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n").encode()


def bodies(parsed: EmailMessage) -> tuple[bytes, bytes]:
    text, html = list(parsed.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    return text.get_payload(decode=True), html.get_payload(decode=True)  # type: ignore[return-value]


def assert_wire_shape(raw: bytes) -> None:
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        assert len(line) <= 998
        assert line.isascii()
    in_part_body = False
    for line in body.split(b"\r\n"):
        if line.startswith(b"--=_hh_"):
            in_part_body = False
        elif in_part_body:
            assert len(line) <= 76, line
        elif line == b"":
            in_part_body = True


def test_headers_read_back_as_given() -> None:
    raw = build_message(
        message(
            reply_to=Address("help@example.com", "Help Desk"),
            to=[Address("ann@example.org", "Ann"), Address("bob@example.org")],
            headers={"X-Campaign-Id": "12", "X-Entity-Ref-ID": "abc"},
            list_unsubscribe="https://hooks.example.com/t/u/TOKEN",
            list_unsubscribe_mailto="unsubscribe@example.com",
        )
    )
    parsed = parse(raw)
    assert parsed["From"] == "Example News <news@example.com>"
    assert parsed["To"] == "Ann <ann@example.org>, bob@example.org"
    assert parsed["Reply-To"] == "Help Desk <help@example.com>"
    assert parsed["Subject"] == "Your order"
    assert parsed["Message-ID"] == "<42.n0nce@mail.example.com>"
    assert parsed["Date"].datetime == DATE
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["X-Campaign-Id"] == "12"
    assert parsed["List-Unsubscribe"] == (
        "<https://hooks.example.com/t/u/TOKEN>, <mailto:unsubscribe@example.com>"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.defects == []
    assert_wire_shape(raw)


def test_one_click_is_announced_only_with_an_https_link_and_when_asked() -> None:
    mailto_only = parse(build_message(message(list_unsubscribe_mailto="u@example.com")))
    assert mailto_only["List-Unsubscribe"] == "<mailto:u@example.com>"
    assert mailto_only["List-Unsubscribe-Post"] is None
    no_one_click = parse(
        build_message(message(list_unsubscribe="https://h.example/u", one_click=False))
    )
    assert no_one_click["List-Unsubscribe-Post"] is None
    assert parse(build_message(message()))["List-Unsubscribe"] is None


def test_the_date_keeps_its_offset() -> None:
    rome = timezone(timedelta(hours=1))
    raw = build_message(message(date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=rome)))
    assert b"Date: Fri, 02 Jan 2026 03:04:05 +0100\r\n" in raw
    with pytest.raises(ValueError, match="timezone"):
        build_message(message(date=datetime(2026, 1, 2)))


def test_non_ascii_names_and_subjects_are_encoded_words_that_read_back() -> None:
    subject = "Ihre Bestellung über 40 € ist unterwegs — 注文は発送されました " * 3
    raw = build_message(
        message(
            subject=subject,
            sender=Address("news@example.com", "Bottega Verde Società Benefit"),
            to=Address("ann@example.org", "Zoë Ångström-Ünal"),
        )
    )
    assert raw.isascii()
    parsed = parse(raw)
    assert parsed["Subject"] == " ".join(subject.split())
    assert parsed["From"].addresses[0].display_name == "Bottega Verde Società Benefit"
    assert parsed["To"].addresses[0].display_name == "Zoë Ångström-Ünal"
    assert str(make_header(decode_header(raw.decode().split("\r\nTo: ")[1].split(" <")[0]))) == (
        "Zoë Ångström-Ünal"
    )
    assert_wire_shape(raw)


def test_display_names_with_specials_are_quoted() -> None:
    parsed = parse(build_message(message(to=Address("a@example.org", 'Doe, John "JD" \\ Jr.'))))
    assert parsed["To"].addresses[0].display_name == 'Doe, John "JD" \\ Jr.'
    assert parsed["To"].addresses[0].addr_spec == "a@example.org"


def test_bodies_are_byte_exact_after_decoding() -> None:
    text = "Hello\n.leading dot\n.\nFrom the start\ntrailing space \ttab\t\n" + "x" * 500 + "\n"
    html = "<p>Ciao è 😀 = 100%</p>\r\n" + "<td>" * 300 + "\n..\n"
    raw = build_message(message(text=text, html=html))
    parsed = parse(raw)
    assert bodies(parsed) == (crlf(text), crlf(html))
    assert_wire_shape(raw)


def test_mostly_non_latin_bodies_use_base64_and_stay_exact() -> None:
    text = "Ваш заказ отправлен. Спасибо за покупку! " * 40
    raw = build_message(message(text=text, html=f"<p>{text}</p>"))
    parsed = parse(raw)
    assert [p["Content-Transfer-Encoding"] for p in parsed.iter_parts()] == ["base64", "base64"]
    assert bodies(parsed) == (crlf(text), crlf(f"<p>{text}</p>"))
    assert_wire_shape(raw)


def test_the_same_message_gives_the_same_bytes() -> None:
    assert build_message(message()) == build_message(message())
    assert build_message(message()) != build_message(message(message_id="<43.n0nce@x.example>"))


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"X-Evil": "a\r\nBcc: victim@example.com"}, "X-Evil"),
        ({"X-Evil": "a\nb"}, "X-Evil"),
        ({"X-Nul": "a\x00b"}, "X-Nul"),
        ({"Bad Name": "x"}, "Bad Name"),
        ({"X-Colon:": "x"}, "X-Colon:"),
        ({"": "x"}, ""),
        ({"From": "boss@example.com"}, "From"),
        ({"subject": "other"}, "subject"),
        ({"Content-Type": "text/plain"}, "Content-Type"),
        ({"List-Unsubscribe": "<https://x>"}, "List-Unsubscribe"),
        ({"BCC": "x@example.com"}, "BCC"),
        ({"X-Long": "y" * 999}, "X-Long"),
    ],
)
def test_custom_headers_cannot_inject_or_override(headers: dict[str, str], named: str) -> None:
    with pytest.raises(HeaderInvalid) as caught:
        build_message(message(headers=headers))
    assert caught.value.status == 422
    assert caught.value.details == {"header": named}


def test_subjects_and_names_cannot_inject_headers() -> None:
    raw = build_message(
        message(subject="Hi\r\nBcc: victim@example.com", to=Address("a@example.org", "A\r\nBcc: v"))
    )
    parsed = parse(raw)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Hi Bcc: victim@example.com"


def test_custom_headers_may_carry_non_ascii_and_long_values() -> None:
    value = "Campagne d'été " + "mot " * 40
    parsed = parse(build_message(message(headers={"X-Note": value})))
    assert parsed["X-Note"] == " ".join(value.split())


@pytest.mark.parametrize(
    "address",
    ["not-an-address", "a@", "@example.com", "a b@example.com", "a@exa mple.com", "a..b@x.example",
     "a@-x.example", "a@x.example\r\nBcc: v@x.example", "<a@x.example>", "a@b@c"],
)  # fmt: skip
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValidationFailed):
        build_message(message(to=Address(address)))


def test_international_domains_are_idna_encoded_and_local_parts_must_be_ascii() -> None:
    parsed = parse(build_message(message(to=Address("ann@bücher.example"))))
    assert parsed["To"] == "ann@xn--bcher-kva.example"
    with pytest.raises(ValidationFailed, match="SMTPUTF8"):
        build_message(message(to=Address("jürgen@example.com")))


def test_message_ids_and_unsubscribe_links_are_checked() -> None:
    assert (
        make_message_id(7, "bücher.example", "abc_DEF-1") == "<7.abc_DEF-1@xn--bcher-kva.example>"
    )
    with pytest.raises(ValueError, match="nonce"):
        make_message_id(7, "example.com", "a b")
    with pytest.raises(ValidationFailed):
        build_message(message(message_id="<no at sign>"))
    with pytest.raises(ValidationFailed):
        build_message(message(message_id="<a@b.example>\r\nBcc: x"))
    for bad in ("javascript:alert(1)", "https://x.example/a b", "https://x.example/>", "ftp://x"):
        with pytest.raises(ValidationFailed):
            build_message(message(list_unsubscribe=bad))


names = st.one_of(st.none(), st.text(max_size=80))
bodies_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=600
)


@settings(max_examples=60, deadline=None)
@given(subject=st.text(max_size=300), name=names, text=bodies_text, html=bodies_text)
def test_any_content_round_trips(subject: str, name: str | None, text: str, html: str) -> None:
    raw = build_message(
        message(subject=subject, to=Address("ann@example.org", name), text=text, html=html)
    )
    assert_wire_shape(raw)
    parsed = parse(raw)
    assert parsed["Subject"] == " ".join(subject.split())
    shown = parsed["To"].addresses[0]
    assert shown.addr_spec == "ann@example.org"
    # Python's address parser keeps the space between two encoded words that RFC 2047 drops
    # (see headers.display_name), so a long name may read back with an extra space.
    assert "".join(shown.display_name.split()) == "".join((name or "").split())
    assert bodies(parsed) == (crlf(text), crlf(html))
    assert re.search(rb"\r\nMessage-ID: <42\.n0nce@mail\.example\.com>\r\n", raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500), st.integers(min_value=0, max_value=200))
def test_quoted_printable_decodes_to_its_input_in_short_lines(data: bytes, width: int) -> None:
    lines = (data.replace(b"\r", b"").replace(b"\n", b"") + b"=" * (width % 7)).split(b"x")
    raw = b"\r\n".join(line * (1 + width // 50) for line in lines)
    encoded = quoted_printable(raw)
    assert binascii.a2b_qp(encoded) == raw
    assert encoded.isascii()
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert not re.search(rb"[ \t]\r\n|[ \t]$", encoded)
    assert quoted_printable(raw) == binascii.b2a_qp(raw, istext=True) or binascii.a2b_qp(
        binascii.b2a_qp(raw, istext=True)
    ) == binascii.a2b_qp(encoded)


def test_base64_bodies_are_whole_lines_of_76() -> None:
    for size in (0, 1, 56, 57, 58, 114, 1000):
        encoding, body = encode_body("ж" * size)
        if size > 1:
            assert encoding == "base64"
        if encoding == "base64":
            assert body == b"" or body.endswith(b"\r\n")
            assert all(len(line) <= 76 for line in body.split(b"\r\n"))
            assert binascii.a2b_base64(body.replace(b"\r\n", b"")) == ("ж" * size).encode()


def test_a_long_single_line_with_accents_is_wrapped_with_crlf() -> None:
    text = "Caffè e cornetto, grazie! " * 12  # one line, mostly ASCII: quoted-printable
    raw = build_message(message(text=text, html=text))
    assert_wire_shape(raw)
    assert bodies(parse(raw)) == (text.encode(), text.encode())
