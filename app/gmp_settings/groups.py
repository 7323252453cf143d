"""The groups of GMP settings (QC-3): what each holds, its validation and its shipped default.

Each group is a frozen dataclass (validated by pydantic) so that code reading a setting gets
typed attributes, never a dictionary. The shipped defaults are configurable starting points for
the site's own validated values, not clinical advice; they are installed as drafts that QA
approves before first use.
"""

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass as validated

from app.errors import InvalidRequest
from app.identity.codes import PDC_PATTERN
from app.types import LongText, Name, ShortText

_STRICT = ConfigDict(extra="forbid")
Count = Annotated[int, Field(ge=0, le=10_000)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Celsius = Annotated[float, Field(ge=-273.15, le=100, allow_inf_nan=False)]


class Group(StrEnum):
    DOSE_RANGE = "dose_range"
    TRANSPORT_TEMPERATURES = "transport_temperatures"
    CULTURE_LIMITS = "culture_limits"
    INFUSION_PROTOCOL = "infusion_protocol"
    LABEL_PRODUCT = "label_product"
    QUALIFICATION_GATING = "qualification_gating"


def _ordered(low: float, high: float, what: str) -> None:
    if low > high:
        raise ValueError(f"{what}: the lower limit is above the upper one")


@validated(frozen=True, config=_STRICT)
class DoseRange:
    """Viable cells per dose accepted by the shipped default specification (QC-1)."""

    cells_min: Positive
    cells_max: Positive

    @model_validator(mode="after")
    def _range(self) -> Self:
        _ordered(self.cells_min, self.cells_max, "cells per dose")
        return self


@validated(frozen=True, config=_STRICT)
class TransportTemperatures:
    """Acceptable dose temperatures at dispatch and receipt, per storage type (CLN-3)."""

    fresh_min_c: Celsius
    fresh_max_c: Celsius
    cryopreserved_max_c: Celsius

    @model_validator(mode="after")
    def _range(self) -> Self:
        _ordered(self.fresh_min_c, self.fresh_max_c, "fresh dose temperature")
        return self


@validated(frozen=True, config=_STRICT)
class CultureLimits:
    """Culture clocks: past a soft limit the batch shows a warning; a step that would go past a
    hard limit is refused."""

    passage_soft: Count
    passage_hard: Count
    days_soft: Count
    days_hard: Count
    doublings_soft: NonNegative
    doublings_hard: NonNegative

    @model_validator(mode="after")
    def _soft_before_hard(self) -> Self:
        _ordered(self.passage_soft, self.passage_hard, "passage")
        _ordered(self.days_soft, self.days_hard, "days in culture")
        _ordered(self.doublings_soft, self.doublings_hard, "population doublings")
        return self


@validated(frozen=True, config=_STRICT)
class QualificationGating:
    """Which qualification rules the site enforces (SEC-5, ADR 0024): people per duty, equipment
    calibration and qualification, QC release of lots. Shipped off: a new site first records its
    staff's training, its equipment's dates and its lots' status, then QA turns each rule on."""

    people: bool
    equipment: bool
    lots: bool


@validated(frozen=True, config=_STRICT)
class InfusionProtocol:
    """The infusion plan template (CLN-2): doses planned per batch, days between them."""

    doses: Annotated[int, Field(ge=1, le=20)]
    interval_min_days: Annotated[int, Field(ge=0, le=365)]
    interval_max_days: Annotated[int, Field(ge=0, le=365)]

    @model_validator(mode="after")
    def _range(self) -> Self:
        _ordered(self.interval_min_days, self.interval_max_days, "interval")
        return self


@validated(frozen=True, config=_STRICT)
class LabelProduct:
    """What a dose label says of the product and its maker (LBL-6: EU 1394/2007 Annex III,
    21 CFR 1271.370, CTR 536/2014 Annex VI; the ISBT 128 product code)."""

    product_name: Name
    product_description: LongText
    pharmaceutical_form: Name
    route_of_administration: Name
    excipients: LongText
    storage_conditions: LongText
    storage_temperature: Name
    establishment_name: Name
    establishment_address: LongText
    investigational: bool
    sponsor: Name
    trial_code: ShortText
    isbt_product_code: Annotated[str, Field(pattern=rf"^{PDC_PATTERN}$")]


SHAPES: dict[Group, type] = {
    Group.DOSE_RANGE: DoseRange,
    Group.TRANSPORT_TEMPERATURES: TransportTemperatures,
    Group.CULTURE_LIMITS: CultureLimits,
    Group.INFUSION_PROTOCOL: InfusionProtocol,
    Group.LABEL_PRODUCT: LabelProduct,
    Group.QUALIFICATION_GATING: QualificationGating,
}

TITLES: dict[Group, str] = {
    Group.DOSE_RANGE: "Viable cells per dose (default specification)",
    Group.TRANSPORT_TEMPERATURES: "Dose temperatures in transport and at receipt",
    Group.CULTURE_LIMITS: "Culture limits (passages, days, population doublings)",
    Group.INFUSION_PROTOCOL: "Infusion protocol",
    Group.LABEL_PRODUCT: "Product data on dose labels",
    Group.QUALIFICATION_GATING: "Qualification rules enforced (people, equipment, lots)",
}

DEFAULTS: dict[Group, Any] = {
    Group.DOSE_RANGE: DoseRange(cells_min=1e7, cells_max=5e8),
    Group.TRANSPORT_TEMPERATURES: TransportTemperatures(
        fresh_min_c=2.0, fresh_max_c=8.0, cryopreserved_max_c=-150.0
    ),
    Group.CULTURE_LIMITS: CultureLimits(
        passage_soft=6,
        passage_hard=10,
        days_soft=42,
        days_hard=70,
        doublings_soft=30.0,
        doublings_hard=40.0,
    ),
    # The phase IIa protocol: three doses, 4 to 6 weeks apart.
    Group.INFUSION_PROTOCOL: InfusionProtocol(doses=3, interval_min_days=28, interval_max_days=42),
    Group.LABEL_PRODUCT: LabelProduct(
        product_name="Autologous mesoangioblasts",
        product_description=(
            "Ex vivo expanded autologous mesoangioblasts (vessel-associated muscle progenitor "
            "cells) from the patient's own muscle biopsy"
        ),
        pharmaceutical_form="Dispersion for infusion",
        route_of_administration="Intra-arterial use",
        excipients="Sodium chloride 9 mg/mL solution, human albumin 20 mg/mL",
        storage_conditions=(
            "Do not freeze. Do not irradiate. Keep in the validated transport box, upright and "
            "protected from light. Do not open the bag before administration."
        ),
        storage_temperature="+2 °C to +8 °C",
        establishment_name="Homeward Cell Therapy Facility (example)",
        establishment_address="Via dell'Esempio 1, 20100 Milano, Italy",
        investigational=True,
        sponsor="Homeward Trial Sponsor (example), +39 02 0000 0000",
        trial_code="EU CT 2026-500000-00-00",
        isbt_product_code="D0001",
    ),
    Group.QUALIFICATION_GATING: QualificationGating(people=False, equipment=False, lots=False),
}


def validate(group: Group, values: dict[str, Any]) -> Any:
    """The group's dataclass built from `values`, or a 422 naming what is wrong."""
    try:
        return TypeAdapter(SHAPES[group]).validate_python(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([group.value, *(str(part) for part in first["loc"])])
        raise InvalidRequest(f"{where}: {first['msg']}.") from exc


def as_values(shaped: Any) -> dict[str, Any]:
    return asdict(shaped)
