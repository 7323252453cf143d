from collections.abc import Iterable
from typing import Annotated

from fastapi import Query, Response
from sqlmodel import Session

from app.audit import service
from app.audit.actions import EntityType
from app.audit.models import AuditEvent
from app.audit.schemas import AuditEventPublic, AuditFilter, VerificationPublic
from app.auth.deps import AuditReader
from app.auth.service import Principal
from app.pipeline import Router, SessionDep
from app.types import Id

router = Router(tags=["audit"])


def csv_response(rows: Iterable[AuditEvent], filename: str) -> Response:
    """A trail as a downloadable CSV file (AUD-5)."""
    return Response(
        service.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


Limit = Annotated[int, Query(ge=1, le=10_000)]
Offset = Annotated[int, Query(ge=0, le=2_000_000_000)]


@router.get("/audit", response_model=list[AuditEventPublic])
def list_events(
    session: SessionDep,
    principal: AuditReader,
    entity_type: EntityType | None = None,
    entity_id: Id | None = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> list[AuditEventPublic]:
    events = service.events(
        session,
        entity_type=entity_type,
        entity_id=entity_id,
        scope=service.scope_visible_to(principal.permissions),
        limit=limit,
        offset=offset,
    )
    return [AuditEventPublic.from_event(event) for event in events]


def export(session: Session, principal: Principal, found: AuditFilter) -> Response:
    """The events `found` selects, of the chains this reader may see, as a CSV download (the
    API's export and the audit page's)."""
    events = service.events(
        session,
        entity_type=found.entity_type,
        entity_id=found.entity_id,
        scope=service.scope_visible_to(principal.permissions),
        limit=None,
    )
    return csv_response(events, "audit.csv")


@router.get("/audit/export.csv", response_class=Response)
def export_events(
    session: SessionDep,
    principal: AuditReader,
    entity_type: EntityType | None = None,
    entity_id: Id | None = None,
) -> Response:
    return export(session, principal, AuditFilter(entity_type=entity_type, entity_id=entity_id))


@router.get("/audit/verify", response_model=VerificationPublic)
def verify(session: SessionDep, _: AuditReader) -> VerificationPublic:
    return VerificationPublic.of(service.verify_trail(session))
