"""The product particulars a dose label carries (LBL-6), controlled by QA.

Every renderer gets them only through `label_product(session)`. Until the QA-approved settings
store is wired in, the function returns the particulars of the lab's phase IIa trial of autologous
mesoangioblasts (placeholders for sponsor, trial code and establishment that QA replaces with the
approved wording). The ISBT 128 product description code defaults to one of the local/facility
range ISBT reserves (ST-001 §2.4.3: A0000 to D9999), as no ICCBBA code fits an investigational
mesoangioblast product; a clinical-trial code (YA000 to YZ999, ST-022) or an ST-001 cellular therapy
code (S....) can be set instead.
"""

import re
from dataclasses import dataclass

from sqlmodel import Session

from app.identity.codes import PDC_PATTERN


@dataclass(frozen=True, slots=True)
class LabelProduct:
    product_name: str
    product_description: str
    pharmaceutical_form: str
    route_of_administration: str
    excipients: str
    storage_conditions: str
    storage_temperature: str
    establishment_name: str
    establishment_address: str
    investigational: bool
    sponsor: str
    trial_code: str
    isbt_product_code: str

    def __post_init__(self) -> None:
        if not re.fullmatch(PDC_PATTERN, self.isbt_product_code):
            raise ValueError(
                f"{self.isbt_product_code!r} is not an ISBT 128 product description code "
                "(a letter and four letters or digits, e.g. D0001)"
            )


TRIAL_PRODUCT = LabelProduct(
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
)


def label_product(session: Session) -> LabelProduct:
    """The product particulars in force for the labels printed now (QA-controlled)."""
    return TRIAL_PRODUCT
