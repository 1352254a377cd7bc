"""What the guarded fetcher may connect to: strict URL parsing and the address policy (the
allowlists that lift it are in ``allowlist.py``). Nothing here touches the network or the
database (``fetcher.py`` does the network, ``services.allowlist_for`` reads the allowlist rows).

Hosts are read the way the C library would read them, because that is what would be connected
to: ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` are all 127.0.0.1 to ``inet_aton``
(and to browsers, which follow the WHATWG URL standard), so they are parsed here into that
address and judged as such. A host that looks numeric but is not a valid address is refused
rather than handed to a resolver that might read it some other way.

Every non-global address (and every address of this server) is refused unless an allowlist
opens it (``allowlist.py``: an organization may open private ranges only, the operator anything
but ``NEVER_ALLOWED``); the refusal names the rule. IPv4-mapped IPv6 (``::ffff:127.0.0.1``) is the IPv4 address itself —
the kernel connects to exactly that — so it is converted before any check. Transition forms that
carry an IPv4 address inside (NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by the
address they lead to; the deprecated IPv4-compatible form (``::a.b.c.d``) and Teredo are
refused outright.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from defectlab.errors import DefectLabError, Forbidden

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# ---------------------------------------------------------------------------- errors

# Why a URL was refused, by rule. The rule name itself (English, stable) goes into the message
# and into ``details["rule"]`` so people and programs can both tell refusals apart.
REFUSAL_REASONS = {
    "scheme": gettext_noop("only http and https addresses can be fetched"),
    "userinfo": gettext_noop(
        "addresses with a user name or password before the host (user:pass@host) are refused, "
        "because they hide the real host"
    ),
    "malformed": gettext_noop("it is not a well-formed web address"),
    "unspecified": gettext_noop("%(address)s is the unspecified address, which means this machine"),
    "loopback": gettext_noop("%(address)s is a loopback address (this machine)"),
    "private": gettext_noop("%(address)s is in a private network range"),
    "link_local": gettext_noop(
        "%(address)s is a link-local address (this range holds cloud metadata services)"
    ),
    "cgnat": gettext_noop("%(address)s is in the shared carrier-grade NAT range"),
    "multicast": gettext_noop("%(address)s is a multicast address"),
    "broadcast": gettext_noop("%(address)s is the broadcast address"),
    "documentation": gettext_noop("%(address)s is in a range reserved for documentation"),
    "benchmark": gettext_noop("%(address)s is in a range reserved for benchmarking"),
    "reserved": gettext_noop("%(address)s is in a reserved range"),
    "nat64": gettext_noop(
        "%(address)s is a NAT64 address leading to %(embedded)s, which is not a public address"
    ),
    "6to4": gettext_noop(
        "%(address)s is a 6to4 address leading to %(embedded)s, which is not a public address"
    ),
    "ipv4_compatible": gettext_noop("%(address)s is a deprecated IPv4-compatible IPv6 address"),
    "teredo": gettext_noop("%(address)s is a Teredo tunnel address"),
    "metadata": gettext_noop("%(address)s is a cloud metadata service address"),
    "own_address": gettext_noop("%(address)s is an address of this server"),
    "redirect_limit": gettext_noop("it redirected more than %(limit)s times"),
    "too_large": gettext_noop("the response is larger than %(limit)s"),
    "content_type": gettext_noop("its content type “%(content_type)s” is not accepted here"),
}

# Why a fetch failed although nothing was refused: the remote end (or the network) let us down,
# so trying again later may work.
FAILURE_REASONS = {
    "dns": gettext_noop("the host name %(host)s could not be resolved"),
    "connect": gettext_noop("the connection to %(address)s failed"),
    "timeout": gettext_noop("it did not finish within %(seconds)s seconds"),
    "tls": gettext_noop("the secure connection could not be verified (%(error)s)"),
    "http_status": gettext_noop("the server answered with HTTP status %(status)s"),
    "protocol": gettext_noop("the server's answer was not valid HTTP"),
}

# Refused even when the allowlist names them: none of these is a server anyone means.
NEVER_ALLOWED = frozenset({"unspecified", "multicast", "broadcast"})
# The address rules an organization's allowlist can lift: private ranges only.
ORGANIZATION_OPENABLE = frozenset({"private"})
# The address rules only the operator's allowlist (DEFECTLAB_FETCH_ALLOWLIST) can lift.
OPERATOR_OPENABLE = frozenset(
    {
        "loopback",
        "link_local",
        "cgnat",
        "documentation",
        "benchmark",
        "reserved",
        "nat64",
        "6to4",
        "ipv4_compatible",
        "teredo",
        "metadata",
        "own_address",
    }
)


def _shorten(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


class Refused(Forbidden):
    """The policy says no: retrying will not help. ``rule`` names the rule that refused."""

    code = "url_refused"

    def __init__(self, rule: str, url: str, address: str | None = None, **params: Any) -> None:
        reason = _(REFUSAL_REASONS[rule]) % {"address": address, **params}
        message = _("Refused to fetch %(url)s: %(reason)s (rule: %(rule)s).") % {
            "url": _shorten(url),
            "reason": reason,
            "rule": rule,
        }
        if rule in ORGANIZATION_OPENABLE:
            message += " " + _(
                "An administrator can allow this address in the organization's allowlist."
            )
        elif rule in OPERATOR_OPENABLE:
            message += " " + _(
                "Organization allowlists cannot open it; only the operator of this installation "
                "can, with the setting DEFECTLAB_FETCH_ALLOWLIST."
            )
        details = {"url": url, "address": address, "rule": rule} | {
            key: str(value) for key, value in params.items()
        }
        super().__init__(message, details=details)
        self.rule = rule
        self.url = url
        self.address = address


class FetchFailed(DefectLabError):
    """The remote end failed (DNS, connection, TLS, time, an HTTP error): retrying may help."""

    status = 502
    code = "fetch_failed"

    def __init__(self, rule: str, url: str, address: str | None = None, **params: Any) -> None:
        reason = _(FAILURE_REASONS[rule]) % {"address": address, **params}
        message = _("Could not fetch %(url)s: %(reason)s.") % {
            "url": _shorten(url),
            "reason": reason,
        }
        details = {"url": url, "address": address, "rule": rule} | {
            key: str(value) for key, value in params.items()
        }
        super().__init__(message, details=details)
        self.rule = rule
        self.url = url
        self.address = address

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """True when the failure may pass if tried again: DNS, the connection, TLS, time, or a
        server error (5xx, 408, 429). A 404 or another client error will not."""
        if self.rule != "http_status":
            return True
        status = int(str((self.details or {}).get("status", "0")) or 0)
        return status >= 500 or status in (408, 429)


# ---------------------------------------------------------------------------- URLs and hosts

SCHEMES = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
_DECIMAL = re.compile(r"^[0-9]+$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]*$")
# RFC 3986 characters that may stand unescaped in a path or query; everything else is escaped.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class BadHost(ValueError):
    """A host that is neither a valid address nor a valid host name."""


def _ipv4_part(text: str) -> int:
    if _HEX.match(text):
        if len(text) == 2:  # a bare "0x": readers disagree on it, so nobody gets it
            raise BadHost(text)
        return int(text[2:], 16)
    if len(text) > 1 and text.startswith("0"):
        if not all(char in "01234567" for char in text):
            raise BadHost(text)
        return int(text, 8)
    if not _DECIMAL.match(text):
        raise BadHost(text)
    return int(text)


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read like ``inet_aton`` reads it, if its last label is a number; else None.

    1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the bytes
    left, so ``127.1`` is 127.0.0.1 and ``2130706433`` is too. A host whose last label is a
    number but which is no valid address raises BadHost (the WHATWG URL standard does the same)."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot is the root of the DNS, not a part
    last = parts[-1]
    if not (_DECIMAL.match(last) or _HEX.match(last)):
        return None
    if not 1 <= len(parts) <= 4:
        raise BadHost(host)
    numbers = [_ipv4_part(part) for part in parts]
    *leading, tail = numbers
    if any(number > 255 for number in leading) or tail >= 256 ** (5 - len(numbers)):
        raise BadHost(host)
    value = tail
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def unwrap_mapped(ip: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` is a.b.c.d: a socket given one connects to the other."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_host(text: str) -> IPAddress | str:
    """An address, or a lower-case ASCII host name (IDNA-encoded, without the trailing dot).

    Takes a bare host as it appears in a URL (IPv6 in brackets) or in an allowlist entry."""
    if text.startswith("[") or ":" in text:
        inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        if "%" in inner:  # a zone index has no place in a URL someone sends us
            raise BadHost(text)
        try:
            return unwrap_mapped(ipaddress.IPv6Address(inner))
        except ValueError:
            raise BadHost(text) from None
    try:
        # IDNA also folds what a browser folds: full-width digits, ideographic full stops.
        ascii_host = text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise BadHost(text) from None
    number = _numeric_ipv4(ascii_host)
    if number is not None:
        return number
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise BadHost(text)
    return name


@dataclass(frozen=True, slots=True)
class Target:
    """One URL, parsed and rebuilt: what to resolve, where to connect and what to ask for."""

    given: str  # as written (what error messages quote)
    url: str  # canonical: no fragment, host as it will be sent
    scheme: str
    host: str  # ASCII host name, or the address as text (IPv6 without brackets)
    ip: IPAddress | None  # set when the URL names an address itself
    port: int
    request_target: str  # path and query, escaped

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if self.ip is not None and self.ip.version == 6 else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """A URL the fetcher may try, or Refused (rule ``scheme``, ``userinfo`` or ``malformed``)."""
    url = url.strip()
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme not in SCHEMES:
        raise Refused("scheme", url)
    # Python's parser silently drops tabs and newlines, and browsers read "\" as "/": refuse
    # rather than guess which reading the sender meant. (Spaces are plain: escaped as %20.)
    if len(url) > 8192 or any(ord(char) < 0x20 or char in "\x7f\\" for char in url):
        raise Refused("malformed", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise Refused("malformed", url) from None
    if not url[len(scheme) + 1 :].startswith("//"):
        raise Refused("malformed", url)
    if "@" in parts.netloc:
        raise Refused("userinfo", url)
    host_text, port = _split_netloc(parts.netloc, url, SCHEMES[scheme])
    try:
        host = parse_host(host_text)
    except BadHost:
        raise Refused("malformed", url) from None
    ip = host if isinstance(host, ipaddress.IPv4Address | ipaddress.IPv6Address) else None
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    host_name = str(host)
    netloc = f"[{host_name}]" if ip is not None and ip.version == 6 else host_name
    if port != SCHEMES[scheme]:
        netloc += f":{port}"
    return Target(url, f"{scheme}://{netloc}{target}", scheme, host_name, ip, port, target)


def _split_netloc(netloc: str, url: str, default_port: int) -> tuple[str, int]:
    """Host and port of a ``host[:port]`` or ``[v6][:port]``."""
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise Refused("malformed", url)
        port_text = rest[1:]
    else:
        host, _colon, port_text = netloc.partition(":")
    if not host:
        raise Refused("malformed", url)
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise Refused("malformed", url)
    return host, int(port_text)


# ---------------------------------------------------------------------------- the address policy


def _networks(*entries: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), rule) for cidr, rule in entries)


# First match wins, so the narrower ranges come before the wider ones they sit in.
_IPV4_RULES = _networks(
    ("0.0.0.0/8", "unspecified"),  # "this network": 0.0.0.0 reaches this machine on Linux
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("169.254.0.0/16", "link_local"),  # 169.254.169.254: AWS, GCP, Azure, OpenStack metadata
    ("100.64.0.0/10", "cgnat"),  # also Alibaba Cloud's metadata at 100.100.100.200
    ("168.63.129.16/32", "metadata"),  # Azure's wire server: a public address, inside Azure
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    ("192.88.99.0/24", "reserved"),  # the retired 6to4 relay anycast
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("198.18.0.0/15", "benchmark"),
)
_IPV6_RULES = _networks(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "ipv4_compatible"),  # ::a.b.c.d, deprecated since 2006
    ("64:ff9b:1::/48", "private"),  # NAT64 for local use (RFC 8215)
    ("2001::/32", "teredo"),
    ("2001:2::/48", "benchmark"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("100::/64", "reserved"),  # discard-only
    ("fd00:ec2::254/128", "metadata"),  # AWS instance metadata over IPv6 (Nitro)
    ("fc00::/7", "private"),  # unique local addresses
    ("fec0::/10", "private"),  # the retired site-local range
    ("fe80::/10", "link_local"),
    ("ff00::/8", "multicast"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why an address is not global: the rule, and the IPv4 address it leads to, if any."""

    rule: str
    embedded: ipaddress.IPv4Address | None = None


def classify(ip: IPAddress) -> Verdict | None:
    """None for a global address anyone may fetch from; otherwise the rule it falls under."""
    ip = unwrap_mapped(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        for network, rule in _IPV4_RULES:
            if ip in network:
                return Verdict(rule)
        return None if ip.is_global else Verdict("reserved")
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        rule, carried = embedded
        inner = classify(carried)
        return None if inner is None else Verdict(rule, carried)
    for network, rule in _IPV6_RULES:
        if ip in network:
            return Verdict(rule)
    if ip not in _GLOBAL_UNICAST or not ip.is_global:
        return Verdict("reserved")
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip in _NAT64:
        return "nat64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def rule_networks(rule: str) -> tuple[IPNetwork, ...]:
    """The ranges ``classify`` puts under ``rule`` (``private``: what organizations may open)."""
    return tuple(network for network, named in _IPV4_RULES + _IPV6_RULES if named == rule)


def is_localhost_name(host: str) -> bool:
    """``localhost`` and its subdomains are this machine by definition (RFC 6761)."""
    return host == "localhost" or host.endswith(".localhost")
