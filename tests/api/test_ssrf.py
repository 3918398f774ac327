"""The webhook SSRF guard: only http(s) URLs resolving to public addresses, unless allowed."""

from __future__ import annotations

import ipaddress

import pytest

from sentiflow.config.settings import load_settings
from sentiflow.delivery.ssrf import (
    SsrfPolicy,
    WebhookURLRefusedError,
    check_webhook_url,
    is_public_ip,
)

pytestmark = pytest.mark.anyio

NOT_PUBLIC = [
    "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::a00:1", "64:ff9b::7f00:1",  # NAT64 of 10.0.0.1 / 127.0.0.1
    "2002:7f00:1::", "2002:a00:1::",  # 6to4 of 127.0.0.1 / 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/x", "bad_scheme"),
        ("file:///etc/passwd", "bad_scheme"),
        ("http://127.0.0.1:8080/hook", "private_address"),
        ("http://[::1]/hook", "private_address"),
        ("http://[::ffff:7f00:1]/hook", "private_address"),
        ("https://169.254.169.254/latest/meta-data", "private_address"),
        ("http://10.0.0.8/", "private_address"),
        ("http://localhost:9000/", "private_address"),  # resolved via /etc/hosts
        ("http:///nohost", "invalid_url"),
    ],
)
async def test_refused_urls(url: str, code: str) -> None:
    with pytest.raises(WebhookURLRefusedError) as info:
        await check_webhook_url(url, SsrfPolicy())
    assert info.value.code == code


async def test_public_ip_literal_passes_without_dns() -> None:
    assert await check_webhook_url("https://8.8.8.8/hook", SsrfPolicy()) == \
        [ipaddress.ip_address("8.8.8.8")]


async def test_allow_lists_from_settings() -> None:
    by_host = SsrfPolicy.from_settings(load_settings(None, {
        "SENTIFLOW_WEBHOOK__ALLOW_HOSTS": '["LocalHost", "127.0.0.1"]'}).webhook)
    assert await check_webhook_url("http://localhost:1/x", by_host) == []
    assert await check_webhook_url("http://127.0.0.1:1/x", by_host) == []
    with pytest.raises(WebhookURLRefusedError):
        await check_webhook_url("http://10.0.0.1/x", by_host)
    by_net = SsrfPolicy.from_settings(load_settings(None, {
        "SENTIFLOW_WEBHOOK__ALLOW_NETWORKS": '["10.20.0.0/16"]'}).webhook)
    assert await check_webhook_url("http://10.20.3.4/x", by_net)
    with pytest.raises(WebhookURLRefusedError):
        await check_webhook_url("http://10.21.3.4/x", by_net)
