"""Chain-of-identity code formats: DIN, COI and vessel codes, and their tolerant, strict parsing.

- DIN (ISBT 128 layout): facility id (a letter and 4 digits) + 2-digit year + 6-digit
  sequence = 13 characters, with a MOD 37-2 check character over those 13 (shown boxed on
  labels, not part of the DIN).
- COI: `CH` + facility id + 2-digit year + 6-digit sequence + MOD 37-2 check = 16 characters.
- Vessel code: DIN + 4-digit per-batch sequence + MOD 37-2 check over the 17 = 18 characters.

The three have distinct lengths, so a code can never be taken for one of another kind. Parsing
forgives scanner noise (surrounding white space, CR/LF, AIM symbology prefixes such as `]Q1`,
lower case, grouping spaces typed from an eye-readable label) but never a wrong check character.
"""

import re
import string
from dataclasses import dataclass

from app.errors import InvalidCode
from app.identity.mod37 import check_character, is_valid

FACILITY_PATTERN = r"[A-NP-Z][0-9]{4}"
_DIN_BODY = rf"{FACILITY_PATTERN}[0-9]{{8}}"
_DIN_RE = re.compile(_DIN_BODY)
_COI_RE = re.compile(rf"CH{_DIN_BODY}")
_VESSEL_RE = re.compile(rf"{_DIN_BODY}[0-9]{{4}}")
_SYMBOLOGY_PREFIX = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_NOISE = re.compile(r"[\s\x00-\x1f\x7f]+")

DIN_LENGTH = 13
COI_LENGTH = 16
VESSEL_CODE_LENGTH = 18
MAX_VESSEL_SEQUENCE = 9999


def normalize(raw: str) -> str:
    """The code a person meant: no white space or control characters, no AIM prefix, upper case."""
    text = _SYMBOLOGY_PREFIX.sub("", raw.strip())
    # ASCII only: str.upper() turns a dotless i (U+0131) into "I", a long s (U+017F) into "S".
    return _NOISE.sub("", text).translate(_ASCII_UPPER)


def _shown(raw: str) -> str:
    text = raw.strip()
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _require_check(code: str, raw: str, what: str) -> None:
    if not is_valid(code):
        raise InvalidCode(
            f"{_shown(raw)} is not a valid {what}: its check character does not match, so it was "
            "mistyped or misread. Rescan the label or retype the code."
        )


@dataclass(frozen=True, slots=True)
class DIN:
    """A donation identification number: one biopsy."""

    value: str

    @property
    def check(self) -> str:
        return check_character(self.value)

    @property
    def facility(self) -> str:
        return self.value[:5]

    @classmethod
    def build(cls, facility: str, year: int, sequence: int) -> "DIN":
        if not 0 < sequence <= 999_999:
            raise ValueError("DIN sequence exhausted for this facility and year")
        return cls(f"{facility}{year % 100:02d}{sequence:06d}")


@dataclass(frozen=True, slots=True)
class VesselCode:
    """The scannable identity of one physical container."""

    din: DIN
    sequence: int

    @property
    def value(self) -> str:
        data = f"{self.din.value}{self.sequence:04d}"
        return data + check_character(data)

    @classmethod
    def build(cls, din: DIN, sequence: int) -> "VesselCode":
        if not 0 < sequence <= MAX_VESSEL_SEQUENCE:
            raise ValueError("vessel sequence exhausted for this batch")
        return cls(din, sequence)


def build_coi(facility: str, year: int, sequence: int) -> str:
    """A new chain-of-identity identifier, check character included."""
    if not 0 < sequence <= 999_999:
        raise ValueError("COI sequence exhausted for this facility and year")
    data = f"CH{facility}{year % 100:02d}{sequence:06d}"
    return data + check_character(data)


def parse_vessel_code(raw: str) -> VesselCode:
    """The vessel code in `raw`, or InvalidCode saying what is wrong with it (COI-4)."""
    code = normalize(raw)
    if len(code) != VESSEL_CODE_LENGTH or not _VESSEL_RE.fullmatch(code[:-1]):
        raise InvalidCode(
            f"{_shown(raw)} is not a vessel code: a vessel code has {VESSEL_CODE_LENGTH} "
            "characters (the 13-character DIN, a 4-digit sequence and a check character)."
        )
    _require_check(code, raw, "vessel code")
    return VesselCode(DIN(code[:DIN_LENGTH]), int(code[DIN_LENGTH:-1]))


def parse_din(raw: str) -> DIN:
    """A DIN given as its 13 characters, or 14 with its check character (which must match)."""
    code = normalize(raw).removeprefix("=")
    if len(code) not in (DIN_LENGTH, DIN_LENGTH + 1) or not _DIN_RE.fullmatch(code[:DIN_LENGTH]):
        raise InvalidCode(
            f"{_shown(raw)} is not a DIN: a DIN has 13 characters (facility id, 2-digit year, "
            "6-digit sequence), optionally followed by its check character."
        )
    if len(code) == DIN_LENGTH + 1:
        _require_check(code, raw, "DIN")
    return DIN(code[:DIN_LENGTH])


def parse_coi(raw: str) -> str:
    """A chain-of-identity identifier, check character verified."""
    code = normalize(raw)
    if len(code) != COI_LENGTH or not _COI_RE.fullmatch(code[:-1]):
        raise InvalidCode(
            f"{_shown(raw)} is not a COI: a COI has {COI_LENGTH} characters (CH, facility id, "
            "2-digit year, 6-digit sequence and a check character)."
        )
    _require_check(code, raw, "COI")
    return code
