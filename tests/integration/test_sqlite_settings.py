"""The SQLite settings reach every connection the engine opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookhub.config import load_settings
from hookhub.services import build_services


@pytest.mark.parametrize(("configured", "expected"), [(None, 4000), ("250", 250), ("0", 0)])
def test_wal_autocheckpoint_is_applied_to_each_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: str | None, expected: int
) -> None:
    if configured is not None:
        monkeypatch.setenv("HOOKHUB_SQLITE_WAL_AUTOCHECKPOINT", configured)
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'hookhub.db'}")
    services = build_services(settings)
    try:
        # Two connections at once: the second is a new one, configured on connect too.
        with services.db.read() as first, services.db.read() as second:
            for conn in (first, second):
                pragmas = {
                    name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("wal_autocheckpoint", "journal_mode", "synchronous")
                }
                assert pragmas == {
                    "wal_autocheckpoint": expected,
                    "journal_mode": "wal",
                    "synchronous": 1,  # NORMAL
                }
    finally:
        services.close()


def test_a_negative_wal_autocheckpoint_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKHUB_SQLITE_WAL_AUTOCHECKPOINT", "-1")
    with pytest.raises(Exception, match="wal_autocheckpoint"):
        load_settings(database_url="sqlite:///unused.db")
