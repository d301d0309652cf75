"""A fast SMTP sink for the email benchmarks: accepts everything, keeps nothing but counts.

Used when Postfix's ``smtp-sink`` is not available, and whenever a benchmark must check that
every message arrived exactly once: each message's ``X-Bench-Marker`` header is remembered,
and on SIGTERM (or SIGINT) the sink prints one JSON line, ``{"messages", "unique",
"duplicates", "connections"}``, and exits.

    python bench/email_sink.py PORT

It speaks just enough SMTP for a client that pipelines (EHLO advertises PIPELINING, 8BITMIME
and SIZE): every command is answered 250 (DATA 354), a message ends at CRLF.CRLF. An asyncio
protocol, one ``find`` per read: on one core it takes several times what the senders under test
can send.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter

GREETING = b"220 sink ESMTP\r\n"
EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 10240000\r\n250 SMTPUTF8\r\n"
MARKER = b"\r\nX-Bench-Marker: "


class Stats:
    def __init__(self) -> None:
        self.markers: Counter[bytes] = Counter()
        self.messages = 0
        self.connections = 0


class SinkProtocol(asyncio.Protocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.connections += 1
        transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        while buffer:
            if self.in_data:
                if buffer.startswith(b".\r\n"):  # an empty message
                    message, buffer = b"", buffer[3:]
                else:
                    end = buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        break
                    message, buffer = buffer[: end + 2], buffer[end + 5 :]
                self._count(message)
                self.in_data = False
                out.append(b"250 2.0.0 Ok: queued\r\n")
                continue
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            command = buffer[:4].upper()
            buffer = buffer[line_end + 2 :]
            if command == b"DATA":
                self.in_data = True
                out.append(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif command in (b"EHLO", b"HELO"):
                out.append(EHLO if command == b"EHLO" else b"250 sink\r\n")
            elif command == b"QUIT":
                out.append(b"221 2.0.0 Bye\r\n")
                assert self.transport is not None
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            else:
                out.append(b"250 2.0.0 Ok\r\n")
        self.buffer = buffer
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def _count(self, message: bytes) -> None:
        self.stats.messages += 1
        at = message.find(MARKER)
        if at >= 0:
            start = at + len(MARKER)
            self.stats.markers[message[start : message.find(b"\r\n", start)]] += 1


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    server = await loop.create_server(lambda: SinkProtocol(stats), "127.0.0.1", port, backlog=256)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print("ready", flush=True)
    await stop
    server.close()
    summary = {
        "messages": stats.messages,
        "unique": len(stats.markers),
        "duplicates": sum(count - 1 for count in stats.markers.values() if count > 1),
        "connections": stats.connections,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
