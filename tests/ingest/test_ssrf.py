"""The SSRF table: addresses an attacker would try, each refused by default, naming its rule,
before any connection is attempted.

Names resolve through a FakeDNS table: real DNS is outside our reach in a test, and what an
attacker's DNS answers is exactly what the table stands in for."""

from __future__ import annotations

import pytest

from defectlab.ingest.fetcher import NO_ALLOWLIST, Refused, check_url, fetch
from tests.ingest.conftest import FakeDNS

DNS = FakeDNS(
    {
        "internal.example.test": ["127.0.0.1"],
        "mixed.example.test": ["93.184.216.34", "10.1.2.3"],
        "metadata.google.internal": ["169.254.169.254"],
        "v6-mapped.example.test": ["::ffff:192.168.0.10"],
        "ula.example.test": ["2606:4700::1111", "fd12:3456::1"],
    }
)

# (url, rule, the address named in the refusal or None)
TABLE = [
    # IPv4 loopback in every spelling inet_aton accepts
    ("http://127.0.0.1/", "loopback", "127.0.0.1"),
    ("http://2130706433/", "loopback", "127.0.0.1"),
    ("http://0177.0.0.1/", "loopback", "127.0.0.1"),
    ("http://0x7f.1/", "loopback", "127.0.0.1"),
    ("http://0x7f000001/", "loopback", "127.0.0.1"),
    ("http://017700000001/", "loopback", "127.0.0.1"),
    ("http://127.1/", "loopback", "127.0.0.1"),
    ("http://0177.1/", "loopback", "127.0.0.1"),
    ("http://127.0.0.1./", "loopback", "127.0.0.1"),
    ("http://１２７.０.０.１/", "loopback", "127.0.0.1"),
    ("http://127.0.0.2:8080/", "loopback", "127.0.0.2"),
    ("http://0.0.0.0/", "unspecified", "0.0.0.0"),
    ("http://0/", "unspecified", "0.0.0.0"),
    # IPv6, and IPv4 inside IPv6
    ("http://[::1]/", "loopback", "::1"),
    ("http://[::]/", "unspecified", "::"),
    ("http://[::ffff:127.0.0.1]/", "loopback", "127.0.0.1"),
    ("http://[::ffff:7f00:1]/", "loopback", "127.0.0.1"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback", "127.0.0.1"),
    ("http://[::ffff:169.254.169.254]/", "link_local", "169.254.169.254"),
    ("http://[::ffff:a00:1]/", "private", "10.0.0.1"),
    ("http://[::127.0.0.1]/", "ipv4_compatible", "::7f00:1"),
    ("http://[fd00::1]/", "private", "fd00::1"),
    ("http://[fc00::1]/", "private", "fc00::1"),
    ("http://[fe80::1]/", "link_local", "fe80::1"),
    ("http://[2002:a00:1::1]/", "6to4", "2002:a00:1::1"),
    ("http://[64:ff9b::10.0.0.1]/", "nat64", "64:ff9b::a00:1"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "teredo", None),
    ("http://[ff02::1]/", "multicast", "ff02::1"),
    ("http://[2001:db8::1]/", "documentation", "2001:db8::1"),
    # private, shared and special IPv4 ranges
    ("http://10.0.0.1/", "private", "10.0.0.1"),
    ("http://172.16.5.4/", "private", "172.16.5.4"),
    ("http://192.168.1.1/", "private", "192.168.1.1"),
    ("http://169.254.169.254/latest/meta-data/", "link_local", "169.254.169.254"),
    ("http://100.64.0.1/", "cgnat", "100.64.0.1"),
    ("http://100.100.100.200/latest/meta-data/", "cgnat", "100.100.100.200"),
    ("http://224.0.0.1/", "multicast", "224.0.0.1"),
    ("http://255.255.255.255/", "broadcast", "255.255.255.255"),
    ("http://240.0.0.1/", "reserved", "240.0.0.1"),
    ("http://192.0.2.1/", "documentation", "192.0.2.1"),
    ("http://198.18.0.1/", "benchmark", "198.18.0.1"),
    # names: localhost without asking DNS; others by what they resolve to
    ("http://localhost/", "loopback", "localhost"),
    ("http://LOCALHOST:8000/", "loopback", "localhost"),
    ("http://db.localhost/", "loopback", "db.localhost"),
    ("http://internal.example.test/", "loopback", "127.0.0.1"),
    ("http://mixed.example.test/a.png", "private", "10.1.2.3"),
    ("http://metadata.google.internal/computeMetadata/v1/", "link_local", "169.254.169.254"),
    ("http://v6-mapped.example.test/", "private", "192.168.0.10"),
    ("https://ula.example.test/", "private", "fd12:3456::1"),
    # user info: the host is not what it seems
    ("http://example.com@127.0.0.1/", "userinfo", None),
    ("http://user:pass@example.com/", "userinfo", None),
    ("http://example.com:80@169.254.169.254/", "userinfo", None),
    ("http://127.0.0.1#@example.com/", "loopback", "127.0.0.1"),
    ("http://127.0.0.1?@example.com/", "loopback", "127.0.0.1"),
    # schemes other than http and https
    ("file:///etc/passwd", "scheme", None),
    ("ftp://example.com/a.png", "scheme", None),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme", None),
    ("dict://127.0.0.1:11211/stat", "scheme", None),
    ("data:image/png;base64,iVBORw0KGgo=", "scheme", None),
    ("javascript:alert(1)", "scheme", None),
    ("//example.com/a.png", "scheme", None),
    ("example.com/a.png", "scheme", None),
    # hosts no two readers agree on
    ("http://1.2.3.4.5/", "malformed", None),
    ("http://08.0.0.1/", "malformed", None),
    ("http://0x/", "malformed", None),
    ("http://256.1.1.1/", "malformed", None),
    ("http://%31%32%37.0.0.1/", "malformed", None),
    ("http://[fe80::1%25eth0]/", "malformed", None),
    ("http://example.com\\@127.0.0.1/", "malformed", None),
    ("http://exa\tmple.com/", "malformed", None),
    ("http://exa mple.com/", "malformed", None),
    ("http://127.0.0.1 /", "malformed", None),
    ("http://127.0.0.1:0/", "malformed", None),
    ("http:127.0.0.1/", "malformed", None),
]


@pytest.mark.parametrize(("url", "rule", "address"), TABLE, ids=[row[0] for row in TABLE])
def test_refused_by_default_naming_the_rule_without_connecting(
    url: str, rule: str, address: str | None, connections: list[tuple[str, int]]
) -> None:
    with pytest.raises(Refused) as caught:
        fetch(url, allowlist=NO_ALLOWLIST, resolver=DNS, timeout=5)
    refusal = caught.value
    assert refusal.rule == rule
    assert refusal.code == "url_refused" and refusal.status == 403
    assert refusal.details["rule"] == rule
    assert refusal.details["url"] == url.strip()
    if address is not None:
        assert refusal.address == refusal.details["address"] == address
    assert f"(rule: {rule})" in refusal.message
    assert connections == []


def test_the_table_covers_every_address_rule() -> None:
    named = {rule for _url, rule, _address in TABLE}
    assert named >= {
        "scheme",
        "userinfo",
        "malformed",
        "unspecified",
        "loopback",
        "private",
        "link_local",
        "cgnat",
        "multicast",
        "broadcast",
        "documentation",
        "benchmark",
        "reserved",
        "nat64",
        "6to4",
        "ipv4_compatible",
        "teredo",
    }


def test_check_url_refuses_the_same_without_connecting(connections: list[tuple[str, int]]) -> None:
    for url, rule, _address in TABLE:
        with pytest.raises(Refused) as caught:
            check_url(url, allowlist=NO_ALLOWLIST, resolver=DNS)
        assert caught.value.rule == rule, url
    assert connections == []


def test_a_public_name_passes_the_check(connections: list[tuple[str, int]]) -> None:
    # Checked only: tests never connect beyond this machine.
    dns = FakeDNS({"images.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    checked = check_url(
        "HTTPS://Images.Example.com/a b.png?x=1#top",
        allowlist=NO_ALLOWLIST,
        resolver=dns,
    )
    assert [str(ip) for ip in checked.addresses] == [
        "93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",
    ]
    assert checked.target.url == "https://images.example.com/a%20b.png?x=1"
    assert checked.target.host_header == "images.example.com"
    assert dns.asked == ["images.example.com"]
    assert connections == []


@pytest.mark.parametrize(
    "address", ["64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"]
)
def test_transition_addresses_leading_to_public_ipv4_pass(address: str) -> None:
    checked = check_url(f"http://[{address}]/", allowlist=NO_ALLOWLIST)
    assert len(checked.addresses) == 1
