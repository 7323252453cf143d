"""The accompanying document of a dose (LBL-6, ADR 0020) through the API: an A4 PDF with the
particulars the bag label leaves out, in local time; reading it logs nothing; a vessel that is
no dose has none."""

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.labels.product import TRIAL_PRODUCT
from tests.helpers import Api, error
from tests.labels.support import page_size_mm, page_text, pdf_pages


def _events(db: Session) -> int:
    return db.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_lbl6_the_accompanying_document_of_a_dose(api: Api, db: Session) -> None:
    _, doses = api.formulated(doses=2)
    api.as_role(Role.CLINICIAN)
    before = _events(db)
    response = api.get(Role.CLINICIAN, f"/vessels/{doses[1]}/label/accompanying")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    (page,) = pdf_pages(response.content)
    assert page_size_mm(page) == pytest.approx((210.0, 297.0), abs=0.1)
    text = " ".join(page_text(page).split())
    for fact in [
        doses[1],
        TRIAL_PRODUCT.excipients,
        TRIAL_PRODUCT.establishment_address,
        TRIAL_PRODUCT.trial_code,
        "FOR AUTOLOGOUS USE ONLY",
        "NOT EVALUATED FOR INFECTIOUS SUBSTANCES",
        "(DIN flags 02)",
    ]:
        assert fact in text, fact
    assert "UTC" not in text and ("CET" in text or "CEST" in text)
    assert _events(db) == before
    tube = api.batch()["tube_code"]  # a vessel in use that is no dose
    refused = api.get(Role.CLINICIAN, f"/vessels/{tube}/label/accompanying")
    assert "not a dose" in error(refused, 422, "invalid_request")
