"""GMP settings under change control (QC-3, ADR 0022): versioned records QA approves with an
e-signature and a reason; code that decides a GMP outcome reads the version in force through one
function per group (`dose_range`, `transport_temperatures`, `culture_limits`,
`infusion_protocol`, `label_product`)."""

import json
from contextlib import suppress
from typing import Any

from sqlmodel import Session

from app import approval
from app.approval import VersionStatus
from app.audit import service as audit
from app.audit.actions import AuditAction, EntityType
from app.auth import service as auth
from app.auth.models import User
from app.config import Settings
from app.db import add_unique
from app.errors import Conflict, NotFound
from app.gmp_settings import repository
from app.gmp_settings.groups import (
    DEFAULTS,
    TITLES,
    CultureLimits,
    DoseRange,
    Group,
    InfusionProtocol,
    LabelProduct,
    QualificationGating,
    TransportTemperatures,
    as_values,
    validate,
)
from app.gmp_settings.models import GmpSetting
from app.gmp_settings.schemas import GmpSettingApprove, GmpSettingPropose, GmpSettingPublic
from app.signatures import service as signatures
from app.signatures.schemas import SignedRecord

SHIPPED_REASON = "Shipped default (a starting point, not clinical advice)"
SYSTEM_AUTHOR = "system (shipped default)"


def values_of(setting: GmpSetting) -> dict[str, Any]:
    return json.loads(setting.content)


def content(setting: GmpSetting) -> dict[str, Any]:
    """The canonical content of a version: what its signature covers (SIG-3). The status is not
    part of it: superseding a version does not break its approval."""
    return {
        "record": "gmp_setting",
        "id": setting.id,
        "group": setting.group_name,
        "version": setting.version,
        "values": values_of(setting),
        "reason": setting.reason,
    }


def _insert(
    session: Session, *, actor: User | str, group: Group, values: Any, reason: str
) -> GmpSetting:
    version = repository.latest_version(session, group) + 1
    setting = GmpSetting(
        group_name=group.value,
        version=version,
        status=VersionStatus.DRAFT.value,
        content=json.dumps(as_values(values), sort_keys=True),
        reason=reason,
        created_by=actor.id if isinstance(actor, User) else None,
    )
    add_unique(
        session,
        setting,
        Conflict(f"Version {version} of {group.value} was just proposed by someone else; reload."),
    )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.GMP_SETTING_PROPOSED,
        entity_type=EntityType.GMP_SETTING,
        entity_id=setting.id,
        new=content(setting),
        reason=reason,
        coi=None,
    )
    return setting


def install_defaults(session: Session) -> None:
    """The shipped defaults of every group that has no version yet, each a draft for QA to
    approve (audited as created by the system)."""
    present = repository.groups_with_versions(session)
    for group in Group:
        if group.value in present:
            continue
        # Another transaction installing it at the same moment wins: theirs stands.
        with suppress(Conflict):
            _insert(
                session, actor="system", group=group, values=DEFAULTS[group], reason=SHIPPED_REASON
            )


def current(session: Session, group: Group) -> Any:
    """The values of `group` in force: the version QA approved last, else the shipped default
    (validated with the software release, shown on the change-control page as not yet approved
    by the site: ADR 0022). A proposal is never in force before its approval."""
    setting = repository.approved(session, group)
    return DEFAULTS[group] if setting is None else validate(group, values_of(setting))


def dose_range(session: Session) -> DoseRange:
    return current(session, Group.DOSE_RANGE)


def transport_temperatures(session: Session) -> TransportTemperatures:
    return current(session, Group.TRANSPORT_TEMPERATURES)


def culture_limits(session: Session) -> CultureLimits:
    return current(session, Group.CULTURE_LIMITS)


def infusion_protocol(session: Session) -> InfusionProtocol:
    return current(session, Group.INFUSION_PROTOCOL)


def label_product(session: Session) -> LabelProduct:
    return current(session, Group.LABEL_PRODUCT)


def qualification_gating(session: Session) -> QualificationGating:
    return current(session, Group.QUALIFICATION_GATING)


def propose(session: Session, *, actor: User, data: GmpSettingPropose) -> GmpSetting:
    """A new draft of one group: the version in force (or the shipped default) with the given
    fields changed, validated as a whole; in force only once QA approves it."""
    base = as_values(current(session, data.group))
    values = validate(data.group, base | data.values)  # an unknown field is a 422 too
    return _insert(session, actor=actor, group=data.group, values=values, reason=data.reason)


def approve(
    session: Session, settings: Settings, *, actor: User, setting_id: int, data: GmpSettingApprove
) -> GmpSetting:
    """Put a draft in force, e-signed `approved` with the reason by a QA user who did not propose
    it, superseding the version in force; audited."""
    found = session.get(GmpSetting, setting_id)
    if found is None:
        raise NotFound(f"No GMP settings version has id {setting_id}.")
    return approval.approve(
        session,
        settings,
        model=GmpSetting,
        family=GmpSetting.group_name == found.group_name,  # type: ignore[arg-type]
        record_id=setting_id,
        actor=actor,
        password=data.password,
        comment=data.reason,
        record_type=SignedRecord.GMP_SETTING,
        entity_type=EntityType.GMP_SETTING,
        approved=AuditAction.GMP_SETTING_APPROVED,
        superseded=AuditAction.GMP_SETTING_SUPERSEDED,
        label=f"GMP settings '{found.group_name}'",
        content=content,
    )


def list_public(
    session: Session, *, group: Group | None = None, only: int | None = None
) -> list[GmpSettingPublic]:
    """Every version (of `group`, or the one with id `only`), by group then newest first, in a
    fixed number of queries. The shipped defaults are installed (as drafts) on first read."""
    install_defaults(session)
    rows = repository.versions(session, group)
    if only is not None:
        rows = [row for row in rows if row.id == only]
        if not rows:
            raise NotFound(f"No GMP settings version has id {only}.")
    ids = [row.id or 0 for row in rows]
    signed = signatures.of_records(session, SignedRecord.GMP_SETTING, ids)
    authors = auth.usernames(session, [row.created_by for row in rows])
    return [
        GmpSettingPublic(
            id=row.id or 0,
            group=Group(row.group_name),
            title=TITLES[Group(row.group_name)],
            version=row.version,
            status=VersionStatus(row.status),
            in_force=row.status == VersionStatus.APPROVED,
            values=values_of(row),
            reason=row.reason,
            created_at=row.created_at,
            created_by=authors.get(row.created_by or 0, SYSTEM_AUTHOR),
            signatures=[signatures.public(s, content(row)) for s in signed[row.id or 0]],
        )
        for row in rows
    ]
