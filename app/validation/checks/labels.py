"""Operational-qualification checks: labels: previews, prints, reprints, reconciliation."""

import re
from datetime import UTC, datetime
from typing import Any

from app.gmp_settings.service import SYSTEM_AUTHOR
from app.validation import pdftext
from app.validation.walk import Blocked, Walk


def lbl1(walk: Walk) -> None:
    flask, din = walk.need("flask_a"), walk.need("batch_a")["din"]
    svg = walk.call(
        "tech",
        "GET",
        f"/vessels/{walk.need('doses')[1]}/label",
        status=200,
        why="the vessel's label",
        params={"format": "svg"},
    )
    walk.verify(
        "an SVG label naming the DIN",
        svg.headers.get("content-type"),
        "svg" in svg.headers.get("content-type", "") and din in svg.text,
    )
    walk.call(
        "tech",
        "GET",
        f"/vessels/{flask}/label",
        status=409,
        error="invalid_state",
        why="a consumed vessel gets no label",
        params={"format": "svg"},
    )


def lbl2(walk: Walk) -> None:
    code = walk.need("doses")[0]
    zpl = walk.call(
        "tech",
        "GET",
        f"/vessels/{code}/label",
        status=200,
        why="the dose label as ZPL",
        params={"format": "zpl"},
    )
    wanted = [
        "FOR AUTOLOGOUS USE ONLY",
        walk.need("patient_a")["mrn"],
        walk.need("patient_a")["coi"],
    ]
    missing = [text for text in wanted if text not in zpl.text]
    at = zpl.text.find("MRN")
    walk.verify(
        "the dose label says FOR AUTOLOGOUS USE ONLY and carries the MRN and COI",
        f"missing: {missing} in {zpl.text[at - 20 : at + 60]!r}" if missing else "all present",
        not missing,
    )


def lbl3(walk: Walk) -> None:
    code, batch = walk.need("doses")[0], walk.need("batch_a")
    png = walk.call(
        "tech",
        "GET",
        f"/vessels/{code}/label",
        status=200,
        why="a PNG label",
        params={"format": "png"},
    )
    walk.verify("a PNG image", png.content[:8], png.content[:8] == b"\x89PNG\r\n\x1a\n")
    pdf = walk.call(
        "tech",
        "GET",
        f"/batches/{batch['id']}/labels",
        status=200,
        why="the batch's label sheet",
        params={"format": "pdf"},
    )
    walk.verify("a PDF sheet", pdf.content[:5], pdf.content[:5] == b"%PDF-")


def lbl5(walk: Walk) -> None:
    doses = walk.need("doses")
    prints = walk.json(
        walk.call(
            "tech",
            "GET",
            f"/vessels/{doses[0]}/labels",
            status=200,
            why="the dose's print log after previews",
        ),
        "print log",
    )
    walk.verify("previews logged no print", prints, len(prints) == 0)
    for code in doses:
        walk.call(
            "tech",
            "POST",
            f"/vessels/{code}/print",
            status=200,
            why="printing is an explicit, logged POST",
            json={"format": "zpl"},
        )
    walk.state["labelled"] = True
    walk.call(
        "tech",
        "POST",
        f"/vessels/{doses[0]}/print",
        status=422,
        why="a reprint needs a reason",
        json={"format": "zpl"},
    )


def lbl4(walk: Walk) -> None:
    batch, code = walk.need("batch_a"), walk.need("doses")[0]
    walk.need("labelled")
    walk.call(
        "tech",
        "POST",
        f"/vessels/{code}/print",
        status=200,
        why="a reprint with its reason",
        json={"format": "zpl", "reason": "OQ reprint"},
    )
    prints = walk.json(
        walk.call("tech", "GET", f"/vessels/{code}/labels", status=200, why="the print log"),
        "print log",
    )
    walk.verify(
        "the log holds the original and a marked reprint",
        [p.get("reprint") for p in prints],
        len(prints) == 2 and any(p.get("reprint") for p in prints),
    )
    reconciliation = walk.json(
        walk.call(
            "tech",
            "GET",
            f"/batches/{batch['id']}/labels/reconciliation",
            status=200,
            why="labels reconciled against vessels",
        ),
        "reconciliation",
    )
    walk.verify(
        "no dose is unlabelled",
        reconciliation.get("unlabelled"),
        not set(walk.need("doses")) & set(reconciliation.get("unlabelled", [])),
    )


# -- LBL-6: the particulars and the ISBT 128 data structures of a dose label ------------------

AUTOLOGOUS = "FOR AUTOLOGOUS USE ONLY"
NOT_EVALUATED = "NOT EVALUATED FOR INFECTIOUS SUBSTANCES"
HUMAN_ORIGIN = "Contains cells of human origin"
CLINICAL_TRIAL = "FOR CLINICAL TRIAL USE ONLY"
# ISBT 128 (ST-001) data identifiers a dose's symbols carry, with their content lengths.
STRUCTURES = {"=<": 8, "&>": 10, "&*": 10, "&/": 15}
ZPL_FIELD = re.compile(r"\^FO\d+,\d+(\^A0|\^BQ|\^BX)[^\^]*\^FH\^FD(.*?)\^FS")
DIN_STRUCTURE = 16  # 001: "=" and appppyynnnnnnff


def _zpl_fields(source: str) -> list[tuple[str, str]]:
    """The ZPL job's fields as (command, data): ^A0 text, ^BQ QR, ^BX Data Matrix, with the
    ^FH hex escapes undone. The data a printer encodes is the data a scanner reads back."""
    return [
        (command, re.sub(r"_([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), data))
        for command, data in ZPL_FIELD.findall(source)
    ]


def _structures(message: str) -> dict[str, str] | None:
    """An ISBT 128 compound message (023: `=+nn000` then the structures) split by data
    identifier, or None when it does not hold the number of structures it announces."""
    if not re.fullmatch(r"=\+[0-9]{5}.+", message):
        return None
    count, rest, found = int(message[2:4]), message[7:], {}
    while rest:
        key = rest[:2] if rest[:2] in STRUCTURES else "="
        size = 2 + STRUCTURES[key] if key != "=" else DIN_STRUCTURE
        found[key], rest = rest[:size], rest[size:]
    return found if len(found) == count else None


def _isbt_time(local: str) -> str:
    """`cyyjjjhhmm` (ST-001 §2.4.5) of a local wall-clock time `YYYY-MM-DD HH:MM`."""
    moment = datetime.strptime(local, "%Y-%m-%d %H:%M")
    c, yy = divmod(moment.year - 2000, 100)
    return f"{c}{yy:02d}{moment.timetuple().tm_yday:03d}{moment:%H%M}"


def _particulars(walk: Walk) -> dict[str, Any]:
    settings = walk.json(
        walk.call(
            "qa",
            "GET",
            "/gmp-settings",
            status=200,
            why="the label product particulars in force (QC-3)",
            params={"group": "label_product"},
        ),
        "the GMP settings",
    )
    # The version QA approved last, else the shipped default (installed as a draft) that labels
    # print until QA approves one.
    in_force = [s for s in settings if s.get("in_force")]
    shipped = sorted((s for s in settings if s.get("created_by") == SYSTEM_AUTHOR), key=_version)
    chosen = (in_force or shipped)[:1]
    if not chosen:
        raise Blocked("no version of the label product particulars is in force or shipped")
    walk.verify(
        "the particulars labels print: the version in force, else the shipped default",
        f"version {chosen[0]['version']} ({chosen[0]['status']}, by {chosen[0]['created_by']})",
        True,
    )
    return chosen[0]["values"]


def _version(setting: dict[str, Any]) -> int:
    return setting["version"]


def lbl6(walk: Walk) -> None:
    """The dose label (read as its ZPL: the texts and the symbols' data exactly as the printer
    is sent them) and the accompanying document carry the particulars EU 1394/2007 Annex III,
    21 CFR 1271.370/.90(c) and CTR 536/2014 Annex VI ask, times in local time with the zone,
    and ISBT 128 structures that parse back and that the install resolves to this dose."""
    batch, patient, code = walk.need("batch_a"), walk.need("patient_a"), walk.need("doses")[1]
    product = _particulars(walk)
    found = walk.json(
        walk.call("tech", "GET", f"/batches/{batch['id']}", status=200, why="the batch"), "batch"
    )
    (dose,) = [v for v in found["vessels"] if v["code"] == code]
    zpl = walk.call(
        "tech",
        "GET",
        f"/vessels/{code}/label",
        status=200,
        why="the dose label as ZPL",
        params={"format": "zpl"},
    ).text
    fields = _zpl_fields(zpl)
    texts = "\n".join(data for command, data in fields if command == "^A0")
    wanted = [
        AUTOLOGOUS,
        NOT_EVALUATED,
        HUMAN_ORIGIN,
        product["product_name"],
        product["route_of_administration"],
        f"Store at {product['storage_temperature']}",
        f"BATCH {found['batch_number']}",
        f"PRODUCT {product['isbt_product_code']}",
    ]
    if product["investigational"]:
        wanted += [f"{CLINICAL_TRIAL} · {product['trial_code']}", f"Sponsor: {product['sponsor']}"]
    else:
        wanted.append(product["establishment_name"])
    missing = [text for text in wanted if text not in texts]
    walk.verify(
        "the bag label carries " + "; ".join(wanted),
        f"missing: {missing}" if missing else "all present",
        not missing,
    )
    expiry = re.search(r"EXP (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) (\S+)", texts)
    walk.verify(
        "the expiry is the dose's, in local time with the zone",
        expiry.group(0) if expiry else texts[:200],
        expiry is not None and _local_is(expiry.group(1), dose["expires_at"]),
    )
    qr = [data.removeprefix("MA,") for command, data in fields if command == "^BQ"]
    walk.verify("the QR code carries the vessel code", qr, qr == [code])
    matrices = [data for command, data in fields if command == "^BX"]
    message = next((m for m in matrices if m.startswith("=+")), "")
    parts = _structures(message) or {}
    flags = parts.get("=", "")[14:]
    division = parts.get("=<", "")[8:10]
    shown = {
        "001 DIN with flags": parts.get("=", "")[:14] == f"={batch['din']}" and flags.isdigit(),
        "003 product code": parts.get("=<", "")[2:8] == f"{product['isbt_product_code']}1"
        and division == f"{chr(64 + int(flags or 0))}0",
        "005 expiration": bool(expiry) and parts.get("&>") == f"&>{_isbt_time(expiry.group(1))}",
        "040 COI": f"&/{patient['coi'][:-1]}" in matrices,
    }
    walk.verify(
        "the Data Matrix symbols hold the compound message 023 of 001 (DIN, per-dose flags), "
        "003 (product code, autologous, division of this dose), 005 (the expiry shown) and "
        "the COI (040); read from the symbols' data in the ZPL, the images were not decoded",
        f"{shown} in {matrices}",
        all(shown.values()),
    )
    scanned = walk.json(
        walk.call(
            "tech",
            "POST",
            "/scan",
            status=200,
            why="the install decodes the product message back to this dose",
            json={"code": message, "expect": {"din": batch["din"]}},
        ),
        "the scan of the product message",
    )
    walk.verify("it is this dose", scanned["vessel"]["code"], scanned["vessel"]["code"] == code)
    document = walk.call(
        "clinician",
        "GET",
        f"/vessels/{code}/label/accompanying",
        status=200,
        why="the dose's accompanying document",
    )
    walk.verify(
        "a PDF",
        document.headers.get("content-type"),
        document.content[:5] == b"%PDF-",
    )
    also = [
        product["product_description"],
        product["excipients"],
        product["storage_conditions"],
        product["establishment_name"],
        product["establishment_address"],
        HUMAN_ORIGIN,
        code,
        found["batch_number"],
        f"(DIN flags {flags})",
        *([product["trial_code"], product["sponsor"]] if product["investigational"] else []),
        *([expiry.group(0).removeprefix("EXP ")] if expiry else []),
    ]
    words = " ".join(
        pdftext.text(document.content, "the accompanying document", "; ".join(also)).split()
    )
    absent = [text for text in also if " ".join(text.split()) not in words]
    walk.verify(
        "the accompanying document carries " + "; ".join(also),
        f"missing: {absent}" if absent else "all present",
        not absent,
    )


def _local_is(local: str, utc: str) -> bool:
    """Whether `local` (YYYY-MM-DD HH:MM) is the instant `utc` in some zone: an offset of whole
    quarter hours within ±14 h (the walk does not know the install's zone, the label names it)."""
    instant = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    wall = instant.replace(tzinfo=None, second=0, microsecond=0)
    offset = datetime.strptime(local, "%Y-%m-%d %H:%M") - wall
    minutes = offset.total_seconds() / 60
    return minutes % 15 == 0 and abs(minutes) <= 14 * 60
