"""ISBT 128 data structures of a dose's product label (LBL-6), against ST-001 v6.2.2: the DIN with
its flags (001, Table 3) including numeric facility ids, the product code (003, Table 7), the
expiration date and time (005) with the published worked example, the compound message (023),
the chain of identity identifier (040), and `parse_scan`, the one parser of scanned dose codes."""

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidCode
from app.identity.codes import (
    DIN,
    MAX_CONTAINERS,
    FlaggedDIN,
    ProductCode,
    ProductLabel,
    VesselCode,
    build_coi,
    coi_structure,
    compound,
    container_flags,
    container_of,
    isbt_date_time,
    parse_coi_structure,
    parse_din,
    parse_din_flags,
    parse_isbt_date_time,
    parse_scan,
    product_code,
)
from app.identity.mod37 import ALPHABET

# ST-001 Figure 2 and Appendix A: DIN A9999 21 123456, check character 3.
FIGURE_2 = DIN("A999921123456")


def _refused(raw: str) -> str:
    with pytest.raises(InvalidCode) as caught:
        parse_scan(raw)
    return caught.value.detail


@pytest.mark.parametrize(
    ("data", "check"),
    [
        ("A999921123456", "3"),
        ("G123417654321", "A"),
        ("W000009123456", "G"),
        ("A999818123456", "N"),
    ],
)
def test_lbl6_din_check_character_vectors_and_their_type_3_flags(data: str, check: str) -> None:
    """LBL-6: the published check characters, eye-readable and as a Type 3 flag (Table 3:
    60 plus the check character's MOD 37-2 value): the right one parses, any other is refused."""
    din = DIN(data)
    assert din.check == check
    flag = f"{60 + ALPHABET.index(check)}"
    assert parse_din_flags(f"={data}{flag}") == FlaggedDIN(din, flag)
    wrong = f"{60 + (ALPHABET.index(check) + 1) % 37}"
    with pytest.raises(InvalidCode, match="check character"):
        parse_din_flags(f"={data}{wrong}")


def test_lbl6_din_data_structure_001_with_its_flags() -> None:
    """LBL-6: Figure 2's DIN with flags 01 (container 1 of a set) parses with or without `=`;
    parse_din accepts the string the product's own Data Matrix carries."""
    for raw in ("=A99992112345601", "A99992112345601", "]d2=A99992112345601\r\n"):
        parsed = parse_din_flags(raw)
        assert (parsed.din, parsed.flags, parsed.container) == (FIGURE_2, "01", 1)
        assert parse_din(raw) == FIGURE_2
    assert parse_din_flags("A9999211234563") == FlaggedDIN(FIGURE_2, "00")  # with its check
    assert parse_din_flags("=A99992112345601").structure == "=A99992112345601"


@pytest.mark.parametrize("flags", ["14", "97", "98", "99", "AB", "0A", "P1"])
def test_lbl6_reserved_flags_are_refused(flags: str) -> None:
    """LBL-6: Table 3's values reserved for future assignment are not read as anything."""
    with pytest.raises(InvalidCode, match="reserved"):
        parse_din_flags(f"=A999921123456{flags}")


@pytest.mark.parametrize("facility", ["12345", "98765", "A9999", "Z0001", "1AB23"])
def test_lbl6_numeric_and_alphanumeric_facility_ids(facility: str) -> None:
    """LBL-6: a FIN begins with A-N, P-Z or 1-9 (ST-001 §2.4.1); DINs, COIs and vessel codes of
    such a facility build and parse back."""
    din = DIN(f"{facility}26000007")
    assert parse_din(din.value + din.check) == din
    coi = build_coi(facility, 2026, 7)
    assert parse_coi_structure(coi_structure(coi)) == coi
    code = VesselCode.build(din, 12)
    assert parse_scan(code.value) == code


@pytest.mark.parametrize("facility", ["O9999", "09999", "A99A9", "*9999"])
def test_lbl6_facility_ids_the_standard_excludes_are_refused(facility: str) -> None:
    with pytest.raises(InvalidCode):
        parse_din(f"{facility}26000007")


def test_lbl6_container_flags_are_distinct_per_dose_and_read_back() -> None:
    """LBL-6: containers 1-4 are flags 01-04 and 5-9 are 15-19 (Table 3); further containers
    use the facility's local range 20-59; every dose of a set has its own flags."""
    assert [container_flags(n) for n in range(1, 10)] == [
        "01", "02", "03", "04", "15", "16", "17", "18", "19"
    ]  # fmt: skip
    flags = [container_flags(n) for n in range(1, MAX_CONTAINERS + 1)]
    assert len(set(flags)) == MAX_CONTAINERS
    assert [container_of(f) for f in flags] == list(range(1, MAX_CONTAINERS + 1))
    assert container_of("00") is None and container_of("63") is None
    for number in (0, MAX_CONTAINERS + 1):
        with pytest.raises(ValueError):
            container_flags(number)


def test_lbl6_expiration_date_and_time_worked_example() -> None:
    """LBL-6: `&>0183652359` is 31 December 2018 at 23:59 (the ISBT 128 worked example, ST-012
    §6.2; c counts centuries from 2000); a leap day 366 exists only in a leap year."""
    assert parse_isbt_date_time("0183652359") == datetime(2018, 12, 31, 23, 59)
    assert isbt_date_time(datetime(2018, 12, 31, 23, 59)) == "0183652359"
    assert isbt_date_time(datetime(2028, 12, 31, 0, 0)) == "0283660000"
    assert isbt_date_time(datetime(2101, 1, 1, 7, 5)) == "1010010705"
    for impossible in ("0263660000", "0260000000", "0260012400", "0260010060", "02600100"):
        with pytest.raises(ValueError):
            parse_isbt_date_time(impossible)


@settings(max_examples=200)
@given(st.datetimes(datetime(2000, 1, 1), datetime(2999, 12, 31)))
def test_lbl6_expiration_round_trips_to_the_minute(moment: datetime) -> None:
    minute = moment.replace(second=0, microsecond=0)
    assert parse_isbt_date_time(isbt_date_time(moment)) == minute


def test_lbl6_product_code_data_structure_003() -> None:
    """LBL-6: Figure 3's product code S1295 4 A0 (PDC, type of collection, division); a dose's
    code is for autologous use only (Table 7: "1") and divided A0, B0 ... per dose."""
    figure_3 = ProductCode("S1295", "4", "A0")
    assert (figure_3.value, figure_3.structure, figure_3.container) == ("S12954A0", "=<S12954A0", 1)
    assert product_code("D0001", 1).value == "D00011A0"
    assert product_code("YA123", 3).value == "YA1231C0"
    assert ProductCode("S1295", "1", "00").container is None  # undivided
    with pytest.raises(ValueError):
        product_code("0ABCD", 1)


def _label(number: int = 2) -> ProductLabel:
    return ProductLabel(
        FlaggedDIN(FIGURE_2, container_flags(number)),
        product_code("D0001", number),
        datetime(2026, 12, 6, 0, 45),
        datetime(2026, 11, 1, 9, 30),
    )


def test_lbl6_compound_message_023() -> None:
    """LBL-6: `=+`, the number of structures, 000 (an undefined sequence), then 001, 003, 005
    and 007 with nothing between them; it parses back to the same label."""
    label = _label()
    assert label.message == (
        "=+04000" "=A99992112345602" "=<D00011B0" "&>0263400045" "&*0263050930"
    )  # fmt: skip
    assert parse_scan(label.message) == label
    assert parse_scan(f"]d2{label.message}\r\n") == label  # an AIM prefix and a line end
    assert compound([]) == "=+00000"


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda m: m.replace("=+04", "=+05"), "announces 5"),
        (lambda m: m.replace("=+04", "=+03"), "announces 3"),
        (lambda m: m[:-3], "cut short"),
        (lambda m: m + "=%5100", "does not carry"),
        (lambda m: m.replace("=<D00011B0", "=<D00011A0"), "name different doses"),
        (lambda m: m.replace("5602=<", "5603=<"), "name different doses"),
        (lambda m: m.replace("5602=<", "5600=<"), "without container flags"),
        (lambda m: m.replace("&>0263400045", "&>0263670045"), "impossible date"),
        (lambda m: m.replace("=+04000", "=+05000") + "&>0263400045", "twice"),
        (lambda m: "=+03000" + m[23:], "no DIN"),
        (lambda m: "=+X", "not an ISBT 128 compound"),
    ],
)
def test_lbl6_a_malformed_or_inconsistent_product_label_is_refused(mangle, says: str) -> None:
    """LBL-6: the integrity of the string is verified before it is interpreted (ST-001
    §2.4.23): the count, each structure's length, the flags against the division code."""
    assert says in _refused(mangle(_label().message))


def test_lbl6_chain_of_identity_identifier_040() -> None:
    """LBL-6: `&/CHappppyynnnnnn`, the COI without its check character, which the parser puts
    back; the COI's own symbol names no dose, so a dose scan refuses it."""
    coi = build_coi("A9999", 2026, 40)
    assert coi_structure(coi) == f"&/{coi[:-1]}" and len(coi_structure(coi)) == 17
    assert parse_coi_structure(coi_structure(coi)) == coi
    assert "chain of identity symbol" in _refused(coi_structure(coi))
    for bad in ("&/CHA99992600004", "&/XXA999926000040", "=/CHA999926000040"):
        with pytest.raises(InvalidCode):
            parse_coi_structure(bad)


def test_lbl6_parse_scan_reads_the_qr_or_the_product_data_matrix() -> None:
    """LBL-6: the one parser of a scanned dose: a vessel code (the QR) or a product label (the
    Data Matrix, or a lone DIN structure with container flags); a DIN without flags is refused."""
    code = VesselCode.build(FIGURE_2, 9)
    assert parse_scan(f" {code.value.lower()}\n") == code
    assert parse_scan("=A99992112345603") == ProductLabel(FlaggedDIN(FIGURE_2, "03"))
    assert "without container flags" in _refused("=A99992112345600")


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=80), st.text(alphabet="=+<>&*/0123456789ABD", max_size=80)))
def test_lbl6_parse_scan_only_ever_raises_invalid_code(text: str) -> None:
    try:
        parse_scan(text)
    except InvalidCode as error:
        assert (error.status, error.code) == (422, "invalid_code")


def test_lbl6_expiry_moves_with_the_wall_clock_not_utc() -> None:
    """LBL-6: the structure encodes the wall-clock time it is given (the facility's local time,
    converted by the label before), so a minute before midnight stays on its own day."""
    late = datetime(2026, 12, 5, 23, 59)
    assert isbt_date_time(late)[3:6] == f"{late.timetuple().tm_yday:03d}"
    assert isbt_date_time(late + timedelta(minutes=1))[3:6] == f"{late.timetuple().tm_yday + 1:03d}"
