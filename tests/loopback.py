"""An HTTP server on a loopback address, in a thread of the test process, for the tests that need
a real peer on the other end of a socket (webhook receivers, ML backends, fetcher sources)."""

from __future__ import annotations

import contextlib
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind would look this machine's name up; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class Loopback:
    """``handler`` served on ``address`` (a free port) until ``close()``; ``tls`` wraps the
    listening socket for https."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        address: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.server = LoopbackHTTPServer((address, 0), handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        # A short poll keeps shutdown() quick: it waits for the serving loop to look up.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def reply(
    handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str | None
) -> None:
    """A whole answer with its length (and type, unless None), then the connection closed; a
    client that hung up first (a size cap, a timeout) is not the server's problem."""
    handler.send_response(status)
    if content_type is not None:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    with contextlib.suppress(OSError):
        handler.wfile.write(data)
    handler.close_connection = True
