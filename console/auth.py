"""Access control of the console: hashed passwords, a bearer token, roles and session cookies.

* Passwords are stored as ``scrypt$N$r$p$salt$hash`` (hashlib.scrypt) or
  ``pbkdf2_sha256$iterations$salt$hash``; comparisons are constant-time.
* Two roles: ``viewer`` (read-only) and ``operator`` (may upload clips).
* Sessions live in memory, keyed by a random id in an HttpOnly, SameSite=Strict
  cookie (Secure under TLS).  A token (``Authorization: Bearer ...``) serves
  scripts and patrol tools.
* Bound to loopback the console may run open (everyone is an operator); on any
  other address :func:`check_bind` refuses to start without users or a token.
* Failed logins are logged with the user name and client address, never the
  password; nothing here ever returns or logs a hash, a token or a session id.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Optional

from console.config import WebConfig, WebUser

log = logging.getLogger(__name__)

COOKIE = "imminence_session"
ROLES = ("viewer", "operator")
ENV_TOKEN = "IMMINENCE_WEB_TOKEN"
ENV_USERS = "IMMINENCE_WEB_USERS"  # "name:role:hash,name:role:hash"
_SCRYPT = (2**14, 8, 1)


class AuthError(RuntimeError):
    """Access control is misconfigured (e.g. an open console on a public address)."""


def hash_password(password: str, *, salt: Optional[bytes] = None) -> str:
    """A storable scrypt hash of ``password`` (random salt)."""
    if not password:
        raise ValueError("empty password")
    salt = salt or secrets.token_bytes(16)
    n, r, p = _SCRYPT
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash; False for any malformed hash."""
    try:
        kind, *parts = stored.split("$")
        if kind == "scrypt":
            n, r, p, salt, want = parts
            got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                                 p=int(p), dklen=len(bytes.fromhex(want)), maxmem=2**26)
        elif kind == "pbkdf2_sha256":
            iters, salt, want = parts
            got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), int(iters),
                                      dklen=len(bytes.fromhex(want)))
        else:
            return False
        return hmac.compare_digest(got, bytes.fromhex(want))
    except (ValueError, TypeError):
        return False


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the console on this machine."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Principal:
    """Who is making a request."""

    name: str
    role: str
    via: str  # "session" | "token" | "open"

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass
class _Session:
    name: str
    role: str
    expires: float


class Authenticator:
    """Users, token and sessions of one console process."""

    def __init__(self, cfg: WebConfig, env: Optional[dict[str, str]] = None) -> None:
        env = dict(os.environ) if env is None else env
        self.users: dict[str, WebUser] = {u.name: u for u in cfg.users}
        for spec in filter(None, (s.strip() for s in env.get(ENV_USERS, "").split(","))):
            try:
                name, role, hashed = spec.split(":", 2)
                self.users[name] = WebUser(name=name, role=role, password_hash=hashed)
            except ValueError:
                raise AuthError(f"{ENV_USERS}: each entry must be name:role:hash (role viewer or operator)") from None
        token = cfg.token.get_secret_value() if cfg.token is not None else env.get(ENV_TOKEN) or None
        self._token = token
        self.token_role = cfg.token_role
        self.session_s = cfg.session_hours * 3600.0
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self.failed_logins = 0
        self._failures: dict[str, list[float]] = {}  # client -> times of recent failed logins

    #: failed logins from one client within ``THROTTLE_WINDOW_S`` before it must wait
    THROTTLE_FAILURES = 5
    THROTTLE_WINDOW_S = 300.0

    def retry_after(self, client: str) -> float:
        """Seconds a client must wait before its next login attempt (0 when it may try now)."""
        now = time.time()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.THROTTLE_WINDOW_S]
            self._failures[client] = recent
        if len(recent) < self.THROTTLE_FAILURES:
            return 0.0
        return max(0.0, recent[-self.THROTTLE_FAILURES] + self.THROTTLE_WINDOW_S - now)

    @property
    def enabled(self) -> bool:
        """True when any user or a token is configured (then every API call needs one)."""
        return bool(self.users or self._token)

    def check_bind(self, host: str) -> None:
        """Refuse an open console on a non-loopback address."""
        if not self.enabled and not is_loopback(host):
            raise AuthError(
                f"refusing to serve on {host}: not a loopback address and no authentication configured "
                f"(add web.users with password hashes or set {ENV_TOKEN}); bind 127.0.0.1 to run open")

    # -- login ---------------------------------------------------------------------
    def login(self, name: str, password: str, client: str = "?") -> Optional[str]:
        """A new session id for valid credentials; None (and a log line without the password) otherwise."""
        user = self.users.get(name)
        ok = user is not None and verify_password(password, user.password_hash.get_secret_value())
        if user is None:
            # Spend the same time as a real check so timing does not reveal which names exist.
            verify_password(password, hash_password("x", salt=b"0" * 16))
        if not ok:
            self.failed_logins += 1
            with self._lock:
                self._failures.setdefault(client, []).append(time.time())
            log.warning("failed login for user %r from %s", name[:64], client)
            return None
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[sid] = _Session(user.name, user.role, time.time() + self.session_s)
        log.info("login of user %r (%s) from %s", user.name, user.role, client)
        return sid

    def logout(self, sid: Optional[str]) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(sid, None)

    def principal(self, cookie: Optional[str], authorization: Optional[str]) -> Optional[Principal]:
        """Who sends a request with this cookie / Authorization header; None when nobody valid."""
        if not self.enabled:
            return Principal("local", "operator", "open")
        if authorization and authorization.lower().startswith("bearer ") and self._token:
            if hmac.compare_digest(authorization[7:].strip().encode(), self._token.encode()):
                return Principal("token", self.token_role, "token")
        if cookie:
            with self._lock:
                s = self._sessions.get(cookie)
                if s is not None and s.expires < time.time():
                    del self._sessions[cookie]
                    s = None
            if s is not None:
                return Principal(s.name, s.role, "session")
        return None
