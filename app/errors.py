"""The one error family: every refusal carries a machine code, an HTTP status and a sentence."""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from app.clock import as_utc, local

if TYPE_CHECKING:
    from typing import Self

    from sqlmodel import Session

API_ZONE = "UTC"  # the JSON API names instants in UTC (CONVENTIONS 11)


class _Instant:
    """One instant of a `Told` sentence on one zone's wall clock; `{name}` reads to the minute,
    `{name:s}` to the second, the zone named either way."""

    def __init__(self, at: datetime, zone: str) -> None:
        self.at, self.zone = at, zone

    def __format__(self, spec: str) -> str:
        seconds = ":%S" if spec == "s" else ""
        return local(self.at, self.zone).strftime(f"%Y-%m-%d %H:%M{seconds} %Z")


class Told(str):
    """A sentence naming instants: as a string it is the API's, in UTC; `told_in(zone)` is the
    same sentence as a page shows it, in the facility's local time with its zone (the `told`
    filter). `template` names each instant as a format field: `"ends {end}"`, `"at {at:s}"`."""

    template: str
    instants: dict[str, datetime]

    def __new__(cls, template: str, **instants: datetime) -> "Self":
        at = {name: as_utc(moment) for name, moment in instants.items()}
        told = super().__new__(cls, _fill(template, at, API_ZONE))
        told.template, told.instants = template, at
        return told

    def told_in(self, zone: str) -> str:
        return _fill(self.template, self.instants, zone)


def _fill(template: str, instants: dict[str, datetime], zone: str) -> str:
    return template.format(**{name: _Instant(at, zone) for name, at in instants.items()})


def told_in(sentence: str, zone: str) -> str:
    """`sentence` as a page shows it: a `Told` one in local time, any other as it is."""
    return sentence.told_in(zone) if isinstance(sentence, Told) else sentence


Aftermath = Callable[["Session"], None]


class HomewardError(Exception):
    """A refusal a person can understand. Services raise these, never HTTPException."""

    code: ClassVar[str] = "bad_request"
    status: ClassVar[int] = 400
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, detail: str, *, aftermath: Aftermath | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        # Written after the rollback, in its own transaction: the record of the refusal itself.
        self.aftermath = aftermath

    def told_in(self, zone: str) -> str:
        """The sentence as a page shows it, where times are local with their zone named
        (CONVENTIONS 11): the API's own, unless it names an instant (a `Told` detail)."""
        return told_in(self.detail, zone)


def chained(*aftermaths: Aftermath | None) -> Aftermath:
    """One aftermath running each of `aftermaths` in turn, in the one transaction."""

    def run(session: "Session") -> None:
        for aftermath in aftermaths:
            if aftermath is not None:
                aftermath(session)

    return run


class InvalidRequest(HomewardError):
    code, status = "invalid_request", 422


class InvalidCode(HomewardError):
    code, status = "invalid_code", 422


class NotAuthenticated(HomewardError):
    code, status = "not_authenticated", 401


class InvalidCredentials(HomewardError):
    code, status = "invalid_credentials", 401


class AccountLocked(HomewardError):
    code, status = "account_locked", 401


class Forbidden(HomewardError):
    code, status = "forbidden", 403


class PasswordChangeRequired(Forbidden):
    """A signed-in user who must choose a new password before anything else (SEC-3)."""

    code = "password_change_required"


class WeakPassword(HomewardError):
    """A new password the strength check or the history refuses (SEC-3)."""

    code, status = "weak_password", 422


class TooManyAttempts(HomewardError):
    """A source that failed to sign in too often lately: refused before any check (SEC-4)."""

    code, status = "too_many_attempts", 429
    headers = {"Retry-After": "60"}


class NotQualified(HomewardError):
    """A person acting without an unexpired qualification for the act (SEC-5)."""

    code, status = "not_qualified", 403


class NotFound(HomewardError):
    code, status = "not_found", 404


class Conflict(HomewardError):
    code, status = "conflict", 409


class DuplicateMRN(Conflict):
    code = "duplicate_mrn"


class DuplicateUsername(Conflict):
    code = "duplicate_username"


class AlreadyRegistered(Conflict):
    code = "already_registered"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class ExpiredLot(Conflict):
    code = "expired_lot"


class EquipmentOutOfService(Conflict):
    code = "equipment_out_of_service"


class EquipmentOverdue(Conflict):
    """Equipment whose calibration or qualification is overdue or not on record (SEC-5)."""

    code = "equipment_overdue"


class LotNotReleased(Conflict):
    """A material lot QC has not released (quarantined or rejected; SEC-5)."""

    code = "lot_not_released"


class PositionTaken(Conflict):
    code = "position_taken"


class CultureLimit(Conflict):
    code = "culture_limit"


class ResultExists(Conflict):
    code = "result_exists"


class NothingToAccept(Conflict):
    """A physician's acceptance with no conditional release and no failing result to cover."""

    code = "nothing_to_accept"


class SignatureMismatch(Conflict):
    """A dose whose batch's release signature no longer matches the record it signed (SIG-6)."""

    code = "signature_mismatch"


class GateNotMet(Conflict):
    """A release decision whose conditions (REL-1, REL-2) do not hold."""

    code = "gate_not_met"


class IncompatibleRoles(HomewardError):
    """A role set that breaks separation of duties (SEC-2): admin with qa or clinician."""

    code, status = "incompatible_roles", 422


class UnknownTest(HomewardError):
    code, status = "unknown_test", 422


class NotReleased(HomewardError):
    code, status = "not_released", 409


class AlreadyInfused(HomewardError):
    code, status = "already_infused", 409


class NotAtClinic(HomewardError):
    code, status = "not_at_clinic", 409


class Expired(HomewardError):
    """Something past its expiry: the API's sentence names the instant in UTC (CONVENTIONS 11),
    a page's in the facility's local time with its zone (a `Told` detail), the same instant."""

    code, status = "expired", 409

    def __init__(self, what: str, at: datetime, *, aftermath: Aftermath | None = None) -> None:
        self.what, self.at = what, as_utc(at)
        escaped = what.replace("{", "{{").replace("}", "}}")
        super().__init__(Told(f"{escaped} expired at {{at}}.", at=at), aftermath=aftermath)


class OutOfOrder(HomewardError):
    """A dated record earlier than what it follows (AUD-6)."""

    code, status = "out_of_order", 409


class LateEntryReasonRequired(HomewardError):
    """A time older than the late-entry skew sent without a reason (AUD-6, Annex 11 §9)."""

    code, status = "late_entry_reason_required", 422


class IdentityMismatch(HomewardError):
    code, status = "identity_mismatch", 409


class InvalidState(HomewardError):
    code, status = "invalid_state", 409


class ReprintReasonRequired(HomewardError):
    """A label printed again without saying why (LBL-5)."""

    code, status = "reprint_reason_required", 422


class Busy(HomewardError):
    """The server could not start or finish the request within its wait bound (a lock, a pool
    connection or a worker slot): nothing was changed, and the client may retry."""

    code, status = "busy", 503
    headers = {"Retry-After": "1"}


class PayloadTooLarge(HomewardError):
    code, status = "payload_too_large", 413


class NoApprovedSpecification(HomewardError):
    """No specification version is approved by QA yet (QC-3): nothing to test a new batch on."""

    code, status = "no_approved_specification", 409


class NotDraft(HomewardError):
    """Only a draft can be approved; an approved or superseded version stays as it is (QC-3)."""

    code, status = "not_draft", 409


class OosSupplyNotRecorded(Conflict):
    """A dose of an out-of-specification batch dispatched before the treating physician's
    justification and the sponsor and authority notifications are recorded (REL-7)."""

    code = "oos_supply_not_recorded"


class PeriodNotOver(Conflict):
    """An audit-trail review of a period that has not ended yet (AUD-8)."""

    code = "period_not_over"


class AlreadyReviewed(Conflict):
    """An audit-trail review of a period another review already covers (AUD-8)."""

    code = "already_reviewed"
