"""Who may open what beyond the public internet.

Two allowlists lift the address policy (``policy.classify``):

- the operator's, ``DEFECTLAB_FETCH_ALLOWLIST``, per installation and for every organization: it
  may open anything but ``NEVER_ALLOWED`` — loopback, link-local, cloud metadata, this server's
  own addresses (``hostaddrs``) included. That is enough to reach the server's own ports, so it
  is the operator's decision alone (``docs/configuration.md`` says what it risks);
- each organization's, edited at runtime by its admins: private ranges and intranet host names
  only. A host name entry lets in what that exact name resolves to *inside the private ranges*;
  it never opens loopback, link-local, metadata or the server's own addresses, whatever the
  name resolves to.

Organization entries stored before this rule that it now forbids stay stored but let nothing in;
``organization_problem`` says why, and the page and the API show it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from defectlab.errors import Invalid
from defectlab.ingest import hostaddrs
from defectlab.ingest.policy import (
    NEVER_ALLOWED,
    ORGANIZATION_OPENABLE,
    REFUSAL_REASONS,
    BadHost,
    IPAddress,
    IPNetwork,
    Refused,
    Verdict,
    classify,
    is_localhost_name,
    parse_host,
    rule_networks,
    unwrap_mapped,
)

log = logging.getLogger(__name__)

PRIVATE_NETWORKS = rule_networks("private")
_OUTSIDE_PRIVATE = gettext_noop("%(address)s is not inside a private range")


# ---------------------------------------------------------------------------- the allowlist


@dataclass(frozen=True)
class Allowlist:
    """What one organization's fetches may reach beyond the public internet.

    ``networks`` and ``hostnames``: the organization's entries, which lift private addresses
    only. ``opened_networks`` and ``opened_hostnames``: the operator's, which lift any rule but
    ``NEVER_ALLOWED``. A host name entry matches that exact name (not its subdomains). Built by
    ``services.allowlist_for`` from the organization's rows and the setting."""

    networks: tuple[IPNetwork, ...] = ()
    hostnames: frozenset[str] = frozenset()
    opened_networks: tuple[IPNetwork, ...] = ()
    opened_hostnames: frozenset[str] = frozenset()

    @classmethod
    def from_entries(cls, entries: Iterable[str], opened: Iterable[str] = ()) -> Allowlist:
        """``entries``: the organization's; ``opened``: the operator's."""
        networks, hostnames = _split(entries, organization_entry, "organization")
        opened_networks, opened_hostnames = _split(opened, normalize_entry, "operator")
        return cls(networks, hostnames, opened_networks, opened_hostnames)

    def opens_host(self, host: str) -> bool:
        """The operator opened this exact host name."""
        return host in self.opened_hostnames

    def opens(self, ip: IPAddress, host: str | None = None) -> bool:
        """The operator's allowlist names ``ip`` (or the name it was resolved from)."""
        return _matches(self.opened_networks, self.opened_hostnames, ip, host)

    def allows(self, ip: IPAddress, host: str | None = None) -> bool:
        """The organization's allowlist names ``ip`` (or the name it was resolved from)."""
        return _matches(self.networks, self.hostnames, ip, host)


def _matches(
    networks: tuple[IPNetwork, ...], hostnames: frozenset[str], ip: IPAddress, host: str | None
) -> bool:
    if host is not None and host in hostnames:
        return True
    ip = unwrap_mapped(ip)
    return any(ip.version == network.version and ip in network for network in networks)


def _split(
    entries: Iterable[str], canonical: Callable[[str], str], whose: str
) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hostnames: set[str] = set()
    for entry in entries:
        try:
            value = canonical(entry)
        except Invalid as problem:
            # A stored entry the rules no longer accept lets nothing in, and breaks nothing.
            log.warning(
                "ignoring an allowlist entry the policy refuses",
                extra={"entry": entry, "allowlist": whose, "reason": problem.message},
            )
            continue
        if "/" in value:
            networks.append(ipaddress.ip_network(value))
        else:
            hostnames.add(value)
    return tuple(networks), frozenset(hostnames)


NO_ALLOWLIST = Allowlist()


def check_address(
    ip: IPAddress, *, url: str, allowlist: Allowlist, host: str | None = None
) -> None:
    """Refused unless ``ip`` is global or opened. ``host``: the name it was resolved from.

    An address of this server is refused like a non-global one (rule ``own_address``), whatever
    range it is in; organizations lift private addresses only, the operator anything but
    ``NEVER_ALLOWED``."""
    ip = unwrap_mapped(ip)
    verdict = classify(ip)
    if (verdict is None or verdict.rule in ORGANIZATION_OPENABLE) and (
        ip in hostaddrs.own_addresses()
    ):
        verdict = Verdict("own_address")
    if verdict is None:
        return
    if verdict.rule not in NEVER_ALLOWED and allowlist.opens(ip, host):
        return
    if verdict.rule in ORGANIZATION_OPENABLE and allowlist.allows(ip, host):
        return
    params = {"embedded": str(verdict.embedded)} if verdict.rule in {"nat64", "6to4"} else {}
    raise Refused(verdict.rule, url, str(ip), **params)


# ---------------------------------------------------------------------------- what organizations may open


def organization_entry(value: str) -> str:
    """``value`` in canonical form if an organization may open it; else Invalid saying why."""
    canonical = normalize_entry(value)
    problem = organization_problem(canonical)
    if problem is not None:
        raise problem
    return canonical


def organization_problem(value: str) -> Invalid | None:
    """Why an organization may not open ``value`` (a stored or canonical entry), or None."""
    try:
        canonical = normalize_entry(value)
    except Invalid as problem:
        return problem
    if "/" not in canonical:
        if not is_localhost_name(canonical):
            return None
        rule, address, embedded = "loopback", canonical, None
    else:
        network = ipaddress.ip_network(canonical)
        found = _network_rule(network)
        if found is None:
            return None
        rule, embedded = found
        address = str(network.network_address) if network.num_addresses == 1 else canonical
    text = REFUSAL_REASONS.get(rule, _OUTSIDE_PRIVATE)
    reason = _(text) % {"address": address, "embedded": embedded}
    return Invalid(
        _(
            "%(value)s cannot be opened by an organization: %(reason)s (rule: %(rule)s). An "
            "organization's allowlist may open private ranges (%(ranges)s) and intranet host "
            "names only; the operator of this installation can open other addresses with the "
            "setting DEFECTLAB_FETCH_ALLOWLIST."
        )
        % {
            "value": canonical,
            "reason": reason,
            "rule": rule,
            "ranges": ", ".join(str(network) for network in PRIVATE_NETWORKS),
        },
        code="allowlist_operator_only",
        details={"value": canonical, "rule": rule},
    )


def _network_rule(network: IPNetwork) -> tuple[str, str | None] | None:
    """The rule that keeps an organization from opening ``network`` (and the IPv4 address a
    transition address leads to), or None when it lies inside a private range."""
    first = network.network_address
    verdict = classify(first)
    embedded = str(verdict.embedded) if verdict and verdict.embedded else None
    if verdict is not None and verdict.rule not in ORGANIZATION_OPENABLE:
        return verdict.rule, embedded  # loopback, link-local, metadata…: at least its start
    if not _inside_private(network):
        return "outside_private", None
    if network.num_addresses == 1 and first in hostaddrs.own_addresses():
        return "own_address", None
    # A private range that holds this server's address (or fd00:ec2::254) is accepted: those
    # addresses stay refused when fetched (check_address), the rest of the range is open.
    return None


def _inside_private(network: IPNetwork) -> bool:
    return any(
        network.version == private.version and network.subnet_of(private)  # type: ignore[arg-type]
        for private in PRIVATE_NETWORKS
    )


# ---------------------------------------------------------------------------- allowlist entries

_NARROWEST_ALLOWED_PREFIX = {4: 8, 6: 32}
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NEVER_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in ("0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32", "::/128", "ff00::/8")
)


def normalize_entry(value: str) -> str:
    """The canonical form of an allowlist entry (``10.20.0.0/24``, ``192.168.1.7/32``, ``fd00::/64``
    or ``camera.plant.example``), or Invalid with a message that says what to write instead."""
    text = value.strip()
    if "/" in text:
        network = _network_entry(text, value)
    else:
        try:
            host = parse_host(text)
        except BadHost:
            raise Invalid(_entry_help(), details={"value": value}) from None
        if isinstance(host, str):
            return host
        network = ipaddress.ip_network(host)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        # ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n-96); checks see it that way too.
        network = ipaddress.IPv4Network(
            (int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)
        )
    if network.prefixlen < _NARROWEST_ALLOWED_PREFIX[network.version]:
        raise Invalid(
            _(
                "%(value)s is too broad. Allow at most a /8 network for IPv4 or a /32 network "
                "for IPv6, and better only the addresses you need."
            )
            % {"value": text},
            code="allowlist_too_broad",
            details={"value": value},
        )
    if any(
        network.version == never.version and network.subnet_of(never)  # type: ignore[arg-type]
        for never in _NEVER_NETWORKS
    ):
        raise Invalid(
            _(
                "%(value)s can never be allowed: unspecified, multicast and broadcast addresses "
                "are always refused."
            )
            % {"value": text},
            details={"value": value},
        )
    return str(network)


def _network_entry(text: str, value: str) -> IPNetwork:
    """A network in CIDR form, as written by people: ``10.20.0.0/24``, ``fd00:1::/64``."""
    try:
        if "%" in text:
            raise ValueError(text)
        network = ipaddress.ip_network(text, strict=False)
        given = ipaddress.ip_address(text.partition("/")[0])
    except ValueError:
        raise Invalid(_entry_help(), details={"value": value}) from None
    if (
        given != network.network_address
        and network.prefixlen >= (_NARROWEST_ALLOWED_PREFIX[network.version])
    ):
        raise Invalid(
            _("%(value)s has bits set after the prefix; did you mean %(network)s?")
            % {"value": text, "network": network},
            details={"value": value},
        )
    return network


def _entry_help() -> str:
    return _("Enter an IP address, a network such as 10.20.0.0/24, or an exact host name.")
