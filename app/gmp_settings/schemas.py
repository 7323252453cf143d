from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.approval import VersionStatus
from app.gmp_settings.groups import Group
from app.signatures.schemas import Password, SignaturePublic
from app.types import LongText

Value = str | int | float | bool


class GmpSettingPropose(BaseModel):
    """A new draft version of one group: the fields that change (the others are kept from the
    version in force, or the shipped default) and why (QC-3)."""

    model_config = ConfigDict(extra="forbid")

    group: Group
    values: Annotated[dict[Annotated[str, Field(max_length=64)], Value], Field(max_length=40)]
    reason: LongText


class GmpSettingApprove(BaseModel):
    """QA's approval: their password again (SIG-1) and the reason, which the signature carries."""

    model_config = ConfigDict(extra="forbid")

    password: Password
    reason: LongText


class GmpSettingPublic(BaseModel):
    id: int
    group: Group
    title: str
    version: int
    status: VersionStatus
    in_force: bool
    values: dict[str, Any]
    reason: str
    created_at: datetime
    created_by: str
    signatures: list[SignaturePublic]
