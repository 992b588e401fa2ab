"""Where a webhook may be sent (SSRF): http(s) URLs whose every address is public, unless allowed.

The host is resolved and every address checked, at registration and again at each delivery (DNS may
change), and the connection goes to an address that was checked (no second lookup between the check
and the connect). Private, loopback, link-local, shared and reserved addresses are refused unless
they lie in LABELER_WEBHOOK_ALLOWED_NETWORKS; unspecified (0.0.0.0, ::) and multicast addresses are
always refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from ..errors import ValidationError
from ..validation import text_problem

MAX_URL = 2000
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValidationError):
    """The URL, or an address its host resolves to, may not receive webhooks."""

    code = "webhook_target_refused"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query
    addresses: tuple[str, ...]  # checked addresses, to connect to


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks ("127.0.0.0/8", "10.1.0.0/16", "::1/128"); ValueError names a bad one."""
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a network (write CIDR blocks such as 10.0.0.0/8 or ::1/128)"
            ) from None
    return tuple(out)


def check_url(url: object) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL without credentials; refused in words otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("the webhook URL is required", field="url")
    url = url.strip()
    problem = text_problem(url)
    if problem or any(c.isspace() for c in url):
        raise TargetRefused(
            "the webhook URL must not contain spaces or control characters", field="url"
        )
    if len(url) > MAX_URL:
        raise TargetRefused(f"the webhook URL is longer than {MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: "http://[::1"
        raise TargetRefused("the webhook URL is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the webhook URL must start with https:// (or http://)", field="url")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            "the webhook URL must not carry a user name or password (deliveries are signed instead)",
            field="url",
        )
    try:
        port = parts.port
        if port == 0:
            raise ValueError(port)
    except ValueError:
        raise TargetRefused(
            "the webhook URL's port is not a number from 1 to 65535", field="url"
        ) from None
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    if not host:
        raise TargetRefused("the webhook URL has no host name", field="url")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # the request line is ASCII: other characters are sent percent-encoded (as browsers do)
    path = "".join(c if c.isascii() else quote(c) for c in path)
    return parts.scheme, host, port, path


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and reach it through a translator
# (NAT64, RFC 6052 and RFC 8215) or the host itself (IPv4-compatible ::a.b.c.d, deprecated)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, 6to4, NAT64, IPv4-compatible), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64) or (
        address in _IPV4_COMPATIBLE and int(address) > 1  # not :: nor ::1
    ):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_problem(address: Address, allowed: Iterable[Network]) -> str | None:
    """Why webhooks may not go to this address, or None.

    An IPv6 address that embeds an IPv4 address (::ffff:10.0.0.1, 64:ff9b::a9fe:a9fe, 2002:7f00:1::)
    is judged by the IPv4 address it leads to."""
    if isinstance(address, ipaddress.IPv6Address) and (v4 := embedded_ipv4(address)) is not None:
        address = v4
    if address.is_unspecified or address.is_multicast:
        return f"{address} is an unspecified or multicast address"
    if address.is_global:
        return None
    if any(address.version == net.version and address in net for net in allowed):
        return None
    kind = (
        "loopback"
        if address.is_loopback
        else "link-local"
        if address.is_link_local
        else "private or reserved"
    )
    return (
        f"{address} is a {kind} address; webhooks go only to public addresses unless an "
        "administrator allows that network (LABELER_WEBHOOK_ALLOWED_NETWORKS)"
    )


def resolve(url: object, allowed: Iterable[Network]) -> Target:
    """Check the URL, resolve its host and check every address; TargetRefused says why not."""
    scheme, host, port, path = check_url(url)
    allowed = tuple(allowed)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(
            f"the host {host!r} could not be resolved ({exc})", field="url"
        ) from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        problem = address_problem(address, allowed)
        if problem:
            raise TargetRefused(f"the host {host!r} resolves to {problem}", field="url")
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise TargetRefused(f"the host {host!r} has no address", field="url")
    return Target(scheme, host, port, path, tuple(addresses))
