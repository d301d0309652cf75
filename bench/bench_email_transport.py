"""The SMTP transport alone: ``SmtpPool`` against a bare aiosmtplib sender, to a local sink.

Both sides push the same N pre-serialized messages (about 2.5 KB, multipart, each with its own
recipient and an ``X-Bench-Marker`` header; built before any clock starts) over the same number
of connections to the same sink:

- **aiosmtplib**: ``connections`` ``aiosmtplib.SMTP`` clients, each in a loop of
  ``sendmail(sender, [recipient], bytes)`` taking the next message (the baseline of issue 12);
- **pool**: one ``SmtpPool(connections=...)`` given the messages in batches of ``--batch``
  (``send_many``, as the email worker calls it), every result checked to be "sent";
- with ``--streams``, also a minimal pipelining client on asyncio streams (``StreamReader``
  lines, ``wait_for`` timeouts), the design ``hookhub.email.smtp`` chose against.

The sender runs in this process, pinned to core 0; the sink is another process pinned to core
1: Postfix's ``smtp-sink`` (installed from the Debian package ``postfix`` when missing, with
the Postfix service left unconfigured and stopped: it never listens on port 25), or with
``--sink asyncio`` (or when Postfix cannot be installed) ``bench/email_sink.py``, which also
checks that every marker arrived exactly once. After each side the sink's count must equal N.
Sides alternate order from run to run; the ratio is pool/aiosmtplib messages per second, per
run, and its median is the figure to quote. CPU is this process's CPU time per message.

    .venv/bin/python bench/bench_email_transport.py [--count 100000] [--connections 8]
        [--runs 3] [--batch 200] [--sink auto|smtp-sink|asyncio] [--streams] [--profile]
        [--uvloop]

``--profile`` sends once more through the pool under cProfile and prints where the time went;
``--uvloop`` runs every side on uvloop, the loop ``hookhub serve`` and ``hookhub worker`` use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH_DIR, free_port, machine_info, median, pinned, print_machine

from hookhub.email.pool import SmtpPool
from hookhub.email.smtp_url import parse_smtp_url
from hookhub.email.smtp_wire import to_wire
from hookhub.email.transport import Envelope

SENDER = "shop@bench.example"


def build_messages(count: int, tag: str) -> list[Envelope]:
    """``count`` distinct messages, about 2.5 KB each, like a personalised campaign's."""
    envelopes = []
    paragraph = b"We have news for you this month: new arrivals, a sale, and a story. " * 14
    for i in range(count):
        recipient = f"contact{i}@bench.example"
        name = f"Contact {i}".encode()
        boundary = b"b-%d" % i
        data = b"".join(
            [
                b"From: Shop <shop@bench.example>\r\nTo: <" + recipient.encode() + b">\r\n",
                b"Subject: Hello " + name + b", your offer #%d\r\n" % i,
                b"Message-ID: <%d.%s@bench.example>\r\n" % (i, tag.encode()),
                b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
                b"X-Bench-Marker: " + tag.encode() + b"-%d\r\n" % i,
                b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n',
                b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
                b"Hello " + name + b",\r\n\r\n" + paragraph + b"\r\n.\r\n\r\n",
                b"--" + boundary + b"\r\nContent-Type: text/html; charset=utf-8\r\n\r\n",
                b"<html><body><p>Hello " + name + b",</p><p>" + paragraph + b"</p>",
                b'<p><a href="https://shop.example/t/c/abcdefghijklmnopqrstuvwxyz0123456789">',
                b"Shop now</a></p></body></html>\r\n--" + boundary + b"--\r\n",
            ]
        )
        envelopes.append(Envelope(SENDER, recipient, data, i))
    return envelopes


# -- the sink ------------------------------------------------------------------------------------


def ensure_smtp_sink() -> str | None:
    """The path of Postfix's smtp-sink, installing the Debian package if needed (None: not
    possible). Postfix is preseeded "No configuration" so it never starts a mail server."""
    found = shutil.which("smtp-sink")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    print(
        "installing Postfix for smtp-sink (apt-get install -y postfix; the service is not set up)"
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],
        input=b"postfix postfix/main_mailer_type select No configuration\n",
        env=env,
        check=False,
        timeout=60,
    )
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:  # no service may start during the install
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postfix"],
            env=env,
            check=False,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if made_policy:
            policy.unlink()
    return shutil.which("smtp-sink")


@dataclass
class SinkCount:
    messages: int
    unique: int | None = None
    duplicates: int | None = None


class Sink:
    """One sink process for one measured side, pinned to core 1."""

    def __init__(self, kind: str, smtp_sink: str | None, workdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.out = workdir / f"sink-{self.port}.out"
        if kind == "smtp-sink":
            assert smtp_sink is not None
            argv = [smtp_sink, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "256"]
        else:
            argv = [sys.executable, str(BENCH_DIR / "email_sink.py"), str(self.port)]
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(
                pinned(1) + argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_listening()

    def _wait_listening(self) -> None:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"the {self.kind} sink did not start: {self.out.read_text()[-500:]}")

    def smtp_sink_count(self) -> int:
        counts = re.findall(rb"mesg=(\d+)", self.out.read_bytes())
        return int(counts[-1]) if counts else 0

    def finish(self, expected: int) -> SinkCount:
        """Stop the sink and answer what it counted (waiting a little for late counters)."""
        try:
            if self.kind == "smtp-sink":
                deadline = time.monotonic() + 10
                while self.smtp_sink_count() < expected and time.monotonic() < deadline:
                    time.sleep(0.05)
                return SinkCount(self.smtp_sink_count())
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
            summary = json.loads(self.out.read_text().strip().splitlines()[-1])
            return SinkCount(summary["messages"], summary["unique"], summary["duplicates"])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# -- the senders ---------------------------------------------------------------------------------


async def send_aiosmtplib(port: int, envelopes: Sequence[Envelope], connections: int) -> int:
    import aiosmtplib

    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, use_tls=False, start_tls=False)
        for _ in range(connections)
    ]
    await asyncio.gather(*(client.connect() for client in clients))
    queue = iter(envelopes)
    sent = 0

    async def lane(client: aiosmtplib.SMTP) -> None:
        nonlocal sent
        for envelope in queue:
            await client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
            sent += 1

    await asyncio.gather(*(lane(client) for client in clients))
    await asyncio.gather(*(client.quit() for client in clients))
    return sent


async def send_pool(
    port: int, envelopes: Sequence[Envelope], connections: int, batch: int = 200
) -> int:
    pool = SmtpPool(parse_smtp_url(f"smtp://127.0.0.1:{port}?tls=off"), connections=connections)
    sent = 0
    for start in range(0, len(envelopes), batch):
        results = await pool.send_many(envelopes[start : start + batch])
        sent += sum(result.outcome == "sent" for result in results)
        if results[0].outcome != "sent":
            raise RuntimeError(f"the pool did not send: {results[0]}")
    await pool.aclose()
    return sent


async def send_streams(port: int, envelopes: Sequence[Envelope], connections: int) -> int:
    """The same pipelining (each content carries the next MAIL, RCPT and DATA) on asyncio
    streams: ``StreamReader.readline`` under ``wait_for``, the design ``ReplyReader`` replaced."""
    queue = iter(envelopes)
    sent = 0

    async def reply(reader: asyncio.StreamReader) -> int:
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            if line[3:4] != b"-":
                return int(line[:3])

    def commands(envelope: Envelope | None) -> bytes:
        if envelope is None:
            return b""
        return (
            b"MAIL FROM:<"
            + envelope.sender.encode()
            + b">\r\nRCPT TO:<"
            + envelope.recipient.encode()
            + b">\r\nDATA\r\n"
        )

    async def lane() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reply(reader)
        writer.write(b"EHLO bench\r\n")
        await reply(reader)
        envelope = next(queue, None)
        writer.write(commands(envelope))
        while envelope is not None:
            codes = [await reply(reader), await reply(reader), await reply(reader)]
            if codes != [250, 250, 354]:
                raise RuntimeError(f"refused: {codes}")
            following = next(queue, None)
            writer.write(to_wire(envelope.data) + commands(following))
            if await reply(reader) == 250:
                sent += 1
            envelope = following
        writer.write(b"QUIT\r\n")
        await reply(reader)
        writer.close()

    await asyncio.gather(*(lane() for _ in range(connections)))
    return sent


Sender = Callable[[int, Sequence[Envelope], int], Coroutine[Any, Any, int]]


@dataclass
class Measured:
    side: str
    rate: float
    cpu_per_message: float
    sink_cpu: float


def measure(
    side: str, send: Sender, envelopes: Sequence[Envelope], args: argparse.Namespace, workdir: Path
) -> Measured:
    sink = Sink(args.sink, args.smtp_sink, workdir)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        with asyncio.Runner(loop_factory=_loop_factory(args.uvloop)) as runner:
            sent = runner.run(send(sink.port, envelopes, args.connections))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        sink_cpu = _cpu_seconds(sink.proc.pid)
    finally:
        counted = sink.finish(len(envelopes))
    problems = []
    if sent != len(envelopes):
        problems.append(f"{sent} of {len(envelopes)} reported sent")
    if counted.messages != len(envelopes):
        problems.append(f"the sink counted {counted.messages}")
    if counted.unique is not None and (counted.unique, counted.duplicates) != (len(envelopes), 0):
        problems.append(f"{counted.unique} distinct markers, {counted.duplicates} duplicates")
    if problems:
        raise SystemExit(f"{side}: " + "; ".join(problems))
    return Measured(side, len(envelopes) / wall, cpu / len(envelopes), sink_cpu)


def _loop_factory(uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not uvloop:
        return None
    import uvloop as uv

    return uv.new_event_loop


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def pinned_here(core: int) -> Iterator[None]:
    before = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def profile_pool(envelopes: Sequence[Envelope], args: argparse.Namespace, workdir: Path) -> None:
    sink = Sink(args.sink, args.smtp_sink, workdir)
    profiler = cProfile.Profile()
    try:
        profiler.enable()
        asyncio.run(send_pool(sink.port, envelopes, args.connections, args.batch))
        profiler.disable()
    finally:
        sink.finish(len(envelopes))
    print(f"\ncProfile of the pool side ({len(envelopes)} messages), by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(22)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200, help="send_many batch (the worker's)")
    parser.add_argument("--sink", choices=["auto", "smtp-sink", "asyncio"], default="auto")
    parser.add_argument("--streams", action="store_true", help="also a streams-based client")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--uvloop", action="store_true", help="run every side on uvloop (as serve and worker do)"
    )
    args = parser.parse_args()
    args.smtp_sink = ensure_smtp_sink() if args.sink in ("auto", "smtp-sink") else None
    if args.sink == "auto":
        args.sink = "smtp-sink" if args.smtp_sink else "asyncio"
    elif args.sink == "smtp-sink" and args.smtp_sink is None:
        raise SystemExit("smtp-sink is not installed and could not be (Debian package postfix)")

    info = machine_info(None)
    info["aiosmtplib"] = _version("aiosmtplib")
    info["sink"] = args.smtp_sink if args.sink == "smtp-sink" else "bench/email_sink.py"
    print_machine(info)
    print(
        f"\n{args.count} messages, {args.connections} connections, pool batches of {args.batch},"
        f" sink {args.sink}; sender pinned to core 0, sink to core 1"
        f"{'; on uvloop' if args.uvloop else ''}\n"
    )
    sides: list[tuple[str, Sender]] = [
        ("aiosmtplib", send_aiosmtplib),
        ("pool", lambda port, env, conns: send_pool(port, env, conns, args.batch)),
    ]
    if args.streams:
        sides.append(("streams", send_streams))
    ratios: list[float] = []
    all_runs: dict[str, list[Measured]] = {name: [] for name, _ in sides}
    with tempfile.TemporaryDirectory(prefix="hookhub-bench-email-") as tmp, pinned_here(0):
        workdir = Path(tmp)
        for run in range(args.runs):
            envelopes = build_messages(args.count, f"r{run}")
            order = sides if run % 2 == 0 else sides[::-1]
            measured = {name: measure(name, send, envelopes, args, workdir) for name, send in order}
            for name, result in measured.items():
                all_runs[name].append(result)
            ratio = measured["pool"].rate / measured["aiosmtplib"].rate
            ratios.append(ratio)
            line = "  ".join(
                f"{name} {m.rate:8.0f} msg/s {m.cpu_per_message * 1e6:6.1f} us CPU/msg"
                f" (sink {m.sink_cpu:.1f} s CPU)"
                for name, m in measured.items()
            )
            print(f"run {run + 1}: {line}  ratio pool/aiosmtplib {ratio:.2f}x", flush=True)
            del envelopes
        if args.profile:
            profile_pool(build_messages(min(args.count, 50_000), "profile"), args, workdir)
    print("\nmedians:")
    for name, runs in all_runs.items():
        print(
            f"  {name:<10} {median([m.rate for m in runs]):8.0f} msg/s"
            f"  {median([m.cpu_per_message for m in runs]) * 1e6:6.1f} us CPU/msg"
        )
    print(
        f"  ratio pool/aiosmtplib: median {median(ratios):.2f}x of {[round(r, 2) for r in ratios]}"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process (messages included): {rss:.0f} MB")


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
