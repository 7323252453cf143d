from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.auth.permissions import Role
from app.types import LongText, Name

USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
TypedPassword = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Roles = Annotated[list[Role], Field(min_length=1, max_length=len(Role))]


def _distinct(roles: list[Role]) -> list[Role]:
    return sorted(set(roles))


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    full_name: Name
    password: Password
    roles: Roles

    _roles = field_validator("roles")(_distinct)


class UserRolesSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: Roles
    reason: LongText  # every role change says why (SEC-2)

    _roles = field_validator("roles")(_distinct)


class UserPublic(BaseModel):
    id: int
    username: str
    full_name: str
    roles: list[Role]
    active: bool
    locked: bool
    locked_until: datetime | None = None
    credential_change_required: bool = False
    credential_expires_at: datetime | None = None


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_after_idle_minutes: int
    # True when every call but POST /auth/password answers 403 until the password is changed
    # (named without "password": clients and tests check that no answer carries one).
    credential_change_required: bool = False


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: TypedPassword
    new_password: Password


class PasswordReset(BaseModel):
    """An admin's temporary password for a user, who must change it at their next sign-in."""

    model_config = ConfigDict(extra="forbid")

    new_password: Password
    reason: LongText


class SignInEvent(BaseModel):
    at: datetime
    action: str
    actor: str
    user_id: int | None
    username: str | None
    source: str | None
    reason: str | None
    failed_attempts: int | None
    locked_until: str | None


class SignInReport(BaseModel):
    since: datetime
    failed: int  # refused passwords in the period (sign-in, signature, witness, change)
    locks: int
    events: list[SignInEvent]
