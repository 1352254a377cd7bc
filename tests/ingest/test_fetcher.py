"""The fetcher against real HTTP(S) servers on loopback: refused by default, fetched once the
allowlist names them, and every cap and every redirect hop checked on the way."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from defectlab.ingest.fetcher import (
    MAX_REDIRECTS,
    NO_ALLOWLIST,
    Allowlist,
    FetchFailed,
    Refused,
    fetch,
    stream,
)
from tests.ingest.conftest import (
    PNG,
    FakeDNS,
    LoopbackServer,
    PrivateCA,
    Route,
    chunked,
    drip,
    redirect,
    send,
    stall,
)

Serve = Callable[..., LoopbackServer]
# Loopback test servers: only the operator's allowlist (DEFECTLAB_FETCH_ALLOWLIST) opens loopback.
LOOPBACK_1 = Allowlist.from_entries([], opened=["127.0.0.1/32"])
LOOPBACK_BOTH = Allowlist.from_entries([], opened=["127.0.0.1/32", "127.0.0.2/32"])


def test_a_loopback_server_is_refused_by_default(
    serve: Serve, connections: list[tuple[str, int]]
) -> None:
    server = serve({"/a.png": send()})
    with pytest.raises(Refused) as caught:
        fetch(server.url("/a.png"), allowlist=NO_ALLOWLIST, timeout=5)
    assert caught.value.rule == "loopback"
    assert connections == [] and server.seen == []


def test_allowing_its_exact_address_lets_the_fetch_through(
    serve: Serve, connections: list[tuple[str, int]]
) -> None:
    server = serve({"/a.png": send()})
    fetched = fetch(server.url("/a.png"), allowlist=LOOPBACK_1, timeout=5)
    assert fetched.body == PNG
    assert fetched.status == 200
    assert fetched.content_type == "image/png"
    assert fetched.final_url == fetched.url == server.url("/a.png")
    assert fetched.address == "127.0.0.1"
    assert connections == [("127.0.0.1", server.port)]
    assert server.seen[0].host == f"127.0.0.1:{server.port}"
    assert server.seen[0].user_agent and server.seen[0].user_agent.startswith("DefectLab/")


def test_the_allowlist_is_exact(serve: Serve, connections: list[tuple[str, int]]) -> None:
    server = serve({"/a.png": send()}, address="127.0.0.2")
    with pytest.raises(Refused) as caught:
        fetch(server.url("/a.png"), allowlist=LOOPBACK_1, timeout=5)
    assert (caught.value.rule, caught.value.address) == ("loopback", "127.0.0.2")
    assert connections == []


def test_an_operator_host_name_entry_opens_what_that_name_resolves_to(
    serve: Serve, connections: list[tuple[str, int]]
) -> None:
    server = serve({"/a.png": send()})
    dns = FakeDNS({"camera.plant.test": ["127.0.0.1"], "other.plant.test": ["127.0.0.1"]})
    allowlist = Allowlist.from_entries([], opened=["Camera.Plant.Test"])
    fetched = fetch(
        server.url("/a.png", host="camera.plant.test"), allowlist=allowlist, resolver=dns, timeout=5
    )
    assert fetched.body == PNG
    assert server.seen[0].host == f"camera.plant.test:{server.port}"
    with pytest.raises(Refused):
        fetch(
            server.url("/a.png", host="other.plant.test"),
            allowlist=allowlist,
            resolver=dns,
            timeout=5,
        )
    assert connections == [("127.0.0.1", server.port)]


def test_it_connects_to_the_address_it_checked_and_resolves_once(
    serve: Serve, connections: list[tuple[str, int]]
) -> None:
    """DNS rebinding: the second answer for the name would be an unchecked address."""
    server = serve({"/a.png": send()})
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    fetched = fetch(
        server.url("/a.png", host="rebind.example.test"),
        allowlist=LOOPBACK_1,
        resolver=rebinding,
        timeout=5,
    )
    assert fetched.body == PNG
    assert asked == ["rebind.example.test"]
    assert connections == [("127.0.0.1", server.port)]


def test_the_next_checked_address_is_tried_when_one_refuses_connections(
    serve: Serve, connections: list[tuple[str, int]]
) -> None:
    server = serve({"/a.png": send()}, address="127.0.0.2")
    dns = FakeDNS({"twice.example.test": ["127.0.0.1", "127.0.0.2"]})
    url = f"http://twice.example.test:{server.port}/a.png"
    fetched = fetch(url, allowlist=LOOPBACK_BOTH, resolver=dns, timeout=5)
    assert fetched.address == "127.0.0.2"
    assert [address for address, _port in connections] == ["127.0.0.1", "127.0.0.2"]


# ---------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    ("location", "rule", "address"),
    [
        ("http://127.0.0.2:{port}/a.png", "loopback", "127.0.0.2"),
        ("http://169.254.169.254/latest/meta-data/", "link_local", "169.254.169.254"),
        ("http://[::ffff:10.0.0.1]/", "private", "10.0.0.1"),
        ("http://intranet.example.test/", "private", "10.20.30.40"),
        ("http://localhost:{port}/a.png", "loopback", "localhost"),
        ("http://2130706433:{port}/a.png", "loopback", "127.0.0.1"),
        ("file:///etc/passwd", "scheme", None),
        ("http://admin:secret@127.0.0.1:{port}/a.png", "userinfo", None),
    ],
)
def test_every_redirect_hop_is_checked_again(
    serve: Serve,
    connections: list[tuple[str, int]],
    location: str,
    rule: str,
    address: str | None,
) -> None:
    server = serve({"/start": redirect("/go"), "/go": redirect("")})
    server.routes["/go"] = redirect(location.format(port=server.port))
    dns = FakeDNS({"intranet.example.test": ["10.20.30.40"]})
    allowlist = LOOPBACK_1 if address != "127.0.0.1" else NO_ALLOWLIST
    if address == "127.0.0.1":
        # The first hop must pass, so allow it by name; the decimal form is 127.0.0.1 itself.
        dns.table["start.example.test"] = ["127.0.0.1"]
        allowlist = Allowlist.from_entries([], opened=["start.example.test"])
        start = server.url("/start", host="start.example.test")
    else:
        start = server.url("/start")
    with pytest.raises(Refused) as caught:
        fetch(start, allowlist=allowlist, resolver=dns, timeout=5)
    assert caught.value.rule == rule
    assert caught.value.address == address
    assert [path.path for path in server.seen] == ["/start", "/go"]
    assert {address for address, _port in connections} == {"127.0.0.1"}


def test_a_redirect_to_another_allowed_server_is_followed(
    serve: Serve, connections: list[tuple[str, int]]
) -> None:
    second = serve({"/final.png": send()}, address="127.0.0.2")
    first = serve({"/start": redirect(second.url("/final.png"), status=301)})
    fetched = fetch(first.url("/start"), allowlist=LOOPBACK_BOTH, timeout=5)
    assert fetched.body == PNG
    assert fetched.url == first.url("/start")
    assert fetched.final_url == second.url("/final.png")
    assert connections == [("127.0.0.1", first.port), ("127.0.0.2", second.port)]


def _chain() -> dict[str, Route]:
    """/hop/n redirects to /hop/n-1; /hop/0 is the image."""
    routes = {f"/hop/{n}": redirect(f"/hop/{n - 1}", 307) for n in range(1, 9)}
    routes["/hop/0"] = send()
    return routes


def test_up_to_five_redirects_are_followed(serve: Serve) -> None:
    server = serve(_chain())
    fetched = fetch(server.url(f"/hop/{MAX_REDIRECTS}"), allowlist=LOOPBACK_1, timeout=5)
    assert fetched.final_url == server.url("/hop/0")


def test_a_sixth_redirect_is_refused(serve: Serve) -> None:
    server = serve(_chain())
    with pytest.raises(Refused) as caught:
        fetch(server.url(f"/hop/{MAX_REDIRECTS + 1}"), allowlist=LOOPBACK_1, timeout=5)
    assert caught.value.rule == "redirect_limit"
    assert len(server.seen) == MAX_REDIRECTS + 1  # the 7th URL is never asked for


def test_a_redirect_loop_ends_at_the_limit(serve: Serve) -> None:
    server = serve({"/loop": redirect("/loop")})
    with pytest.raises(Refused) as caught:
        fetch(server.url("/loop"), allowlist=LOOPBACK_1, timeout=5)
    assert caught.value.rule == "redirect_limit"
    assert len(server.seen) == MAX_REDIRECTS + 1


# ---------------------------------------------------------------------------- caps


def test_a_body_larger_than_announced_limit_is_refused_before_reading(serve: Serve) -> None:
    server = serve({"/big.png": send(b"x" * 2000)})
    with pytest.raises(Refused) as caught:
        fetch(server.url("/big.png"), allowlist=LOOPBACK_1, max_bytes=1000, timeout=5)
    assert caught.value.rule == "too_large"
    assert caught.value.details["max_bytes"] == "1000"


def test_a_chunked_body_is_cut_off_one_byte_past_the_limit(serve: Serve) -> None:
    server = serve({"/big.png": chunked(50_000), "/fits.png": chunked(1000)})
    with pytest.raises(Refused) as caught:
        fetch(server.url("/big.png"), allowlist=LOOPBACK_1, max_bytes=10_000, timeout=5)
    assert caught.value.rule == "too_large"
    fits = fetch(server.url("/fits.png"), allowlist=LOOPBACK_1, max_bytes=1000, timeout=5)
    assert fits.body == b"x" * 1000


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json", None])
def test_a_wrong_or_missing_content_type_is_refused(serve: Serve, content_type: str | None) -> None:
    server = serve({"/page": send(b"<html></html>", content_type)})
    with pytest.raises(Refused) as caught:
        fetch(server.url("/page"), allowlist=LOOPBACK_1, timeout=5)
    assert caught.value.rule == "content_type"


def test_accepted_content_types_are_the_callers_choice(serve: Serve) -> None:
    server = serve({"/hook": send(b'{"ok": true}', "application/json; charset=utf-8")})
    fetched = fetch(
        server.url("/hook"), allowlist=LOOPBACK_1, content_types=("application/json",), timeout=5
    )
    assert fetched.content_type == "application/json"
    anything = fetch(server.url("/hook"), allowlist=LOOPBACK_1, content_types=(), timeout=5)
    assert anything.body == b'{"ok": true}'


def test_a_server_dripping_bytes_hits_the_deadline(serve: Serve) -> None:
    # Every read gets a byte within 0.05 s, so per-read timeouts would wait 20 s for the body;
    # the deadline is for the fetch as a whole.
    server = serve({"/slow.png": drip(400, every=0.05)})
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/slow.png"), allowlist=LOOPBACK_1, timeout=0.5)
    assert caught.value.rule == "timeout"
    assert caught.value.code == "fetch_failed" and caught.value.status == 502


def test_a_server_that_never_answers_hits_the_deadline(serve: Serve) -> None:
    server = serve({"/stuck.png": stall(30)})
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/stuck.png"), allowlist=LOOPBACK_1, timeout=0.3)
    assert caught.value.rule == "timeout"


def test_slow_dns_hits_the_deadline() -> None:
    release = threading.Event()

    def slow(host: str, port: int) -> list[str]:
        release.wait(5)
        return ["127.0.0.1"]

    try:
        with pytest.raises(FetchFailed) as caught:
            fetch("http://slow-dns.example.test/", allowlist=LOOPBACK_1, resolver=slow, timeout=0.2)
        assert caught.value.rule == "timeout"
    finally:
        release.set()


# ---------------------------------------------------------------------------- plain failures


def test_an_http_error_status_is_a_failure_not_a_refusal(serve: Serve) -> None:
    server = serve({"/gone.png": send(b"gone", "text/plain", status=404)})
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/gone.png"), allowlist=LOOPBACK_1, timeout=5)
    assert caught.value.rule == "http_status"
    assert caught.value.details["status"] == "404"
    assert not isinstance(caught.value, Refused)


def test_a_closed_port_is_a_connection_failure(connections: list[tuple[str, int]]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed) as caught:
        fetch(f"http://127.0.0.1:{port}/a.png", allowlist=LOOPBACK_1, timeout=5)
    assert caught.value.rule == "connect"
    assert connections == [("127.0.0.1", port)]


def test_an_unknown_name_is_a_dns_failure(connections: list[tuple[str, int]]) -> None:
    dns = FakeDNS({"nowhere.example.test": socket.gaierror(socket.EAI_NONAME, "Name unknown")})
    with pytest.raises(FetchFailed) as caught:
        fetch("http://nowhere.example.test/a.png", allowlist=NO_ALLOWLIST, resolver=dns, timeout=5)
    assert caught.value.rule == "dns"
    assert "nowhere.example.test" in caught.value.message
    assert connections == []


def test_a_body_cut_short_is_a_failure(serve: Serve) -> None:
    def short(handler: BaseHTTPRequestHandler, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"x" * 10)

    server = serve({"/short.png": short})
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/short.png"), allowlist=LOOPBACK_1, timeout=5)
    assert caught.value.rule == "protocol"


# ---------------------------------------------------------------------------- streaming


def test_streaming_yields_the_body_in_chunks_under_the_same_caps(serve: Serve) -> None:
    server = serve({"/big.png": chunked(300_000), "/a.png": send()})
    with stream(server.url("/a.png"), allowlist=LOOPBACK_1, timeout=5) as response:
        assert (response.status, response.content_type) == (200, "image/png")
        assert response.content_length == len(PNG)
        assert b"".join(response) == PNG
    received = 0
    with (
        pytest.raises(Refused) as caught,
        stream(server.url("/big.png"), allowlist=LOOPBACK_1, max_bytes=200_000) as response,
    ):
        assert response.content_length is None
        for chunk in response:
            received += len(chunk)
    assert caught.value.rule == "too_large"
    assert received <= 200_000


# ---------------------------------------------------------------------------- https


def test_https_sends_sni_and_verifies_the_certificate_for_the_host_name(
    serve: Serve, test_ca: PrivateCA, connections: list[tuple[str, int]]
) -> None:
    server = serve({"/a.png": send()}, tls=test_ca.issue(["images.plant.test"]))
    dns = FakeDNS({"images.plant.test": ["127.0.0.1"]})
    trusting = ssl.create_default_context(cafile=str(test_ca.ca_file))
    url = server.url("/a.png", host="images.plant.test")
    test_ca.sni.clear()
    fetched = fetch(url, allowlist=LOOPBACK_1, resolver=dns, ssl_context=trusting, timeout=5)
    assert fetched.body == PNG
    assert test_ca.sni == ["images.plant.test"]
    assert server.seen[0].host == f"images.plant.test:{server.port}"
    assert connections == [("127.0.0.1", server.port)]


def test_https_refuses_a_certificate_for_another_name_or_from_an_unknown_ca(
    serve: Serve, test_ca: PrivateCA
) -> None:
    server = serve({"/a.png": send()}, tls=test_ca.issue(["images.plant.test"]))
    dns = FakeDNS({"images.plant.test": ["127.0.0.1"], "other.plant.test": ["127.0.0.1"]})
    trusting = ssl.create_default_context(cafile=str(test_ca.ca_file))
    with pytest.raises(FetchFailed) as wrong_name:
        fetch(
            server.url("/a.png", host="other.plant.test"),
            allowlist=LOOPBACK_1,
            resolver=dns,
            ssl_context=trusting,
            timeout=5,
        )
    assert wrong_name.value.rule == "tls"
    with pytest.raises(FetchFailed) as unknown_ca:
        fetch(
            server.url("/a.png", host="images.plant.test"),
            allowlist=LOOPBACK_1,
            resolver=dns,
            timeout=5,
        )
    assert unknown_ca.value.rule == "tls"
    assert server.seen == []


def test_the_loopback_guard_itself_holds() -> None:
    """The guard in conftest fails any test that connects beyond loopback."""
    with socket.socket() as sock, pytest.raises(pytest.fail.Exception):
        sock.connect(("192.0.2.1", 80))
