"""The product particulars a dose label carries (LBL-6), controlled by QA.

Every renderer gets them only through `label_product(session)`: the `label_product` group of the
GMP settings QA approves (QC-3, app/gmp_settings); until QA approves a version, the shipped
particulars of the lab's phase IIa trial of autologous mesoangioblasts (placeholders for sponsor,
trial code and establishment that QA replaces with the approved wording).

The ISBT 128 product description code defaults to one of the local/facility range ISBT reserves
(ST-001 §2.4.3: A0000 to D9999), as no ICCBBA code fits an investigational mesoangioblast product; a
clinical-trial code (YA000 to YZ999, ST-022) or an ST-001 cellular therapy code (S....) can be set
instead.
"""

from app.gmp_settings.groups import DEFAULTS, Group, LabelProduct
from app.gmp_settings.service import label_product

TRIAL_PRODUCT: LabelProduct = DEFAULTS[Group.LABEL_PRODUCT]

__all__ = ["TRIAL_PRODUCT", "LabelProduct", "label_product"]
