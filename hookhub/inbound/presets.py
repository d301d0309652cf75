"""The rules a new inbound webhook starts with, from its provider module (copied, so editable)."""

from __future__ import annotations

import copy
from typing import Any

from hookhub.inbound.providers import get_provider


def preset_rules(source: str) -> list[dict[str, Any]]:
    return copy.deepcopy(list(get_provider(source).preset_rules))
