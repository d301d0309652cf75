"""Raw HTTP/1.1 on loopback for wire-level tests: a connection that sends bytes and parses the
answers, and Hookhub's app served by uvicorn with Hookhub's protocol in a thread of the test.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvicorn

from hookhub.api.app import create_app
from hookhub.api.http import server_config
from hookhub.services import Services


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Parsed:
    answers: list[Answer] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    parser: Any = None

    def on_message_begin(self) -> None:
        self.headers, self.body = {}, bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.answers.append(Answer(status, self.headers, bytes(self.body)))


class Wire:
    """A raw connection to the server: bytes out, parsed answers in, EOF noticed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.parsed = _Parsed()
        self.parsed.parser = httptools.HttpResponseParser(self.parsed)
        self.closed = False
        self.raw = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answers(self, count: int) -> list[Answer]:
        """The next ``count`` answers (100 Continue included), waiting up to 10 s."""
        while len(self.parsed.answers) < count:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
                break
            self.raw += data
            self.parsed.parser.feed_data(data)
        taken, self.parsed.answers = (
            self.parsed.answers[:count],
            self.parsed.answers[count:],
        )
        assert len(taken) == count, f"connection closed after {len(taken)} answers"
        return taken

    def answer(self) -> Answer:
        return self.answers(1)[0]

    def at_eof(self) -> bool:
        """Whether the server closed the connection (nothing more arrives)."""
        self.sock.settimeout(5)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


class ThreadedServer:
    """uvicorn with Hookhub's protocol, as ``hookhub serve`` configures it, in a thread."""

    def __init__(self, services: Services) -> None:
        self.app = create_app(services)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = server_config(self.app, lifespan="off", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.asgi_calls = 0  # /in/ requests that went through ASGI instead of the protocol

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
