"""QA's change-control page (QC-3): specification versions and GMP settings, each draft approved
with an e-signature; a new settings version proposed with a reason."""

from typing import Annotated, TypeVar

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.errors import InvalidRequest
from app.gmp_settings import service
from app.gmp_settings.groups import Group
from app.gmp_settings.schemas import GmpSettingApprove, GmpSettingPropose
from app.pipeline import Router, SessionDep
from app.signatures.schemas import Password, SignatureInput
from app.specifications import service as specifications
from app.types import Id, LongText
from app.web import page_require, render

router = Router(include_in_schema=False)

Manager = Annotated[Principal, Depends(page_require(Permission.SPECIFICATION_MANAGE))]
FIELD_PREFIX = "value."
T = TypeVar("T")


async def _changed_values(request: Request) -> dict[str, str]:
    """The fields of the proposal form (`value.<field>`) whose text is not empty."""
    form = await request.form()
    return {
        name.removeprefix(FIELD_PREFIX): value.strip()
        for name, value in form.items()
        if name.startswith(FIELD_PREFIX) and isinstance(value, str) and value.strip()
    }


def _valid(build: type[T], **fields: object) -> T:
    try:
        return build(**fields)
    except ValidationError as exc:
        raise InvalidRequest(f"The form is not valid: {exc.errors()[0]['msg']}.") from exc


@router.get("/qa/change-control", response_class=HTMLResponse)
def change_control(request: Request, session: SessionDep, principal: Manager) -> HTMLResponse:
    return render(
        request,
        "gmp_settings/change_control.html",
        principal=principal,
        specifications=specifications.list_public(session),
        settings_versions=service.list_public(session),
        groups=list(Group),
    )


@router.post("/qa/specifications/{specification_id}/approve")
def approve_specification(
    specification_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
    password: Annotated[Password, Form()],
    comment: Annotated[LongText | None, Form()] = None,
) -> RedirectResponse:
    data = _valid(SignatureInput, password=password, comment=comment)
    specifications.approve(
        session, settings, actor=principal.user, specification_id=specification_id, data=data
    )
    return RedirectResponse("/qa/change-control", status_code=303)


@router.post("/qa/gmp-settings")
def propose(
    session: SessionDep,
    principal: Manager,
    group: Annotated[Group, Form()],
    reason: Annotated[LongText, Form()],
    values: Annotated[dict[str, str], Depends(_changed_values)],
) -> RedirectResponse:
    data = _valid(GmpSettingPropose, group=group, values=values, reason=reason)
    service.propose(session, actor=principal.user, data=data)
    return RedirectResponse("/qa/change-control", status_code=303)


@router.post("/qa/gmp-settings/{setting_id}/approve")
def approve_setting(
    setting_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
    password: Annotated[Password, Form()],
    reason: Annotated[LongText, Form()],
) -> RedirectResponse:
    data = _valid(GmpSettingApprove, password=password, reason=reason)
    service.approve(session, settings, actor=principal.user, setting_id=setting_id, data=data)
    return RedirectResponse("/qa/change-control", status_code=303)
