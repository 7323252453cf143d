"""COI-5: the scan reads a vessel's identity as plain column values (no ORM entities, for speed);
they must be exactly what the entities hold, for a vessel with and without a batch and parent."""

from sqlalchemy import select

from app.vessels.models import Vessel
from app.vessels.repository import identity_by_code, identity_values_by_code


def _columns(entity) -> dict[str, object]:
    return {column.key: getattr(entity, column.key) for column in type(entity).__table__.columns}


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
            assert vars(getattr(values, name)) == _columns(own), (code, name)
        if entities.batch is None:
            assert values.batch is None and code == unbatched["tube_code"]
        else:
            assert vars(values.batch) == _columns(entities.batch), code
        assert values.parent_code == entities.parent_code
    assert identity_values_by_code(db, "X" * 12) is None
