"""CSV import, on each backend, through ``ContactImporter`` and ``hookhub contacts import``:
counts, line-numbered rejections, the outbox messages each row causes, and files that are
refused as a whole."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hookhub.crm.importer import ContactImporter, ImportReport
from hookhub.errors import NotFound, ValidationFailed
from hookhub.services import Services
from tests.conftest import SECRET_KEY
from tests.integration.conftest import Outbox, RowCounts


def run_import(
    services: Services, data: bytes, *, list_id: int | None = None, batch_size: int = 1000
) -> ImportReport:
    return ContactImporter(services.crm, batch_size=batch_size).run(
        io.BytesIO(data), list_id=list_id
    )


def contact(client: Any, email: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/contacts/{email}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_new_rows_are_created_with_typed_attributes(
    client: Any, services: Services, outbox: Outbox
) -> None:
    client.post("/api/v1/attributes", json={"name": "AGE", "type": "number"})
    client.post("/api/v1/attributes", json={"name": "VIP", "type": "boolean"})
    client.post("/api/v1/attributes", json={"name": "SIGNUP", "type": "date"})
    data = (
        "\ufeffEmail,ext_id,age,vip,signup,city\n"
        " Ada@Example.com ,cus_1, 36 ,yes,2024-01-31,London\n"
        "grace@example.com,,85,no,,\n"
    ).encode()
    report = run_import(services, data)
    assert (report.created, report.updated, report.unchanged, report.rejected) == (2, 0, 0, 0)
    ada = contact(client, "ada@example.com")
    assert ada["ext_id"] == "cus_1"
    assert ada["attributes"] == {
        "AGE": 36,
        "VIP": True,
        "SIGNUP": "2024-01-31",
        "CITY": "London",
    }
    assert contact(client, "grace@example.com")["attributes"] == {"AGE": 85, "VIP": False}
    types = {a["name"]: a["type"] for a in client.get("/api/v1/attributes").json()["data"]}
    assert types["CITY"] == "string"
    created = outbox("contact.created")
    assert sorted(m["data"]["email"] for m in created) == ["ada@example.com", "grace@example.com"]
    assert all(m["data"]["contact_id"] for m in created)


def test_existing_contacts_are_updated_or_left_unchanged(
    client: Any, services: Services, outbox: Outbox
) -> None:
    client.post("/api/v1/contacts", json={"email": "ada@example.com", "attributes": {"PLAN": "a"}})
    client.post(
        "/api/v1/contacts", json={"email": "grace@example.com", "attributes": {"PLAN": "b"}}
    )
    data = b"email,plan\nada@example.com,pro\ngrace@example.com,b\nalan@example.com,free\n"
    report = run_import(services, data)
    assert (report.created, report.updated, report.unchanged, report.rejected) == (1, 1, 1, 0)
    assert contact(client, "ada@example.com")["attributes"] == {"PLAN": "pro"}
    [updated] = outbox("contact.updated")
    assert updated["data"]["email"] == "ada@example.com"
    assert updated["data"]["changes"] == {"PLAN": {"old": "a", "new": "pro"}}
    assert len(outbox("contact.created")) == 3


def test_empty_cells_keep_existing_values(client: Any, services: Services) -> None:
    client.post(
        "/api/v1/contacts", json={"email": "ada@example.com", "attributes": {"PLAN": "a", "X": "y"}}
    )
    report = run_import(services, b"email,plan,x\nada@example.com,,z\n")
    assert report.updated == 1
    assert contact(client, "ada@example.com")["attributes"] == {"PLAN": "a", "X": "z"}


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_imported(
    client: Any, services: Services
) -> None:
    client.post("/api/v1/attributes", json={"name": "AGE", "type": "number"})
    client.post("/api/v1/contacts", json={"email": "taken@example.com", "ext_id": "cus_1"})
    data = (
        b"email,ext_id,age\n"  # line 1
        b"ok1@example.com,,1\n"  # 2
        b"not-an-email,,2\n"  # 3
        b"ok2@example.com,,three\n"  # 4
        b"ok3@example.com,cus_1,3\n"  # 5
        b"ok4@example.com,,4,extra\n"  # 6
        b",,\n"  # 7: blank, skipped
        b"ok5@example.com,,5\n"  # 8
    )
    report = run_import(services, data)
    assert (report.created, report.rejected) == (2, 4)
    reasons = dict(report.rejections)
    assert sorted(reasons) == [3, 4, 5, 6]
    assert "not a valid email" in reasons[3]
    assert "AGE" in reasons[4]
    assert "cus_1" in reasons[5]
    assert reasons[6] == "4 fields, the header has 3"
    emails = [c["email"] for c in client.get("/api/v1/contacts").json()["data"]]
    assert emails == ["taken@example.com", "ok1@example.com", "ok5@example.com"]


def test_rows_that_are_not_utf8_are_rejected_by_line_without_losing_others(
    client: Any, services: Services
) -> None:
    rows = [f"c{i}@example.com,{i}".encode() for i in range(1500)]
    rows[700] = b"bad@example.com,caf\xe9"
    data = b"email,n\n" + b"\n".join(rows) + b"\n"
    report = run_import(services, data)
    assert report.rejections == [(702, "the row is not valid UTF-8")]
    assert report.created == 1499
    with services.crm.reader() as crm:
        assert crm.contacts.count() == 1499


def test_a_multi_line_row_is_reported_by_the_line_it_starts_on(services: Services) -> None:
    data = b'email,note\nok@example.com,"one\ntwo"\n"broken",\n"multi\nline@example.com",x\n'
    report = run_import(services, data)
    assert report.created == 1
    assert [line for line, _ in report.rejections] == [4, 5]


def test_list_option_adds_every_row_to_the_list(
    client: Any, services: Services, outbox: Outbox
) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "Imported"}).json()["id"]
    client.post("/api/v1/contacts", json={"email": "member@example.com", "list_ids": [list_id]})
    client.post("/api/v1/contacts", json={"email": "old@example.com"})
    data = b"email\nmember@example.com\nold@example.com\nnew@example.com\n"
    report = run_import(services, data, list_id=list_id)
    assert (report.created, report.unchanged) == (1, 2)
    assert client.get(f"/api/v1/lists/{list_id}").json()["contact_count"] == 3
    added = outbox("list.contact_added")
    assert sorted(m["data"]["email"] for m in added) == [
        "member@example.com",
        "new@example.com",
        "old@example.com",
    ]
    assert contact(client, "new@example.com")["list_ids"] == [list_id]
    [created_new] = [
        m for m in outbox("contact.created") if m["data"]["email"] == "new@example.com"
    ]
    assert created_new["data"]["list_ids"] == [list_id]


def test_small_batches_and_repeated_emails_apply_in_file_order(
    client: Any, services: Services, outbox: Outbox
) -> None:
    data = (
        b"email,plan\n"
        + b"".join(f"c{i}@example.com,p{i}\n".encode() for i in range(7))
        + b"c1@example.com,second\nc1@example.com,third\n"
    )
    report = run_import(services, data, batch_size=3)
    assert (report.created, report.updated) == (7, 2)
    assert contact(client, "c1@example.com")["attributes"] == {"PLAN": "third"}
    changes = [m["data"]["changes"]["PLAN"] for m in outbox("contact.updated")]
    assert sorted(changes, key=lambda c: c["new"]) == [
        {"old": "p1", "new": "second"},
        {"old": "second", "new": "third"},
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"name,plan\nada,pro\n", "no 'email' column"),
        (b"email,first name\nada@example.com,Ada\n", "first name"),
        (b"email,plan,PLAN\nada@example.com,a,b\n", "repeated"),
        (b"email,ext_id,EMAIL\nada@example.com,x,y\n", "reserved"),
        (b"email,caf\xe9\nada@example.com,x\n", "UTF-8"),
    ],
)
def test_unusable_files_are_refused_as_a_whole(
    services: Services, row_counts: RowCounts, data: bytes, message: str
) -> None:
    before = row_counts()
    with pytest.raises(ValidationFailed, match=message):
        run_import(services, data)
    assert row_counts() == before


def test_unknown_list_refuses_the_import(services: Services, row_counts: RowCounts) -> None:
    before = row_counts()
    with pytest.raises(NotFound):
        run_import(services, b"email\nada@example.com\n", list_id=4242)
    assert row_counts() == before


def hookhub(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}
    env.update(
        {
            "HOOKHUB_DATABASE_URL": db_url,
            "HOOKHUB_SECRET_KEY": SECRET_KEY,
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "hookhub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_import_prints_counts_and_rejections(
    client: Any, db_url: str, tmp_path: Path, outbox: Outbox
) -> None:
    list_id = client.post("/api/v1/lists", json={"name": "CLI"}).json()["id"]
    client.post("/api/v1/contacts", json={"email": "same@example.com", "attributes": {"P": "x"}})
    client.post("/api/v1/contacts", json={"email": "old@example.com", "attributes": {"P": "x"}})
    source = tmp_path / "contacts.csv"
    source.write_bytes(
        b"email,p\nnew@example.com,y\nsame@example.com,x\nold@example.com,z\nnope,x\n"
    )
    result = hookhub(db_url, "contacts", "import", str(source), "--list", str(list_id))
    assert result.returncode == 0, result.stderr
    assert "created: 1  updated: 1  unchanged: 1  rejected: 1" in result.stdout
    rejected_row = next(line for line in result.stdout.splitlines() if "not a valid email" in line)
    assert rejected_row.split()[1] == "5"
    assert client.get(f"/api/v1/lists/{list_id}").json()["contact_count"] == 3
    assert len(outbox("list.contact_added")) == 3
    assert len(outbox("contact.updated")) == 1


def test_cli_import_into_an_unknown_list_fails_with_exit_1(
    db_url: str, tmp_path: Path, services: Services
) -> None:
    source = tmp_path / "contacts.csv"
    source.write_bytes(b"email\nada@example.com\n")
    result = hookhub(db_url, "contacts", "import", str(source), "--list", "4242")
    assert result.returncode == 1
    assert "Import refused" in result.stderr
    with services.crm.reader() as crm:
        assert crm.contacts.count() == 0
