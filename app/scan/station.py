"""The scan station's state in the browser: the working context (the batch every scan is checked
against), the last scans, and a STOP not yet acknowledged (ADR 0026).

Kept in one cookie signed with HMAC-SHA256 under a key derived from `Settings.secret_key`, bound
to the signed-in user: a forged or altered cookie, or another user's, reads as an empty station.
It names only internal ids and vessel codes, never a patient: the page derives the patient's
name, COI and batch number from the database on every request, so what is shown is never what a
cookie claims.
"""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

from fastapi import Request, Response

from app.config import Settings

COOKIE = "homeward_station"
# A shift: a station left overnight starts the next day with no working context.
MAX_AGE_S = 12 * 3600
RECENT = 10


class Verdict(StrEnum):
    """What a scan showed, in the words the station prints (never colour alone)."""

    HELD = "matches the working context"
    FOUND = "found (nothing checked)"
    NOT_USABLE = "NOT USABLE"
    STOP = "STOP: identity mismatch"
    REFUSED = "refused"


@dataclass(frozen=True)
class RecentScan:
    code: str
    verdict: Verdict
    at: int  # seconds since the epoch, UTC
    note: str = ""


@dataclass(frozen=True)
class Station:
    user_id: int
    batch_id: int | None = None
    recent: tuple[RecentScan, ...] = ()
    stop: str | None = None  # the code of a mismatch not yet acknowledged
    since: int = field(default_factory=lambda: int(time.time()))

    def with_scan(self, code: str, verdict: Verdict, note: str = "") -> "Station":
        entry = RecentScan(code=code[:40], verdict=verdict, at=int(time.time()), note=note[:80])
        return replace(self, recent=(entry, *self.recent)[:RECENT])


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.secret_key.encode(), b"homeward scan station", "sha256").digest()


def _sign(settings: Settings, payload: bytes) -> str:
    return hmac.new(_key(settings), payload, hashlib.sha256).hexdigest()


def encode(settings: Settings, station: Station) -> str:
    data = asdict(station)
    data["recent"] = [[r.code, r.verdict.name, r.at, r.note] for r in station.recent]
    payload = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
    return f"{payload.decode()}.{_sign(settings, payload)}"


def decode(settings: Settings, value: str | None, user_id: int) -> Station:
    """The station the cookie holds for this user; an empty one if it holds none, another
    user's, or anything not signed by this server."""
    empty = Station(user_id=user_id)
    if not value or "." not in value or len(value) > 4000:
        return empty
    payload, signature = value.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(settings, payload.encode())):
        return empty
    try:
        data = json.loads(base64.urlsafe_b64decode(payload))
        if data["user_id"] != user_id or time.time() - data["since"] > MAX_AGE_S:
            return empty
        return Station(
            user_id=user_id,
            batch_id=data["batch_id"],
            recent=tuple(
                RecentScan(code, Verdict[verdict], at, note)
                for code, verdict, at, note in data["recent"]
            ),
            stop=data["stop"],
            since=data["since"],
        )
    except (ValueError, KeyError, TypeError):
        return empty


def load(request: Request, user_id: int) -> Station:
    return decode(request.app.state.settings, request.cookies.get(COOKIE), user_id)


def store(request: Request, response: Response, station: Station) -> Response:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        COOKIE,
        encode(settings, station),
        max_age=MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.environment == "production" or request.url.scheme == "https",
    )
    return response
