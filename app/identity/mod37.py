"""ISO/IEC 7064 MOD 37-2, the check character system of ISBT 128.

A pure system: it detects every single-character substitution and every transposition of two
adjacent characters (proven for our alphabet by tests/identity/test_mod37.py).
"""

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_VALUE = {char: index for index, char in enumerate(ALPHABET)}
_DATA_CHARS = frozenset(ALPHABET[:36])


def check_character(data: str) -> str:
    """The MOD 37-2 check character of `data` (digits and upper-case letters only)."""
    total = 0
    for char in data:
        try:
            value = _VALUE[char]
        except KeyError:
            raise ValueError(f"character {char!r} is not allowed in a code") from None
        if value == 36:
            raise ValueError("'*' may only appear as a check character")
        total = ((total + value) * 2) % 37
    return ALPHABET[(38 - total) % 37]


def is_data(text: str) -> bool:
    """True if every character may appear in the data part of a code."""
    return all(char in _DATA_CHARS for char in text)


def is_valid(code_with_check: str) -> bool:
    """True if the last character is the MOD 37-2 check character of the rest."""
    if len(code_with_check) < 2 or not is_data(code_with_check[:-1]):
        return False
    return check_character(code_with_check[:-1]) == code_with_check[-1]
