"""Every preset renders every catalog example into its receiver's shape, and stays within the
receivers' limits when the data is huge."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from hookhub.core.catalog import CATALOG
from hookhub.outbound.outbox import build_message
from hookhub.outbound.presets import PRESETS, summary
from hookhub.outbound.transforms import TransformFailed, render, validate_transform
from tests.support.chat_shapes import check_discord, check_slack, check_teams

CHECKS = {"slack": check_slack, "discord": check_discord, "teams": check_teams}


def _message(event_type: str, **data: object) -> dict[str, object]:
    example = {**CATALOG[event_type].example, **data}
    built = build_message(event_type, example, datetime(2026, 1, 15, 9, 30, tzinfo=UTC))
    return dict(orjson.loads(built.payload))


@pytest.mark.parametrize("event_type", sorted(CATALOG))
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_renders_every_example(preset: str, event_type: str) -> None:
    body = orjson.loads(render({"preset": preset}, _message(event_type)))
    if preset in CHECKS:
        CHECKS[preset](body)
    if preset == "google_sheets":
        assert all(not isinstance(v, dict | list) for v in body.values())


@pytest.mark.parametrize("preset", ["slack", "discord", "teams"])
def test_huge_data_stays_within_the_limits(preset: str) -> None:
    wide = {f"field_{n}": "x" * 5000 for n in range(60)}
    message = _message("event.tracked", event_name="y" * 5000, **wide)
    CHECKS[preset](orjson.loads(render({"preset": preset}, message)))


def test_summary_reads_like_a_sentence() -> None:
    assert summary(_message("list.contact_added")) == (
        "list.contact_added · ada@example.com · joined Newsletter"
    )
    changed = summary(_message("contact.updated"))
    assert changed == "contact.updated · ada@example.com · changed FIRSTNAME"


def test_brevo_soft_bounce() -> None:
    body = orjson.loads(render({"preset": "brevo"}, _message("email.bounced", bounce_type="soft")))
    assert body["event"] == "soft_bounce"
    assert body["message-id"] == "311.k2v9@hookhub.example.com"
    assert body["ts"] == int(datetime(2026, 1, 15, 9, 30, tzinfo=UTC).timestamp())
    assert body["date"] == "2026-01-15 09:30:00"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ data.email }}", "did not render JSON"),
        ('{"a": {{ ("x" * 300000) | tojson }}}', "more than"),
        ("{{ ''.__class__ }}", "not allowed"),
    ],
)
def test_templates_failing_on_a_message(template: str, error: str) -> None:
    validate_transform({"template": template}, batched=False)
    with pytest.raises(TransformFailed, match=error):
        render({"template": template}, _message("contact.created"))
