"""Labels through the HTTP API (issues 5 and 11): what a person previews and prints scans back to
the vessel's code (COI-4) and says what LBL-1/LBL-2 ask, at real sizes in every format (LBL-3); a
preview (GET) logs nothing, a print (POST) is logged and audited, a reprint marked and given a
reason, vessels no longer in use get no label (LBL-5); labels are voided by rows of their own and
reconciled per batch (LBL-4); prints and voids are append-only (AUD-7)."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from httpx import Response
from PIL import ImageChops
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from app.audit import service as audit
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.auth.permissions import Role
from app.clock import local, local_text
from app.identity.codes import DIN, VesselCode, parse_vessel_code
from app.labels.layout import AUTOLOGOUS, grouped_din
from app.labels.models import LabelPrint, LabelVoid
from tests.helpers import Api, audit_events, error, iso, ok
from tests.labels.support import (
    DOSE_MM,
    VESSEL_MM,
    dose_symbols,
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
# Given with a +02:00 offset: the label shows it in the facility's time (Europe/Rome) with its
# zone: 23:45 UTC is the next day there (LBL-6).
ZONE = "Europe/Rome"
EXPIRES = (datetime.now(UTC) + timedelta(days=3)).replace(
    hour=23, minute=45, second=0, microsecond=0
)
EXP_TEXT = f"EXP {local_text(EXPIRES, ZONE)}"


@dataclass
class Batch:
    """A formulated batch (8 vessels: biopsy tube, flask, 3 flasks of which one stays in culture,
    harvest tube, 2 dose bags): the spare flask and the doses are in use."""

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
    def live(self) -> list[dict[str, Any]]:
        return [v for v in self.vessels if v["status"] not in GONE]

    @property
    def doses(self) -> list[dict[str, Any]]:
        return [v for v in self.vessels if v["is_dose"]]

    @property
    def flask(self) -> dict[str, Any]:
        """The flask still in culture."""
        return next(v for v in self.live if v["kind"] == "flask")

    def assert_symbols(self, vessel: dict[str, Any], datamatrix: list[str]) -> None:
        """A dose label's Data Matrix symbols name this dose of this batch (its DIN with its own
        container flags, its expiry) and the patient's COI (LBL-6); a vessel label has none."""
        if not vessel["is_dose"]:
            assert datamatrix == []
            return
        product, coi = dose_symbols(datamatrix)
        assert product.din.din.value == self.din and coi == self.coi
        assert product.container == self.doses.index(vessel) + 1
        assert product.expires == local(EXPIRES, ZONE).replace(tzinfo=None)

    def consumed(self, kind: str) -> dict[str, Any]:
        return next(v for v in self.vessels if v["kind"] == kind and v["status"] == "consumed")


GONE = {"consumed", "discarded", "infused"}


def _vessels(api: Api, batch_id: int) -> list[dict[str, Any]]:
    body = ok(api.get(Role.TECHNICIAN, f"/batches/{batch_id}"))
    return sorted(body["vessels"], key=lambda v: v["code"])


def _formulated(api: Api) -> Batch:
    patient = api.patient(family_name=FAMILY, given_name=GIVEN, birth_date=BORN)
    batch = api.batch(patient["id"])
    isolation = ok(api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"]), 201)
    passage = ok(
        api.step(batch["id"], "passage", [isolation["outputs"][0]["code"]], ["flask"] * 3), 201
    )
    flasks = [o["code"] for o in passage["outputs"]]
    harvest = ok(api.step(batch["id"], "harvest", flasks[:2], ["tube"]), 201)
    tube = harvest["outputs"][0]["code"]
    plus_two = EXPIRES.astimezone(timezone(timedelta(hours=2)))
    doses = [
        api.dose(expires_at=iso(plus_two)),
        api.dose(expires_at=iso(plus_two), cell_count=120_500_000, volume_ml=12.5),
    ]
    ok(api.step(batch["id"], "formulation", [tube], doses), 201)
    vessels = _vessels(api, batch["id"])
    assert len(vessels) == 8 and sum(v["is_dose"] for v in vessels) == 2
    made = Batch(batch["id"], batch["din"], batch["din_check"], batch["coi"], patient, vessels)
    assert [v["kind"] for v in made.live] == ["flask", "bag", "bag"]
    return made


@pytest.fixture
def batch(api: Api) -> Batch:
    return _formulated(api)


def _label(api: Api, code: str, role: Role = Role.TECHNICIAN, **params: Any) -> Response:
    """A preview of the vessel's label."""
    response = api.get(role, f"/vessels/{code}/label", params=params)
    assert response.status_code == 200, response.text
    return response


def _print(api: Api, code: str, role: Role = Role.TECHNICIAN, **body: Any) -> Response:
    """A print of the vessel's label, downloaded."""
    response = api.print_label(code, role, **body)
    assert response.status_code == 200, response.text
    return response


def _label_id(response: Response) -> int:
    return int(response.headers["X-Label-Ids"])


def _sheet(api: Api, batch_id: int, role: Role = Role.TECHNICIAN, **params: Any) -> Response:
    """A preview of the batch's sheet of labels."""
    response = api.get(role, f"/batches/{batch_id}/labels", params=params)
    assert response.status_code == 200, response.text
    return response


def _print_sheet(api: Api, batch_id: int, role: Role = Role.TECHNICIAN, **body: Any) -> Response:
    response = api.post(role, f"/batches/{batch_id}/labels/print", body)
    assert response.status_code == 200, response.text
    return response


def _history(api: Api, code: str) -> list[dict[str, Any]]:
    return ok(api.get(Role.TECHNICIAN, f"/vessels/{code}/labels"))


def _reconciliation(api: Api, batch_id: int) -> dict[str, Any]:
    return ok(api.get(Role.QA, f"/batches/{batch_id}/labels/reconciliation"))


def _counts(db: Session) -> tuple[int, int, int]:
    """Rows a preview or a refused request must not add: label prints, voids and audit events."""
    return (
        db.execute(select(func.count()).select_from(LabelPrint)).scalar_one(),
        db.execute(select(func.count()).select_from(LabelVoid)).scalar_one(),
        db.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
    )


def _kind_line(vessel: dict[str, Any]) -> str:
    return f"{vessel['kind'].replace('_', ' ')} · P{vessel['passage']}"


# -- COI-4, LBL-1, LBL-2: what is previewed and printed scans back exactly -------------------------


@pytest.mark.parametrize("dpi", [203, 300])
def test_coi4_png_labels_scan_back_to_the_vessel_code(api: Api, batch: Batch, dpi: int) -> None:
    for vessel in batch.live:
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
        batch.assert_symbols(vessel, found.datamatrix)


def test_coi4_scanner_noise_in_the_path_prints_the_canonical_label(api: Api) -> None:
    created = api.batch()
    code = created["tube_code"]
    noisy = quote(f" {code[:6].lower()} {code[6:]}\t", safe="")
    response = _label(api, noisy, format="png", dpi=203)
    assert scan(png_image(response.content)).qr == [code]
    printed = _print(api, noisy, format="png", dpi=203)
    assert printed.content == response.content
    assert [h["vessel_code"] for h in _history(api, code)] == [code]


@pytest.mark.parametrize(
    "options",
    [{"dpi": 96, "zoom": 1.37}, {"dpi": 300, "width": 433}, {"dpi": 203}],
    ids=["zoom-1.37", "width-433px", "203dpi"],
)
def test_lbl1_svg_labels_scan_back_at_any_scale(
    api: Api, batch: Batch, options: dict[str, float]
) -> None:
    for vessel in (batch.flask, batch.doses[0]):
        response = _label(api, vessel["code"], format="svg")
        assert response.headers["content-type"].startswith("image/svg+xml")
        found = scan(svg_image(response.text, **options))
        assert found.qr == [vessel["code"]]
        batch.assert_symbols(vessel, found.datamatrix)


def test_lbl1_lbl2_svg_says_what_the_records_say(api: Api, batch: Batch) -> None:
    patient = batch.patient
    # every vessel has its label from creation: the record links to it
    for vessel in batch.vessels:
        assert vessel["label_url"] == f"/api/v1/vessels/{vessel['code']}/label"
    for vessel in batch.live:
        label = parse_svg(_label(api, vessel["code"]).text)
        strings = label.strings()
        joined = "\n".join(strings)
        # the code, eye-readable, a slash through each of its zeros
        code = label.text(vessel["code"])
        zeros = [i for i, c in enumerate(vessel["code"]) if c == "0"]
        assert zeros and label.slashes_in(code) == zeros
        # DIN with its check character boxed
        assert "DIN " in strings
        din = label.text(grouped_din(batch.din))
        after = sorted((t for t in label.texts if t.y == din.y and t.x > din.x), key=lambda t: t.x)
        if vessel["is_dose"]:  # the dose's own container flags, smaller, before the check
            flags, after = after[0], after[1:]
            assert flags.text == f"0{batch.doses.index(vessel) + 1}" and flags.size < din.size
        check = after[0]
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
        assert f"{vessel['cell_count']:,} viable cells · {vessel['volume_ml']:g} mL" in joined
        assert f"{vessel['kind']} · P{vessel['passage']} · {made_on}" in strings


def test_lbl2_dose_facts_on_the_label_follow_each_dose(api: Api, batch: Batch) -> None:
    first, second = (
        "\n".join(parse_svg(_label(api, d["code"]).text).strings()) for d in batch.doses
    )
    assert "150,000,000 viable cells · 50 mL" in first
    assert "120,500,000 viable cells · 12.5 mL" in second


# -- LBL-3: batch sheets and ZPL --------------------------------------------------------------


def _assert_roll_page(page: Any, vessel: dict[str, Any], batch: Batch) -> None:
    size = DOSE_MM if vessel["is_dose"] else VESSEL_MM
    assert page_size_mm(page) == pytest.approx(size, abs=0.05)
    found = scan(page_image(page, 200))
    assert found.qr == [vessel["code"]]
    batch.assert_symbols(vessel, found.datamatrix)
    text = page_text(page)
    assert vessel["code"] in text
    assert f"DIN {grouped_din(batch.din)}" in text and batch.din_check in text
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


def test_lbl3_batch_pdf_roll_one_label_a_page_at_real_size(
    api: Api, db: Session, batch: Batch
) -> None:
    before = _counts(db)
    response = _sheet(api, batch.id, layout="roll")
    assert response.headers["content-type"] == "application/pdf"
    assert "X-Label-Ids" not in response.headers  # a preview: nothing was printed
    document = pdf_pages(response.content)
    assert len(document) == len(batch.live)
    for page, vessel in zip(document, batch.live, strict=True):
        _assert_roll_page(page, vessel, batch)
    assert _counts(db) == before


def test_lbl3_one_vessel_printed_as_a_pdf_page_at_real_size(api: Api, batch: Batch) -> None:
    for vessel in (batch.flask, batch.doses[1]):
        response = _print(api, vessel["code"], format="pdf")
        assert response.headers["content-type"] == "application/pdf"
        (page,) = pdf_pages(response.content)
        _assert_roll_page(page, vessel, batch)
        (logged,) = _history(api, vessel["code"])
        assert (logged["format"], logged["copy_number"]) == ("pdf", 1)


def test_lbl3_batch_pdf_a4_sheet_holds_every_vessel_in_use(api: Api, batch: Batch) -> None:
    response = _sheet(api, batch.id, Role.CLINICIAN, layout="a4")
    document = pdf_pages(response.content)
    assert len(document) == 2  # the flask's label, then the two doses on a page of their own
    qr: list[str] = []
    datamatrix: list[str] = []
    for page in document:
        assert page_size_mm(page) == pytest.approx((210.0, 297.0), abs=0.1)
        found = scan(page_image(page, 200))
        qr += found.qr
        datamatrix += found.datamatrix
    assert sorted(qr) == [v["code"] for v in batch.live]
    compounds = sorted(d for d in datamatrix if d.startswith("=+"))  # by their DIN flags
    cois = [d for d in datamatrix if d.startswith("&/")]
    assert len(compounds) == len(cois) == len(batch.doses) == 2
    for dose, compound, coi in zip(batch.doses, compounds, cois, strict=True):
        batch.assert_symbols(dose, [compound, coi])
    assert batch.patient["mrn"] in page_text(document[1])


@pytest.mark.parametrize("how", ["preview", "print"])
def test_lbl5_a_batch_sheet_holds_only_vessels_in_use(api: Api, batch: Batch, how: str) -> None:
    """Issue 11: a batch sheet included consumed vessels."""
    response = (
        _sheet(api, batch.id, format="zpl")
        if how == "preview"
        else _print_sheet(api, batch.id, format="zpl")
    )
    sent = [job.qr[0][1].removeprefix("MA,") for job in zpl_jobs(response.text)]
    assert sent == [v["code"] for v in batch.live]
    for gone in (v for v in batch.vessels if v["status"] in GONE):
        assert _history(api, gone["code"]) == []


@pytest.mark.parametrize("dpi", [203, 300])
def test_lbl3_zpl_vessel_and_dose_labels(api: Api, batch: Batch, dpi: int) -> None:
    for vessel in (batch.flask, batch.doses[0]):
        response = _label(api, vessel["code"], format="zpl", dpi=dpi)
        assert response.headers["content-type"].startswith("application/zpl")
        assert response.text.startswith("^XA") and response.text.rstrip().endswith("^XZ")
        (job,) = zpl_jobs(response.text)
        width, height = DOSE_MM if vessel["is_dose"] else VESSEL_MM
        assert job.width == pytest.approx(dots(width, dpi), abs=1)
        assert job.length == pytest.approx(dots(height, dpi), abs=1)
        assert [data for _, data in job.qr] == [f"MA,{vessel['code']}"]
        assert vessel["code"] in job.texts and grouped_din(batch.din) in job.texts
        assert batch.din_check in job.texts
        if vessel["is_dose"]:
            batch.assert_symbols(vessel, [data for _, data in job.datamatrix])
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
        printed = _print(api, vessel["code"], format="zpl", dpi=dpi)
        assert printed.text == response.text  # the preview is the label that prints
        (logged,) = _history(api, vessel["code"])
        assert (logged["format"], logged["dpi"]) == ("zpl", dpi)


def test_lbl3_default_and_high_resolutions(api: Api, batch: Batch) -> None:
    """ZPL defaults to a 203 dpi printer, PNG to 300 dpi; 600 dpi is offered too."""
    code = batch.flask["code"]
    (job,) = zpl_jobs(_label(api, code, format="zpl").text)
    assert (job.width, job.length) == (round(dots(50, 203)), round(dots(25, 203)))
    image = png_image(_label(api, code, format="png").content)
    assert image.size == (round(dots(50, 300)), round(dots(25, 300)))
    fine = png_image(_label(api, code, format="png", dpi=600).content)
    assert fine.size == (round(dots(50, 600)), round(dots(25, 600)))
    assert scan(fine).qr == [code]
    (job,) = zpl_jobs(_label(api, code, format="zpl", dpi=600).text)
    assert job.width == round(dots(50, 600))
    _print(api, code, format="zpl")
    for fmt, dpi in (("png", None), ("png", 600), ("pdf", None)):
        extra = {"dpi": dpi} if dpi else {}
        _print(api, code, format=fmt, reason="label for a second rack", **extra)
    history = _history(api, code)
    assert [(h["format"], h["dpi"]) for h in history] == [
        ("zpl", 203),
        ("png", 300),
        ("png", 600),
        ("pdf", 300),
    ]


def test_lbl3_batch_zpl_one_label_per_vessel_in_use(api: Api, batch: Batch) -> None:
    response = _sheet(api, batch.id, format="zpl", dpi=300)
    assert response.text.count("^XA") == response.text.count("^XZ") == len(batch.live)
    jobs = zpl_jobs(response.text)
    assert [job.qr[0][1] for job in jobs] == [f"MA,{v['code']}" for v in batch.live]
    for job, vessel in zip(jobs, batch.live, strict=True):
        width, height = DOSE_MM if vessel["is_dose"] else VESSEL_MM
        assert job.width == pytest.approx(dots(width, 300), abs=1)
        assert job.length == pytest.approx(dots(height, 300), abs=1)
        batch.assert_symbols(vessel, [data for _, data in job.datamatrix])


# -- LBL-5: a preview logs nothing; a print is an explicit, logged POST ----------------------------


def test_lbl5_previews_log_nothing_so_a_new_bag_prints_as_the_original(
    api: Api, db: Session, batch: Batch
) -> None:
    """Issue 11: viewing a label was logged as a print, so brand-new bags said REPRINT."""
    dose = batch.doses[0]["code"]
    api.as_role(Role.QA)  # log every user in before counting (a login is audited)
    before = _counts(db)
    for fmt in ("svg", "png", "zpl"):
        for role in (Role.TECHNICIAN, Role.QA):
            _label(api, dose, role, format=fmt)
    _sheet(api, batch.id)
    _sheet(api, batch.id, format="zpl", layout="a4")
    assert _counts(db) == before
    assert _history(api, dose) == []
    assert _reconciliation(api, batch.id)["labels_printed"] == 0

    first = _print(api, dose, format="zpl")
    assert "REPRINT" not in zpl_jobs(first.text)[0].texts
    assert first.headers["X-Label-Reprints"] == "0"
    (original,) = _history(api, dose)
    assert (original["copy_number"], original["reprint"], original["reason"]) == (1, False, None)
    assert _counts(db)[0] == before[0] + 1


def test_lbl5_the_preview_shows_the_reprint_mark_once_a_print_is_on_record(
    api: Api, batch: Batch
) -> None:
    code = batch.flask["code"]
    assert "REPRINT" not in parse_svg(_label(api, code).text).strings()
    _print(api, code, format="svg")
    assert "REPRINT" in parse_svg(_label(api, code).text).strings()
    sheet = zpl_jobs(_sheet(api, batch.id, format="zpl").text)
    assert [("REPRINT" in job.texts) for job in sheet] == [True, False, False]


def test_lbl4_first_print_is_the_original_later_ones_are_reprints(
    api: Api, db: Session, batch: Batch
) -> None:
    flask = batch.flask["code"]
    first = _print(api, flask, format="png")
    assert first.headers["content-type"] == "image/png"
    assert first.headers["X-Label-Reprints"] == "0"
    (original,) = _history(api, flask)
    assert (original["copy_number"], original["reprint"]) == (1, False)
    assert str(original["id"]) == first.headers["X-Label-Ids"]
    assert (original["format"], original["dpi"], original["printer"]) == ("png", 300, None)
    assert original["voided"] is False

    second = _print(api, flask, format="png", reason="label smudged by ethanol")
    assert second.headers["X-Label-Reprints"] == "1"
    history = _history(api, flask)
    assert [(h["copy_number"], h["reprint"]) for h in history] == [(1, False), (2, True)]
    assert history[1]["reason"] == "label smudged by ethanol"
    assert str(history[1]["id"]) == second.headers["X-Label-Ids"]
    # the reprint differs from the original only by its mark, below the text, right of the QR
    before, after = png_image(first.content), png_image(second.content)
    changed = ImageChops.difference(before.convert("L"), after.convert("L")).getbbox()
    assert changed is not None
    left, top, _, _ = changed
    assert left > dots(21, 300) and top > dots(18, 300), changed
    assert scan(after).qr == [flask]

    third = parse_svg(_print(api, flask, format="svg", reason="second rack").text)
    assert "REPRINT" in third.strings()
    assert [h["copy_number"] for h in _history(api, flask)] == [1, 2, 3]
    _, reprint, _ = audit_events(db, AuditAction.LABEL_PRINTED)
    assert reprint.reason == "label smudged by ethanol"
    # an original SVG does not say REPRINT
    dose = batch.doses[0]["code"]
    assert "REPRINT" not in parse_svg(_print(api, dose, format="svg").text).strings()


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_lbl5_a_reprint_without_a_reason_is_refused(
    api: Api, db: Session, batch: Batch, reason: str | None
) -> None:
    dose = batch.doses[0]["code"]
    _print(api, dose)
    body = {} if reason is None else {"reason": reason}
    before = _counts(db)
    code = "reprint_reason_required" if reason is None else "invalid_request"
    assert dose in error(api.print_label(dose, **body), 422, code) or reason is not None
    sheet = api.post(Role.TECHNICIAN, f"/batches/{batch.id}/labels/print", body)
    detail = error(sheet, 422, code)
    assert reason is not None or (dose in detail and batch.flask["code"] not in detail)
    assert _counts(db) == before
    assert [h["copy_number"] for h in _history(api, dose)] == [1]


def test_lbl5_a_batch_reprint_carries_its_reason_on_every_label(
    api: Api, db: Session, batch: Batch
) -> None:
    dose = batch.doses[0]["code"]
    _print(api, dose, format="png")
    response = _print_sheet(api, batch.id, format="zpl", reason="roll jammed")
    assert response.headers["X-Label-Reprints"] == "1"
    jobs = zpl_jobs(response.text)
    marked = [job.qr[0][1].removeprefix("MA,") for job in jobs if "REPRINT" in job.texts]
    assert marked == [dose]
    assert [h["copy_number"] for h in _history(api, dose)] == [1, 2]
    assert [h["copy_number"] for h in _history(api, batch.doses[1]["code"])] == [1]
    assert {h["reason"] for v in batch.live for h in _history(api, v["code"])[-1:]} == {
        "roll jammed"
    }
    sheet = audit_events(db, AuditAction.LABEL_PRINTED)[-1]
    assert (sheet.entity_type, sheet.reason) == ("batch", "roll jammed")


def _discarded(api: Api, batch: Batch) -> dict[str, Any]:
    ok(api.step(batch.id, "discard", [batch.flask["code"]], reason="Contamination seen"), 201)
    return next(v for v in _vessels(api, batch.id) if v["code"] == batch.flask["code"])


def test_lbl5_vessels_no_longer_in_use_get_no_label(api: Api, db: Session, batch: Batch) -> None:
    """Issue 11: labels printed for consumed, discarded (and infused, voided) vessels."""
    consumed = batch.consumed("flask")["code"]
    discarded = _discarded(api, batch)
    assert discarded["status"] == "discarded"
    api.as_role(Role.QA)
    before = _counts(db)
    for code in (consumed, discarded["code"]):
        for fmt in ("svg", "png", "zpl"):
            error(
                api.get(Role.TECHNICIAN, f"/vessels/{code}/label?format={fmt}"),
                409,
                "invalid_state",
            )
        for body in ({}, {"format": "png"}, {"reason": "lost"}):
            detail = error(api.print_label(code, **body), 409, "invalid_state")
            assert code in detail and "no label" in detail
    assert _counts(db) == before
    # the doses are the batch's only vessels in use now: a sheet holds just them
    sent = zpl_jobs(_sheet(api, batch.id, format="zpl").text)
    assert [job.qr[0][1] for job in sent] == [f"MA,{d['code']}" for d in batch.doses]


def test_lbl5_a_batch_with_no_vessel_in_use_has_no_sheet(api: Api, db: Session) -> None:
    created = api.batch()
    ok(api.step(created["id"], "discard", [created["tube_code"]], reason="Spilled"), 201)
    before = _counts(db)
    error(api.get(Role.TECHNICIAN, f"/batches/{created['id']}/labels"), 409, "invalid_state")
    detail = error(
        api.post(Role.TECHNICIAN, f"/batches/{created['id']}/labels/print", {}),
        409,
        "invalid_state",
    )
    assert "no vessel in use" in detail
    assert _counts(db) == before


def test_lbl5_the_vessels_of_a_voided_registration_get_no_label(api: Api, db: Session) -> None:
    biopsy = api.received_biopsy()
    tube = biopsy["tube_code"]
    _print(api, tube)
    ok(api.post(Role.QA, f"/biopsies/{biopsy['id']}/void", {"reason": "wrong patient"}))
    before = _counts(db)
    error(api.get(Role.TECHNICIAN, f"/vessels/{tube}/label"), 409, "invalid_state")
    detail = error(api.print_label(tube, reason="again"), 409, "invalid_state")
    assert "voided registration" in detail
    assert _counts(db) == before


BAD_PRINTS = [
    {"format": "gif"},
    {"format": "png", "dpi": 150},
    {"format": "png", "printer_id": 1},
    {"format": "pdf", "copies": 2},
    {"reason": 42},
    {"reason": "x" * 4001},
    {"dpi": "high"},
]


@pytest.mark.parametrize("body", BAD_PRINTS)
def test_rel_a_bad_print_request_is_refused(api: Api, db: Session, body: dict[str, Any]) -> None:
    created = api.batch()
    before = _counts(db)
    error(api.print_label(created["tube_code"], **body), 422, "invalid_request")
    error(
        api.post(Role.TECHNICIAN, f"/batches/{created['id']}/labels/print", body),
        422,
        "invalid_request",
    )
    assert _counts(db) == before


# -- LBL-4: voiding, reconciliation ----------------------------------------------------------------


def test_lbl4_void_a_label_with_a_reason(api: Api, db: Session, batch: Batch) -> None:
    flask = batch.flask
    label_id = _label_id(_print(api, flask["code"]))
    voided = ok(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", {"reason": "torn"}))
    assert voided["id"] == label_id and voided["voided"] is True
    assert voided["void_reason"] == "torn" and voided["voided_at"] is not None
    assert voided["voided_by"] == voided["printed_by"]
    (logged,) = _history(api, flask["code"])
    assert logged["voided"] is True and logged["void_reason"] == "torn"
    (row,) = db.execute(select(LabelVoid)).scalars()
    assert (row.label_print_id, row.reason) == (label_id, "torn")
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
    label_id = _label_id(_print(api, code))
    before = _counts(db)
    error(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", body), 422, "invalid_request")
    assert _counts(db) == before
    assert _history(api, code)[0]["voided"] is False


def test_rel_void_unknown_or_by_the_wrong_role(api: Api, db: Session) -> None:
    code = api.batch()["tube_code"]
    label_id = _label_id(_print(api, code))
    before = _counts(db)
    error(api.post(Role.TECHNICIAN, "/labels/987654/void", {"reason": "x"}), 404, "not_found")
    error(api.post(Role.TECHNICIAN, "/labels/0/void", {"reason": "x"}), 422, "invalid_request")
    for role in (Role.CLINICIAN, Role.ADMIN):
        error(api.post(role, f"/labels/{label_id}/void", {"reason": "x"}), 403, "forbidden")
    assert _counts(db)[:2] == before[:2]
    assert audit_events(db, AuditAction.LABEL_VOIDED) == []
    ok(api.post(Role.QA, f"/labels/{label_id}/void", {"reason": "misprint"}))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE label_print SET copy_number = 1, reason = NULL",
        "UPDATE label_print SET printed_by = printed_by",
        "DELETE FROM label_print",
        "UPDATE label_void SET reason = 'never mind'",
        "DELETE FROM label_void",
    ],
)
def test_aud7_label_prints_and_voids_are_append_only(api: Api, db: Session, statement: str) -> None:
    code = api.batch()["tube_code"]
    label_id = _label_id(_print(api, code))
    _print(api, code, reason="smudged")
    ok(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", {"reason": "smudged"}))
    before = _history(api, code)
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(text(statement))
    assert _history(api, code) == before
    assert [(h["copy_number"], h["voided"]) for h in before] == [(1, True), (2, False)]


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
    _label(api, tube)  # a preview is no label on the tube
    assert _reconciliation(api, batch_id) == fresh
    label_id = _label_id(_print(api, tube))
    printed = _reconciliation(api, batch_id)
    assert (printed["labelled"], printed["unlabelled"], printed["complete"]) == (1, [], True)
    assert printed["labels_printed"] == 1

    ok(api.post(Role.TECHNICIAN, f"/labels/{label_id}/void", {"reason": "smudged"}))
    voided = _reconciliation(api, batch_id)
    assert (voided["labelled"], voided["unlabelled"], voided["complete"]) == (0, [tube], False)
    assert (voided["labels_printed"], voided["voided"]) == (1, 1)

    _print(api, tube, format="zpl", reason="the first was smudged")  # the replacement
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

    response = _print_sheet(api, batch_id)
    assert len(response.headers["X-Label-Ids"].split(",")) == 1
    done = _reconciliation(api, batch_id)
    assert (done["labelled"], done["unlabelled"], done["complete"]) == (1, [], True)
    assert (done["labels_printed"], done["labels_of_gone_vessels"]) == (3, 1)


def test_lbl4_reconciliation_of_a_formulated_batch(api: Api, batch: Batch) -> None:
    before = _reconciliation(api, batch.id)
    assert (before["vessels"], before["live_vessels"]) == (8, 3)
    assert before["unlabelled"] == [v["code"] for v in batch.live]
    _print_sheet(api, batch.id)  # the three in use, not the five consumed
    after = _reconciliation(api, batch.id)
    assert (after["labels_printed"], after["reprints"], after["labels_of_gone_vessels"]) == (
        3,
        0,
        0,
    )
    assert after["complete"] is True and after["labelled"] == 3


# -- AUD-1: every print is audited in the patient's chain -----------------------------------------


def test_aud1_every_print_is_audited_in_the_patients_chain(
    api: Api, db: Session, batch: Batch
) -> None:
    assert audit_events(db, AuditAction.LABEL_PRINTED) == []
    dose = batch.doses[0]
    _print(api, dose["code"], format="png", dpi=203)
    _print(api, dose["code"], Role.CLINICIAN, format="zpl", reason="bag label unreadable")
    _print_sheet(api, batch.id, Role.QA, layout="a4", reason="sheet for the cold room")
    first, second, sheet = audit_events(db, AuditAction.LABEL_PRINTED)
    assert {e.scope for e in (first, second, sheet)} == {batch.coi}
    assert (first.entity_type, first.entity_id, first.reason) == ("vessel", dose["id"], None)
    one = json.loads(first.new_values or "{}")
    assert one["labels"][0]["code"] == dose["code"] and one["labels"][0]["copy_number"] == 1
    assert (one["format"], one["dpi"], one["reprint"]) == ("png", 203, False)
    two = json.loads(second.new_values or "{}")
    assert (two["format"], two["reprint"], two["labels"][0]["copy_number"]) == ("zpl", True, 2)
    assert second.reason == "bag label unreadable"
    assert second.actor != first.actor  # the clinician
    assert (sheet.entity_type, sheet.entity_id) == ("batch", batch.id)
    many = json.loads(sheet.new_values or "{}")
    assert [label["code"] for label in many["labels"]] == [v["code"] for v in batch.live]
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
    for method, path in (
        ("GET", "/vessels/{}/label"),
        ("GET", "/vessels/{}/labels"),
        ("POST", "/vessels/{}/print"),
    ):
        body = {"json": {}} if method == "POST" else {}
        for bad in ("not-a-code", wrong_check, tube[:-1]):
            response = api.call(Role.TECHNICIAN, method, path.format(bad), **body)
            error(response, 422, "invalid_code")
        response = api.call(Role.TECHNICIAN, method, path.format(unknown), **body)
        error(response, 404, "not_found")
    for path in ("/batches/987654/labels", "/batches/987654/labels/reconciliation"):
        error(api.get(Role.TECHNICIAN, path), 404, "not_found")
    error(api.post(Role.TECHNICIAN, "/batches/987654/labels/print", {}), 404, "not_found")
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
    for path in (f"/vessels/{tube}/print", f"/batches/{batch_id}/labels/print"):
        error(api.post(Role.ADMIN, path, {}), 403, "forbidden")
        assert api.post(None, path, {}).status_code == 401
    assert _counts(db)[:2] == before[:2]
    _print(api, tube, Role.TECHNICIAN, format="png", dpi=203)
    for role in (Role.QA, Role.CLINICIAN):
        _print(api, tube, role, format="png", dpi=203, reason="reprint at the bench")
    assert [h["copy_number"] for h in _history(api, tube)] == [1, 2, 3]
