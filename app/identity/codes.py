"""Chain-of-identity code formats: DIN, COI and vessel codes, and their tolerant, strict parsing.

- DIN (ISBT 128 layout): facility id (FIN: a letter A-N/P-Z or a digit 1-9, then 4 characters)
  + 2-digit year + 6-digit sequence = 13 characters, with a MOD 37-2 check character over those
  13 (shown boxed on labels, not part of the DIN). On a product label the DIN carries two flag
  characters (data structure 001, ST-001 §2.4.1 and Table 3): the container of a set.
- COI: `CH` + facility id + 2-digit year + 6-digit sequence + MOD 37-2 check = 16 characters.
- Vessel code: DIN + 4-digit per-batch sequence + MOD 37-2 check over the 17 = 18 characters.

The three have distinct lengths, so a code can never be taken for one of another kind. Parsing
forgives scanner noise (surrounding white space, CR/LF, AIM symbology prefixes such as `]Q1`,
lower case, grouping spaces typed from an eye-readable label) but never a wrong check character.

A dose's product label also carries ISBT 128 data structures (ST-001 v6.2.2): the compound
message (023) of the DIN with flags (001), the product code (003), the expiration date and time
(005) and the collection date and time (007), and, in a symbol of its own, the chain of identity
identifier (040). `parse_scan` reads whatever a scanner may deliver at a dose: a vessel code or a
product label's compound message; every site that takes a scanned dose code uses it.
"""

import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.errors import InvalidCode
from app.identity.mod37 import ALPHABET, check_character, is_valid

# ST-001 §2.4.1: a {A-N, P-Z, 1-9}, then two of {A-N, P-Z, 0-9} and two digits.
FACILITY_PATTERN = r"[A-NP-Z1-9][A-NP-Z0-9]{2}[0-9]{2}"
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
    """A DIN given as its 13 characters, 14 with its check character (which must match), or as
    the product label's data structure 001 (`=`, the 13 characters, two valid flag characters)."""
    return parse_din_flags(raw).din


def parse_din_flags(raw: str) -> "FlaggedDIN":
    """A DIN with its flags ("00" when none are given): 13 characters, 14 with the check
    character, or 15 with the flag characters (data structure 001, with or without its `=`)."""
    code = normalize(raw)
    # `=` before a DIN without its flags is read as the data identifier only before a letter:
    # before a digit, it may be the misread first letter of a DIN given with its check
    # character, which would then pass for a DIN of a numeric facility id.
    if code.startswith("=") and (len(code) == 1 + DIN_LENGTH + 2 or code[1:2].isalpha()):
        code = code[1:]
    if len(code) not in (DIN_LENGTH, DIN_LENGTH + 1, DIN_LENGTH + 2) or not _DIN_RE.fullmatch(
        code[:DIN_LENGTH]
    ):
        raise InvalidCode(
            f"{_shown(raw)} is not a DIN: a DIN has 13 characters (facility id, 2-digit year, "
            "6-digit sequence), optionally followed by its check character or by its two flag "
            "characters."
        )
    din = DIN(code[:DIN_LENGTH])
    if len(code) == DIN_LENGTH + 1:
        _require_check(code, raw, "DIN")
        return FlaggedDIN(din, NO_FLAGS)
    flags = code[DIN_LENGTH:] or NO_FLAGS
    _require_flags(din, flags, raw)
    return FlaggedDIN(din, flags)


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


# -- ISBT 128 data structures of a product label (ST-001 v6.2.2) ----------------------------------

NO_FLAGS = "00"  # Table 3: flag not used
# Table 3: "Container n of a set": 1-4 are 01-04, 5-9 are 15-19. Beyond nine, the locally defined
# range 20-59 (Type 2, interpreted only by this FIN): container n is 20 + (n - 10).
_SET_FLAGS = {1: "01", 2: "02", 3: "03", 4: "04", 5: "15", 6: "16", 7: "17", 8: "18", 9: "19"}
_CONTAINER_OF = {flags: n for n, flags in _SET_FLAGS.items()}
MAX_CONTAINERS = 49
_TYPE3_BASE = 60  # Table 3: 60-96 carry the MOD 37-2 check character, as 60 + its value


def container_flags(number: int) -> str:
    """The DIN flag characters of container `number` (1-based) of a set: distinct per dose."""
    if not 0 < number <= MAX_CONTAINERS:
        raise ValueError(f"container {number} is outside 1..{MAX_CONTAINERS}")
    return _SET_FLAGS.get(number) or f"{20 + number - 10:02d}"


def container_of(flags: str) -> int | None:
    """The container number the flags name, or None (00, a check-character flag)."""
    if flags in _CONTAINER_OF:
        return _CONTAINER_OF[flags]
    if flags.isdigit() and 20 <= int(flags) <= 59:
        return int(flags) - 20 + 10
    return None


def _require_flags(din: DIN, flags: str, raw: str) -> None:
    """Flags are 00, a container of a set, a local flag or the DIN's own check character; the
    rest of Table 3 is reserved and refused."""
    if flags == NO_FLAGS or container_of(flags) is not None:
        return
    if flags.isdigit() and _TYPE3_BASE <= int(flags) <= _TYPE3_BASE + 36:
        if int(flags) - _TYPE3_BASE != ALPHABET.index(din.check):
            raise InvalidCode(
                f"{_shown(raw)} is not a valid DIN: its flags carry a check character that does "
                "not match, so it was misread. Rescan the label."
            )
        return
    raise InvalidCode(
        f"{_shown(raw)} is not a valid DIN: flag characters {flags!r} are reserved by ISBT 128."
    )


@dataclass(frozen=True, slots=True)
class FlaggedDIN:
    """Data structure 001: the DIN and its two flag characters."""

    din: DIN
    flags: str

    @property
    def container(self) -> int | None:
        return container_of(self.flags)

    @property
    def structure(self) -> str:
        return f"={self.din.value}{self.flags}"


@dataclass(frozen=True, slots=True)
class ProductCode:
    """Data structure 003 `=<aooootds`: the product description code (PDC), the type of
    collection (Table 7: "1" for autologous use only) and the division (A0, B0 ... per dose)."""

    pdc: str
    collection: str
    division: str

    @property
    def value(self) -> str:
        return f"{self.pdc}{self.collection}{self.division}"

    @property
    def structure(self) -> str:
        return f"=<{self.value}"

    @property
    def container(self) -> int | None:
        """The dose a division code names (A0 = 1, B0 = 2 ...), None for 00 (undivided)."""
        if self.division == "00":
            return None
        return ord(self.division[0]) - ord("A") + 1


PDC_PATTERN = r"[A-Z][A-Z0-9]{4}"
AUTOLOGOUS_ONLY = "1"  # Table 7
MAX_DIVISIONS = 26


def division_code(number: int) -> str:
    """The division code `ds` of dose `number`: A0, B0 ... Z0 (first-level divisions)."""
    if not 0 < number <= MAX_DIVISIONS:
        raise ValueError(f"division {number} is outside 1..{MAX_DIVISIONS}")
    return f"{chr(ord('A') + number - 1)}0"


def product_code(pdc: str, number: int) -> ProductCode:
    """The product code of dose `number` of a set, for autologous use only."""
    if not re.fullmatch(PDC_PATTERN, pdc):
        raise ValueError(f"{pdc!r} is not a product description code (a letter and 4 more)")
    return ProductCode(pdc, AUTOLOGOUS_ONLY, division_code(number))


def isbt_date_time(moment: datetime) -> str:
    """`cyyjjjhhmm` (ST-001 §2.4.5): century counted from 2000, year, ordinal day, hour, minute
    of a local (wall clock) time."""
    c, yy = divmod(moment.year - 2000, 100)
    return f"{c}{yy:02d}{moment.timetuple().tm_yday:03d}{moment:%H%M}"


def parse_isbt_date_time(text: str) -> datetime:
    """The wall-clock time `cyyjjjhhmm` names (ValueError if it names none)."""
    if not re.fullmatch(r"[0-9]{10}", text):
        raise ValueError("not cyyjjjhhmm")
    year = 2000 + int(text[0]) * 100 + int(text[1:3])
    day, hour, minute = int(text[3:6]), int(text[6:8]), int(text[8:10])
    start = datetime(year, 1, 1)
    moment = start + timedelta(days=day - 1, hours=hour, minutes=minute)
    if moment.year != year or not (day >= 1 and hour < 24 and minute < 60):
        raise ValueError("no such day or time")
    return moment


EXPIRATION = "&>"  # data structure 005
COLLECTION = "&*"  # data structure 007
COI_STRUCTURE = "&/"  # data structure 040
PRODUCT = "=<"  # data structure 003
COMPOUND = "=+"  # data structure 023
# The data structures a Homeward product label may carry, by data identifier: content length.
_CONTENT_LENGTHS = {PRODUCT: 8, EXPIRATION: 10, COLLECTION: 10, COI_STRUCTURE: 15}
_DIN_CONTENT = 15  # 001: its `=` is followed by appppyynnnnnnff (the a is content too)


def coi_structure(coi: str) -> str:
    """Data structure 040 `&/CHappppyynnnnnn`: the COI without its check character."""
    return f"{COI_STRUCTURE}{coi[: COI_LENGTH - 1]}"


def compound(structures: list[str]) -> str:
    """Data structure 023: `=+`, how many structures follow, 000 (an undefined sequence, as
    ICCBBA now encourages), then the structures with nothing between them."""
    return f"{COMPOUND}{len(structures):02d}000" + "".join(structures)


def _split_compound(code: str, raw: str) -> list[str]:
    """The data structures of a compound message, each checked for its length; their number
    must be the one the message announces (ST-001 §2.4.23)."""
    if not re.fullmatch(r"=\+[0-9]{5}.*", code):
        raise InvalidCode(f"{_shown(raw)} is not an ISBT 128 compound message.")
    count, rest, found = int(code[2:4]), code[7:], []
    while rest:
        identifier = rest[:2]
        if identifier in _CONTENT_LENGTHS:
            size = 2 + _CONTENT_LENGTHS[identifier]
        elif identifier[:1] == "=" and re.fullmatch(r"[A-NP-Z1-9]", identifier[1:2]):
            size = 1 + _DIN_CONTENT
        else:
            raise InvalidCode(
                f"{_shown(raw)} holds a data structure ({identifier!r}) a dose label does not "
                "carry, so it is not a Homeward product label."
            )
        if len(rest) < size:
            raise InvalidCode(f"{_shown(raw)} ends inside a data structure: it was cut short.")
        found.append(rest[:size])
        rest = rest[size:]
    if len(found) != count:
        raise InvalidCode(
            f"{_shown(raw)} announces {count} data structures but holds {len(found)}: it was "
            "misread or cut short."
        )
    return found


@dataclass(frozen=True, slots=True)
class ProductLabel:
    """What a product label's compound message says: the DIN with its container flags and the
    product code, expiration and collection times (wall clock, facility local time)."""

    din: FlaggedDIN
    product: ProductCode | None = None
    expires: datetime | None = None
    collected: datetime | None = None

    @property
    def container(self) -> int:
        number = self.din.container
        assert number is not None
        return number

    @property
    def message(self) -> str:
        structures = [self.din.structure]
        if self.product is not None:
            structures.append(self.product.structure)
        if self.expires is not None:
            structures.append(EXPIRATION + isbt_date_time(self.expires))
        if self.collected is not None:
            structures.append(COLLECTION + isbt_date_time(self.collected))
        return compound(structures)


def _product_label(code: str, raw: str) -> ProductLabel:
    parts: dict[str, str] = {}
    for structure in _split_compound(code, raw):
        key = structure[:2] if structure[:2] in _CONTENT_LENGTHS else "="
        if key in parts:
            raise InvalidCode(f"{_shown(raw)} holds data structure {key!r} twice.")
        parts[key] = structure
    if "=" not in parts:
        raise InvalidCode(f"{_shown(raw)} holds no DIN: it does not name a product.")
    din = parse_din_flags(parts["="])
    if din.container is None:
        raise InvalidCode(
            f"{_shown(raw)} carries DIN {din.din.value} without container flags, so it does not "
            "say which dose it labels. Scan the dose's QR code."
        )
    product = None
    if PRODUCT in parts:
        value = parts[PRODUCT][2:]
        product = ProductCode(value[:5], value[5], value[6:])
        if not re.fullmatch(PDC_PATTERN, product.pdc) or product.container != din.container:
            raise InvalidCode(
                f"{_shown(raw)} is not a consistent product label: its product code "
                f"{product.value} and its DIN flags {din.flags} name different doses."
            )
    times = {}
    for key in (EXPIRATION, COLLECTION):
        if key in parts:
            try:
                times[key] = parse_isbt_date_time(parts[key][2:])
            except ValueError:
                raise InvalidCode(f"{_shown(raw)} holds an impossible date or time.") from None
    return ProductLabel(din, product, times.get(EXPIRATION), times.get(COLLECTION))


def parse_coi_structure(raw: str) -> str:
    """The COI (check character added) that data structure 040 carries."""
    code = normalize(raw)
    if not code.startswith(COI_STRUCTURE):
        raise InvalidCode(f"{_shown(raw)} is not an ISBT 128 chain of identity identifier.")
    body = code[len(COI_STRUCTURE) :]
    if len(body) != COI_LENGTH - 1 or not _COI_RE.fullmatch(body):
        raise InvalidCode(f"{_shown(raw)} is not an ISBT 128 chain of identity identifier.")
    return body + check_character(body)


def parse_scan(raw: str) -> VesselCode | ProductLabel:
    """What a scanner read at a vessel or dose: its vessel code (the QR), or a product label's
    compound message (the Data Matrix) naming the dose by DIN and container flags. The one
    parser of every site that takes a scanned dose (bedside, receipt, dispatch, scan)."""
    code = normalize(raw)
    if code.startswith(COMPOUND):
        return _product_label(code, raw)
    if code.startswith(COI_STRUCTURE):
        raise InvalidCode(
            f"{_shown(raw)} is the patient's chain of identity symbol, which names no dose: scan "
            "the dose's QR code or its product Data Matrix."
        )
    if code.startswith("=") and len(code) == 1 + _DIN_CONTENT:
        din = parse_din_flags(code)
        if din.container is None:
            raise InvalidCode(
                f"{_shown(raw)} carries DIN {din.din.value} without container flags, so it does "
                "not say which dose it labels. Scan the dose's QR code."
            )
        return ProductLabel(din)
    return parse_vessel_code(raw)
