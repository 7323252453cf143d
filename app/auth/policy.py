"""The password rules (SEC-3, 21 CFR 11.300(b)): strength, history and age. No writes here."""

from collections.abc import Iterable
from datetime import datetime, timedelta

from zxcvbn import zxcvbn

from app.auth import security
from app.auth.models import User
from app.clock import as_utc, utcnow
from app.config import Settings
from app.errors import WeakPassword

# zxcvbn's own bound on what it evaluates: a longer password is judged by its first characters,
# which a longer one only strengthens.
_EVALUATED = 72
_SCORES = ("very weak", "weak", "fair", "strong", "very strong")


def check_strength(settings: Settings, password: str, *, username: str, full_name: str) -> None:
    """422 `weak_password` unless `password` reaches the configured zxcvbn score, judged with
    the account's own username and name as words an attacker tries first."""
    if password.strip() == "" or password.casefold() == username.casefold():
        raise WeakPassword(
            "The password cannot be blank or the username itself; choose a few uncommon words."
        )
    inputs = [username, full_name, *full_name.split(), "homeward"]
    verdict = zxcvbn(password[:_EVALUATED], user_inputs=inputs)
    if verdict["score"] >= settings.password_min_score:
        return
    feedback = verdict["feedback"]
    hints = " ".join(part for part in [feedback["warning"], *feedback["suggestions"]] if part)
    raise WeakPassword(
        f"The password is too easy to guess ({_SCORES[verdict['score']]}; at least "
        f"{_SCORES[settings.password_min_score]} is required). {hints}".strip()
    )


def check_not_reused(
    settings: Settings, password: str, *, current_hash: str, previous: Iterable[str]
) -> None:
    """422 `weak_password` when `password` is the current one or one of the previous
    `password_history` ones (newest first in `previous`)."""
    if security.password_matches(settings, current_hash, password):
        raise WeakPassword("The new password must differ from the current one.")
    kept = list(previous)[: max(settings.password_history - 1, 0)]
    if any(security.password_matches(settings, old, password) for old in kept):
        raise WeakPassword(
            f"The new password was used recently; the last {settings.password_history} "
            "passwords cannot be chosen again."
        )


def expires_at(settings: Settings, user: User) -> datetime | None:
    """When `user`'s password must be changed by ageing, or None when passwords do not age."""
    if not settings.password_max_age_days:
        return None
    return as_utc(user.password_changed_at) + timedelta(days=settings.password_max_age_days)


def change_required(settings: Settings, user: User, now: datetime | None = None) -> str | None:
    """Why `user` must change their password before doing anything else, or None (SEC-3)."""
    if user.password_change_required:
        return (
            "You must choose your own password before anything else: this one was set by an "
            "administrator. Change it with POST /api/v1/auth/password or on the /password page."
        )
    expiry = expires_at(settings, user)
    if expiry is not None and expiry <= (now or utcnow()):
        return (
            f"Your password is older than {settings.password_max_age_days} days and must be "
            "changed before anything else (POST /api/v1/auth/password or the /password page)."
        )
    return None
