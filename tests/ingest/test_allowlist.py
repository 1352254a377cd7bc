"""Who may open what: an organization's admins open private ranges and intranet host names only;
loopback, link-local, cloud metadata and this server's own addresses only the operator can open,
with DEFECTLAB_FETCH_ALLOWLIST, for every organization of the installation."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from defectlab.ingest import hostaddrs
from defectlab.ingest.allowlist import Allowlist
from defectlab.ingest.fetcher import Refused, check_url, fetch
from defectlab.ingest.models import AllowedNetwork
from defectlab.ingest.policy import Verdict, classify
from defectlab.ingest.services import allowlist_for
from defectlab.tenancy.models import AuditEvent, Role
from tests.conftest import Tenant, client_for
from tests.ingest.conftest import PNG, FakeDNS, LoopbackServer, send

URL = "/api/allowlist/"
REAL_OWN_ADDRESSES = hostaddrs.own_addresses
SERVER_ADDRESS = "10.20.0.5"  # stands in for this server's address on the company network

# (entry an admin types, the rule that keeps the organization from opening it)
OPERATOR_ONLY = [
    ("127.0.0.1", "loopback"),
    ("127.0.0.0/8", "loopback"),
    ("2130706433", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("localhost", "loopback"),
    ("db.localhost", "loopback"),
    ("169.254.169.254", "link_local"),
    ("169.254.0.0/16", "link_local"),
    ("fe80::/64", "link_local"),
    ("fd00:ec2::254", "metadata"),
    ("168.63.129.16", "metadata"),
    ("100.100.100.200", "cgnat"),
    ("100.64.0.0/10", "cgnat"),
    ("64:ff9b::10.0.0.1", "nat64"),
    ("192.0.2.0/24", "documentation"),
    ("8.8.8.8", "outside_private"),
    ("172.0.0.0/8", "outside_private"),
    (SERVER_ADDRESS, "own_address"),
]
ORGANIZATION_MAY_OPEN = [
    ("10.20.0.0/24", "10.20.0.0/24"),
    ("192.168.1.7", "192.168.1.7/32"),
    ("172.16.0.0/12", "172.16.0.0/12"),
    ("fd12:3456::/64", "fd12:3456::/64"),
    ("Camera.Plant.Test", "camera.plant.test"),
    ("10.0.0.0/8", "10.0.0.0/8"),  # holds the server's address: that one stays refused
]


@pytest.fixture(autouse=True)
def server_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """This server's interfaces are outside a test's reach to change, so its addresses are
    substituted: loopback and SERVER_ADDRESS (``test_this_hosts_real_addresses…`` uses the real
    ones)."""
    own = frozenset(
        ipaddress.ip_address(text) for text in ("127.0.0.1", "::1", SERVER_ADDRESS, "fd00::2")
    )
    monkeypatch.setattr(hostaddrs, "own_addresses", lambda: own)


def _add(tenant: Tenant, value: str, **headers: Any) -> Any:
    return client_for(tenant.user(Role.ADMIN)).post(
        URL, {"organization": tenant.organization.pk, "value": value}, format="json", **headers
    )


@pytest.mark.parametrize(("value", "rule"), OPERATOR_ONLY, ids=[row[0] for row in OPERATOR_ONLY])
def test_an_organization_cannot_open_what_only_the_operator_may(
    tenant: Tenant, value: str, rule: str
) -> None:
    response = _add(tenant, value)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "allowlist_operator_only"
    assert error["details"]["rule"] == rule
    assert f"(rule: {rule})" in error["message"]
    assert "DEFECTLAB_FETCH_ALLOWLIST" in error["message"]
    assert not AllowedNetwork.objects.exists()
    assert not AuditEvent.objects.filter(action="allowlist.added").exists()


def test_the_refusal_is_in_the_callers_language(tenant: Tenant) -> None:
    admin = tenant.user(Role.ADMIN)
    admin.language = "zh-hans"
    admin.save(update_fields=["language"])
    error = _add(tenant, "169.254.169.254", HTTP_ACCEPT_LANGUAGE="zh-hans").json()["error"]
    assert "组织无法开放 169.254.169.254" in error["message"]
    assert "链路本地地址" in error["message"] and "规则：link_local" in error["message"]


@pytest.mark.parametrize(("value", "canonical"), ORGANIZATION_MAY_OPEN)
def test_private_ranges_and_intranet_names_are_accepted(
    tenant: Tenant, value: str, canonical: str
) -> None:
    response = _add(tenant, value)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["value"], body["in_effect"], body["problem"]) == (canonical, True, None)


def test_a_host_name_entry_opens_only_the_private_addresses_it_resolves_to(
    tenant: Tenant, connections: list[tuple[str, int]]
) -> None:
    assert _add(tenant, "camera.plant.test").status_code == 201
    allowlist = allowlist_for(tenant.organization)
    url = "http://camera.plant.test/a.png"
    ok = check_url(url, allowlist=allowlist, resolver=FakeDNS({"camera.plant.test": ["10.1.2.3"]}))
    assert [str(ip) for ip in ok.addresses] == ["10.1.2.3"]
    # The name's DNS is the organization's to trust, but it cannot point the name at the server
    # itself, at the metadata service or at anything else only the operator may open.
    for answer, rule in [
        ("127.0.0.1", "loopback"),
        ("169.254.169.254", "link_local"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "cgnat"),
        (SERVER_ADDRESS, "own_address"),
        ("fd00::2", "own_address"),
    ]:
        dns = FakeDNS({"camera.plant.test": ["10.1.2.3", answer]})
        with pytest.raises(Refused) as caught:
            check_url(url, allowlist=allowlist, resolver=dns)
        assert caught.value.rule == rule, answer
        assert "DEFECTLAB_FETCH_ALLOWLIST" in caught.value.message
    assert connections == []


def test_a_private_range_never_opens_the_servers_own_address_in_it(tenant: Tenant) -> None:
    assert _add(tenant, "10.0.0.0/8").status_code == 201
    allowlist = allowlist_for(tenant.organization)
    check_url("http://10.20.0.6/", allowlist=allowlist)
    with pytest.raises(Refused) as caught:
        check_url(f"http://{SERVER_ADDRESS}:5432/", allowlist=allowlist)
    assert caught.value.rule == "own_address"
    assert "address of this server" in caught.value.message


def test_the_servers_own_public_address_is_refused_without_any_entry(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    monkeypatch.setattr(hostaddrs, "own_addresses", lambda: {ipaddress.ip_address("93.184.216.9")})
    with pytest.raises(Refused) as caught:
        check_url("http://93.184.216.9:8080/", allowlist=allowlist_for(tenant.organization))
    assert caught.value.rule == "own_address"
    check_url("http://93.184.216.10/", allowlist=allowlist_for(tenant.organization))
    settings.FETCH_ALLOWLIST = ["93.184.216.9"]
    check_url("http://93.184.216.9:8080/", allowlist=allowlist_for(tenant.organization))


def test_this_hosts_real_addresses_are_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostaddrs, "own_addresses", REAL_OWN_ADDRESSES)
    hostaddrs.forget()
    own = hostaddrs.own_addresses()  # the real interfaces, read from the kernel
    assert ipaddress.ip_address("127.0.0.1") in own
    private = sorted(
        (ip for ip in own if (classify(ip) or Verdict("")).rule == "private"), key=str
    )  # in a range an organization may open
    if not private:
        pytest.skip("this machine has no private interface address to try")
    address = private[0]
    network = ipaddress.ip_network(f"{address}/{64 if address.version == 6 else 24}", strict=False)
    allowlist = Allowlist.from_entries([str(network)])
    host = f"[{address}]" if address.version == 6 else str(address)
    with pytest.raises(Refused) as caught:
        check_url(f"http://{host}/", allowlist=allowlist)
    assert caught.value.rule == "own_address"


def test_entries_stored_before_the_rule_stay_but_let_nothing_in(
    tenant: Tenant, serve: Callable[..., LoopbackServer]
) -> None:
    server = serve({"/a.png": send()})
    owner = tenant.user(Role.OWNER)
    for value in ("127.0.0.1/32", "localhost", "169.254.169.254/32", "10.20.0.0/24"):
        AllowedNetwork.objects.create(
            organization=tenant.organization, value=value, created_by=owner
        )
    with pytest.raises(Refused) as caught:
        fetch(server.url("/a.png"), allowlist=allowlist_for(tenant.organization), timeout=5)
    assert caught.value.rule == "loopback"
    with pytest.raises(Refused):
        fetch(
            server.url("/a.png", host="localhost"),
            allowlist=allowlist_for(tenant.organization),
            timeout=5,
        )
    listed = {row["value"]: row for row in client_for(owner).get(URL).json()}
    assert listed["10.20.0.0/24"]["in_effect"] is True
    for value, rule in [
        ("127.0.0.1/32", "loopback"),
        ("localhost", "loopback"),
        ("169.254.169.254/32", "link_local"),
    ]:
        assert listed[value]["in_effect"] is False
        assert f"(rule: {rule})" in listed[value]["problem"]


def test_the_operator_setting_opens_loopback_for_every_organization(
    tenant: Tenant, other_tenant: Tenant, serve: Callable[..., LoopbackServer], settings: Any
) -> None:
    server = serve({"/a.png": send()})
    url = server.url("/a.png")
    with pytest.raises(Refused) as caught:
        fetch(url, allowlist=allowlist_for(tenant.organization), timeout=5)
    assert "only the operator of this installation" in caught.value.message
    settings.FETCH_ALLOWLIST = ["127.0.0.1/32"]
    assert fetch(url, allowlist=allowlist_for(tenant.organization), timeout=5).body == PNG
    assert fetch(url, allowlist=allowlist_for(other_tenant.organization), timeout=5).body == PNG
    by_name = server.url("/a.png", host="localhost")
    dns = FakeDNS({"localhost": ["127.0.0.1"]})
    with pytest.raises(Refused):  # what was not named stays shut
        fetch(by_name, allowlist=allowlist_for(tenant.organization), resolver=dns, timeout=5)
    settings.FETCH_ALLOWLIST = ["localhost"]
    fetched = fetch(by_name, allowlist=allowlist_for(tenant.organization), resolver=dns, timeout=5)
    assert fetched.body == PNG


def test_an_operator_entry_that_does_not_parse_is_ignored_and_the_rest_applies(
    tenant: Tenant, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FETCH_ALLOWLIST = ["0.0.0.0/0", "*.plant.test", "127.0.0.1/32"]
    allowlist = allowlist_for(tenant.organization)
    assert allowlist.opened_networks == (ipaddress.ip_network("127.0.0.1/32"),)
    assert allowlist.opened_hostnames == frozenset()
    check_url("http://127.0.0.1:9000/", allowlist=allowlist)
    with pytest.raises(Refused):
        check_url("http://127.0.0.2:9000/", allowlist=allowlist)
    assert "ignoring an allowlist entry" in caplog.text
