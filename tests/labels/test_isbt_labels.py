"""Dose labels that meet EU ATMP, 21 CFR 1271 and ISBT 128 product labelling (LBL-6, issue 13):
the particulars on the bag label, every time in local time with its zone, every ISBT 128 data
structure parsed back from the decoded image (PNG, SVG, PDF) and from the ZPL, the ZPL's fields
the layout's fields, and the PDF at real size."""

import re
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from app.identity.codes import (
    DIN,
    VesselCode,
    build_coi,
    container_flags,
    parse_coi_structure,
    parse_scan,
)
from app.labels import pdf, raster, svg, zpl
from app.labels.accompanying import rows
from app.labels.layout import (
    AUTOLOGOUS,
    CLINICAL_TRIAL,
    HUMAN_ORIGIN,
    NOT_EVALUATED,
    Box,
    DoseContent,
    LabelContent,
    Symbol,
    Text,
    grouped_din,
    layout,
    mono_width,
)
from app.labels.product import TRIAL_PRODUCT
from tests.labels.support import (
    DOSE_MM,
    dose_symbols,
    page_image,
    page_size_mm,
    page_text,
    parse_svg,
    pdf_pages,
    png_image,
    scan,
    svg_image,
    unhex,
)

ZONE = "Europe/Rome"
DIN_ = DIN.build("12345", 2026, 7)  # a numeric facility id (FIN)
COI = build_coi("12345", 2026, 7)
# 23:45 UTC on 5 December is 00:45 CET on the 6th: another calendar day in the facility's time.
EXPIRES = datetime(2026, 12, 5, 23, 45, tzinfo=UTC)
COLLECTED = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 08:30 CEST


def dose(number: int, *, reprint: bool = False, **product: object) -> LabelContent:
    return LabelContent(
        code=VesselCode.build(DIN_, 20 + number).value,
        din=DIN_.value,
        din_check=DIN_.check,
        kind="bag",
        passage=4,
        made_on=date(2026, 12, 1),
        reprint=reprint,
        zone=ZONE,
        dose=DoseContent(
            patient_name="ROSSI, Anna Maria",
            birth_date=date(1990, 5, 17),
            mrn="MRN-100001",
            coi=COI,
            expires_at=EXPIRES,
            cell_count=150_000_000,
            volume_ml=50.0,
            batch_number="B26-000042",
            dose_number=number,
            collected_at=COLLECTED,
            product=replace(TRIAL_PRODUCT, **product),  # type: ignore[arg-type]
        ),
    )


def _assert_structures(content: LabelContent, datamatrix: list[str]) -> None:
    """Every data structure the dose's symbols carry, parsed back from what was decoded."""
    product, coi = dose_symbols(datamatrix)
    assert coi == COI  # 040, check character restored
    assert product.din.din == DIN_ and product.din.flags == container_flags(
        content.dose.dose_number
    )
    assert product.container == content.dose.dose_number  # 001 flags
    assert product.product is not None
    assert product.product.value == f"D00011{chr(64 + content.dose.dose_number)}0"  # 003
    assert product.expires == datetime(2026, 12, 6, 0, 45)  # 005, facility wall clock
    assert product.collected == datetime(2026, 7, 1, 8, 30)  # 007, summer time


@pytest.mark.parametrize("dpi", [203, 300, 600])
def test_lbl6_every_structure_decodes_back_from_the_png(dpi: int) -> None:
    for number in (1, 2, 3):
        content = dose(number)
        found = scan(png_image(raster.png(content, dpi)))
        assert found.qr == [content.code]
        _assert_structures(content, found.datamatrix)


@pytest.mark.parametrize("options", [{"dpi": 300}, {"dpi": 96, "zoom": 1.37}])
def test_lbl6_every_structure_decodes_back_from_the_svg(options: dict[str, float]) -> None:
    content = dose(2)
    found = scan(svg_image(svg.svg(content), **options))
    assert found.qr == [content.code]
    _assert_structures(content, found.datamatrix)


def test_lbl6_pdf_roll_is_real_size_and_decodes_back() -> None:
    contents = [dose(1), dose(2)]
    document = pdf_pages(pdf.roll([layout(c) for c in contents]))
    for page, content in zip(document, contents, strict=True):
        assert page_size_mm(page) == pytest.approx(DOSE_MM, abs=0.05)
        found = scan(page_image(page, 300))
        assert found.qr == [content.code]
        _assert_structures(content, found.datamatrix)
        assert "EXP 2026-12-06 00:45 CET" in page_text(page)


def test_lbl6_the_doses_of_a_batch_carry_distinct_product_symbols() -> None:
    """Issue 13: the three doses of a batch carried identical Data Matrix symbols."""
    messages = [dose(n).isbt_message for n in (1, 2, 3)]
    assert len(set(messages)) == 3
    assert [parse_scan(m).container for m in messages] == [1, 2, 3]


def test_lbl6_the_dose_label_carries_the_eu_us_and_trial_particulars() -> None:
    """LBL-6 (ADR 0020): on the bag, what Reg. 1394/2007 Annex III, 21 CFR 1271.370(b) and
    1271.90(c) and CTR 536/2014 Annex VI ask of the immediate container; every line whole."""
    content = dose(1)
    label = parse_svg(svg.svg(content))
    joined = "\n".join(label.strings())
    product = content.dose.product
    for fact in [
        AUTOLOGOUS,
        NOT_EVALUATED,
        f"{CLINICAL_TRIAL} · {product.trial_code}",
        product.product_name,
        f"{HUMAN_ORIGIN} · {product.pharmaceutical_form}",
        f"{product.route_of_administration} · 150,000,000 viable cells · 50 mL",
        f"Store at {product.storage_temperature}",
        "BATCH B26-000042 · PRODUCT D00011A0 · DOSE 1",
        f"Sponsor: {product.sponsor}",
        "ROSSI, Anna Maria",
        "MRN-100001",
        COI,
        grouped_din(DIN_.value),
        "EXP 2026-12-06 00:45 CET",
    ]:
        assert fact in joined, fact
    assert "…" not in joined  # the default particulars fit without being cut
    assert "UTC" not in joined
    for item in layout(content).items:
        if isinstance(item, Text):
            assert item.x + mono_width(item.text, item.size) <= 100.0 + 1e-9, item


def test_lbl6_an_authorised_product_shows_its_establishment_instead_of_the_trial() -> None:
    content = dose(1, investigational=False)
    joined = "\n".join(parse_svg(svg.svg(content)).strings())
    assert CLINICAL_TRIAL not in joined and "Sponsor" not in joined
    assert content.dose.product.establishment_name in joined


def test_lbl6_local_time_follows_the_zone_and_its_summer_time() -> None:
    summer = replace(dose(1), dose=replace(dose(1).dose, expires_at=COLLECTED))
    assert "EXP 2026-07-01 08:30 CEST" in parse_svg(svg.svg(summer)).strings()
    assert "EXP 2026-12-05 23:45 UTC" in parse_svg(svg.svg(replace(dose(1), zone="UTC"))).strings()


def test_lbl6_the_eye_readable_din_is_grouped_with_its_flags_and_boxed_check() -> None:
    content = dose(2)
    label = parse_svg(svg.svg(content))
    din = label.text(grouped_din(DIN_.value))
    assert din.text == "12345 26 000007"
    flags, check = sorted(
        (t for t in label.texts if t.y == din.y and t.x > din.x), key=lambda t: t.x
    )
    assert flags.text == "02" and flags.size < din.size
    assert check.text == DIN_.check and len(label.boxes_around(check)) == 1
    assert label.boxes_around(flags) == []


def test_lbl6_the_accompanying_document_carries_what_the_bag_label_leaves_out() -> None:
    """ADR 0020: the particulars allowed off the immediate container (1271.370(c), Annex III
    outer packaging) go with the dose, tied to it by its identifiers."""
    content = dose(3)
    found = dict(rows(content))
    product = content.dose.product
    assert found["Excipients"] == product.excipients
    assert found["Storage conditions"] == product.storage_conditions
    assert product.establishment_address in found["Establishment"]
    assert found["DIN"] == f"12345 26 000007 03 [{DIN_.check}]"
    assert found["Expiry"] == "2026-12-06 00:45 CET"
    assert found["Collection of the starting material"] == "2026-07-01 08:30 CEST"
    assert found["ISBT 128 product code"] == "D00011C0"
    assert found["Sponsor (main contact)"] == product.sponsor


# -- ZPL: the same content, field by field ----------------------------------------------------


def _layout_fields(content: LabelContent, dpi: int) -> list[tuple[str, int, int, str]]:
    """The layout's fields as a printer places them: (kind, x, y, data) in dots."""
    per_mm = dpi / 25.4
    fields = []
    for item in layout(content).items:
        x = round(item.x * per_mm) if hasattr(item, "x") else 0
        if isinstance(item, Text):
            height = round(item.size * per_mm)
            top = max(round(item.y * per_mm) - round(0.8 * height), 0)
            fields.append(("text", x, top, item.text))
        elif isinstance(item, Symbol):
            fields.append((item.kind, x, round(item.y * per_mm), item.payload))
        elif isinstance(item, Box):
            fields.append(("box", x, round(item.y * per_mm), ""))
    return fields


def _zpl_fields(source: str) -> list[tuple[str, int, int, str]]:
    """The ZPL job taken apart into the same fields (^FO origin, command, ^FD data)."""
    kinds = {"^A0": "text", "^BQ": "qr", "^BX": "datamatrix", "^GB": "box"}
    fields = []
    for x, y, command, data in re.findall(
        r"\^FO(\d+),(\d+)(\^[A-Z0-9]{2})[^\^]*(?:\^FH)?(?:\^FD(.*?))?\^FS", source, re.S
    ):
        kind = kinds[command]
        value = unhex(data or "")
        fields.append((kind, int(x), int(y), value.removeprefix("MA,") if kind == "qr" else value))
    return fields


@pytest.mark.parametrize("dpi", [203, 300])
@pytest.mark.parametrize("number", [1, 3])
def test_lbl6_zpl_fields_are_the_layout_fields(dpi: int, number: int) -> None:
    """LBL-6: the ZPL job and the PNG come from one layout: the same texts, symbols and boxes
    at the same places; the symbols' data is what the PNG decodes to."""
    content = dose(number, reprint=True)
    source = zpl.zpl(content, dpi)
    assert _zpl_fields(source) == _layout_fields(content, dpi)
    found = scan(png_image(raster.png(content, dpi)))
    in_zpl = [data for kind, _, _, data in _zpl_fields(source) if kind == "datamatrix"]
    assert sorted(in_zpl) == sorted(found.datamatrix)
    _assert_structures(content, in_zpl)
    assert parse_coi_structure(content.isbt_coi) == COI
