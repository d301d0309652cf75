"""Starting and stopping Hookhub as real processes, for acceptance tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx2 as httpx

from tests.conftest import SECRET_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hookhub_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}
    env.update(
        {
            "HOOKHUB_DATABASE_URL": database_url,
            "HOOKHUB_LOG_FORMAT": "text",
            "HOOKHUB_LOG_LEVEL": "WARNING",
            "HOOKHUB_ALLOW_PRIVATE_DESTINATIONS": "127.0.0.0/8,::1/128",
            "HOOKHUB_SECRET_KEY": SECRET_KEY,
        }
    )
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hookhub", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, wait: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def wait_http(
    url: str, timeout: float = 30, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def serving(database_url: str, tmp: Path, **env: str) -> Iterator[str]:
    """``hookhub serve`` on a free port; yields its base URL and stops it afterwards."""
    port = free_port()
    with (tmp / f"serve-{port}.log").open("wb") as log:
        process = start(["serve", "--port", str(port)], hookhub_env(database_url, **env), log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz", process=process)
            yield base
        finally:
            stop(process)
