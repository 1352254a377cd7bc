"""The address policy and allowlist entries, without any network."""

from __future__ import annotations

import ipaddress

import pytest

from defectlab.errors import Invalid
from defectlab.ingest.allowlist import NO_ALLOWLIST, Allowlist, check_address, normalize_entry
from defectlab.ingest.policy import Refused, classify, parse_host, parse_url


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0xa.0xa00001", "10.160.0.1"),
        ("3232235777", "192.168.1.1"),
        ("1.2.3.4.", "1.2.3.4"),
        ("[::ffff:7f00:1]", "127.0.0.1"),
        ("[2001:DB8::1]", "2001:db8::1"),
    ],
)
def test_hosts_are_read_as_the_c_library_reads_them(host: str, address: str) -> None:
    assert parse_host(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("1.2.3.example", "1.2.3.example"),
        ("0x7f.example", "0x7f.example"),
        ("minio_1.plant", "minio_1.plant"),
    ],
)
def test_host_names_are_normalized(host: str, name: str) -> None:
    assert parse_host(host) == name


def test_the_parsed_url_is_what_is_sent() -> None:
    target = parse_url("  https://Images.Example.com:8443/a b/图%2B.png?q=x y&z#frag  ")
    assert target.url == "https://images.example.com:8443/a%20b/%E5%9B%BE%2B.png?q=x%20y&z"
    assert target.host_header == "images.example.com:8443"
    assert target.request_target == "/a%20b/%E5%9B%BE%2B.png?q=x%20y&z"
    v6 = parse_url("http://[2001:db8::1]:80")
    assert (v6.url, v6.host_header, v6.request_target) == (
        "http://[2001:db8::1]/",
        "[2001:db8::1]",
        "/",
    )


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::1.1.1.1"],
)
def test_global_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_the_allowlist_lifts_exactly_what_it_names() -> None:
    allowlist = Allowlist.from_entries(["10.20.0.0/24", "fd00:1::/64", "camera.plant.test"])
    inside, outside = ipaddress.ip_address("10.20.0.9"), ipaddress.ip_address("10.20.1.9")
    check_address(inside, url="http://10.20.0.9/", allowlist=allowlist)
    check_address(ipaddress.ip_address("::ffff:10.20.0.9"), url="u", allowlist=allowlist)
    check_address(ipaddress.ip_address("fd00:1::5"), url="u", allowlist=allowlist)
    check_address(outside, url="u", allowlist=allowlist, host="camera.plant.test")
    with pytest.raises(Refused):
        check_address(outside, url="u", allowlist=allowlist)
    with pytest.raises(Refused):
        check_address(outside, url="u", allowlist=allowlist, host="sub.camera.plant.test")
    with pytest.raises(Refused):
        check_address(inside, url="u", allowlist=NO_ALLOWLIST)


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
    ],
)
def test_some_addresses_stay_refused_whatever_the_allowlist_says(address: str, rule: str) -> None:
    # Built by hand: normalize_entry would not even accept these entries.
    everything = Allowlist(
        (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
        frozenset({"anything.test"}),
    )
    with pytest.raises(Refused) as caught:
        check_address(
            ipaddress.ip_address(address), url="u", allowlist=everything, host="anything.test"
        )
    assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("10.20.0.0/24", "10.20.0.0/24"),
        (" 192.168.1.7 ", "192.168.1.7/32"),
        ("192.168.1.7/32", "192.168.1.7/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.0.0.0/255.255.0.0", "10.0.0.0/16"),
        ("FD00:1::/64", "fd00:1::/64"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("::1", "::1/128"),
        ("::ffff:127.0.0.1", "127.0.0.1/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("2130706433", "127.0.0.1/32"),
        ("Camera.Plant.Test.", "camera.plant.test"),
        ("localhost", "localhost"),
    ],
)
def test_allowlist_entries_are_stored_in_canonical_form(value: str, canonical: str) -> None:
    assert normalize_entry(value) == canonical


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("0.0.0.0/0", "allowlist_too_broad"),
        ("::/0", "allowlist_too_broad"),
        ("10.0.0.0/7", "allowlist_too_broad"),
        ("1.2.3.4/1", "allowlist_too_broad"),
        ("2001:db8::/31", "allowlist_too_broad"),
        ("::ffff:0:0/96", "allowlist_too_broad"),
        ("10.0.0.5/24", "invalid"),
        ("224.0.0.0/8", "invalid"),
        ("0.0.0.0", "invalid"),
        ("::", "invalid"),
        ("*.plant.test", "invalid"),
        ("http://camera.plant.test/", "invalid"),
        ("10.0.0.0/33", "invalid"),
        ("fe80::1%eth0", "invalid"),
        ("", "invalid"),
        ("1.2.3.4.5", "invalid"),
    ],
)
def test_broad_or_unreadable_entries_are_refused_with_a_reason(value: str, code: str) -> None:
    with pytest.raises(Invalid) as caught:
        normalize_entry(value)
    assert caught.value.code == code
    assert caught.value.message


def test_a_stored_entry_the_rules_now_refuse_lets_nothing_in() -> None:
    allowlist = Allowlist.from_entries(["0.0.0.0/0", "10.0.0.0/8", "not a host"])
    assert allowlist.networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert allowlist.hostnames == frozenset()
