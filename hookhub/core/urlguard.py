"""Which outbound destinations Hookhub may send to: URL shape checks and address policy.

``check_url`` validates an endpoint URL when it is created; ``DestinationPolicy`` judges the
address that is really dialled, at connect time (``hookhub.outbound.sender``), so DNS tricks
cannot reach loopback, private networks or cloud metadata services. This module is pure: it
must never resolve names, open sockets or read settings; it is handed everything it judges.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from hookhub.errors import ValidationFailed

__all__ = [
    "MAX_URL_LENGTH",
    "DestinationPolicy",
    "IPAddress",
    "ParsedDestination",
    "check_url",
    "is_forbidden_address",
    "redact_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)\Z")

# Instance-metadata services hold cloud credentials; named apart so the refusal says so.
_METADATA: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
        "168.63.129.16",  # Azure wire server (a public address reachable only from inside Azure)
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    )
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Order matters: the first matching range names the reason.
_IPV4_RANGES: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "reserved"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "CGNAT"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("255.255.255.255/32"), "broadcast"),
    (_V4("240.0.0.0/4"), "reserved"),
)

_IPV6_RANGES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("100:0:0:1::/64"), "reserved"),  # dummy prefix
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "reserved"),  # ORCHID
    (_V6("2001:20::/28"), "reserved"),  # ORCHIDv2: identifiers, not locators
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "reserved"),  # SRv6 SIDs
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)

_IPV4_COMPATIBLE = _V6("::/96")
_NAT64_WELL_KNOWN = _V6("64:ff9b::/96")
_NAT64_LOCAL_USE = _V6("64:ff9b:1::/48")
_GLOBAL_UNICAST = _V6("2000::/3")


@dataclass(frozen=True, slots=True)
class ParsedDestination:
    """An endpoint URL that passed :func:`check_url`."""

    url: str
    scheme: str
    host: str
    """Lower-cased host name or IP literal (without IPv6 brackets)."""
    port: int
    """The explicit port, or the scheme's default."""
    ip: IPAddress | None
    """Set when the host is an IP literal; names are judged when they are resolved."""


def check_url(url: str, *, policy: DestinationPolicy | None = None) -> ParsedDestination:
    """Validate an endpoint URL; raise :class:`ValidationFailed` saying what is wrong.

    With a ``policy``, an IP-literal host is also judged now, so an obviously forbidden
    endpoint is refused at creation rather than on its first delivery.
    """
    if not url.strip():
        raise ValidationFailed("The URL is empty.")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise ValidationFailed("The URL contains whitespace, control characters or backslashes.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationFailed(f"The URL is malformed: {exc}.") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValidationFailed("The URL must start with http:// or https://.")
    if "@" in parts.netloc:
        raise ValidationFailed(
            "The URL must not contain credentials (user:password@); "
            "set them in the endpoint's auth instead."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationFailed("The URL has no host.")
    if port is not None and not 1 <= port <= 65535:
        raise ValidationFailed("The URL's port must be between 1 and 65535.")

    ip = _parse_host_ip(host)
    if policy is not None and ip is not None:
        reason = policy.refusal(ip)
        if reason is not None:
            raise ValidationFailed(f"Destination {ip} is not allowed ({reason}).")
    return ParsedDestination(
        url=url,
        scheme=scheme,
        host=host,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        ip=ip,
    )


def _parse_host_ip(host: str) -> IPAddress | None:
    if ":" in host:  # urlsplit only lets ':' through for bracketed IPv6 literals
        if "%" in host:
            raise ValidationFailed("The URL's IPv6 address must not carry a zone (%...).")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValidationFailed(f"The URL's IPv6 address {host!r} is invalid.") from exc
    # No top-level domain is numeric, so a numeric last label means an IPv4 literal; refuse the
    # legacy spellings (127.1, 0x7f.0.0.1, 2130706433) that resolvers would quietly accept.
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        try:
            return ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise ValidationFailed(
                f"The URL's host {host!r} is not a valid dotted IPv4 address."
            ) from exc
    return None


def is_forbidden_address(ip: IPAddress) -> str | None:
    """Why Hookhub must not connect to ``ip`` ("loopback", "private", ...), or None if it may.

    IPv6 encodings of IPv4 addresses (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are
    unwrapped and the embedded address judged too, e.g. "NAT64 cloud metadata".
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.packed)  # the zone does not change what the address is
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_reason(ip)
    return _ipv6_reason(ip)


def _ipv4_reason(ip: ipaddress.IPv4Address) -> str | None:
    if ip in _METADATA:
        return "cloud metadata"
    for network, reason in _IPV4_RANGES:
        if ip in network:
            return reason
    return None


def _embedded(wrapper: str, *addresses: ipaddress.IPv4Address) -> str | None:
    for inner in addresses:
        reason = _ipv4_reason(inner)
        if reason is not None:
            return f"{wrapper} {reason}"
    return None


def _low32(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _ipv6_reason(ip: ipaddress.IPv6Address) -> str | None:
    if ip in _METADATA:
        return "cloud metadata"
    for network, reason in _IPV6_RANGES:
        if ip in network:
            return reason
    if ip.ipv4_mapped is not None:
        return _embedded("IPv4-mapped", ip.ipv4_mapped)
    if ip in _NAT64_WELL_KNOWN:
        return _embedded("NAT64", _low32(ip))
    if ip in _NAT64_LOCAL_USE:
        # Local-use translators sit inside the operator's own network: never a public route.
        return _embedded("NAT64", _low32(ip)) or "NAT64 local-use"
    if ip in _IPV4_COMPATIBLE:  # deprecated; :: and ::1 were judged above
        return _embedded("IPv4-compatible", _low32(ip)) or "IPv4-compatible (deprecated)"
    if ip.sixtofour is not None:
        return _embedded("6to4", ip.sixtofour)
    if ip.teredo is not None:
        return _embedded("Teredo", *ip.teredo)
    if ip not in _GLOBAL_UNICAST:
        return "reserved"
    return None


class DestinationPolicy:
    """Forbidden addresses minus the operator's allow-list (``HOOKHUB_ALLOW_PRIVATE_DESTINATIONS``).

    An allow-list entry opens exactly its own range: allowing ``127.0.0.0/8`` opens loopback
    and nothing else. An IPv4-mapped IPv6 address counts as the IPv4 address it maps to.
    """

    __slots__ = ("_allow",)

    def __init__(self, allow: Sequence[str] = ()) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for cidr in allow:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"invalid CIDR in allow-list: {cidr!r}") from exc
        self._allow = tuple(networks)

    @property
    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return self._allow

    def is_allowed_explicitly(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                ip = ipaddress.IPv6Address(ip.packed)
            if ip.ipv4_mapped is not None and self.is_allowed_explicitly(ip.ipv4_mapped):
                return True
        return any(ip in network for network in self._allow)

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` must not be dialled, or None when it may be."""
        if self.is_allowed_explicitly(ip):
            return None
        return is_forbidden_address(ip)

    def __repr__(self) -> str:
        return f"DestinationPolicy(allow={[str(n) for n in self._allow]!r})"


def redact_url(url: str) -> str:
    """``url`` without what may make it a capability: ``scheme://host[:port]/…``.

    Slack, Zapier and similar receive URLs carry their secret in the path or the query, so
    anything shown to a third party keeps only where the URL points. Credentials in the
    authority (``user:pass@``) are dropped too. A string that does not parse as a URL with a
    host answers ``"[redacted]"``.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "[redacted]"
    if not parts.scheme or not host:
        return "[redacted]"
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    authority = host if port is None else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{authority}/…"
