"""Client IPs behind trusted proxies, and "same network" for the approval screen."""

from __future__ import annotations

import pytest

from qrlogin.core.network import client_ip, rate_key, same_network

PROXIES = ("10.0.0.0/8", "fd00::/8")


def test_without_forwarded_for_the_client_is_the_peer() -> None:
    assert client_ip("203.0.113.7", None, PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "", PROXIES) == "203.0.113.7"


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip("203.0.113.7", "198.51.100.1", PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "10.0.0.5", PROXIES) == "203.0.113.7"
    assert client_ip("203.0.113.7", "198.51.100.1", ()) == "203.0.113.7"


def test_a_trusted_proxy_forwards_the_client_address() -> None:
    assert client_ip("10.0.0.1", "198.51.100.1", PROXIES) == "198.51.100.1"
    assert client_ip("fd00::1", "2001:db8::5", PROXIES) == "2001:db8::5"


def test_the_nearest_untrusted_hop_wins_over_client_supplied_hops() -> None:
    # the client wrote "1.1.1.1" itself; our proxies appended the real address and their own
    header = "1.1.1.1, 198.51.100.1, 10.0.0.2"
    assert client_ip("10.0.0.1", header, PROXIES) == "198.51.100.1"


def test_only_trusted_hops_leaves_the_leftmost_hop() -> None:
    assert client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES) == "10.0.0.3"


def test_a_malformed_hop_stops_the_walk() -> None:
    assert client_ip("10.0.0.1", "198.51.100.1, not-an-ip", PROXIES) == "10.0.0.1"


def test_ipv4_mapped_peers_are_reported_and_trusted_as_ipv4() -> None:
    assert client_ip("::ffff:203.0.113.7", None, PROXIES) == "203.0.113.7"
    assert client_ip("::ffff:10.0.0.1", "198.51.100.1", PROXIES) == "198.51.100.1"


def test_no_peer_gives_an_empty_address() -> None:
    assert client_ip(None, "198.51.100.1", PROXIES) == ""


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("203.0.113.7", "203.0.113.7", True),
        ("203.0.113.7", "203.0.113.8", False),
        ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", True),  # same /64
        ("2001:db8:1:2::1", "2001:db8:1:3::1", False),  # next /64
        ("203.0.113.7", "2001:db8::1", False),  # mixed versions
        ("::ffff:203.0.113.7", "203.0.113.7", True),  # IPv4-mapped IPv6 is that IPv4
        ("::ffff:203.0.113.7", "::ffff:203.0.113.8", False),
        (None, "203.0.113.7", False),
        ("203.0.113.7", None, False),
        ("", "", False),
        ("garbage", "garbage", False),
    ],
)
def test_same_network(a: str | None, b: str | None, same: bool) -> None:
    assert same_network(a, b) is same
    assert same_network(b, a) is same


# -- issue 11 item 9: per-address limits key IPv6 on its network ------------------------------


def test_rate_key_of_ipv4_is_the_address() -> None:
    assert rate_key("203.0.113.7") == "203.0.113.7"
    assert rate_key("::ffff:203.0.113.7") == "203.0.113.7"


def test_rate_key_of_ipv6_is_its_64_by_default() -> None:
    a = rate_key("2001:db8:1:2:aaaa::1")
    assert a == "2001:db8:1:2::/64"
    assert rate_key("2001:0db8:0001:0002:ffff:ffff:ffff:ffff") == a
    assert rate_key("2001:db8:1:3::1") != a


def test_rate_key_prefix_is_configurable() -> None:
    assert rate_key("2001:db8:1:2::1", 48) == rate_key("2001:db8:1:ffff::1", 48)
    assert rate_key("2001:db8:1:2::1", 128) != rate_key("2001:db8:1:2::2", 128)


def test_rate_key_of_something_unparsable_is_itself() -> None:
    assert rate_key("") == ""
    assert rate_key("testclient") == "testclient"
