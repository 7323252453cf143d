"""Queries of GMP settings versions."""

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.approval import VersionStatus
from app.gmp_settings.groups import Group
from app.gmp_settings.models import GmpSetting


def versions(session: Session, group: Group | None = None) -> list[GmpSetting]:
    """Every version (of `group`), by group then newest first."""
    query = select(GmpSetting).order_by(col(GmpSetting.group_name), col(GmpSetting.version).desc())
    if group is not None:
        query = query.where(GmpSetting.group_name == group.value)
    return list(session.execute(query).scalars())


def latest_version(session: Session, group: Group) -> int:
    """The highest version number of `group` (0 when it has none)."""
    return session.execute(
        select(func.coalesce(func.max(GmpSetting.version), 0)).where(
            GmpSetting.group_name == group.value
        )
    ).scalar_one()


def approved(session: Session, group: Group) -> GmpSetting | None:
    """The version of `group` in force, if QA approved one."""
    return session.execute(
        select(GmpSetting).where(
            GmpSetting.group_name == group.value,
            GmpSetting.status == VersionStatus.APPROVED.value,
        )
    ).scalar_one_or_none()


def groups_with_versions(session: Session) -> set[str]:
    return set(session.execute(select(GmpSetting.group_name).distinct()).scalars())
