"""Dashboard users: accounts (email, Argon2 password hash, role) and sign-in sessions.

Used by the dashboard (``hookhub.web.auth``) and the ``hookhub users`` commands. A session is a
random 256-bit token in the browser's cookie; the database keeps only its SHA-256 (a fast hash is
right for a token that cannot be guessed) and the session's CSRF token. Passwords are hashed with
Argon2; a sign-in for an unknown email still verifies against a dummy hash, so the answer takes
the same time whether or not the account exists. Never log a password or a session token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hookhub.core.contacts import normalize_email
from hookhub.errors import Conflict, NotFound, ValidationFailed
from hookhub.store.database import Database
from hookhub.store.sessions import SessionStore
from hookhub.store.users import UserStore

SESSION_LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=5)
"""last_seen_at is written at most this often (reading a page should not always write)."""
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class Role(StrEnum):
    ADMIN = "admin"  # sees and changes everything
    VIEWER = "viewer"  # sees everything, changes nothing


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: Role
    created_at: datetime | None = None
    disabled: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(
            f"The password needs at least {MIN_PASSWORD} characters.",
            details={"field": "password"},
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed("The password is too long.", details={"field": "password"})


def _user(row: Any) -> User:
    return User(
        id=int(row.id),
        email=str(row.email),
        role=Role(row.role),
        created_at=row.created_at,
        disabled=bool(row.disabled),
    )


class DashboardUsers:
    def __init__(self, db: Database, *, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    # -- accounts --------------------------------------------------------------------------

    def create(self, email: str, password: str, role: Role | str) -> User:
        address = normalize_email(email)
        check_password_rules(password)
        try:
            role = Role(role)
        except ValueError as exc:
            raise ValidationFailed("role must be admin or viewer.") from exc
        password_hash = self.hasher.hash(password)
        with self.db.write() as conn:
            store = UserStore(conn)
            if store.find_by_email(address) is not None:
                raise Conflict(f"A user with email {address} already exists.")
            user_id = store.insert(
                email=address, password_hash=password_hash, role=role.value, now=_now()
            )
            row = store.find(user_id)
        return _user(row)

    def list(self) -> list[User]:
        with self.db.read() as conn:
            return [_user(row) for row in UserStore(conn).all()]

    def get(self, user_id: int) -> User:
        with self.db.read() as conn:
            row = UserStore(conn).find(user_id)
        if row is None:
            raise NotFound(f"No user {user_id}.")
        return _user(row)

    def find_by_email(self, email: str) -> User | None:
        with self.db.read() as conn:
            row = UserStore(conn).find_by_email(email.strip().lower())
        return None if row is None else _user(row)

    def set_disabled(self, user_id: int, disabled: bool) -> User:
        """Disabling ends the user's sessions at once; the last enabled admin stays enabled."""
        with self.db.write() as conn:
            store = UserStore(conn)
            row = store.find(user_id)
            if row is None:
                raise NotFound(f"No user {user_id}.")
            last_admin = row.role == Role.ADMIN.value and not row.disabled
            if disabled and last_admin and store.count_active(Role.ADMIN.value) <= 1:
                raise Conflict("The last admin cannot be disabled.")
            store.set_disabled(user_id, disabled)
            return _user(store.find(user_id))

    def set_role(self, user_id: int, role: Role | str) -> User:
        try:
            role = Role(role)
        except ValueError as exc:
            raise ValidationFailed("role must be admin or viewer.") from exc
        with self.db.write() as conn:
            store = UserStore(conn)
            row = store.find(user_id)
            if row is None:
                raise NotFound(f"No user {user_id}.")
            demoted = role is Role.VIEWER and row.role == Role.ADMIN.value and not row.disabled
            if demoted and store.count_active(Role.ADMIN.value) <= 1:
                raise Conflict("The last admin cannot become a viewer.")
            store.set_role(user_id, role.value)
            return _user(store.find(user_id))

    # -- signing in ------------------------------------------------------------------------

    def authenticate(self, email: str, password: str) -> User | None:
        """The enabled user with this email and password, else None (in about the same time)."""
        address = email.strip().lower()
        with self.db.read() as conn:
            row = UserStore(conn).find_by_email(address) if address else None
        stored = str(row.password_hash) if row is not None else self._dummy()
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        if self.hasher.check_needs_rehash(stored):
            with self.db.write() as conn:
                UserStore(conn).set_password_hash(int(row.id), self.hasher.hash(password))
        return _user(row)

    def start_session(self, user: User) -> tuple[str, Session]:
        """A new session: (the token for the cookie, shown only here; the session)."""
        token = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        now = _now()
        expires = now + SESSION_LIFETIME
        with self.db.write() as conn:
            sessions = SessionStore(conn)
            sessions.delete_expired(now)
            sessions.insert(
                token_hash=hash_token(token),
                user_id=user.id,
                csrf_token=csrf_token,
                now=now,
                expires=expires,
            )
        return token, Session(user=user, csrf_token=csrf_token, expires_at=expires)

    def session(self, token: str) -> Session | None:
        """The live session of this cookie token (not expired, user enabled), else None."""
        if not token or len(token) > 200:
            return None
        now = _now()
        with self.db.read() as conn:
            row = SessionStore(conn).find_active(hash_token(token), now)
        if row is None:
            return None
        if now - row.last_seen_at > TOUCH_EVERY:
            with self.db.write() as conn:
                SessionStore(conn).touch(int(row.session_id), now)
        user = User(id=int(row.user_id), email=str(row.email), role=Role(row.role))
        return Session(user=user, csrf_token=str(row.csrf_token), expires_at=row.expires_at)

    def end_session(self, token: str) -> None:
        with self.db.write() as conn:
            SessionStore(conn).delete(hash_token(token))

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash


def _now() -> datetime:
    return datetime.now(UTC)
