"""The addresses of this server's own network interfaces: a fetch to one of them reaches the
server itself (its database port, its admin ports), whatever range the address is in, so only
the operator may open them (``allowlist.py``).

Read from the kernel, not from DNS: IPv4 with the ``SIOCGIFADDR`` ioctl for each interface,
IPv6 from ``/proc/net/if_inet6``. Elsewhere than Linux, what ``getaddrinfo`` finds for the host
name. Read at most once a minute per process (interfaces rarely change; a new one is seen within
a minute).
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
import threading
import time
from pathlib import Path

from defectlab.ingest.policy import IPAddress, unwrap_mapped

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60
_SIOCGIFADDR = 0x8915
_IF_INET6 = Path("/proc/net/if_inet6")

_lock = threading.Lock()
_cached: tuple[float, frozenset[IPAddress]] | None = None


def own_addresses() -> frozenset[IPAddress]:
    """Every address of this machine's interfaces (loopback included)."""
    global _cached
    with _lock:
        now = time.monotonic()
        if _cached is None or now - _cached[0] > REFRESH_SECONDS:
            _cached = (now, frozenset(_read()))
        return _cached[1]


def forget() -> None:
    """Read the interfaces again on the next call (tests)."""
    global _cached
    with _lock:
        _cached = None


def _read() -> set[IPAddress]:
    found: set[IPAddress] = set()
    if Path("/proc/net").is_dir():  # Linux
        found |= _ipv4_interfaces() | _ipv6_interfaces()
    if not found:
        found |= _by_host_name()
    return found


def _ipv4_interfaces() -> set[IPAddress]:
    found: set[IPAddress] = set()
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            found.add(ipaddress.IPv4Address(answer[20:24]))
    return found


def _ipv6_interfaces() -> set[IPAddress]:
    found: set[IPAddress] = set()
    try:
        lines = _IF_INET6.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.add(unwrap_mapped(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def _by_host_name() -> set[IPAddress]:
    found: set[IPAddress] = set()
    try:
        answers = socket.getaddrinfo(socket.gethostname(), None)
    except (OSError, UnicodeError):
        log.warning("could not read this server's own addresses")
        return found
    for _family, _type, _proto, _name, sockaddr in answers:
        try:
            found.add(unwrap_mapped(ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])))
        except ValueError:
            continue
    return found
