from typing import Annotated, Any

from fastapi import Depends

from app.auth.deps import require
from app.auth.permissions import Permission
from app.auth.service import Principal
from app.notifications import service as notifications
from app.pipeline import Router, SessionDep

router = Router(tags=["notifications"])

WebhookReader = Annotated[Principal, Depends(require(Permission.WEBHOOKS_READ))]


@router.get("/webhooks/deliveries")
def webhook_deliveries(session: SessionDep, _: WebhookReader) -> list[dict[str, Any]]:
    """The delivery log of outbound notifications, newest first, with every attempt."""
    return notifications.deliveries(session)
