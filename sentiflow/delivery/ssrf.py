"""SSRF guard for caller-supplied webhook URLs.

A webhook URL is attacker-controlled: without a check, ``https://169.254.169.254/`` or a name
that resolves to ``10.0.0.5`` would make the node POST into its own network. The guard accepts
only ``http``/``https`` URLs whose host resolves exclusively to public unicast addresses.
Loopback, private (RFC 1918, ULA), shared (100.64/10), link-local, multicast, reserved and
unspecified addresses are refused, for IPv4 and IPv6 alike, including IPv4 addresses embedded in
IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64 ``64:ff9b::/96``, Teredo). Operators can
allow-list host names (``webhook.allow_hosts``) or networks (``webhook.allow_networks``).

Known limit: the check resolves the name, then the HTTP client resolves it again to connect, so
a DNS server that answers differently the second time (DNS rebinding) is not stopped. The sender
re-checks before every attempt, which narrows but does not close that window.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Final

import anyio
import httpx

from sentiflow.config.settings import WebhookSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
DNS_TIMEOUT_S: Final = 5.0


class WebhookURLRefusedError(ValueError):
    """The URL may not be used as a webhook. ``code`` is stable, ``detail`` is for people."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SsrfPolicy:
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, webhook: WebhookSettings) -> SsrfPolicy:
        return cls(allow_hosts=frozenset(webhook.allow_hosts),
                   allow_networks=tuple(webhook.allow_networks))

    def allows(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow_networks)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public_ip(ip: IPAddress) -> bool:
    """True for a globally routable unicast address (and any IPv4 embedded in it)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_public_ip(inner):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_private or ip.is_loopback
                                 or ip.is_link_local or ip.is_reserved or ip.is_unspecified)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        with anyio.fail_after(DNS_TIMEOUT_S):
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise WebhookURLRefusedError("unresolvable", f"resolving {host!r} timed out") from None
    except OSError as exc:
        raise WebhookURLRefusedError("unresolvable", f"cannot resolve {host!r}: {exc}") from None
    addresses = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        addresses.append(ipaddress.ip_address(address))
    if not addresses:
        raise WebhookURLRefusedError("unresolvable", f"{host!r} has no addresses")
    return addresses


async def check_webhook_url(url: str, policy: SsrfPolicy) -> list[IPAddress]:
    """Raise :class:`WebhookURLRefusedError` unless ``url`` is safe to POST to.

    Returns the addresses the host resolved to (empty when the host is allow-listed by name).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise WebhookURLRefusedError("invalid_url", f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookURLRefusedError("bad_scheme", "only http:// and https:// webhooks are allowed")
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise WebhookURLRefusedError("invalid_url", "the URL has no host")
    if host in policy.allow_hosts:
        return []
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    for ip in addresses:
        if not is_public_ip(ip) and not policy.allows(ip):
            raise WebhookURLRefusedError(
                "private_address",
                f"{host!r} resolves to {ip}, which is not a public address "
                "(allow-list it with webhook.allow_hosts or webhook.allow_networks)")
    return addresses
