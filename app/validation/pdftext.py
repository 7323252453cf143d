"""The text of a PDF the install answered, for the checks that read a document's words (AUD-9,
REL-7, LBL-6). Homeward writes PDFs with reportlab and embedded TrueType fonts, whose text only a
PDF engine reads back; the walk uses pypdfium2 (the `test` extra) where the runner has it, and
otherwise says precisely which words it could not check: the requirement is then reported as not
demonstrated, never as passed."""

import re

from app.validation.walk import Blocked


def text(content: bytes, what: str, unchecked: str) -> str:
    """The text of the PDF `content` (`what`), or Blocked naming what could not be checked."""
    try:
        import pypdfium2  # the `test` extra: not a dependency of a site's install
    except ImportError:
        raise Blocked(
            f"{what} was fetched ({len(content)} bytes of PDF) but its text was not read: the "
            "runner has no PDF reader (pip install pypdfium2, or homeward[test]); not checked: "
            f"{unchecked}"
        ) from None
    document = pypdfium2.PdfDocument(content)
    try:
        return "".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def squash(found: str) -> str:
    """Without any whitespace: a PDF wraps table cells wherever the column ends."""
    return re.sub(r"\s+", "", found.replace("\xa0", " "))
