"""The two 2-D symbols of a label: QR (the vessel code, via `qrcode`) and Data Matrix ECC 200
(the ISBT 128 DIN data structure, via `ppf-datamatrix`), as module matrices with quiet zones."""

import xml.etree.ElementTree as ET
from functools import lru_cache

import qrcode
from ppf.datamatrix import DataMatrix
from qrcode.image.svg import SvgPathImage

QR_QUIET = 4  # modules (ISO/IEC 18004)
DATAMATRIX_QUIET = 2  # modules (ISO/IEC 16022 asks for 1)

Matrix = tuple[tuple[bool, ...], ...]


def _qr(payload: str, **kwargs: object) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QR_QUIET, **kwargs)
    qr.add_data(payload)
    qr.make(fit=True)
    return qr


@lru_cache(maxsize=16_384)
def qr_matrix(payload: str) -> Matrix:
    """The QR code of `payload`, quiet zone included."""
    return tuple(tuple(row) for row in _qr(payload).get_matrix())


@lru_cache(maxsize=16_384)
def qr_svg_path(payload: str) -> tuple[str, int]:
    """The QR code as one SVG path in module units (qrcode's path factory: one outline, which
    stays decodable at any scale) and its width in modules, quiet zone included."""
    image = _qr(payload, image_factory=SvgPathImage, box_size=10).make_image()
    root = ET.fromstring(image.to_string())
    path = next(el for el in root.iter() if el.tag.endswith("path"))
    return path.attrib["d"], len(qr_matrix(payload))


@lru_cache(maxsize=16_384)
def datamatrix_matrix(payload: str) -> Matrix:
    """The Data Matrix ECC 200 of `payload`, quiet zone included."""
    core = DataMatrix(payload).matrix
    width = len(core[0]) + 2 * DATAMATRIX_QUIET
    blank = (False,) * width
    pad = (False,) * DATAMATRIX_QUIET
    rows = [pad + tuple(bool(m) for m in row) + pad for row in core]
    return (blank,) * DATAMATRIX_QUIET + tuple(rows) + (blank,) * DATAMATRIX_QUIET


def matrix(kind: str, payload: str) -> Matrix:
    return qr_matrix(payload) if kind == "qr" else datamatrix_matrix(payload)


@lru_cache(maxsize=16_384)
def runs(kind: str, payload: str) -> tuple[tuple[int, int, int], ...]:
    """Dark modules as horizontal runs (row, first column, length): few shapes to draw."""
    found = []
    for r, row in enumerate(matrix(kind, payload)):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                found.append((r, start, c - start))
            else:
                c += 1
    return tuple(found)
