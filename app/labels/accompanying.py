"""The document that accompanies a dose (LBL-6, ADR 0020): the particulars the rules allow off the
100 x 50 mm bag label (21 CFR 1271.370(c); Reg. 1394/2007 Annex III for the outer packaging;
CTR 536/2014 Annex VI), with the identifiers that tie it to the bag's label. A4, every time in
the facility's local time with its zone."""

from app.documents import Document
from app.labels.layout import (
    AUTOLOGOUS,
    CLINICAL_TRIAL,
    HUMAN_ORIGIN,
    NOT_EVALUATED,
    LabelContent,
    grouped_din,
)

DISPOSAL = (
    "Unused product and all material that came into contact with it is biohazardous clinical "
    "waste: dispose of it according to local procedures for human-derived material."
)
USE = (
    "Before administration, scan the patient's wristband and this dose's label at the bedside "
    "(Homeward bedside check) and confirm the birth date with the patient. Do not irradiate. "
    "Do not use a leukocyte-depleting filter."
)


def rows(content: LabelContent) -> list[tuple[str, str]]:
    """What the document says, in order: (particular, value)."""
    dose = content.dose
    assert dose is not None
    product = dose.product
    label = content.product_label
    code = label.product
    assert code is not None
    collected = content.local_text(dose.collected_at) if dose.collected_at else "not recorded"
    found = [
        ("Product name", product.product_name),
        ("Description", f"{product.product_description}. {HUMAN_ORIGIN}."),
        ("Pharmaceutical form", product.pharmaceutical_form),
        ("Route of administration", product.route_of_administration),
        ("Contents", f"{dose.cell_count:,} viable cells in {dose.volume_ml:g} mL"),
        ("Excipients", product.excipients),
        ("Storage temperature", product.storage_temperature),
        ("Storage conditions", product.storage_conditions),
        ("Expiry", content.local_text(dose.expires_at)),
        ("Collection of the starting material", collected),
        ("Patient", f"{dose.patient_name}, born {dose.birth_date.isoformat()}, MRN {dose.mrn}"),
        ("Chain of identity (COI)", dose.coi),
        ("Batch number", dose.batch_number),
        ("Dose", f"{dose.dose_number} (DIN flags {label.din.flags})"),
        ("DIN", f"{grouped_din(content.din)} {label.din.flags} [{content.din_check}]"),
        ("ISBT 128 product code", code.value),
        ("Vessel code", content.code),
        ("Warnings", f"{AUTOLOGOUS}. {NOT_EVALUATED}."),
        ("Instructions for use", USE),
        ("Disposal", DISPOSAL),
        ("Establishment", f"{product.establishment_name}, {product.establishment_address}"),
    ]
    if product.investigational:
        found += [
            ("Clinical trial", f"{CLINICAL_TRIAL}. Trial {product.trial_code}."),
            ("Sponsor (main contact)", product.sponsor),
        ]
    return found


def render(content: LabelContent) -> bytes:
    """The accompanying document of one dose as an A4 PDF."""
    document = Document()
    document.title(f"Accompanying document: dose {content.code}")
    document.alarm(AUTOLOGOUS)
    document.table([["Particular", "Value"], *[list(row) for row in rows(content)]], [55, 125])
    return document.render(f"Accompanying document {content.code}")
