"""Message ids: Crockford base32 of a millisecond time and a random part, time-ordered and, in
one process, strictly increasing."""

from __future__ import annotations

import random

from hookhub import ids

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def reference(value: int, length: int) -> str:
    """Base32 the plain way, 5 bits at a time, most significant first."""
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(CROCKFORD[rem])
    return "".join(reversed(out))


def test_the_id_body_is_base32_of_the_time_then_the_random_part() -> None:
    rng = random.Random(7)
    cases = [(0, 0), (1, 1), ((1 << 48) - 1, (1 << 80) - 1), (1_767_225_600_000, 12345)]
    cases += [(rng.getrandbits(48), rng.getrandbits(80)) for _ in range(20_000)]
    for ms, rand in cases:
        assert ids._id_body(ms, rand) == reference(ms, 10) + reference(rand, 16), (ms, rand)


def test_message_ids_increase_within_one_millisecond_and_sort_by_time() -> None:
    same_ms = [ids.message_id(1_800_000_000.0) for _ in range(1000)]
    assert same_ms == sorted(same_ms)
    assert len(set(same_ms)) == len(same_ms)
    later = ids.message_id(1_800_000_001.0)
    assert later > same_ms[-1]
    assert all(len(i) == len("msg_") + 26 for i in [*same_ms, later])
    assert set(later[4:]) <= set(CROCKFORD)
