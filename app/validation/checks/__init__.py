"""The requirement → check table of the operational qualification (VAL-1).

Each check demonstrates one requirement of docs/requirements.md on the live install, through the
public API, on the walk's scratch records. Checks run in the order of CHECKS and share the records
they make (`walk.state`). To add one: write `def name(walk: Walk) -> None` recording its steps with
`walk.call` / `walk.verify`, and add `Check("ID", "title", name)` to CHECKS where the records it
needs exist. A requirement that cannot be shown through the API is in NOT_WALKED, with the reason.
"""

from app.validation.checks.clinic import cln1, cln2, cln3, coi6, coi7
from app.validation.checks.identity import coi1, coi2, coi3, coi4, coi5, sec, sec2, sec3, sec4, sec5
from app.validation.checks.labels import lbl1, lbl2, lbl3, lbl4, lbl5, lbl6
from app.validation.checks.release import (
    qc1,
    qc2,
    qc3,
    rel1,
    rel2,
    rel3,
    rel4,
    rel5,
    rel6,
    sig1,
    sig2,
    sig3,
    sig4,
    sig5,
    sig6,
)
from app.validation.checks.supply import aud9, rel7
from app.validation.checks.trail import aud1, aud2, aud3, aud4, aud5, aud6, aud7, aud8, perf, rel
from app.validation.walk import Check

CHECKS: tuple[Check, ...] = (
    Check("SEC", "authentication, revocation and the permission table", sec),
    Check("SEC-2", "separation of duties", sec2),
    Check("SEC-3", "a first password is changed first; weak passwords refused", sec3),
    Check("SEC-4", "failed sign-ins reported to QA", sec4),
    Check("SEC-5", "QA qualifies people, never themselves", sec5),
    Check("COI-1", "patient↔COI and biopsy↔DIN created once, never edited", coi1),
    Check("COI-4", "codes validated before lookup", coi4),
    Check("COI-5", "identity mismatches refused and audited", coi5),
    Check("COI-2", "identity derived on the server", coi2),
    Check("COI-3", "no step across batches or patients", coi3),
    Check("LBL-1", "a QR label for every vessel in use", lbl1),
    Check("LBL-2", "dose label content", lbl2),
    Check("LBL-3", "label formats", lbl3),
    Check("LBL-5", "previews log nothing; printing is a logged POST", lbl5),
    Check("LBL-4", "print log, reprints, reconciliation", lbl4),
    Check("LBL-6", "dose label particulars and ISBT 128 structures", lbl6),
    Check("QC-1", "the QA-signed specification in force", qc1),
    Check("QC-3", "change control: one approved version in force", qc3),
    Check("QC-2", "results evaluated on entry; a fail opens a deviation", qc2),
    Check("REL-1", "the release gate", rel1),
    Check("REL-4", "the releaser entered no result", rel4),
    Check("SIG-4", "four-eyes review", sig4),
    Check("REL-6", "reviewed results and labelled doses", rel6),
    Check("SIG-1", "signing re-authenticates", sig1),
    Check("SIG-5", "failed signatures audited", sig5),
    Check("SIG-6", "the meaning is bound to the act", sig6),
    Check("REL-3", "release e-signed by QA", rel3),
    Check("REL-2", "conditional release and the late failure's alert", rel2),
    Check("AUD-9", "documents show corrections", aud9),
    Check("REL-7", "out-of-specification supply", rel7),
    Check("SIG-2", "signature manifestation", sig2),
    Check("SIG-3", "the signature binds the record's hash", sig3),
    Check("REL-5", "release certificate HTML and PDF", rel5),
    Check("CLN-3", "dispatch and receipt with temperature", cln3),
    Check("CLN-2", "infusion plan", cln2),
    Check("CLN-1", "readiness board", cln1),
    Check("COI-6", "bedside checks and the witnessed infusion", coi6),
    Check("COI-7", "tracing both ways", coi7),
    Check("AUD-1", "every change audited", aud1),
    Check("AUD-5", "trail as timeline and CSV", aud5),
    Check("AUD-6", "chronology", aud6),
    Check("AUD-4", "no event without its change", aud4),
    Check("AUD-3", "hash chains verify", aud3),
    Check("AUD-7", "verification covers the records", aud7),
    Check("AUD-8", "the trail read for review, exceptions first", aud8),
    Check("AUD-2", "no API path changes the trail", aud2),
    Check("REL", "bad input is a 4xx and changes nothing", rel),
    Check("PERF", "scan latency on this install (indicative)", perf),
)

# Requirements this walk does not show through the API, and why; the report lists them.
NOT_WALKED: dict[str, str] = {
    "VAL-1": "this run and its report are the evidence",
}
