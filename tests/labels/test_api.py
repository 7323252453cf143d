"""Labels through the HTTP API (issue 5): what a person prints scans back to the vessel's code
(COI-4) and says what LBL-1/LBL-2 ask, at real sizes in every format (LBL-3); every print is
logged and audited, reprints marked, labels voided and reconciled per batch (LBL-4)."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from httpx import Response
from PIL import ImageChops
from sqlalchemy import func, select
from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.identity.codes import DIN, VesselCode, parse_vessel_code
from app.labels.layout import AUTOLOGOUS
from app.labels.models import LabelPrint
from tests.helpers import Api, audit_events, error, iso, ok
from tests.labels.support import (
    DOSE_MM,
    VESSEL_MM,
    dots,
    page_image,
    page_size_mm,
    page_text,
    parse_svg,
    pdf_pages,
    png_image,
    scan,
    svg_image,
    zpl_jobs,
)

FAMILY, GIVEN = "Müller-Łukasiewicz", "Zoë"
BORN = "1987-02-03"
# Given with a +02:00 offset: the label must show it in UTC (a late hour: another date at +02:00).
EXPIRES = (datetime.now(UTC) + timedelta(days=3)).replace(
    hour=23, minute=45, second=0, microsecond=0
)
EXP_TEXT = EXPIRES.strftime("EXP %Y-%m-%d 23:45 UTC")


@dataclass
class Batch:
    """A formulated batch (7 vessels: biopsy tube, flask, 2 flasks, harvest tube, 2 dose bags)."""

    id: int
    din: str
    din_check: str
    coi: str
    patient: dict[str, Any]
    vessels: list[dict[str, Any]]  # in sequence (code) order

    @property
    def codes(self) -> list[str]:
        return [v["code"] for v in self.vessels]

    @property
    def doses(self) -> list[dict[str, Any]]:
        return [v for v in self.vessels if v["is_dose"]]

    def vessel(self, kind: str) -> dict[str, Any]:
        return next(v for v in self.vessels if v["kind"] == kind)


def _vessels(api: Api, batch_id: int) -> list[dict[str, Any]]:
    body = ok(api.get(Role.TECHNICIAN, f"/batches/{batch_id}"))
    return sorted(body["vessels"], key=lambda v: v["code"])


def _formulated(api: Api) -> Batch:
    patient = api.patient(family_name=FAMILY, given_name=GIVEN, birth_date=BORN)
    batch, flasks = api.expanded_batch(patient["id"])
    harvest = ok(api.step(batch["id"], "harvest", flasks, ["tube"]), 201)
    tube = harvest["outputs"][0]["code"]
    plus_two = EXPIRES.astimezone(timezone(timedelta(hours=2)))
    doses = [
        api.dose(expires_at=iso(plus_two)),
        api.dose(expires_at=iso(plus_two), cell_count=120_500_000, volume_ml=12.5),
    ]
    ok(api.step(batch["id"], "formulation", [tube], doses), 201)
    vessels = _vessels(api, batch["id"])
    assert len(vessels) == 7 and sum(v["is_dose"] for v in vessels) == 2
    return Batch(batch["id"], batch["din"], batch["din_check"], batch["coi"], patient, vessels)


@pytest.fixture
def batch(api: Api) -> Batch:
    return _formulated(api)


def _label(api: Api, code: str, role: Role = Role.TECHNICIAN, **params: Any) -> Response:
    response = api.get(role, f"/vessels/{code}/label", params=params)
    assert response.status_code == 200, response.text
    return response


def _history(api: Api, code: str) -> list[dict[str, Any]]:
    return ok(api.get(Role.TECHNICIAN, f"/vessels/{code}/labels"))


def _reconciliation(api: Api, batch_id: int) -> dict[str, Any]:
    return ok(api.get(Role.QA, f"/batches/{batch_id}/labels/reconciliation"))


def _counts(db: Session) -> tuple[int, int]:
    """Rows a refused request must not add: label prints and audit events."""
    return (
        db.execute(select(func.count()).select_from(LabelPrint)).scalar_one(),
        db.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    )


def _kind_line(vessel: dict[str, Any]) -> str:
    return f"{vessel['kind'].replace('_', ' ')} · P{vessel['passage']}"


# -- COI-4, LBL-1, LBL-2: what is printed scans back exactly ------------------------------------


@pytest.mark.parametrize("dpi", [203, 300])
def test_coi4_png_labels_scan_back_to_the_vessel_code(api: Api, batch: Batch, dpi: int) -> None:
    for vessel in batch.vessels:
        response = _label(api, vessel["code"], format="png", dpi=dpi)
        assert response.headers["content-type"] == "image/png"
        image = png_image(response.content)
        size = DOSE_MM if vessel["is_dose"] else VESSEL_MM
        assert image.size == (round(dots(size[0], dpi)), round(dots(size[1], dpi)))
        found = scan(image)
        assert len(found.qr) == 1
        parsed = parse_vessel_code(found.qr[0])
        assert parsed.value == found.qr[0] == vessel["code"]
        assert parsed.din.value == batch.din
        expected_dm = [f"={batch.din}00"] if vessel["is_dose"] else []
        assert found.datamatrix == expected_dm


def test_coi4_scanner_noise_in_the_path_prints_the_canonical_label(api: Api) -> None:
    created = api.batch()
    code = created["tube_code"]
    noisy = quote(f" {code[:6].lower()} {code[6:]}\t", safe="")
    response = _label(api, noisy, format="png", dpi=203)
    assert scan(png_image(response.content)).qr == [code]
    assert [h["vessel_code"] for h in _history(api, code)] == [code]


@pytest.mark.parametrize(
    "options",
    [{"dpi": 96, "zoom": 1.37}, {"dpi": 300, "width": 433}, {"dpi": 203}],
    ids=["zoom-1.37", "width-433px", "203dpi"],
)
def test_lbl1_svg_labels_scan_back_at_any_scale(
    api: Api, batch: Batch, options: dict[str, float]
) -> None:
    for vessel in (batch.vessel("flask"), batch.doses[0]):
        response = _label(api, vessel["code"], format="svg")
        assert response.headers["content-type"].startswith("image/svg+xml")
        found = scan(svg_image(response.text, **options))
        assert found.qr == [vessel["code"]]
        expected_dm = [f"={batch.din}00"] if vessel["is_dose"] else []
        assert found.datamatrix == expected_dm


def test_lbl1_lbl2_svg_says_what_the_records_say(api: Api, batch: Batch) -> None:
    patient = batch.patient
    for vessel in batch.vessels:
        # every vessel has its label from creation: the record links to it
        assert vessel["label_url"] == f"/api/v1/vessels/{vessel['code']}/label"
        label = parse_svg(_label(api, vessel["code"]).text)
        strings = label.strings()
        joined = "\n".join(strings)
        # the code, eye-readable, a slash through each of its zeros
        code = label.text(vessel["code"])
        zeros = [i for i, c in enumerate(vessel["code"]) if c == "0"]
        assert zeros and label.slashes_in(code) == zeros
        # DIN with its check character boxed
        assert "DIN " in strings
        din = label.text(batch.din)
        check = next(t for t in label.texts if t.y == din.y and t.x > din.x)
        assert check.text == batch.din_check == DIN(batch.din).check
        assert len(label.boxes_around(check)) == 1
        made_on = vessel["created_at"][:10]
        assert f"P{vessel['passage']}" in joined and made_on in joined
        assert "REPRINT" not in strings
        if not vessel["is_dose"]:
            assert (label.width, label.height) == ("50mm", "25mm")
            assert _kind_line(vessel) in strings
            assert AUTOLOGOUS not in strings and patient["mrn"] not in joined
            continue
        assert (label.width, label.height) == ("100mm", "50mm")
        assert "FOR AUTOLOGOUS USE ONLY" in strings
        assert f"{FAMILY.upper()}, {GIVEN}" in strings  # MÜLLER-ŁUKASIEWICZ, Zoë
        assert BORN in joined and patient["mrn"] in joined
        assert patient["coi"] == batch.coi and batch.coi in strings
        assert EXP_TEXT in strings
        assert f"{vessel['cell_count']:,} viable cells · {vessel['volume_ml']:g} mL" in strings
        assert f"{vessel['kind']} · P{vessel['passage']} · {made_on}" in strings


def test_lbl2_dose_facts_on_the_label_follow_each_dose(api: Api, batch: Batch) -> None:
    first, second = (parse_svg(_label(api, d["code"]).text).strings() for d in batch.doses)
    assert "150,000,000 viable cells · 50 mL" in first
    assert "120,500,000 viable cells · 12.5 mL" in second


# -- LBL-3: batch sheets and ZPL --------------------------------------------------------------


def test_lbl3_batch_pdf_roll_one_label_a_page_at_real_size(api: Api, batch: Batch) -> None:
    response = api.get(Role.TECHNICIAN, f"/batches/{batch.id}/labels", params={"layout": "roll"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert len(response.headers["X-Label-Ids"].split(",")) == 7
    document = pdf_pages(response.content)
    assert len(document) == len(batch.vessels)
    for page, vessel in zip(document, batch.vessels, strict=True):
        size = DOSE_MM if vessel["is_dose"] else VESSEL_MM
        assert page_size_mm(page) == pytest.approx(size, abs=0.05)
        found = scan(page_image(page, 200))
        assert found.qr == [vessel["code"]]
        assert found.datamatrix == ([f"={batch.din}00"] if vessel["is_dose"] else [])
        text = page_text(page)
        assert vessel["code"] in text
        assert f"DIN {batch.din}" in text and batch.din_check in text
        assert f"P{vessel['passage']}" in text and vessel["created_at"][:10] in text
        assert "REPRINT" not in text
        if vessel["is_dose"]:
            for fact in [
                AUTOLOGOUS,
                f"{FAMILY.upper()}, {GIVEN}",
                BORN,
                batch.patient["mrn"],
                batch.coi,
                EXP_TEXT,
                f"{vessel['cell_count']:,} viable cells",
                f"{vessel['volume_ml']:g} mL",
            ]:
                assert fact in text, (fact, text)
        else:
            assert _kind_line(vessel) in text


def test_lbl3_batch_pdf_a4_sheet_holds_every_vessel(api: Api, batch: Batch) -> None:
    response = api.get(Role.CLINICIAN, f"/batches/{batch.id}/labels", params={"layout": "a4"})
    assert response.status_code == 200, response.text
    document = pdf_pages(response.content)
    assert len(document) == 2  # the five vessel labels, then the two doses on a page of their own
    qr: list[str] = []
    datamatrix: list[str] = []
    for page in document:
        assert page_size_mm(page) == pytest.approx((210.0, 297.0), abs=0.1)
        found = scan(page_image(page, 200))
        qr += found.qr
        datamatrix += found.datamatrix
    assert sorted(qr) == batch.codes
    assert datamatrix == [f"={batch.din}00"] * 2
    assert batch.patient["mrn"] in page_text(document[1])


def test_lbl3_batch_live_labels_leave_out_consumed_vessels(api: Api, batch: Batch) -> None:
    response = api.get(Role.TECHNICIAN, f"/batches/{batch.id}/labels", params={"live": "true"})
    assert response.status_code == 200, response.text
    document = pdf_pages(response.content)
    assert [scan(page_image(page, 200)).qr for page in document] == [
        [d["code"]] for d in batch.doses
    ]
    consumed = batch.vessel("biopsy_tube")["code"]
    assert _history(api, consumed) == []


@pytest.mark.parametrize("dpi", [203, 300])
def test_lbl3_zpl_vessel_and_dose_labels(api: Api, batch: Batch, dpi: int) -> None:
    for vessel in (batch.vessel("flask"), batch.doses[0]):
        response = _label(api, vessel["code"], format="zpl", dpi=dpi)
        assert response.headers["content-type"].startswith("application/zpl")
        assert response.text.startswith("^XA") and response.text.rstrip().endswith("^XZ")
        (job,) = zpl_jobs(response.text)
        width, height = DOSE_MM if vessel["is_dose"] else VESSEL_MM
        assert job.width == pytest.approx(dots(width, dpi), abs=1)
        assert job.length == pytest.approx(dots(height, dpi), abs=1)
        assert [data for _, data in job.qr] == [f"MA,{vessel['code']}"]
        assert vessel["code"] in job.texts and batch.din in job.texts
        assert batch.din_check in job.texts
        if vessel["is_dose"]:
            assert [data for _, data in job.datamatrix] == [f"={batch.din}00"]
            joined = "\n".join(job.texts)
            for fact in [
                AUTOLOGOUS,
                f"{FAMILY.upper()}, {GIVEN}",
                BORN,
                batch.patient["mrn"],
                batch.coi,
                EXP_TEXT,
            ]:
                assert fact in joined, fact
        else:
            assert job.datamatrix == []
            assert _kind_line(vessel) in job.texts
        (logged,) = _history(api, vessel["code"])
        assert (logged["format"], logged["dpi"]) == ("zpl", dpi)


def test_lbl3_default_and_high_resolutions(api: Api, batch: Batch) -> None:
    """ZPL defaults to a 203 dpi printer, PNG to 300 dpi; 600 dpi is offered too."""
    code = batch.codes[0]
    (job,) = zpl_jobs(_label(api, code, format="zpl").text)
    assert (job.width, job.length) == (round(dots(50, 203)), round(dots(25, 203)))
    image = png_image(_label(api, code, format="png").content)
    assert image.size == (round(dots(50, 300)), round(dots(25, 300)))
    fine = png_image(_label(api, code, format="png", dpi=600).content)
    assert fine.size == (round(dots(50, 600)), round(dots(25, 600)))
    assert scan(fine).qr == [code]
    (job,) = zpl_jobs(_label(api, code, format="zpl", dpi=600).text)
    assert job.width == round(dots(50, 600))
    history = _history(api, code)
    assert [(h["format"], h["dpi"]) for h in history] == [
        ("zpl", 203),
        ("png", 300),
        ("png", 600),
        ("zpl", 600),
    ]


def test_lbl3_batch_zpl_one_label_per_vessel(api: Api, batch: Batch) -> None:
    response = api.get(
        Role.TECHNICIAN, f"/batches/{batch.id}/labels", params={"format": "zpl", "dpi": 300}
    )
    assert response.status_code == 200, response.text
    assert response.text.count("^XA") == response.text.count("^XZ") == 7
    jobs = zpl_jobs(response.text)
    assert [job.qr[0][1] for job in jobs] == [f"MA,{code}" for code in batch.codes]
    for job, vessel in zip(jobs, batch.vessels, strict=True):
        width, height = DOSE_MM if vessel["is_dose"] else VESSEL_MM
        assert job.width == pytest.approx(dots(width, 300), abs=1)
        assert job.length == pytest.approx(dots(height, 300), abs=1)
        expected = [f"={batch.din}00"] if vessel["is_dose"] else []
        assert [data for _, data in job.datamatrix] == expected


# -- LBL-4: print log, reprints, voiding, reconciliation -------------------------------------------


def test_lbl4_first_print_is_the_original_later_ones_are_reprints(api: Api, batch: Batch) -> None:
    flask = batch.vessel("flask")["code"]
    first = _label(api, flask, format="png")
    assert first.headers["X-Label-Reprints"] == "0"
    (original,) = _history(api, flask)
    assert (original["copy_number"], original["reprint"]) == (1, False)
    assert str(original["id"]) == first.headers["X-Label-Ids"]
    assert (original["format"], original["dpi"], original["printer"]) == ("png", 300, None)
    assert original["voided"] is False

    second = _label(api, flask, format="png")
    assert second.headers["X-Label-Reprints"] == "1"
    history = _history(api, flask)
    assert [(h["copy_number"], h["reprint"]) for h in history] == [(1, False), (2, True)]
    assert str(history[1]["id"]) == second.headers["X-Label-Ids"]
    # the reprint differs from the original only by its mark, below the text, right of the QR
    before, after = png_image(first.content), png_image(second.content)
    changed = ImageChops.difference(before.convert("L"), after.convert("L")).getbbox()
    assert changed is not None
    left, top, _, _ = changed
    assert left > dots(21, 300) and top > dots(18, 300), changed
    assert scan(after).qr == [flask]

    third = parse_svg(_label(api, flask, format="svg").text)
    assert "REPRINT" in third.strings()
    assert [h["copy_number"] for h in _history(api, flask)] == [1, 2, 3]
    # an original SVG does not say REPRINT
    assert "REPRINT" not in parse_svg(_label(api, batch.codes[0], format="svg").text).strings()


def test_lbl4_batch_print_marks_only_the_labels_printed_before(api: Api, batch: Batch) -> None:
    dose = batch.doses[0]["code"]
    _label(api, dose)
    response = api.get(Role.TECHNICIAN, f"/batches/{batch.id}/labels", params={"format": "zpl"})
    assert response.headers["X-Label-Reprints"] == "1"
    jobs = zpl_jobs(response.text)
    marked = [job.qr[0][1].removeprefix("MA,") for job in jobs if "REPRINT" in job.texts]
    assert marked == [dose]
    assert [h["copy_number"] for h in _history(api, dose)] == [1, 2]
    assert [h["copy_number"] for h in _history(api, batch.doses[1]["code"])] == [1]


def test_lbl4_void_a_label_with_a_reason(api: Api, db: Session, batch: Batch) -> None:
    flask = batch.vessel("flask")
    label_id = int(_label(api, flask["code"]).headers["X-Label-Ids"])
    voided = ok(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", {"reason": "torn"}))
    assert voided["id"] == label_id and voided["voided"] is True
    assert voided["void_reason"] == "torn" and voided["voided_at"] is not None
    (logged,) = _history(api, flask["code"])
    assert logged["voided"] is True and logged["void_reason"] == "torn"
    (event,) = audit_events(db, AuditAction.LABEL_VOIDED)
    assert event.reason == "torn" and event.scope == batch.coi
    assert event.entity_type == "vessel" and event.entity_id == flask["id"]
    assert json.loads(event.new_values or "{}")["label_id"] == label_id

    api.as_role(Role.QA)  # log the QA user in before counting (a login is audited)
    before = _counts(db)
    again = api.post(Role.QA, f"/labels/{label_id}/void", {"reason": "twice"})
    error(again, 409, "invalid_state")
    assert _counts(db) == before
    (logged,) = _history(api, flask["code"])
    assert logged["void_reason"] == "torn"


@pytest.mark.parametrize(
    "body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x", "extra": 1}, None]
)
def test_rel_void_without_a_reason_is_refused(
    api: Api, db: Session, body: dict[str, Any] | None
) -> None:
    code = api.batch()["tube_code"]
    label_id = int(_label(api, code).headers["X-Label-Ids"])
    before = _counts(db)
    error(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", body), 422, "invalid_request")
    assert _counts(db) == before
    assert _history(api, code)[0]["voided"] is False


def test_rel_void_unknown_or_by_the_wrong_role(api: Api, db: Session) -> None:
    code = api.batch()["tube_code"]
    label_id = int(_label(api, code).headers["X-Label-Ids"])
    before = _counts(db)
    error(api.post(Role.TECHNICIAN, "/labels/987654/void", {"reason": "x"}), 404, "not_found")
    error(api.post(Role.TECHNICIAN, "/labels/0/void", {"reason": "x"}), 422, "invalid_request")
    for role in (Role.CLINICIAN, Role.ADMIN):
        error(api.post(role, f"/labels/{label_id}/void", {"reason": "x"}), 403, "forbidden")
    assert _counts(db)[0] == before[0]
    assert audit_events(db, AuditAction.LABEL_VOIDED) == []
    ok(api.post(Role.QA, f"/labels/{label_id}/void", {"reason": "misprint"}))


def test_lbl4_reconciliation_of_labels_and_vessels(api: Api) -> None:
    created = api.batch()
    batch_id, tube = created["id"], created["tube_code"]
    fresh = _reconciliation(api, batch_id)
    assert fresh == {
        "batch_id": batch_id,
        "vessels": 1,
        "live_vessels": 1,
        "labelled": 0,
        "unlabelled": [tube],
        "labels_printed": 0,
        "reprints": 0,
        "voided": 0,
        "awaiting_printer": 0,
        "printer_failed": 0,
        "labels_of_gone_vessels": 0,
        "complete": False,
    }
    label_id = int(_label(api, tube).headers["X-Label-Ids"])
    printed = _reconciliation(api, batch_id)
    assert (printed["labelled"], printed["unlabelled"], printed["complete"]) == (1, [], True)
    assert printed["labels_printed"] == 1

    ok(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", {"reason": "smudged"}))
    voided = _reconciliation(api, batch_id)
    assert (voided["labelled"], voided["unlabelled"], voided["complete"]) == (0, [tube], False)
    assert (voided["labels_printed"], voided["voided"]) == (1, 1)

    _label(api, tube, format="zpl")  # the replacement: a reprint
    replaced = _reconciliation(api, batch_id)
    assert (replaced["labelled"], replaced["complete"]) == (1, True)
    assert (replaced["labels_printed"], replaced["reprints"], replaced["voided"]) == (2, 1, 1)

    # the tube is consumed by isolation: its (valid) label now belongs to a gone vessel
    step = ok(api.step(batch_id, "isolation", [tube], ["flask"]), 201)
    flask = step["outputs"][0]["code"]
    after = _reconciliation(api, batch_id)
    assert (after["vessels"], after["live_vessels"]) == (2, 1)
    assert after["unlabelled"] == [flask] and after["labelled"] == 0
    assert after["labels_of_gone_vessels"] == 1 and after["complete"] is False

    response = api.get(Role.TECHNICIAN, f"/batches/{batch_id}/labels", params={"live": "true"})
    assert response.status_code == 200 and len(response.headers["X-Label-Ids"].split(",")) == 1
    done = _reconciliation(api, batch_id)
    assert (done["labelled"], done["unlabelled"], done["complete"]) == (1, [], True)
    assert (done["labels_printed"], done["labels_of_gone_vessels"]) == (3, 1)


def test_lbl4_reconciliation_of_a_formulated_batch(api: Api, batch: Batch) -> None:
    before = _reconciliation(api, batch.id)
    assert (before["vessels"], before["live_vessels"]) == (7, 2)
    assert before["unlabelled"] == [d["code"] for d in batch.doses]
    api.get(Role.TECHNICIAN, f"/batches/{batch.id}/labels")  # all seven
    after = _reconciliation(api, batch.id)
    assert (after["labels_printed"], after["labels_of_gone_vessels"]) == (7, 5)
    assert after["complete"] is True and after["labelled"] == 2


# -- AUD-1: every print is audited in the patient's chain -----------------------------------------


def test_aud1_every_print_is_audited_in_the_patients_chain(
    api: Api, db: Session, batch: Batch
) -> None:
    assert audit_events(db, AuditAction.LABEL_PRINTED) == []
    dose = batch.doses[0]
    _label(api, dose["code"], format="png", dpi=203)
    _label(api, dose["code"], Role.CLINICIAN, format="zpl")
    api.get(Role.QA, f"/batches/{batch.id}/labels", params={"layout": "a4"})
    first, second, sheet = audit_events(db, AuditAction.LABEL_PRINTED)
    assert {e.scope for e in (first, second, sheet)} == {batch.coi}
    assert (first.entity_type, first.entity_id) == ("vessel", dose["id"])
    one = json.loads(first.new_values or "{}")
    assert one["labels"][0]["code"] == dose["code"] and one["labels"][0]["copy_number"] == 1
    assert (one["format"], one["dpi"], one["reprint"]) == ("png", 203, False)
    two = json.loads(second.new_values or "{}")
    assert (two["format"], two["reprint"], two["labels"][0]["copy_number"]) == ("zpl", True, 2)
    assert second.actor != first.actor  # the clinician
    assert (sheet.entity_type, sheet.entity_id) == ("batch", batch.id)
    many = json.loads(sheet.new_values or "{}")
    assert [label["code"] for label in many["labels"]] == batch.codes
    assert (many["layout"], many["reprints"]) == ("a4", 1)
    ids = {h["id"] for code in batch.codes for h in _history(api, code)}
    assert {label["id"] for label in many["labels"]} | {one["labels"][0]["id"]} <= ids
    assert audit.verify_chain(db, scope=batch.coi).ok


# -- bad input: 4xx and nothing logged -------------------------------------------------------------

BAD_QUERIES = [
    ("vessel", {"format": "pdf"}),
    ("vessel", {"format": "gif"}),
    ("vessel", {"format": "png", "dpi": 150}),
    ("vessel", {"format": "zpl", "dpi": "high"}),
    ("batch", {"format": "svg"}),
    ("batch", {"format": "png"}),
    ("batch", {"layout": "letter"}),
    ("batch", {"dpi": 72}),
    ("batch", {"live": "maybe"}),
]


@pytest.mark.parametrize(("target", "params"), BAD_QUERIES)
def test_rel_bad_format_dpi_or_layout_is_refused(
    api: Api, db: Session, target: str, params: dict[str, Any]
) -> None:
    created = api.batch()
    path = (
        f"/vessels/{created['tube_code']}/label"
        if target == "vessel"
        else f"/batches/{created['id']}/labels"
    )
    before = _counts(db)
    error(api.get(Role.TECHNICIAN, path, params=params), 422, "invalid_request")
    assert _counts(db) == before


def test_rel_malformed_and_unknown_codes_and_batches(api: Api, db: Session) -> None:
    created = api.batch()
    tube = created["tube_code"]
    wrong_check = tube[:-1] + ("A" if tube[-1] != "A" else "B")
    unknown = VesselCode.build(DIN(created["din"]), 9999).value
    before = _counts(db)
    for path in ("/vessels/{}/label", "/vessels/{}/labels"):
        for bad in ("not-a-code", wrong_check, tube[:-1]):
            error(api.get(Role.TECHNICIAN, path.format(bad)), 422, "invalid_code")
        error(api.get(Role.TECHNICIAN, path.format(unknown)), 404, "not_found")
    for path in ("/batches/987654/labels", "/batches/987654/labels/reconciliation"):
        error(api.get(Role.TECHNICIAN, path), 404, "not_found")
    error(api.get(Role.TECHNICIAN, "/batches/0/labels"), 422, "invalid_request")
    assert _counts(db) == before


def test_rel_labels_need_a_lab_role(api: Api, db: Session) -> None:
    created = api.batch()
    tube, batch_id = created["tube_code"], created["id"]
    before = _counts(db)
    for path in (
        f"/vessels/{tube}/label",
        f"/vessels/{tube}/labels",
        f"/batches/{batch_id}/labels",
        f"/batches/{batch_id}/labels/reconciliation",
    ):
        error(api.get(Role.ADMIN, path), 403, "forbidden")
        assert api.get(None, path).status_code == 401
    assert _counts(db)[0] == before[0]
    for role in (Role.TECHNICIAN, Role.QA, Role.CLINICIAN):
        _label(api, tube, role, format="png", dpi=203)
    assert [h["copy_number"] for h in _history(api, tube)] == [1, 2, 3]
