"""Scanning a dose's product label works wherever its QR code works (LBL-6, issue 13 §3): at the
scan station, at dispatch and receipt, at the bedside. The Data Matrix decoded from the label's
image resolves to that very dose (its DIN and container flags), so the label of another dose of
the same batch is that other dose, refused where it does not belong; a product label of no dose,
or the patient's COI symbol, is refused and recorded."""

from typing import Any
from urllib.parse import quote

from sqlmodel import Session

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.identity.codes import FlaggedDIN, ProductLabel, container_flags, parse_scan
from tests.clinic.test_bedside import check, custody, formulate, patient, release, verify
from tests.helpers import Api, audit_events, error, ok
from tests.labels.support import png_image, scan


def _product_symbol(api: Api, code: str) -> str:
    """The product Data Matrix of the dose's label, decoded from the printed image."""
    image = png_image(ok_bytes(api.get(Role.TECHNICIAN, f"/vessels/{code}/label?format=png")))
    (compound,) = [d for d in scan(image).datamatrix if d.startswith("=+")]
    return compound


def ok_bytes(response: Any) -> bytes:
    assert response.status_code == 200, response.text
    return response.content


def _released(api: Api) -> tuple[dict[str, Any], list[str], list[str]]:
    batch, doses = formulate(api, None, None)
    release(api, batch["id"])
    return batch, doses, [_product_symbol(api, code) for code in doses]


def test_lbl6_the_scan_station_resolves_each_product_label_to_its_own_dose(api: Api) -> None:
    batch, doses = formulate(api, None, None, None)
    symbols = [_product_symbol(api, code) for code in doses]
    assert len(set(symbols)) == 3
    for code, symbol in zip(doses, symbols, strict=True):
        for scanned in (symbol, f"]d2{symbol}\r\n"):
            found = ok(api.post(Role.TECHNICIAN, "/scan", {"code": scanned}))
            assert found["vessel"]["code"] == code
            assert (found["din"], found["coi"]) == (batch["din"], patient(api, batch)["coi"])
        expected = {"code": symbol, "expect": {"din": batch["din"], "batch_id": batch["id"]}}
        assert ok(api.post(Role.TECHNICIAN, "/scan", expected))["vessel"]["code"] == code


def test_lbl6_a_product_label_of_no_dose_or_the_coi_symbol_is_refused_and_recorded(
    api: Api, db: Session
) -> None:
    batch, doses = formulate(api, None, None)
    label = parse_scan(_product_symbol(api, doses[1]))
    assert isinstance(label, ProductLabel)
    third = ProductLabel(FlaggedDIN(label.din.din, container_flags(3)))  # a batch of two doses
    refused = api.post(Role.TECHNICIAN, "/scan", {"code": third.message})
    assert "No dose 3" in error(refused, 404, "not_found")
    coi_symbol = "&/" + patient(api, batch)["coi"][:-1]
    assert "names no dose" in error(
        api.post(Role.TECHNICIAN, "/scan", {"code": coi_symbol}), 422, "invalid_code"
    )
    unknown = audit_events(db, AuditAction.SCAN_UNKNOWN_CODE)
    invalid = audit_events(db, AuditAction.SCAN_INVALID_CODE)
    assert len(unknown) == 1 and len(invalid) == 1


def test_lbl6_dispatch_and_receipt_by_the_product_label(api: Api) -> None:
    """The other dose's label at receipt is the other dose, which was never dispatched."""
    _, doses, symbols = _released(api)
    first, second = (quote(s, safe="") for s in symbols)
    sent = ok(custody(api, first, "dispatched"), 201)
    assert sent["vessel_code"] == doses[0]
    refused = custody(api, second, "received")
    assert refused.status_code == 409 and doses[1] in refused.json()["detail"]
    received = ok(custody(api, first, "received"), 201)
    assert received["vessel_code"] == doses[0]
    history = ok(api.get(Role.CLINICIAN, f"/vessels/{doses[0]}/custody"))
    assert [e["event"] for e in history][-2:] == ["dispatched", "received"]
    assert ok(api.get(Role.CLINICIAN, f"/vessels/{doses[1]}/custody")) == []


def test_lbl6_the_bedside_check_by_the_product_label(api: Api) -> None:
    """The dose at the clinic verifies by its Data Matrix; its sibling's label is refused as the
    sibling (not at the clinic); the COI symbol is no dose at all."""
    batch, doses, symbols = _released(api)
    first = quote(symbols[0], safe="")
    ok(custody(api, first, "dispatched"), 201)
    ok(custody(api, first, "received"), 201)
    who = patient(api, batch)
    verified = ok(verify(api, check(who, symbols[0])))
    assert verified["ok"] and verified["dose_code"] == doses[0]
    refused = verify(api, check(who, symbols[1]))
    assert doses[1] in error(refused, 409, "not_at_clinic")
    coi_symbol = "&/" + who["coi"][:-1]
    error(verify(api, check(who, coi_symbol)), 422, "invalid_code")
