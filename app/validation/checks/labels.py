"""Operational-qualification checks: labels: previews, prints, reprints, reconciliation."""

from app.validation.walk import Walk


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
