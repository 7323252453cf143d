"""ISO/IEC 7064 MOD 37-2, the check character of every code (COI-4, design §11).

The published ISBT 128 vectors pin the computation; the properties prove, exhaustively for each
generated code, the two guarantees COI-4 relies on: every single-character substitution and every
transposition of two adjacent different characters is detected, so a misread never matches.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.identity.mod37 import ALPHABET, check_character, is_data, is_valid

DATA_ALPHABET = ALPHABET[:36]
data_strings = st.text(alphabet=DATA_ALPHABET, min_size=1, max_size=30)


def reference_is_valid(code_with_check: str) -> bool:
    """ISO/IEC 7064 pure system MOD 37-2, from its definition and independent of the app:
    sum over positions i (1 = rightmost, the check) of value * 2**(i-1) is congruent to 1 mod 37."""
    total = sum(
        ALPHABET.index(char) * pow(2, position, 37)
        for position, char in enumerate(reversed(code_with_check))
    )
    return total % 37 == 1


@pytest.mark.parametrize(
    ("data", "check"),
    [
        ("A999921123456", "3"),
        ("G123417654321", "A"),
        ("W000009123456", "G"),
        ("A999818123456", "N"),
    ],
)
def test_coi4_isbt128_check_character_vectors(data, check):
    """COI-4: the check characters of the published ISBT 128 examples."""
    assert check_character(data) == check
    assert is_valid(data + check)


@settings(max_examples=300)
@given(data_strings)
def test_coi4_check_character_satisfies_the_iso7064_equation(data):
    """COI-4: the computed check character is the unique one the MOD 37-2 definition admits."""
    check = check_character(data)
    assert check in ALPHABET
    assert reference_is_valid(data + check)
    assert [char for char in ALPHABET if reference_is_valid(data + char)] == [check]


@settings(max_examples=200, deadline=None)
@given(data_strings)
def test_coi4_every_single_substitution_is_detected(data):
    """COI-4: changing any one character (data or check) to any other character of the 37-char
    alphabet, `*` included, always yields an invalid code."""
    code = data + check_character(data)
    assert is_valid(code)
    for position, original in enumerate(code):
        for replacement in ALPHABET:
            if replacement == original:
                continue
            corrupted = code[:position] + replacement + code[position + 1 :]
            assert not is_valid(corrupted), (code, position, replacement)


@settings(max_examples=200, deadline=None)
@given(data_strings)
def test_coi4_every_adjacent_transposition_is_detected(data):
    """COI-4: swapping any two adjacent different characters, including the last data character
    with the check character, always yields an invalid code."""
    code = data + check_character(data)
    for position in range(len(code) - 1):
        first, second = code[position], code[position + 1]
        if first == second:
            continue
        swapped = code[:position] + second + first + code[position + 2 :]
        assert not is_valid(swapped), (code, position)


@settings(max_examples=200)
@given(data_strings)
def test_coi4_a_star_check_character_is_only_valid_where_computed(data):
    """COI-4: `*` (value 36) is a legitimate check character, never a data character."""
    check = check_character(data)
    assert is_valid(data + "*") == (check == "*")
    assert not is_valid("*" + data + check)


@pytest.mark.parametrize(
    "data",
    ["a9999", "A999921123456a", "A9999*1", "*", "A-9999", "A 9999", "A9999.", "É9999", "=A9999"],
)
def test_coi4_check_character_refuses_characters_outside_the_alphabet(data):
    """COI-4: lower case, `*` in the data, punctuation, white space and non-ASCII are refused."""
    with pytest.raises(ValueError):
        check_character(data)
    assert not is_data(data)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_coi4_is_valid_never_raises_on_arbitrary_text(text):
    """COI-4: validating untrusted input answers True/False, never an exception, and agrees
    with the definition on every input made of the alphabet."""
    result = is_valid(text)
    assert isinstance(result, bool)
    if result:
        assert len(text) >= 2 and is_data(text[:-1]) and reference_is_valid(text)


@pytest.mark.parametrize("text", ["", "3", "*", "a999921123456" + "3", "A999921123456" + "4"])
def test_coi4_is_valid_rejects_short_lower_case_and_wrong_codes(text):
    """COI-4: too short, lower case or a wrong check character is not valid."""
    assert not is_valid(text)
