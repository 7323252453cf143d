"""The label renderers on their own (issue 5): every format scans back to exactly the vessel code
(and, on a dose, the ISBT 128 DIN data structure), at printer resolutions and at odd scales; the
content of LBL-1/LBL-2 is on the label; sizes are real; ZPL is well formed; renders are cached."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.identity.codes import DIN, VesselCode, build_coi, parse_vessel_code
from app.labels import pdf, raster, svg, zpl
from app.labels.layout import (
    AUTOLOGOUS,
    DoseContent,
    LabelContent,
    grouped_din,
    layout,
    mono_width,
)
from app.vessels.states import VesselKind
from tests.labels.support import (
    DOSE_MM,
    VESSEL_MM,
    SvgLabel,
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

# A DIN and code full of zeros (each must carry a slash) and a check character that is a letter.
DIN_ = DIN.build("A9999", 2026, 100)
CODE = VesselCode.build(DIN_, 10).value
COI = build_coi("A9999", 2026, 40)
DOSE = DoseContent(
    patient_name="ŁUKASIEWICZ-ÖZTÜRK, Zoë Anaïs",
    birth_date=date(1990, 5, 17),
    mrn="MRN-0042",
    coi=COI,
    expires_at=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
    cell_count=150_000_000,
    volume_ml=50.0,
)
VESSEL = LabelContent(CODE, DIN_.value, DIN_.check, "flask", 2, date(2026, 1, 2))
DOSE_LABEL = LabelContent(CODE, DIN_.value, DIN_.check, "bag", 3, date(2026, 1, 20), dose=DOSE)
SYMBOLS = sorted([DOSE_LABEL.isbt_message, DOSE_LABEL.isbt_coi])  # product, COI
GROUPED = grouped_din(DIN_.value)


def _size_px(mm: float, dpi: float) -> int:
    return round(dots(mm, dpi))


# -- LBL-1, LBL-2: every format scans back exactly ------------------------------------------------


@pytest.mark.parametrize("dpi", [203, 300, 600])
def test_lbl1_png_vessel_label_scans_back_at_printer_resolutions(dpi: int) -> None:
    image = png_image(raster.render(layout(VESSEL), dpi))
    assert image.size == (_size_px(50, dpi), _size_px(25, dpi))
    assert round(image.info["dpi"][0]) == dpi
    found = scan(image)
    assert found.qr == [CODE] and found.datamatrix == []
    assert parse_vessel_code(found.qr[0]).din == DIN_


@pytest.mark.parametrize("dpi", [203, 300])
def test_lbl2_png_dose_label_scans_qr_and_datamatrix(dpi: int) -> None:
    image = png_image(raster.render(layout(DOSE_LABEL), dpi))
    assert image.size == (_size_px(100, dpi), _size_px(50, dpi))
    found = scan(image)
    assert found.qr == [CODE]
    assert sorted(found.datamatrix) == SYMBOLS


SVG_SCALES = [
    pytest.param({"dpi": 300}, id="300dpi"),
    pytest.param({"dpi": 203}, id="203dpi"),
    pytest.param({"dpi": 96, "zoom": 1.37}, id="zoom-1.37"),
    pytest.param({"dpi": 96, "zoom": 2.71}, id="zoom-2.71"),
    pytest.param({"dpi": 157}, id="157dpi"),
    # 433 px is no multiple of the 29 modules (with quiet zone) of the QR: fractional modules.
    pytest.param({"dpi": 300, "width": 433}, id="width-433px"),
]


@pytest.mark.parametrize("options", SVG_SCALES)
def test_lbl1_svg_vessel_label_scans_back_at_any_scale(options: dict[str, float]) -> None:
    found = scan(svg_image(svg.render(layout(VESSEL)), **options))
    assert found.qr == [CODE]


@pytest.mark.parametrize("options", SVG_SCALES)
def test_lbl2_svg_dose_label_scans_back_at_any_scale(options: dict[str, float]) -> None:
    found = scan(svg_image(svg.render(layout(DOSE_LABEL)), **options))
    assert found.qr == [CODE]
    assert sorted(found.datamatrix) == SYMBOLS


@pytest.mark.parametrize("dpi", [150, 300])
def test_lbl3_pdf_roll_scans_back_page_by_page(dpi: int) -> None:
    document = pdf_pages(pdf.roll([layout(VESSEL), layout(DOSE_LABEL)]))
    assert len(document) == 2
    vessel_page, dose_page = document[0], document[1]
    assert page_size_mm(vessel_page) == pytest.approx(VESSEL_MM, abs=0.05)
    assert page_size_mm(dose_page) == pytest.approx(DOSE_MM, abs=0.05)
    assert scan(page_image(vessel_page, dpi)).qr == [CODE]
    found = scan(page_image(dose_page, dpi))
    assert found.qr == [CODE] and sorted(found.datamatrix) == SYMBOLS


def test_lbl3_pdf_a4_sheets_hold_a_grid_of_labels_that_all_scan() -> None:
    """45 vessel labels fill one A4 grid (4 x 11) and start a second page; doses (2 x 5) start a
    page of their own."""
    din = DIN.build("B1234", 2026, 7)
    codes = [VesselCode.build(din, seq).value for seq in range(1, 46)]
    contents = [replace(VESSEL, code=c, din=din.value, din_check=din.check) for c in codes]
    doses = [
        replace(
            DOSE_LABEL,
            code=VesselCode.build(din, 50 + i).value,
            din=din.value,
            din_check=din.check,
            dose=replace(DOSE, dose_number=i + 1),
        )
        for i in range(3)
    ]
    document = pdf_pages(pdf.sheets([layout(c) for c in contents + doses]))
    assert len(document) == 3
    qr: list[str] = []
    datamatrix: list[str] = []
    for page in document:
        assert page_size_mm(page) == pytest.approx((210.0, 297.0), abs=0.1)
        found = scan(page_image(page, 200))
        qr += found.qr
        datamatrix += found.datamatrix
    assert sorted(qr) == sorted(codes + [d.code for d in doses])
    assert sorted(datamatrix) == sorted([d.isbt_message for d in doses] + [doses[0].isbt_coi] * 3)
    assert len({d.isbt_message for d in doses}) == 3  # each dose's symbol is its own


# -- COI-4: random identities scan back to codes the parser accepts --------------------------------

facilities = st.from_regex(r"[A-NP-Z1-9][0-9]{4}", fullmatch=True)
dins = st.builds(
    DIN.build,
    facilities,
    st.integers(min_value=2000, max_value=2099),
    st.integers(min_value=1, max_value=999_999),
)
name_chars = st.characters(
    categories=["Lu", "Ll", "Zs"], include_characters="-'.,ÀÉÎÕÜßçñøåæœŁłŐőŠšŽžĞğİı"
)
names = st.one_of(
    st.text(name_chars, min_size=1, max_size=40),
    st.text(name_chars, min_size=60, max_size=200),  # long names shrink to fit
)
doses = st.builds(
    DoseContent,
    patient_name=names.map(str.strip).filter(bool),
    birth_date=st.dates(date(1920, 1, 1), date(2025, 12, 31)),
    mrn=st.from_regex(r"[A-Z0-9-]{1,20}", fullmatch=True),
    coi=st.builds(
        build_coi,
        facilities,
        st.integers(min_value=2000, max_value=2099),
        st.integers(min_value=1, max_value=999_999),
    ),
    expires_at=st.datetimes(datetime(2025, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC)),
    cell_count=st.integers(min_value=1, max_value=10**10),
    volume_ml=st.floats(min_value=0.1, max_value=1000, allow_nan=False).map(lambda v: round(v, 1)),
)


@st.composite
def contents(draw: st.DrawFn) -> LabelContent:
    din = draw(dins)
    code = VesselCode.build(din, draw(st.integers(min_value=1, max_value=9999))).value
    return LabelContent(
        code=code,
        din=din.value,
        din_check=din.check,
        kind=draw(st.sampled_from([k.value for k in VesselKind])),
        passage=draw(st.integers(min_value=0, max_value=99)),
        made_on=draw(st.dates(date(2020, 1, 1), date(2099, 12, 31))),
        reprint=draw(st.booleans()),
        dose=draw(st.one_of(st.none(), doses)),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=contents(), dpi=st.sampled_from([203, 300]))
def test_coi4_any_label_scans_back_to_its_code_and_din(content: LabelContent, dpi: int) -> None:
    label = layout(content)
    for item in label.items:  # nothing drawn off the label, however long the name
        if hasattr(item, "text"):
            assert item.x + mono_width(item.text, item.size) <= label.width + 1e-9, item
    found = scan(png_image(raster.render(label, dpi)))
    assert len(found.qr) == 1
    parsed = parse_vessel_code(found.qr[0])
    assert parsed.value == found.qr[0] == content.code
    assert parsed.din.value == content.din
    if content.dose is None:
        assert found.datamatrix == []
    else:
        assert sorted(found.datamatrix) == sorted([content.isbt_message, content.isbt_coi])


# -- LBL-1, LBL-2: what a label says --------------------------------------------------------------


def _assert_code_line_slashed(label: SvgLabel, code: str) -> None:
    text = label.text(code)
    assert text.bold
    zeros = [i for i, char in enumerate(code) if char == "0"]
    assert zeros, "the test code must contain zeros"
    assert label.slashes_in(text) == zeros


def test_lbl1_svg_vessel_label_says_code_din_boxed_check_kind_passage_date() -> None:
    document = svg.render(layout(VESSEL))
    label = parse_svg(document)
    assert (label.width, label.height, label.view_box) == ("50mm", "25mm", "0 0 50 25")
    strings = label.strings()
    assert CODE in strings
    _assert_code_line_slashed(label, CODE)
    # DIN <din> with its check character in a box
    din_text = label.text(GROUPED)
    assert "DIN " in strings
    check = next(t for t in label.texts if t.y == din_text.y and t.x > din_text.x)
    assert check.text == DIN_.check
    assert len(label.boxes_around(check)) == 1
    assert label.boxes_around(din_text) == []  # only the check is boxed
    assert label.slashes_in(din_text) == [i for i, c in enumerate(GROUPED) if c == "0"]
    assert "flask · P2" in strings
    date_text = label.text("2026-01-02")
    assert label.slashes_in(date_text) == [1, 5, 8]
    assert "REPRINT" not in strings
    # every stroke is a zero slash of some text: code, DIN, date (the check "…" has none here)
    slashes = sum(len(label.slashes_in(t)) for t in label.texts)
    assert slashes == len(label.lines) == CODE.count("0") + DIN_.value.count("0") + 3


def test_lbl2_svg_dose_label_says_patient_dose_and_autologous_use() -> None:
    label = parse_svg(svg.render(layout(DOSE_LABEL)))
    assert (label.width, label.height, label.view_box) == ("100mm", "50mm", "0 0 100 50")
    strings = label.strings()
    joined = "\n".join(strings)
    assert AUTOLOGOUS == "FOR AUTOLOGOUS USE ONLY"
    assert label.text(AUTOLOGOUS).bold
    assert len(label.boxes_around(label.text(AUTOLOGOUS))) == 1
    assert "ŁUKASIEWICZ-ÖZTÜRK, Zoë Anaïs" in strings
    assert "1990-05-17" in joined and "MRN-0042" in joined
    assert COI in strings
    assert "EXP 2026-03-01 12:30 UTC" in strings
    assert "150,000,000 viable cells" in joined and "50 mL" in joined
    _assert_code_line_slashed(label, CODE)
    check = next(t for t in label.texts if t.y == label.text(GROUPED).y and t.text == DIN_.check)
    assert len(label.boxes_around(check)) == 1
    assert "bag · P3 · 2026-01-20" in strings


def test_lbl1_pdf_text_is_the_label_text() -> None:
    document = pdf_pages(pdf.roll([layout(VESSEL), layout(DOSE_LABEL)]))
    vessel = page_text(document[0])
    assert CODE in vessel
    assert f"DIN {GROUPED}" in vessel and DIN_.check in vessel
    assert "flask · P2" in vessel and "2026-01-02" in vessel
    dose = page_text(document[1])
    for fact in [
        CODE,
        f"DIN {GROUPED}",
        AUTOLOGOUS,
        "ŁUKASIEWICZ-ÖZTÜRK, Zoë Anaïs",
        "1990-05-17",
        "MRN-0042",
        COI,
        "EXP 2026-03-01 12:30 UTC",
        "150,000,000 viable cells · 50 mL",
        "P3",
    ]:
        assert fact in dose, (fact, dose)


def test_lbl4_reprint_mark_shows_on_every_format() -> None:
    again = replace(VESSEL, reprint=True)
    assert "REPRINT" in parse_svg(svg.svg(again)).strings()
    assert "REPRINT" not in parse_svg(svg.svg(VESSEL)).strings()
    assert "REPRINT" in page_text(pdf_pages(pdf.roll([layout(again)]))[0])
    assert "REPRINT" in zpl_jobs(zpl.zpl(again))[0].texts
    assert "REPRINT" not in zpl_jobs(zpl.zpl(VESSEL))[0].texts
    dose_again = replace(DOSE_LABEL, reprint=True)
    assert "REPRINT" in parse_svg(svg.svg(dose_again)).strings()
    # the mark does not cover the symbols
    assert scan(png_image(raster.png(again))).qr == [CODE]
    found = scan(png_image(raster.png(dose_again, 203)))
    assert found.qr == [CODE] and sorted(found.datamatrix) == SYMBOLS


# -- LBL-3: ZPL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dpi", [203, 300])
def test_lbl3_zpl_vessel_label(dpi: int) -> None:
    source = zpl.zpl(VESSEL, dpi)
    assert source.startswith("^XA") and source.rstrip().endswith("^XZ")
    (job,) = zpl_jobs(source)
    assert job.width == pytest.approx(dots(50, dpi), abs=1)
    assert job.length == pytest.approx(dots(25, dpi), abs=1)
    ((magnification, data),) = job.qr
    assert data == f"MA,{CODE}"
    # 21 modules + quiet zone of the version-1 QR fit in the 21 mm the layout gives the symbol
    assert magnification >= 2 and 29 * magnification <= dots(21, dpi)
    assert job.datamatrix == []
    assert CODE in job.texts and GROUPED in job.texts and DIN_.check in job.texts
    assert "flask · P2" in job.texts and "2026-01-02" in job.texts
    assert "^CI28" in source  # UTF-8 field data


@pytest.mark.parametrize("dpi", [203, 300])
def test_lbl3_zpl_dose_label(dpi: int) -> None:
    (job,) = zpl_jobs(zpl.zpl(DOSE_LABEL, dpi))
    assert job.width == pytest.approx(dots(100, dpi), abs=1)
    assert job.length == pytest.approx(dots(50, dpi), abs=1)
    assert [data for _, data in job.qr] == [f"MA,{CODE}"]
    assert sorted(data for _, data in job.datamatrix) == SYMBOLS
    assert all(module >= 1 for module, _ in job.datamatrix)
    joined = "\n".join(job.texts)
    for fact in [
        CODE,
        GROUPED,
        AUTOLOGOUS,
        "ŁUKASIEWICZ-ÖZTÜRK, Zoë Anaïs",
        "1990-05-17",
        "MRN-0042",
        COI,
        "EXP 2026-03-01 12:30 UTC",
        "150,000,000 viable cells",
    ]:
        assert fact in joined, fact


def test_lbl3_zpl_field_data_cannot_inject_commands() -> None:
    """^ and ~ start ZPL commands; a name holding them is hex-escaped, and reads back intact."""
    hostile = replace(
        DOSE_LABEL, dose=replace(DOSE, patient_name="O^BRIEN~JA_1, ^XZ^XA~JR", mrn="A_B")
    )
    source = zpl.zpl(hostile)
    assert source.count("^XA") == 1 and source.count("^XZ") == 1
    assert "~" not in source
    (job,) = zpl_jobs(source)
    assert "O^BRIEN~JA_1, ^XZ^XA~JR" in job.texts
    assert any("MRN A_B" in text for text in job.texts)


# -- render cache ---------------------------------------------------------------------------------


def test_lbl3_renders_are_cached_per_content_and_reprint_changes_them() -> None:
    first = raster.png(VESSEL, 300)
    equal = LabelContent(CODE, DIN_.value, DIN_.check, "flask", 2, date(2026, 1, 2))
    assert equal is not VESSEL and equal == VESSEL
    assert raster.png(equal, 300) is first  # a cache hit, not a re-render
    assert svg.svg(equal) is svg.svg(VESSEL)
    assert zpl.zpl(equal, 203) is zpl.zpl(VESSEL, 203)
    assert first == raster.render(layout(VESSEL), 300)  # the cache holds the real render
    reprint = raster.png(replace(VESSEL, reprint=True), 300)
    assert reprint != first
    assert raster.png(VESSEL, 203) != first
    later = replace(DOSE_LABEL, dose=replace(DOSE, expires_at=DOSE.expires_at + timedelta(hours=1)))
    assert raster.png(later) != raster.png(DOSE_LABEL)
