"""The OpenAPI document tells the truth: schemathesis against ``hookhub serve``, once per backend.

Schemathesis reads ``/openapi.json`` from the running process, generates requests from it
(positive and negative, then stateful sequences following the documented links) and checks
every answer: never a server error, only documented statuses, content types and shapes,
schema-valid requests accepted, invalid ones refused, ``Allow`` headers on 405s that name every
method. ``schemathesis.toml`` beside this file lists the few answers that depend on state or
policy a schema cannot express, each with its reason.

The run is bounded (``--max-examples``) and seeded, so it is the same run every time; it sends
traffic only to the loopback server it started.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import postgres_server_url
from tests.support.processes import serving

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "hh_contract_key_0123456789abcdefghijklmnop"
SEED = "20261202"
MAX_EXAMPLES = "20"


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def contract_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database per backend: the run creates what it reads."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'contract.db'}"
    if postgres_server_url() is None:
        pytest.skip("PostgreSQL runs need HOOKHUB_TEST_POSTGRES_URL")
    url: str = request.getfixturevalue("postgres_database")
    from tests.conftest import _truncate_postgres

    _truncate_postgres(url)
    return url


def test_the_api_answers_what_its_document_says(contract_db: str, tmp_path: Path) -> None:
    tool = _schemathesis()
    env = {"HOOKHUB_API_KEY": KEY, "HOOKHUB_LOG_LEVEL": "WARNING"}
    with serving(contract_db, tmp_path, **env) as base:
        run = subprocess.run(
            [
                tool,
                "--config-file",
                str(CONFIG),
                "--no-color",
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"Authorization: Bearer {KEY}",
                "--max-examples",
                MAX_EXAMPLES,
                "--seed",
                SEED,
                "--generation-database",
                "none",
                "--request-timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
            cwd=tmp_path,
        )
        log = next(tmp_path.glob("serve-*.log")).read_text(errors="replace")
    report = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert run.returncode == 0, report
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated is not None, report
    assert int(generated.group(1)) >= 1000, report
    # A 5xx is already a failure above; an unexpected error logged and answered otherwise
    # (the receive path answers for itself) must not hide either.
    assert "unexpected_error" not in log, log[-5_000:]
