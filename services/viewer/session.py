"""The viewer's server-side sessions: who is signed in, with which token, since when, and the
opaque references that stand for patients (and searches) in the session's addresses.

The browser holds only a random session id (an HttpOnly cookie); the token, the CSRF token and
the references stay here. No personal identifier is ever put in an address: a page links to
`/pasient/<reference>`, a random name this session gave the patient when it showed them; the
same reference in another session names nothing (404, as an unknown one).

A session ends after `idle_seconds` without a request by the user (background refreshes and
event streams do not count as activity, so an open page does not keep it alive), and at the
latest when its token expires or `max_seconds` after sign-in, whichever comes first.

Sessions live in the viewer process's memory: a restart signs everyone out, and several viewer
instances behind one address need sticky sessions at the proxy.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from shared.actors import Actor

#: Idle timeout when none is configured: a documented default, not a cited rule. No Norwegian
#: (Normen) figure was found for a web session's idle time; OWASP's Session Management Cheat
#: Sheet names 2–5 minutes for high-value and 15–30 for low-risk applications. 15 minutes
#: weighs a coordinator's working day against an unattended screen (an open page leaves for
#: the sign-in page by itself); a deployment may set it shorter (VIEWER_IDLE_TIMEOUT_SECONDS).
DEFAULT_IDLE_SECONDS = 15 * 60
#: A session never outlives a working day, nor the token it carries.
DEFAULT_MAX_SECONDS = 8 * 3600
#: Sessions kept at most; the least recently used goes first.
CAPACITY = 10_000


def new_secret() -> str:
    """A random name no one can guess (256 bits)."""
    return secrets.token_urlsafe(32)


@dataclass
class Session:
    """One sign-in: its kind (the cookie it lives in), the user and their token, the token
    every form of the session carries, and the references given out in its pages."""

    id: str
    cookie: str
    actor: Actor
    token: str
    csrf: str
    started: float
    expires: float
    last_active: float
    _refs: dict[str, Hashable] = field(default_factory=dict)
    _names: dict[Hashable, str] = field(default_factory=dict)

    def reference(self, value: Hashable) -> str:
        """This session's opaque name for `value` (the same name each time it is asked)."""
        name = self._names.get(value)
        if name is None:
            name = secrets.token_urlsafe(16)
            self._names[value] = name
            self._refs[name] = value
        return name

    def resolve(self, name: str) -> Hashable | None:
        """What this session's reference `name` stands for; None for any other name."""
        return self._refs.get(name)


class Sessions:
    """The sessions of one viewer process (thread-safe; the clock is wall time in seconds)."""

    def __init__(
        self,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        clock: Callable[[], float] = time.time,
        capacity: int = CAPACITY,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._capacity = capacity
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, cookie: str, actor: Actor, token: str, token_expires: float) -> Session:
        """A new session (a new id, never one the browser brought) for a verified token."""
        now = self._clock()
        session = Session(
            id=new_secret(),
            cookie=cookie,
            actor=actor,
            token=token,
            csrf=new_secret(),
            started=now,
            expires=min(now + self.max_seconds, token_expires),
            last_active=now,
        )
        with self._lock:
            # Least recently active first: drop those idle too long, and beyond the capacity.
            while self._sessions:
                oldest = next(iter(self._sessions.values()))
                if now - oldest.last_active < self.idle_seconds:
                    break
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
            while len(self._sessions) > self._capacity:
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str, activity: bool = True) -> Session | None:
        """The live session with this id, or None (unknown, idle too long, or past its end).
        `activity`: the user asked for this (a page, a form), so the idle time starts again;
        a background refresh or an event stream passes False."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now >= session.expires or now - session.last_active >= self.idle_seconds:
                del self._sessions[session_id]
                return None
            if activity:
                session.last_active = now
                self._sessions.move_to_end(session_id)
            return session

    def remaining(self, session: Session) -> float:
        """Seconds until the session ends unless the user does something."""
        end = min(session.expires, session.last_active + self.idle_seconds)
        return max(0.0, end - self._clock())

    def end(self, session_id: str) -> Session | None:
        """Sign out: the session is gone at once; returns it (its token) if it was live."""
        with self._lock:
            return self._sessions.pop(session_id, None)
