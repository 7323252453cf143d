"""Gap-tolerant, race-free counters for COIs, DINs, batch numbers and per-batch vessel codes."""

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel


class SequenceCounter(SQLModel, table=True):
    __tablename__ = "sequence_counter"

    name: str = Field(primary_key=True, max_length=64)
    value: int


def next_value(session: Session, name: str) -> int:
    """The next value of counter `name` (1 for a new counter); atomic under concurrent writers."""
    table = SequenceCounter.__table__
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    statement = (
        insert(table)
        .values(name=name, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": table.c.value + 1})
        .returning(table.c.value)
    )
    return session.execute(statement).scalar_one()
