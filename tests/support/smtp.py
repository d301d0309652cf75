"""A real SMTP server on loopback for email tests: aiosmtpd in a thread of its own.

    with running_smtp_server() as server:             # plain, PIPELINING offered
        ... send to server.url() ...
        server.wait_for(1)
        assert server.messages[0].data == expected_bytes

Options: ``tls="starttls"`` (STARTTLS with a self-signed certificate made at test time) or
``"implicit"`` (TLS from the first byte); ``auth=("user", "password")`` (AUTH PLAIN and LOGIN,
over TLS unless ``auth_require_tls=False``); ``smtputf8``; ``pipelining``. Clients trust the
certificate through :meth:`SmtpServer.client_context`, or ``?verify=off`` in the URL.

Failures are scripted while it runs: :meth:`SmtpServer.fail` answers the next N MAIL, RCPT or
DATA with a code (a 421 also closes the connection, as real servers do), :meth:`refuse`
answers a code to one recipient every time (a hard bounce in a campaign),
:meth:`refuse_connections` greets the next connections with a refusal, :meth:`drop_data`
hangs up on the next N messages after their content arrived and before any answer, and
``delay`` slows every MAIL/RCPT/DATA answer down. ``messages`` lists what was accepted, with
the envelope and the exact bytes (dot-stuffing undone); ``connections`` counts connections.

The server runs its own event loop in a thread, so synchronous tests (a worker in another
process) and asynchronous ones (a pool in the test's loop) can both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

__all__ = ["ReceivedMail", "SmtpServer", "running_smtp_server", "self_signed_certificate"]

Step = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    data: bytes
    mail_options: list[str]
    peer_port: int
    """The client's port: which connection the message came over."""
    tls: bool
    login: str | None


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    pem: str


@cache
def self_signed_certificate() -> Certificate:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, made once per test run."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="hookhub-smtp-cert-"))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(folder / "cert.pem", folder / "key.pem", pem.decode())


@dataclass
class SmtpServer:
    tls: Literal["none", "starttls", "implicit"] = "none"
    auth: tuple[str, str] | None = None
    auth_require_tls: bool = True
    auth_exclude: tuple[str, ...] = ()
    """AUTH mechanisms not to offer (``("PLAIN",)`` leaves LOGIN)."""
    smtputf8: bool = False
    pipelining: bool = True
    delay: float = 0.0
    """Seconds before every MAIL, RCPT and DATA answer."""
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ReceivedMail] = field(default_factory=list)
    connections: int = 0
    logins_refused: int = 0
    _failures: dict[str, deque[tuple[int, str]]] = field(
        default_factory=lambda: {"mail": deque(), "rcpt": deque(), "data": deque()}
    )
    _drops: int = 0
    _greeting_refusals: deque[str] = field(default_factory=deque)
    _refused: dict[str, tuple[Step, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _sessions: list[SMTP] = field(default_factory=list)

    # -- for tests -----------------------------------------------------------------------------

    def url(self, *, user: str | None = None, password: str | None = None, **query: str) -> str:
        """The ``HOOKHUB_SMTP_URL`` of this server (``tls="off"`` unless it speaks TLS)."""
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        credentials = ""
        if user is not None:
            credentials = quote(user, safe="")
            if password is not None:
                credentials += ":" + quote(password, safe="")
            credentials += "@"
        if self.tls == "none":
            query.setdefault("tls", "off")
        options = "&".join(f"{key}={value}" for key, value in query.items())
        return f"{scheme}://{credentials}{self.host}:{self.port}" + (
            f"?{options}" if options else ""
        )

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and verifies it)."""
        return ssl.create_default_context(cadata=self_signed_certificate().pem)

    def fail(self, step: Step, code: int, *, times: int = 1, text: str | None = None) -> None:
        """Answer the next ``times`` ``step`` commands with ``code`` (421 also hangs up)."""
        reply = text or {421: "4.3.2 Service shutting down", 550: "5.1.1 No such user"}.get(
            code, "Scripted failure"
        )
        with self._lock:
            self._failures[step].extend([(code, reply)] * times)

    def refuse(self, recipient: str, code: int = 550, *, step: Step = "rcpt") -> None:
        """Answer ``code`` to RCPT (or to the content, ``step="data"``) for ``recipient``,
        every time."""
        with self._lock:
            self._refused[recipient] = (step, code)

    def refuse_connections(self, times: int = 1, reply: str = "554 5.3.2 Too busy") -> None:
        """Greet the next ``times`` connections with ``reply`` and hang up."""
        with self._lock:
            self._greeting_refusals.extend([reply] * times)

    def drop_data(self, times: int = 1) -> None:
        """Hang up on the next ``times`` messages once their content arrived, unanswered."""
        with self._lock:
            self._drops += times

    def disconnect_all(self) -> None:
        """Hang up on every open connection (as a server does to idle clients), answering
        nothing."""
        loop = self._loop
        assert loop is not None
        done = threading.Event()

        def hang_up() -> None:
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.abort()
            done.set()

        loop.call_soon_threadsafe(hang_up)
        done.wait(10)

    def recipients(self) -> list[str]:
        with self._lock:
            return [rcpt for mail in self.messages for rcpt in mail.recipients]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            time.sleep(0.01)
        return list(self.messages)

    async def wait_for_async(self, count: int, timeout: float = 20.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} of {count} messages arrived")
            await asyncio.sleep(0.01)
        return list(self.messages)

    # -- aiosmtpd hooks (run in the server's thread) ----------------------------------------------

    def _next_failure(self, step: Step) -> tuple[int, str] | None:
        with self._lock:
            queue = self._failures[step]
            return queue.popleft() if queue else None

    async def _answer_failure(
        self, server: SMTP, step: Step, recipients: Sequence[str] = ()
    ) -> str | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            scripted = [self._refused.get(rcpt) for rcpt in recipients]
        for refusal in scripted:
            if refusal is not None and refusal[0] == step:
                return f"{refusal[1]} 5.1.1 refused for this recipient"
        failure = self._next_failure(step)
        if failure is None:
            return None
        code, text = failure
        if code == 421 and server.transport is not None:
            asyncio.get_running_loop().call_soon(server.transport.close)
        return f"{code} {text}"

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refused = await self._answer_failure(server, "mail")
        if refused is not None:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        refused = await self._answer_failure(server, "rcpt", [address])
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        with self._lock:
            drop = self._drops > 0
            if drop:
                self._drops -= 1
        if drop and server.transport is not None:
            server.transport.abort()
            return "451 4.3.0 never seen: the connection is gone"
        refused = await self._answer_failure(server, "data", envelope.rcpt_tos)
        if refused is not None:
            return refused
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        mail = ReceivedMail(
            sender=envelope.mail_from,
            recipients=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            mail_options=list(envelope.mail_options),
            peer_port=session.peer[1],
            tls=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
            login=login,
        )
        with self._lock:
            self.messages.append(mail)
            number = len(self.messages)
        return f"250 2.0.0 OK queued as {number}"

    def _authenticate(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.auth is not None
        if (
            isinstance(data, LoginPassword)
            and (
                data.login.decode(),
                data.password.decode(),
            )
            == self.auth
        ):
            return AuthResult(success=True, auth_data=data)
        with self._lock:
            self.logins_refused += 1
        return AuthResult(success=False, handled=False)

    # -- running -----------------------------------------------------------------------------

    def _session(self) -> asyncio.Protocol:
        self.connections += 1
        with self._lock:
            refusal = self._greeting_refusals.popleft() if self._greeting_refusals else None
        if refusal is not None:
            return _Refuser(refusal)
        cert = self_signed_certificate()
        context = None
        if self.tls == "starttls":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert.cert_file, cert.key_file)
        kwargs: dict[str, Any] = {}
        if self.auth is not None:
            kwargs["authenticator"] = self._authenticate
            # With implicit TLS aiosmtpd does not know the connection is encrypted.
            kwargs["auth_require_tls"] = self.auth_require_tls and self.tls != "implicit"
            kwargs["auth_exclude_mechanism"] = self.auth_exclude
        session = SMTP(
            self,
            hostname="smtp.test",
            tls_context=context,
            enable_SMTPUTF8=self.smtputf8,
            loop=self._loop,
            **kwargs,
        )
        self._sessions.append(session)
        return session

    @contextlib.contextmanager
    def running(self) -> Iterator[SmtpServer]:
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        server_ssl = None
        if self.tls == "implicit":
            cert = self_signed_certificate()
            server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ssl.load_cert_chain(cert.cert_file, cert.key_file)

        async def serve() -> asyncio.AbstractServer:
            return await loop.create_server(self._session, self.host, self.port, ssl=server_ssl)

        holder: dict[str, asyncio.AbstractServer] = {}

        def run() -> None:
            asyncio.set_event_loop(loop)
            holder["server"] = loop.run_until_complete(serve())
            started.set()
            loop.run_forever()
            holder["server"].close()
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.abort()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=run, name="smtp-test-server", daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("the test SMTP server did not start")
        self.port = holder["server"].sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


class _Refuser(asyncio.Protocol):
    """Greets with a refusal and hangs up."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.reply.encode() + b"\r\n")
        transport.close()


@contextlib.contextmanager
def running_smtp_server(**options: Any) -> Iterator[SmtpServer]:
    """Start an :class:`SmtpServer` on a free loopback port for the ``with`` block."""
    with SmtpServer(**options).running() as server:
        yield server
