"""Destination checks: which addresses Hookhub refuses to send to, and endpoint URL validation."""

from __future__ import annotations

import ipaddress

import pytest

from hookhub.core.urlguard import DestinationPolicy, check_url, is_forbidden_address, redact_url
from hookhub.errors import ValidationFailed

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.1.2.3", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped cloud metadata"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::8.8.8.8", "IPv4-compatible (deprecated)"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("64:ff9b::a9fe:a9fe", "NAT64 cloud metadata"),
    ("64:ff9b::7f00:1", "NAT64 loopback"),
    ("64:ff9b::a00:1", "NAT64 private"),
    ("64:ff9b:1::a00:1", "NAT64 private"),
    ("64:ff9b:1::808:808", "NAT64 local-use"),
    ("2002:a9fe:a9fe::", "6to4 cloud metadata"),
    ("2002:7f00:1::1", "6to4 loopback"),
    ("2002:c0a8:101::1", "6to4 private"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 (stored inverted in the last 32 bits).
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo loopback"),
    ("2001:0:a00:1::1", "Teredo private"),  # server 10.0.0.1
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("ff02::1", "multicast"),
    ("ff05::2", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "reserved"),
    ("1::1", "reserved"),
    ("4000::1", "reserved"),
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "192.169.0.1",
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, server and client both public
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_forbidden_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is None
    assert DestinationPolicy().refusal(ipaddress.ip_address(address)) is None


def test_empty_allow_list_refuses_everything_forbidden() -> None:
    policy = DestinationPolicy([])
    for address, reason in REFUSED:
        assert policy.refusal(ipaddress.ip_address(address)) == reason


def test_allow_list_opens_only_its_own_range() -> None:
    policy = DestinationPolicy(["127.0.0.0/8", "::1/128"])
    ip = ipaddress.ip_address
    assert policy.refusal(ip("127.0.0.1")) is None
    assert policy.refusal(ip("127.8.9.10")) is None
    assert policy.refusal(ip("::1")) is None
    assert policy.refusal(ip("::ffff:127.0.0.1")) is None  # the same IPv4 host, mapped
    assert policy.refusal(ip("10.0.0.1")) == "private"
    assert policy.refusal(ip("169.254.169.254")) == "cloud metadata"
    assert policy.refusal(ip("0.0.0.0")) == "unspecified"
    assert policy.refusal(ip("::2")) == "IPv4-compatible reserved"
    # Tunnels that embed loopback reach another machine's loopback: not opened by 127/8.
    assert policy.refusal(ip("64:ff9b::7f00:1")) == "NAT64 loopback"
    assert policy.refusal(ip("2002:7f00:1::1")) == "6to4 loopback"


def test_allow_list_entry_for_a_single_host_and_ipv6_ranges() -> None:
    policy = DestinationPolicy(["10.1.2.3/32", "fd00::/8", "169.254.169.254"])
    ip = ipaddress.ip_address
    assert policy.refusal(ip("10.1.2.3")) is None
    assert policy.refusal(ip("10.1.2.4")) == "private"
    assert policy.refusal(ip("fd12::1")) is None
    assert policy.refusal(ip("fc00::1")) == "unique-local"
    assert policy.refusal(ip("169.254.169.254")) is None  # explicitly asked for
    assert policy.refusal(ip("169.254.169.253")) == "link-local"


def test_allow_list_accepts_host_bits_and_rejects_nonsense() -> None:
    policy = DestinationPolicy(["192.168.1.7/24"])
    assert policy.refusal(ipaddress.ip_address("192.168.1.200")) is None
    with pytest.raises(ValueError, match="not-a-cidr"):
        DestinationPolicy(["not-a-cidr"])


@pytest.mark.parametrize(
    ("url", "host", "port", "ip"),
    [
        ("https://hooks.example.com/path?q=1", "hooks.example.com", 443, None),
        ("http://hooks.example.com:8080/x", "hooks.example.com", 8080, None),
        ("HTTPS://Hooks.Example.COM./", "hooks.example.com", 443, None),
        ("https://93.184.216.34/", "93.184.216.34", 443, "93.184.216.34"),
        ("http://[2606:4700::1111]:81/", "2606:4700::1111", 81, "2606:4700::1111"),
        ("  https://example.com/  ", "example.com", 443, None),
    ],
)
def test_check_url_accepts_http_urls(url: str, host: str, port: int, ip: str | None) -> None:
    parsed = check_url(url)
    assert parsed.host == host
    assert parsed.port == port
    assert parsed.scheme in {"http", "https"}
    assert parsed.url == url.strip()
    assert parsed.ip == (ipaddress.ip_address(ip) if ip else None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("ftp://example.com/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://example.com/", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https://example.com:0/", "port"),
        ("https://example.com:65536/", "malformed"),
        ("https://example.com:http/", "malformed"),
        ("https://[::1/", "malformed"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://exa mple.com/", "whitespace"),
        ("https://example.com/\x00", "control"),
        ("https://example.com\\@evil.test/", "backslash"),
        ("https://127.1/", "dotted IPv4"),
        ("https://2130706433/", "dotted IPv4"),
        ("https://0x7f.0.0.1/", "dotted IPv4"),
        ("https://example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_check_url_refuses_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as caught:
        check_url(url)
    assert caught.value.status == 422


def test_check_url_with_a_policy_refuses_forbidden_ip_literals_early() -> None:
    policy = DestinationPolicy([])
    with pytest.raises(ValidationFailed, match=r"169\.254\.169\.254.*cloud metadata"):
        check_url("http://169.254.169.254/latest/meta-data/", policy=policy)
    with pytest.raises(ValidationFailed, match="loopback"):
        check_url("http://[::ffff:127.0.0.1]:8080/", policy=policy)
    # Names are judged when resolved, at connect time.
    assert check_url("http://localhost:8080/", policy=policy).ip is None
    assert check_url("https://8.8.8.8/", policy=policy).port == 443
    allowing = DestinationPolicy(["127.0.0.0/8"])
    assert check_url("http://127.0.0.1:9/", policy=allowing).ip == ipaddress.ip_address("127.0.0.1")


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/…"),
        (
            "https://hooks.zapier.com/hooks/catch/123/abc/?token=s3cret",
            "https://hooks.zapier.com/…",
        ),
        ("http://example.com:8443/a#frag", "http://example.com:8443/…"),
        ("https://user:pass@example.com/x", "https://example.com/…"),
        ("HTTPS://Example.COM", "https://example.com/…"),
        ("http://[2001:db8::1]:9000/p?q=1", "http://[2001:db8::1]:9000/…"),
        ("not a url", "[redacted]"),
        ("http://example.com:99999/x", "[redacted]"),
        ("", "[redacted]"),
    ],
)
def test_redact_url_keeps_only_scheme_host_and_port(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
