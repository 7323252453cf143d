"""QA's change-control page (QC-3): specification versions and GMP settings, each draft approved
with an e-signature; a new settings version proposed with a reason; a new specification version
drafted from the one in force (QC-1), e-signed by its author, a refused draft kept as typed."""

from functools import partial
from typing import Annotated, TypeVar

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from app import pageflow
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.config import SettingsDep
from app.errors import HomewardError, InvalidRequest
from app.gmp_settings import service
from app.gmp_settings import specification_form as spec_form
from app.gmp_settings.groups import Group
from app.gmp_settings.schemas import GmpSettingApprove, GmpSettingPropose
from app.pipeline import Router, SessionDep
from app.signatures.schemas import Password, SignatureInput
from app.specifications import service as specifications
from app.specifications.schemas import SpecificationCreate
from app.types import Id, LongText
from app.web import form_model, page_require, refusals_shown_on, render, render_refusable

router = Router(include_in_schema=False)

Manager = Annotated[Principal, Depends(page_require(Permission.SPECIFICATION_MANAGE))]
Author = Annotated[
    Principal,
    Depends(refusals_shown_on("gmp_settings/refused.html", Permission.SPECIFICATION_MANAGE)),
]
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


def draft_page(
    request: Request,
    session: Session,
    principal: Principal,
    rows: list[spec_form.Row] | None = None,
    *,
    note: str = "",
    comment: str = "",
    refusal: HomewardError | None = None,
) -> HTMLResponse:
    """The draft form: the rows as typed, or the tests of the version in force (the newest
    version while none is), with the refusal of the last attempt."""
    versions = specifications.list_public(session)
    base = next((v for v in versions if v.in_force), versions[0] if versions else None)
    return render_refusable(
        request,
        "gmp_settings/specification_draft.html",
        refusal,
        principal=principal,
        base=base,
        rows=rows if rows is not None else spec_form.rows_from(base),
        note=note,
        comment=comment,
    )


@router.get("/qa/specifications/new", response_class=HTMLResponse)
def new_specification(request: Request, session: SessionDep, principal: Author) -> HTMLResponse:
    return draft_page(request, session, principal)


@router.post("/qa/specifications", response_class=HTMLResponse)
async def draft_specification(
    request: Request, session: SessionDep, settings: SettingsDep, principal: Author
) -> Response:
    """A new version as POST /api/v1/specifications drafts it (QC-1, SIG-1); it then waits on
    change control for another QA user's approval (QC-3). A refusal keeps the form as typed."""
    signed_in = await pageflow.signed_in(session, principal)
    form = await request.form()
    rows = spec_form.rows_typed(form)
    note, comment = (str(form.get(name, "")).strip() for name in ("note", "comment"))

    def draft() -> int:
        data = form_model(
            SpecificationCreate,
            tests=spec_form.tests_of(rows),
            note=note or None,
            password=str(form.get("password", "")),
            comment=comment or None,
        )
        spec = specifications.create(session, settings, actor=signed_in.user, data=data)
        return spec.id or 0

    outcome = await pageflow.attempt(session, draft)
    if not isinstance(outcome, HomewardError):
        return RedirectResponse(f"/qa/change-control#specification-{outcome}", status_code=303)
    shown = getattr(request.state, "principal", signed_in)
    page = partial(
        draft_page, request, session, shown, rows, note=note, comment=comment, refusal=outcome
    )
    return await pageflow.read(session, page)
