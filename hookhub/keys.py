"""API keys: creation, revocation and the check every ``/api/v1`` request goes through.

Keys are 256-bit random tokens, so a fast SHA-256 is the right hash (a slow password hash buys
nothing against a key that cannot be guessed). Each key has a scope (:class:`Scope`). Successful
checks are remembered for a few seconds so that a busy API does not query the key table on every
request; revocation takes effect at once in the process that revokes, and in every other process
as soon as it sees the keys' configuration version move (:meth:`ApiKeys.invalidate`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from hookhub import ids
from hookhub.core.origin import Origin
from hookhub.errors import Forbidden, NotFound, Unauthorized
from hookhub.store.apikeys import ApiKeyStore
from hookhub.store.database import Database

CACHE_SECONDS = 5.0


class Scope(StrEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = "read"  # GET only, and never a secret
    WRITE = "write"  # reads and changes, but no secret-revealing call and no key management
    ADMIN = "admin"  # everything

    def allows(self, required: Scope) -> bool:
        return _RANK[self] >= _RANK[required]


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: int
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The start of a key, stored so that people can tell keys apart in ``hookhub keys list``.

    At most 8 characters and never more than a quarter of the key: a short HOOKHUB_API_KEY
    must not end up stored whole.
    """
    return key[: min(8, len(key) // 4)]


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._valid: dict[str, tuple[float, Scope, Origin]] = {}
        self._revocations = 0
        self._lock = threading.Lock()

    def create(self, name: str, *, scope: Scope = Scope.WRITE) -> tuple[ApiKeyInfo, str]:
        key = ids.api_key()
        return self._store(name, key, scope), key

    def adopt(self, name: str, key: str) -> ApiKeyInfo | None:
        """Make ``key`` (from HOOKHUB_API_KEY) an admin key; None if it already was stored."""
        key = key.strip()  # as check() strips what clients send; a stray newline is no key
        with self.db.read() as conn:
            if ApiKeyStore(conn).find(hash_key(key)) is not None:
                return None
        return self._store(name, key, Scope.ADMIN)

    def _store(self, name: str, key: str, scope: Scope) -> ApiKeyInfo:
        now = datetime.now(UTC)
        with self.db.write() as conn:
            key_id = ApiKeyStore(conn).insert(
                name=name,
                prefix=key_prefix(key),
                key_hash=hash_key(key),
                scope=scope.value,
                now=now,
            )
        return ApiKeyInfo(
            id=key_id,
            name=name,
            prefix=key_prefix(key),
            scope=scope,
            created_at=now,
            revoked_at=None,
        )

    def list(self) -> list[ApiKeyInfo]:
        with self.db.read() as conn:
            rows = ApiKeyStore(conn).all()
        return [
            ApiKeyInfo(
                id=r.id,
                name=r.name,
                prefix=r.prefix,
                scope=Scope(r.scope),
                created_at=r.created_at,
                revoked_at=r.revoked_at,
            )
            for r in rows
        ]

    def has_any(self) -> bool:
        with self.db.read() as conn:
            return ApiKeyStore(conn).count_active() > 0

    def revoke(self, key_id: int) -> None:
        with self.db.write() as conn:
            if not ApiKeyStore(conn).revoke(key_id, datetime.now(UTC)):
                raise NotFound(f"No active API key {key_id}.")
        self.invalidate()

    def invalidate(self) -> None:
        """Forget every cached check: keys changed (here, or in another process)."""
        with self._lock:
            self._valid.clear()
            self._revocations += 1

    def check_cached(self, authorization: str | None) -> Scope | None:
        """The scope of a key checked within the last seconds (no database); None if not known."""
        found = self.check_key_cached(authorization)
        return None if found is None else found[0]

    def check(self, authorization: str | None) -> Scope:
        """The key's scope; raise Unauthorized unless the header is ``Bearer <active key>``."""
        return self.check_key(authorization)[0]

    def check_key_cached(self, authorization: str | None) -> tuple[Scope, Origin] | None:
        """:meth:`check_cached` with the key as the origin of what its requests cause."""
        digest = _digest(authorization)
        if digest is None:
            raise Unauthorized()
        with self._lock:
            cached = self._valid.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        return None

    def check_key(self, authorization: str | None) -> tuple[Scope, Origin]:
        """:meth:`check` with the key as the origin (``api``, its id and name)."""
        digest = _digest(authorization)
        if digest is None:
            raise Unauthorized()
        now = time.monotonic()
        with self._lock:
            cached = self._valid.get(digest)
            revocations = self._revocations
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        with self.db.read() as conn:
            row = ApiKeyStore(conn).find_active(digest)
        if row is None:
            raise Unauthorized("The API key is unknown or revoked.")
        scope = Scope(row.scope)
        origin = Origin("api", int(row.id), str(row.name))
        with self._lock:
            if self._revocations != revocations:
                # keys changed since the lookup: it may be this one, don't cache it
                return scope, origin
            if len(self._valid) > 10_000:
                self._valid.clear()
            self._valid[digest] = (now + CACHE_SECONDS, scope, origin)
        return scope, origin


def require(scope: Scope, required: Scope) -> None:
    """Raise :class:`Forbidden` unless a key of ``scope`` may do what needs ``required``."""
    if not scope.allows(required):
        raise Forbidden(
            f"This API key's scope is {scope.value}; this operation needs {required.value}.",
            details={"scope": scope.value, "required": required.value},
        )


def _digest(authorization: str | None) -> str | None:
    """The hash of the key in ``Bearer <key>``, or None when the header is not that."""
    if not authorization:
        return None
    scheme, _, key = authorization.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 512:
        return None
    return hash_key(key)
