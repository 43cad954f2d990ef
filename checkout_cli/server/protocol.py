"""uvicorn's httptools HTTP protocol with TCP_NODELAY set on every connection.

httptools (llhttp, in C) parses a request in a fraction of the CPU time of the pure-Python h11.

With ``--workers N`` uvicorn binds the listening socket itself with ``proto`` 0, so asyncio
does not turn Nagle's algorithm off on accepted connections and every keep-alive request
after the first waits ~40 ms for the client's delayed ACK (uvicorn issue #3149). Setting
the option per connection fixes that for one worker and for many.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class NoDelayHTTPProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):  # the peer may already be gone
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # uvicorn narrows asyncio.Protocol's BaseTransport to Transport (itself ignoring the
        # override); a TCP server always hands it a Transport.
        super().connection_made(transport)  # type: ignore[arg-type]
