"""DIN, COI and vessel codes: building, tolerant parsing of scanner noise, strict refusal of any
wrong character or check character, and readable errors (COI-4, design §2 and §11)."""

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.errors import InvalidCode
from app.identity.codes import (
    COI_LENGTH,
    DIN,
    DIN_LENGTH,
    VESSEL_CODE_LENGTH,
    VesselCode,
    build_coi,
    normalize,
    parse_coi,
    parse_din,
    parse_vessel_code,
)
from app.identity.mod37 import ALPHABET

facilities = st.from_regex(r"[A-NP-Z1-9][0-9]{4}", fullmatch=True)  # numeric FINs too
years = st.integers(min_value=2000, max_value=2199)
din_sequences = st.integers(min_value=1, max_value=999_999)
vessel_sequences = st.integers(min_value=1, max_value=9999)
dins = st.builds(DIN.build, facilities, years, din_sequences)
cois = st.builds(build_coi, facilities, years, din_sequences)
vessel_codes = st.builds(lambda din, seq: VesselCode.build(din, seq).value, dins, vessel_sequences)
PARSERS = {"vessel code": parse_vessel_code, "DIN": parse_din, "COI": parse_coi}


def mod37_holds(code_with_check: str) -> bool:
    """ISO/IEC 7064 MOD 37-2 by its definition, independent of app.identity.mod37."""
    total = sum(
        ALPHABET.index(char) * pow(2, position, 37)
        for position, char in enumerate(reversed(code_with_check))
    )
    return total % 37 == 1


@st.composite
def scanner_noise(draw, code: str) -> str:
    """`code` as a scanner or a person may deliver it: AIM prefix, case, grouping spaces,
    surrounding white space and line ends."""
    chars = [char.lower() if draw(st.booleans()) else char for char in code]  # random lower case
    grouped = ""
    for char in chars:
        grouped += char + draw(st.sampled_from(["", "", "", " ", "  ", "\t"]))
    aim = draw(st.sampled_from(["", "]Q1", "]C0", "]d2", "]q3", "]E0"]))
    before = draw(st.text(alphabet=" \t\r\n", max_size=3))
    after = draw(st.sampled_from(["", "\r\n", "\n", "\r", "\t", " ", " \r\n"]))
    return before + aim + grouped + after


# -- building ---------------------------------------------------------------------------------


@settings(max_examples=200)
@given(facilities, years, din_sequences)
def test_coi4_din_layout_and_check_character(facility, year, sequence):
    """COI-4: a DIN is facility id + 2-digit year + 6-digit sequence, 13 characters, and its
    check character is MOD 37-2 over those 13."""
    din = DIN.build(facility, year, sequence)
    assert din.value == f"{facility}{year % 100:02d}{sequence:06d}"
    assert len(din.value) == DIN_LENGTH and din.facility == facility
    assert din.check in ALPHABET and mod37_holds(din.value + din.check)


@settings(max_examples=200)
@given(facilities, years, din_sequences)
def test_coi4_coi_layout_and_check_character(facility, year, sequence):
    """COI-4: a COI is CH + facility + year + sequence + a MOD 37-2 check over the other 15."""
    coi = build_coi(facility, year, sequence)
    assert len(coi) == COI_LENGTH
    assert coi[:-1] == f"CH{facility}{year % 100:02d}{sequence:06d}"
    assert mod37_holds(coi)


@settings(max_examples=200)
@given(dins, vessel_sequences)
def test_coi4_vessel_code_layout_and_check_character(din, sequence):
    """COI-4: a vessel code is the DIN, a 4-digit sequence and a MOD 37-2 check over the 17."""
    code = VesselCode.build(din, sequence).value
    assert len(code) == VESSEL_CODE_LENGTH
    assert code[:-1] == f"{din.value}{sequence:04d}"
    assert mod37_holds(code)


@pytest.mark.parametrize("sequence", [0, -1, 1_000_000])
def test_coi4_din_and_coi_sequences_are_bounded(sequence):
    """COI-4: a sequence that does not fit its 6 digits is refused, never truncated."""
    with pytest.raises(ValueError):
        DIN.build("A9999", 2026, sequence)
    with pytest.raises(ValueError):
        build_coi("A9999", 2026, sequence)


@pytest.mark.parametrize("sequence", [0, -1, 10_000])
def test_coi4_vessel_sequence_is_bounded(sequence):
    """COI-4: a vessel sequence that does not fit its 4 digits is refused, never truncated."""
    with pytest.raises(ValueError):
        VesselCode.build(DIN.build("A9999", 2026, 1), sequence)


# -- round trips ------------------------------------------------------------------------------


@settings(max_examples=200)
@given(dins, vessel_sequences)
def test_coi4_vessel_code_round_trip(din, sequence):
    """COI-4: parsing a built vessel code gives back its DIN and sequence."""
    built = VesselCode.build(din, sequence)
    parsed = parse_vessel_code(built.value)
    assert parsed == built and parsed.din == din and parsed.sequence == sequence
    assert parsed.value == built.value


@settings(max_examples=200)
@given(dins)
def test_coi4_din_round_trip_with_and_without_check_and_isbt_prefix(din):
    """COI-4, LBL-6: a DIN parses from its 13 characters, 14 with its check character, or as the
    ISBT 128 data structure 001 (`=`, the DIN, two flag characters); before a DIN of a numeric
    facility id an `=` without the flags is ambiguous (a misread first character), so refused."""
    assert parse_din(din.value) == din
    assert parse_din(din.value + din.check) == din
    assert parse_din("=" + din.value + "00") == din
    assert parse_din("=" + din.value + "01") == din
    for partial in ("=" + din.value, "=" + din.value + din.check):
        if din.value[0].isalpha():
            assert parse_din(partial) == din
        else:
            with pytest.raises(InvalidCode):
                parse_din(partial)


@settings(max_examples=200)
@given(cois)
def test_coi4_coi_round_trip(coi):
    """COI-4: parsing a built COI gives it back unchanged."""
    assert parse_coi(coi) == coi


# -- scanner noise ----------------------------------------------------------------------------


@settings(max_examples=150)
@given(st.data(), vessel_codes)
def test_coi4_vessel_code_parse_tolerates_scanner_noise(data, code):
    """COI-4: AIM prefix, lower case, grouping spaces, tabs, CR/LF around are forgiven."""
    noisy = data.draw(scanner_noise(code))
    assert parse_vessel_code(noisy).value == code


@settings(max_examples=100)
@given(st.data(), dins)
def test_coi4_din_parse_tolerates_scanner_noise(data, din):
    """COI-4: a DIN (with its check character) read with scanner noise parses to the DIN."""
    prefix = "=" if din.value[0].isalpha() else ""
    noisy = data.draw(scanner_noise(prefix + din.value + din.check))
    assert parse_din(noisy) == din
    assert parse_din(data.draw(scanner_noise("=" + din.value + "01"))) == din
    assert parse_din(data.draw(scanner_noise(din.value))) == din


@settings(max_examples=100)
@given(st.data(), cois)
def test_coi4_coi_parse_tolerates_scanner_noise(data, coi):
    """COI-4: a COI read with scanner noise parses to the COI."""
    assert parse_coi(data.draw(scanner_noise(coi))) == coi


def test_coi4_normalize_examples():
    """COI-4: the documented noise, concretely."""
    assert normalize("]Q1a99992600000100014\r\n") == "A99992600000100014"
    assert normalize("  A9999 26 000001 0001 4\t") == "A99992600000100014"
    assert normalize("\x00A9999\x1f") == "A9999"


# -- strict refusal ---------------------------------------------------------------------------

# What a single wrong keystroke or misread can put in place of a character.
WRONG_CHARACTERS = ALPHABET + string.ascii_lowercase + "-./:;#!?=+_é"


def _substitutions(code: str):
    for position, original in enumerate(code):
        for replacement in WRONG_CHARACTERS:
            if replacement.upper() != original:
                yield position, code[:position] + replacement + code[position + 1 :]


def _assert_invalid_code(parse, raw: str) -> InvalidCode:
    with pytest.raises(InvalidCode) as caught:
        parse(raw)
    error = caught.value
    assert (error.status, error.code) == (422, "invalid_code")
    return error


@settings(max_examples=60, deadline=None)
@given(vessel_codes)
def test_coi4_any_single_wrong_character_in_a_vessel_code_is_invalid_code(code):
    """COI-4: every single substitution, at every position, is refused with InvalidCode."""
    for _, corrupted in _substitutions(code):
        with pytest.raises(InvalidCode):
            parse_vessel_code(corrupted)


@settings(max_examples=60, deadline=None)
@given(cois)
def test_coi4_any_single_wrong_character_in_a_coi_is_invalid_code(coi):
    """COI-4: every single substitution in a COI is refused with InvalidCode."""
    for _, corrupted in _substitutions(coi):
        with pytest.raises(InvalidCode):
            parse_coi(corrupted)


@settings(max_examples=60, deadline=None)
@given(dins)
def test_coi4_any_single_wrong_character_in_a_din_with_check_is_invalid_code(din):
    """COI-4: every single substitution in a DIN given with its check character is refused."""
    for _, corrupted in _substitutions(din.value + din.check):
        with pytest.raises(InvalidCode):
            parse_din(corrupted)


@settings(max_examples=200)
@given(vessel_codes, cois, dins, st.sampled_from(ALPHABET))
def test_coi4_a_wrong_check_character_is_invalid_code(code, coi, din, check):
    """COI-4: a wrong check character is never forgiven, whatever the noise."""
    assume(check not in {code[-1], coi[-1], din.check})
    for parse, raw in [
        (parse_vessel_code, code[:-1] + check),
        (parse_vessel_code, f"]Q1{code[:-1]}{check}\r\n".lower()),
        (parse_coi, coi[:-1] + check),
        (parse_din, din.value + check),
        (parse_din, "=" + din.value + check),
    ]:
        error = _assert_invalid_code(parse, raw)
        assert "check character" in error.detail


@settings(max_examples=200)
@given(vessel_codes, st.integers(min_value=0, max_value=VESSEL_CODE_LENGTH - 2))
def test_coi4_an_adjacent_transposition_in_a_vessel_code_is_invalid_code(code, position):
    """COI-4: two adjacent different characters swapped are refused."""
    assume(code[position] != code[position + 1])
    swapped = code[:position] + code[position + 1] + code[position] + code[position + 2 :]
    _assert_invalid_code(parse_vessel_code, swapped)


@settings(max_examples=200)
@given(vessel_codes, cois, dins)
def test_coi4_codes_of_the_wrong_kind_are_invalid_code(code, coi, din):
    """COI-4: a code is never taken for one of another kind."""
    din_check = din.value + din.check
    for parse, raw in [
        (parse_vessel_code, din.value),
        (parse_vessel_code, din_check),
        (parse_vessel_code, coi),
        (parse_coi, code),
        (parse_coi, din.value),
        (parse_coi, din_check),
        (parse_din, code),
        (parse_din, coi),
        (parse_din, code[:-1]),
    ]:
        _assert_invalid_code(parse, raw)


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize(
    "raw",
    ["", "   ", "\r\n", "hello", "A9999", "O99992600000100014", "]Q1", "é" * 18, "A" * 200],
)
def test_coi4_garbage_is_invalid_code_for_every_parser(parse, raw):
    """COI-4: empty, blank, short, long, non-ASCII input and the letter O as facility letter
    are refused with InvalidCode, never another exception."""
    _assert_invalid_code(parse, raw)


@settings(max_examples=300)
@given(st.text(max_size=60), st.sampled_from(list(PARSERS.values())))
def test_coi4_parsers_only_ever_raise_invalid_code(text, parse):
    """COI-4: on arbitrary text a parser either returns a code whose check holds or raises
    InvalidCode; it never raises anything else."""
    try:
        result = parse(text)
    except InvalidCode as error:
        assert (error.status, error.code) == (422, "invalid_code")
        return
    value = result if isinstance(result, str) else result.value
    if isinstance(result, DIN):
        assert len(value) == DIN_LENGTH
    else:
        assert mod37_holds(value)


# -- readable errors --------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "parse"), PARSERS.items())
@pytest.mark.parametrize("size", [50, 1000, 100_000])
def test_coi4_error_is_a_sentence_that_echoes_little_of_a_huge_input(what, parse, size):
    """COI-4: the refusal names the kind of code in a sentence and echoes at most ~40
    characters of the input, however long it is."""
    alphabet = string.ascii_letters + string.digits
    raw = "".join(alphabet[(i * 7919) % len(alphabet)] for i in range(size))
    error = _assert_invalid_code(parse, raw)
    detail = error.detail
    assert detail.endswith(".") and what in detail and " not a " in detail
    assert len(detail) < 400
    longest_echo = 46
    assert not any(
        raw[start : start + longest_echo] in detail for start in range(len(raw) - longest_echo)
    )


@pytest.mark.parametrize(("what", "parse"), PARSERS.items())
def test_coi4_error_for_a_wrong_check_character_names_the_input_and_the_remedy(what, parse):
    """COI-4: a mistyped code is told apart from a malformed one, and the person is told what
    to do."""
    raw = {
        "vessel code": VesselCode.build(DIN.build("A9999", 2026, 1), 1).value,
        "DIN": DIN.build("A9999", 2026, 1).value + DIN.build("A9999", 2026, 1).check,
        "COI": build_coi("A9999", 2026, 1),
    }[what]
    wrong = raw[:-1] + ("0" if raw[-1] != "0" else "1")
    error = _assert_invalid_code(parse, wrong)
    assert wrong in error.detail and what in error.detail
    assert "check character" in error.detail and "Rescan" in error.detail


def test_coi4_only_ascii_letters_are_upper_cased():
    """COI-4: a non-ASCII look-alike is never turned into a code character."""
    dotless_i, long_s = "\u0131", "\u017f"  # str.upper() gives "I" and "S"
    assert normalize("a9999" + dotless_i) == "A9999" + dotless_i
    assert normalize(long_s) == long_s
    code = VesselCode.build(DIN.build("A9999", 26, 1), 1).value
    with pytest.raises(InvalidCode):
        parse_vessel_code(code[:-1] + dotless_i)
