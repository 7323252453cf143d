from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.auth.permissions import Role
from app.types import LongText, Name

USERNAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
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


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_after_idle_minutes: int
