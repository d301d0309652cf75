"""Opening an SMTP connection: connect, the greeting, EHLO (or HELO), STARTTLS and AUTH.

What ``HOOKHUB_SMTP_URL`` asks for, in order, each step's refusal raised as a
:class:`~hookhub.email.smtp.SetupRefused` naming the step (the pool turns it into a deferral
and logs it once). TLS verifies the server's certificate unless the URL says ``verify=off``;
the password goes over TLS only, unless the URL says ``tls=off``; a server that sends bytes
after its STARTTLS go-ahead is refused (they would be read as if encrypted). AUTH PLAIN is
preferred, LOGIN otherwise.

This module must never put the password, or its base64 forms, into a refusal or a log.
"""

from __future__ import annotations

import asyncio
import base64
import ssl

from hookhub.email.smtp import SetupRefused, SmtpConnection, because, reply_text
from hookhub.email.smtp_url import SmtpConfig
from hookhub.email.smtp_wire import Reply, ReplyReader
from hookhub.email.transport import Phase

__all__ = ["open_connection"]


async def open_connection(
    config: SmtpConfig,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    local_hostname: str = "localhost",
) -> SmtpConnection:
    """Connect, read the greeting, EHLO, STARTTLS and AUTH as ``config`` says.

    Raises :class:`SetupRefused` naming the phase that failed; the half-open connection is
    closed first.
    """
    loop = asyncio.get_running_loop()
    context = (
        ssl_context
        if ssl_context is not None
        else (config.ssl_context() if config.uses_tls else None)
    )
    implicit = config.tls == "implicit"
    try:
        _transport, reader = await asyncio.wait_for(
            loop.create_connection(
                lambda: ReplyReader(loop),
                config.host,
                config.port,
                ssl=context if implicit else None,
                server_hostname=config.host if implicit else None,
                ssl_handshake_timeout=timeout if implicit else None,
            ),
            timeout,
        )
    except TimeoutError:
        raise SetupRefused("connect", None, f"timed out after {timeout:g} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise SetupRefused("connect", None, _describe(exc)) from None
    connection = SmtpConnection(reader, timeout)
    try:
        await _setup(connection, reader, config, context, local_hostname)
    except SetupRefused:
        connection.abort()
        await connection.closed(1.0)
        raise
    except BaseException:
        connection.abort()
        raise
    return connection


async def _setup(
    connection: SmtpConnection,
    reader: ReplyReader,
    config: SmtpConfig,
    context: ssl.SSLContext | None,
    hostname: str,
) -> None:
    greeting = await _ask(connection, None, "greeting")
    if greeting[0] != 220:
        raise SetupRefused("greeting", greeting[0], reply_text(greeting))
    helo = (config.helo or hostname).encode("idna")
    connection.adopt(await _ehlo(connection, helo))
    if config.tls in ("opportunistic", "required"):
        if "STARTTLS" in connection.extensions:
            reply = await _ask(connection, b"STARTTLS\r\n", "starttls")
            if reply[0] != 220:
                raise SetupRefused("starttls", reply[0], reply_text(reply))
            if reader.replies or not reader.at_rest:
                # Bytes after the 220 would be read as if they had come over TLS: refuse them
                # (the STARTTLS injection attack).
                raise SetupRefused("starttls", None, "the server sent data after 220 to STARTTLS")
            assert context is not None
            assert reader.transport is not None
            try:
                reader.transport = await reader.loop.start_tls(
                    reader.transport,
                    reader,
                    context,
                    server_hostname=config.host,
                    ssl_handshake_timeout=connection.timeout,
                )
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                raise SetupRefused("starttls", None, "TLS failed: " + _describe(exc)) from None
            connection.adopt(await _ehlo(connection, helo))
        elif config.tls == "required":
            raise SetupRefused(
                "starttls", None, "the server does not offer STARTTLS and the URL says tls=required"
            )
    if config.username is not None:
        encrypted = reader.transport is not None and reader.transport.get_extra_info("ssl_object")
        if not encrypted and config.tls != "off":
            raise SetupRefused(
                "starttls",
                None,
                "the server does not offer STARTTLS: the password is not sent"
                " in clear text (add ?tls=off to the URL to allow it)",
            )
        await _login(connection, config.username, config.password or "")


async def _ask(connection: SmtpConnection, command: bytes | None, phase: Phase) -> Reply:
    reader = connection.reader
    if command is not None:
        if not connection.usable:
            raise SetupRefused(phase, None, "connection lost" + because(reader))
        reader.transport.write(command)  # type: ignore[union-attr]
    if not await reader.wait(1, connection.timeout):
        if reader.timed_out:
            raise SetupRefused(phase, None, f"timed out after {connection.timeout:g} s")
        raise SetupRefused(phase, None, "connection lost" + because(reader))
    return reader.replies.popleft()


async def _ehlo(connection: SmtpConnection, helo: bytes) -> dict[str, str]:
    reply = await _ask(connection, b"EHLO " + helo + b"\r\n", "ehlo")
    if reply[0] == 250:
        extensions: dict[str, str] = {}
        for line in reply[1].decode("utf-8", "replace").split("\n")[1:]:
            keyword, _, value = line.strip().partition(" ")
            extensions[keyword.upper()] = value.strip()
        return extensions
    if reply[0] == 421:
        raise SetupRefused("ehlo", 421, reply_text(reply))
    fallback = await _ask(connection, b"HELO " + helo + b"\r\n", "ehlo")
    if fallback[0] != 250:
        raise SetupRefused("ehlo", reply[0], reply_text(reply))
    return {}


async def _login(connection: SmtpConnection, username: str, password: str) -> None:
    mechanisms = connection.extensions.get("AUTH", "").upper().split()
    user, secret = username.encode(), password.encode()
    if "PLAIN" in mechanisms:
        token = base64.b64encode(b"\0" + user + b"\0" + secret)
        reply = await _ask(connection, b"AUTH PLAIN " + token + b"\r\n", "auth")
        if reply[0] == 334:  # a server that wants the credentials after an empty challenge
            reply = await _ask(connection, token + b"\r\n", "auth")
        sent = [token]
    elif "LOGIN" in mechanisms:
        sent = [base64.b64encode(user), base64.b64encode(secret)]
        reply = await _ask(connection, b"AUTH LOGIN\r\n", "auth")
        for answer in sent:
            if reply[0] != 334:
                break
            reply = await _ask(connection, answer + b"\r\n", "auth")
    else:
        offered = " ".join(mechanisms) or "none"
        raise SetupRefused(
            "auth", None, f"the server offers no login we speak (PLAIN, LOGIN); offered: {offered}"
        )
    if reply[0] != 235:
        text = reply_text(reply)
        for secret_form in (password, *(token.decode() for token in sent)):
            if secret_form:
                text = text.replace(secret_form, "[redacted]")
        raise SetupRefused("auth", reply[0], text)


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
