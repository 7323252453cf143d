"""The step entry form as it travels between the browser and the server: every field round-trips,
so scanning an input, adding an output row or acknowledging a STOP loses nothing typed. Turning
it into a `StepCreate` is all this module decides; the step's rules are the service's."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from starlette.datastructures import FormData

from app.errors import InvalidRequest
from app.steps.rules import RULES, StepKind
from app.steps.schemas import OutputSpec, StepCreate

# What a person measures at each kind of step (all optional; `viable_cells` also feeds the
# population doublings of a passage, ADR 0006): key, label, unit.
_CELLS = ("viable_cells", "Viable cells", "cells")
_VIABILITY = ("viability_pct", "Viability", "%")
MEASUREMENTS: dict[StepKind, tuple[tuple[str, str, str], ...]] = {
    StepKind.ISOLATION: (_CELLS, _VIABILITY),
    StepKind.PASSAGE: (
        ("viable_cells", "Viable cells harvested", "cells"),
        _VIABILITY,
        ("confluence_pct", "Confluence", "%"),
    ),
    StepKind.HARVEST: (_CELLS, _VIABILITY),
    StepKind.CRYOPRESERVATION: (_CELLS,),
    StepKind.THAW: (("viability_pct", "Viability after thaw", "%"),),
    StepKind.FORMULATION: (_VIABILITY,),
    StepKind.QC_SAMPLING: (("sample_volume_ml", "Sample volume", "mL"),),
    StepKind.DISCARD: (),
}  # fmt: skip
OUTPUT_FIELDS = ("kind", "seeded", "location", "cells", "volume", "expires")
MAX_ROWS = 100


@dataclass
class OutputRow:
    kind: str = ""
    seeded: str = ""
    location: str = ""
    cells: str = ""
    volume: str = ""
    expires: str = ""


@dataclass
class StepForm:
    kind: StepKind
    inputs: list[str] = field(default_factory=list)
    outputs: list[OutputRow] = field(default_factory=list)
    measurements: dict[str, str] = field(default_factory=dict)
    lots: list[str] = field(default_factory=list)
    equipment: list[str] = field(default_factory=list)
    reason: str = ""
    note: str = ""

    @classmethod
    def empty(cls, kind: StepKind) -> "StepForm":
        low, high = RULES[kind].outputs
        kinds = sorted(RULES[kind].output_kinds)
        rows = [OutputRow(kind=kinds[0]) for _ in range(max(low, 1) if high else 0)]
        return cls(kind=kind, outputs=rows)

    def new_row(self) -> OutputRow:
        """One more output row, like the last one (a passage makes several alike flasks)."""
        if self.outputs:
            return replace(self.outputs[-1])
        return OutputRow(kind=sorted(RULES[self.kind].output_kinds)[0])

    @classmethod
    def parse(cls, kind: StepKind, form: FormData) -> "StepForm":
        def text(name: str) -> str:
            value = form.get(name)
            return value.strip()[:4000] if isinstance(value, str) else ""

        def texts(name: str) -> list[str]:
            return [v.strip() for v in form.getlist(name) if isinstance(v, str) and v.strip()]

        try:
            count = min(int(text("outputs") or 0), MAX_ROWS)
        except ValueError:
            count = 0
        rows = [
            OutputRow(**{name: text(f"out_{name}_{i}") for name in OUTPUT_FIELDS})
            for i in range(max(count, 0))
        ]
        return cls(
            kind=kind,
            inputs=list(dict.fromkeys(texts("input")))[:MAX_ROWS],
            outputs=rows,
            measurements={key: text(f"m_{key}") for key, _, _ in MEASUREMENTS[kind]},
            lots=texts("lot"),
            equipment=texts("equipment"),
            reason=text("reason"),
            note=text("note"),
        )

    def hidden(self) -> list[tuple[str, str]]:
        """Every field as (name, value) pairs, to carry the form through a STOP panel."""
        pairs = [("kind", self.kind.value), ("outputs", str(len(self.outputs)))]
        pairs += [("input", code) for code in self.inputs]
        for i, row in enumerate(self.outputs):
            pairs += [(f"out_{name}_{i}", getattr(row, name)) for name in OUTPUT_FIELDS]
        pairs += [(f"m_{key}", value) for key, value in self.measurements.items()]
        pairs += [("lot", v) for v in self.lots] + [("equipment", v) for v in self.equipment]
        return [*pairs, ("reason", self.reason), ("note", self.note)]

    def to_create(self, zone: ZoneInfo) -> StepCreate:
        """The API's request for this step, or InvalidRequest naming the field a person must fix."""
        try:
            return StepCreate(
                kind=self.kind,
                inputs=self.inputs,
                outputs=[_output(row, zone) for row in self.outputs],
                materials=[int(v) for v in self.lots],
                equipment=[int(v) for v in self.equipment],
                measurements={
                    key: _number(value, key) for key, value in self.measurements.items() if value
                },
                reason=self.reason or None,
                note=self.note or None,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise InvalidRequest(f"The step form is not valid: {problems}.") from exc
        except ValueError as exc:
            raise InvalidRequest(f"The step form is not valid: {exc}.") from exc


def _number(value: str, what: str) -> int | float:
    cleaned = value.replace(" ", "").replace("\u202f", "").replace(",", ".")
    try:
        number = float(cleaned)
    except ValueError:
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    return int(number) if number.is_integer() and abs(number) < 1e15 else number


def _output(row: OutputRow, zone: ZoneInfo) -> OutputSpec:
    data: dict[str, Any] = {"kind": row.kind}
    if row.location:
        data["location"] = row.location
    if row.seeded:
        data["seeded_cells"] = _number(row.seeded, "cells seeded")
    if row.cells:
        data["cell_count"] = _number(row.cells, "cell count")
    if row.volume:
        data["volume_ml"] = _number(row.volume, "volume")
    if row.expires:
        try:
            data["expires_at"] = datetime.fromisoformat(row.expires).replace(tzinfo=zone)
        except ValueError:
            raise ValueError(f"expiry {row.expires!r} is not a date and time") from None
    return OutputSpec(**data)
