"""COI-5: the scan reads a vessel's identity as plain column values (no ORM entities, for speed),
only the columns it uses; they must be exactly what the entities hold, for a vessel with and
without a batch and parent."""

import pytest
from sqlalchemy import select

from app.vessels.models import Vessel
from app.vessels.repository import SCAN_READS, identity_by_code, identity_values_by_code


def _columns(entity, name: str) -> dict[str, object]:
    return {key: getattr(entity, key) for key in SCAN_READS[name]}


def test_coi5_the_scans_identity_values_are_the_entities_columns(api, db):
    batch, _ = api.expanded_batch()
    unbatched = api.received_biopsy()  # a biopsy tube whose batch is not registered yet
    codes = list(db.execute(select(Vessel.code).where(Vessel.batch_id == batch["id"])).scalars())
    codes.append(unbatched["tube_code"])
    assert len(codes) >= 4  # the tube, the isolation flask and two passage flasks, one unbatched
    for code in codes:
        entities = identity_by_code(db, code)
        values = identity_values_by_code(db, code)
        assert entities is not None and values is not None
        for name in ("vessel", "biopsy", "patient"):
            own = getattr(entities, name)
            assert vars(getattr(values, name)) == _columns(own, name), (code, name)
        if entities.batch is None:
            assert values.batch is None and code == unbatched["tube_code"]
        else:
            assert vars(values.batch) == _columns(entities.batch, "batch"), code
        assert values.parent_code == entities.parent_code
    assert identity_values_by_code(db, "X" * 12) is None


def test_coi5_the_scan_reads_none_of_the_patients_personal_data(api, db):
    """Data minimisation: a scan names the patient by COI; the copy carries no name, MRN or
    birth date, and reading one is an error, not a silent None."""
    values = identity_values_by_code(db, api.batch()["tube_code"])
    assert values is not None
    assert set(vars(values.patient)) == {"id", "coi", "voided_at"}
    for personal in ("mrn", "family_name", "given_name", "birth_date"):
        with pytest.raises(AttributeError):
            getattr(values.patient, personal)
