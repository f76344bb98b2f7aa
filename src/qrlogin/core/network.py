"""Client IPs behind trusted proxies, and whether two devices share a network."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable


@functools.lru_cache(maxsize=8192)  # the same few addresses call again and again
def _parse(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@functools.lru_cache(maxsize=16)
def _networks(proxies: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: Iterable[str]) -> str:
    """The client's IP: the peer, or the nearest untrusted hop of ``X-Forwarded-For`` when the
    peer is a trusted proxy. An untrusted peer's header is ignored, so it cannot be forged."""
    networks = _networks(tuple(trusted_proxies))

    def trusted(ip: str) -> bool:
        addr = _parse(ip)
        return addr is not None and any(addr in net for net in networks)

    current = peer or ""
    if forwarded_for and trusted(current):
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            if _parse(hop) is None:
                break
            current = hop
            if not trusted(hop):
                break
    addr = _parse(current)
    return str(addr) if addr is not None else current


def same_network(a: str | None, b: str | None) -> bool:
    """Same public IPv4 address, or the same IPv6 /64."""
    x, y = _parse(a), _parse(b)
    if x is None or y is None or x.version != y.version:
        return False
    if isinstance(x, ipaddress.IPv4Address):
        return x == y
    return ipaddress.ip_network(f"{x}/64", strict=False) == ipaddress.ip_network(
        f"{y}/64", strict=False
    )


def rate_key(ip: str, v6_prefix: int = 64) -> str:
    """What per-address limits count: an IPv4 address itself, an IPv6 address's network of
    ``v6_prefix`` bits (one subscriber usually holds a whole /64 and can pick any address in
    it, so counting each address would let it rotate freely). Anything unparsable counts as
    it is."""
    addr = _parse(ip)
    if addr is None:
        return ip
    if isinstance(addr, ipaddress.IPv4Address):
        return str(addr)
    return str(ipaddress.IPv6Network(f"{addr}/{v6_prefix}", strict=False))
