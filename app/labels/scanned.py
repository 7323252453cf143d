"""A scanned dose code, whichever symbol of the label was read (LBL-6): the QR gives the vessel
code; the product Data Matrix names the dose by its DIN and container flags. Every site that takes
a scanned dose code (bedside, receipt, dispatch, scan) resolves it here, after the one parser
`app.identity.codes.parse_scan`."""

from sqlmodel import Session

from app.errors import NotFound
from app.identity.codes import VesselCode, parse_scan
from app.labels.repository import dose_code


def scanned_vessel_code(session: Session, raw: str) -> str:
    """The vessel code of the vessel or dose whose label was scanned: InvalidCode for a malformed
    or inconsistent code, NotFound for a product label of a dose that does not exist."""
    parsed = parse_scan(raw)
    if isinstance(parsed, VesselCode):
        return parsed.value
    din, number = parsed.din.din.value, parsed.container
    found = dose_code(session, din, number)
    if found is None:
        raise NotFound(
            f"No dose {number} of DIN {din} exists: the product label belongs to another site "
            "or a voided record."
        )
    return found
