"""Which address a login counts under: proxy trust, X-Forwarded-For and address buckets."""

from __future__ import annotations

import pytest

from diffwatch.model.client_address import LOOPBACK, address_bucket, parse_trusted, resolve_client

PROXIES = parse_trusted("10.0.0.0/8, 192.168.1.5")


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert resolve_client(LOOPBACK, ["203.0.113.9"], ()) == LOOPBACK
    assert resolve_client("198.51.100.4", ["203.0.113.9"], PROXIES) == "198.51.100.4"


def test_a_trusted_proxy_vouches_for_the_rightmost_untrusted_hop() -> None:
    # The client wrote 6.6.6.6 itself; the proxies appended what they saw.
    assert resolve_client("10.0.0.2", ["6.6.6.6, 198.51.100.9, 10.1.1.1"], PROXIES) == (
        "198.51.100.9"
    )
    assert resolve_client("192.168.1.5", ["6.6.6.6", "198.51.100.9"], PROXIES) == "198.51.100.9"
    assert resolve_client("10.0.0.2", ["198.51.100.9:4711"], PROXIES) == "198.51.100.9"
    assert resolve_client("10.0.0.2", ["[2001:db8::7]:443"], PROXIES) == "2001:db8::7"
    assert resolve_client("10.0.0.2", ["10.0.0.3, 10.0.0.4"], PROXIES) == "10.0.0.3"
    assert resolve_client("10.0.0.2", [], PROXIES) == "10.0.0.2"
    # Garbage left of the proxies' hops is the client's own writing and never reached.
    assert resolve_client("10.0.0.2", ["nonsense, 198.51.100.9"], PROXIES) == "198.51.100.9"
    # A hop the trusted proxy wrote that is no address: stop at that proxy.
    assert resolve_client("10.0.0.2", ["198.51.100.9, nonsense"], PROXIES) == "10.0.0.2"


def test_a_loopback_proxy_is_trusted_only_when_named() -> None:
    assert resolve_client(LOOPBACK, ["198.51.100.9"], parse_trusted("127.0.0.1")) == (
        "198.51.100.9"
    )
    assert resolve_client(LOOPBACK, ["198.51.100.9"], parse_trusted("::1")) == "198.51.100.9"
    assert resolve_client(LOOPBACK, ["198.51.100.9"], PROXIES) == LOOPBACK


def test_buckets() -> None:
    assert address_bucket(None) is None  # no address: no bucket shared with others
    assert address_bucket("198.51.100.9") == "198.51.100.9"
    assert address_bucket("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_bucket(LOOPBACK) == LOOPBACK == address_bucket("127.0.0.1")
    assert address_bucket("::ffff:198.51.100.9") == "198.51.100.9"


def test_a_bad_trusted_proxy_setting_names_the_item_and_the_form() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an IP address or CIDR"):
        parse_trusted("10.0.0.1, 10.0.0.300")
    assert parse_trusted("") == ()
