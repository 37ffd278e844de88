"""Which address a login came from, and which bucket of the address limit it counts in.

The direct peer of the dashboard's connection is the only address nobody can forge. Only
when that peer is a proxy the operator named in ``DIFFWATCH_TRUSTED_PROXIES`` is
``X-Forwarded-For`` read: from the right (each proxy appends the address it saw), skipping
hops that are themselves trusted proxies; the first untrusted hop is the client. Without
trusted proxies (the default) the header is ignored, so a client cannot pick a fresh
address for every guess. Pure: no Streamlit, no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Streamlit reports a loopback peer (127.0.0.1 or ::1) as no address at all; this names it.
LOOPBACK = "loopback"
_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
IPV6_BUCKET_PREFIX = 64  # one IPv6 subscriber usually holds a whole /64: count it as one


def parse_trusted(value: str | Iterable[str]) -> tuple[Network, ...]:
    """Networks from ``10.0.0.0/8, 192.168.1.5, ::1`` (a comma-separated string or items).

    Raises ValueError naming the bad item and the expected form.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    nets = []
    for raw in items:
        item = str(raw).strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"DIFFWATCH_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR network; "
                "list the reverse proxies' addresses, comma-separated, for example "
                "'127.0.0.1, 10.0.0.0/8'"
            ) from None
    return tuple(nets)


def _address(text: str) -> Address | None:
    """An IP address from a forwarded hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:443``)."""
    s = text.strip().strip('"')
    if s.startswith("["):
        s = s[1 : s.find("]")] if "]" in s else s[1:]
    elif s.count(":") == 1:  # IPv4 with a port; bare IPv6 has several colons
        s = s.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: Address, trusted: Sequence[Network]) -> bool:
    return any(ip.version == n.version and ip in n for n in trusted)


def _peer_trusted(peer: str, trusted: Sequence[Network]) -> bool:
    if peer == LOOPBACK:  # Streamlit does not say which loopback address: either counts
        return any(_trusted(ip, trusted) for ip in _LOOPBACKS)
    ip = _address(peer)
    return ip is not None and _trusted(ip, trusted)


def resolve_client(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy, then the rightmost
    ``X-Forwarded-For`` hop that is not a trusted proxy.

    ``peer`` is the connection's address or LOOPBACK; ``forwarded_for`` the header's values
    (several headers join in order). When every hop is trusted, the leftmost is the client.
    A hop that a trusted proxy wrote but is no address (a misconfigured proxy) stops the
    walk at the proxy before it, so nothing a client writes is ever taken.
    """
    if not trusted or not _peer_trusted(peer, trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            return client
        client = str(ip)
        if not _trusted(ip, trusted):
            return client
    return client


def address_bucket(client: str | None) -> str | None:
    """The key the per-address limit counts ``client`` under; None when there is no address.

    An IPv6 address counts as its /64 (one subscriber can rotate through a whole /64);
    LOOPBACK stays LOOPBACK. An attempt without an address is counted under no address at
    all, never with every other attempt that has none.
    """
    if client is None or client == "":
        return None
    if client == LOOPBACK:
        return LOOPBACK
    ip = _address(client)
    if ip is None:
        return client[:100]
    if ip.is_loopback:
        return LOOPBACK
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/{IPV6_BUCKET_PREFIX}", strict=False))
    return str(ip)
