"""The default specification that ships with Homeward for autologous mesoangioblasts (QC-1).

Configurable starting points for a lab's own validated specification, not clinical advice.
"""

from app.gmp_settings.groups import DoseRange
from app.specifications.schemas import SpecificationTestIn

PRODUCT = "autologous mesoangioblasts"
# Endotoxin limit: K/M with K = 5 EU/kg (Ph. Eur. 5.1.10 / USP <85>) and M the maximum dose in
# mL/kg; 0.5 EU/mL is the shipped starting point, sites derive their own from their dose volume.
ENDOTOXIN_METHOD = "LAL kinetic chromogenic (limit K/M, K = 5 EU/kg)"


def default_tests(dose: DoseRange) -> list[SpecificationTestIn]:
    """The tests of specification version 1, with the dose range of the GMP settings."""
    return [
        SpecificationTestIn(
            test="viability", name="Viability", method="Trypan blue exclusion", unit="%",
            min=70, critical=True,
        ),
        SpecificationTestIn(
            test="viable_cells_per_dose", name="Viable cells per dose",
            method="Automated cell count", unit="cells",
            min=dose.cells_min, max=dose.cells_max, critical=True,
        ),
        SpecificationTestIn(
            test="sterility", name="Sterility", method="Ph. Eur. 2.6.27 (BacT/ALERT)",
            expected="no growth",
            answers={"no growth": True, "negative": True, "growth": False, "positive": False},
            critical=True,
        ),
        SpecificationTestIn(
            test="mycoplasma", name="Mycoplasma", method="Ph. Eur. 2.6.7 (qPCR)",
            expected="not detected",
            answers={"not detected": True, "negative": True, "detected": False,
                     "positive": False},
            critical=True,
        ),
        SpecificationTestIn(
            test="endotoxin", name="Endotoxin", method=ENDOTOXIN_METHOD, unit="EU/mL",
            max=0.5, critical=True,
        ),
        SpecificationTestIn(
            test="identity", name="Identity: ALP-positive cells", method="Flow cytometry (ALP)",
            unit="%", min=80, critical=True,
        ),
        SpecificationTestIn(
            test="mtdna_heteroplasmy", name="mtDNA m.3243A>G heteroplasmy",
            method="Pyrosequencing of expanded cells", unit="%", max=10, max_inclusive=False,
            critical=True,
        ),
        SpecificationTestIn(
            test="karyotype", name="Karyotype", method="G-banding",
            expected="normal", answers={"normal": True, "abnormal": False},
        ),
    ]  # fmt: skip
