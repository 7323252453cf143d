"""Operational-qualification checks: dispatch, the board, the bedside and tracing."""

from datetime import UTC, datetime, timedelta

from app.validation.walk import Walk


def cln3(walk: Walk) -> None:
    doses = walk.need("doses")
    walk.need("released")
    walk.call(
        "tech",
        "POST",
        f"/vessels/{doses[0]}/custody",
        status=201,
        why="a released dose is dispatched with its temperature",
        json={"event": "dispatched", "location": "OQ courier", "temperature_c": 4},
    )
    receipt = walk.call(
        "clinician",
        "POST",
        f"/vessels/{doses[0]}/custody",
        status=201,
        why="the clinic receives it",
        json={"event": "received", "location": "OQ clinic", "temperature_c": 5},
    )
    walk.state["received_at"] = walk.json(receipt, "the receipt")["occurred_at"]
    walk.state["at_clinic"] = doses[0]
    patient = walk.need("patient_a")
    walk.call(
        "clinician",
        "POST",
        "/infusions/verify",
        status=409,
        error="not_at_clinic",
        why="a dose not received at the clinic cannot be verified",
        json={"wristband_mrn": patient["mrn"], "birth_date": "1980-02-29", "dose_code": doses[1]},
    )


def cln2(walk: Walk) -> None:
    batch = walk.need("batch_a")
    walk.call(
        "clinician",
        "GET",
        f"/batches/{batch['id']}/infusion-plan",
        status=200,
        why="infusions are planned per dose",
    )


def cln1(walk: Walk) -> None:
    patient = walk.need("patient_a")
    board = walk.json(
        walk.call("clinician", "GET", "/clinic/readiness", status=200, why="the readiness board"),
        "board",
    )
    rows = board if isinstance(board, list) else board.get("rows", board.get("items", []))
    mine = [row for row in rows if row.get("patient_id") == patient["id"]]
    walk.verify(
        "the scratch patient is on the board with a ready flag",
        mine[:1],
        bool(mine) and "ready" in mine[0],
    )


def coi6(walk: Walk) -> None:
    code, patient, other = walk.need("at_clinic"), walk.need("patient_a"), walk.need("patient_b")
    check = {"wristband_mrn": patient["mrn"], "birth_date": "1980-02-29", "dose_code": code}
    walk.call(
        "clinician",
        "POST",
        "/infusions/verify",
        status=409,
        error="identity_mismatch",
        why="another patient's wristband is refused",
        json=check | {"wristband_mrn": other["mrn"]},
    )
    walk.call(
        "clinician",
        "POST",
        "/infusions/verify",
        status=200,
        why="the right patient, released dose at the clinic",
        json=check,
    )
    # After the receipt as the server recorded it: the runner's clock may lag the server's.
    administered = max(datetime.fromisoformat(walk.need("received_at")), datetime.now(UTC))
    infusion = check | {
        "administered_at": (administered + timedelta(seconds=1)).isoformat(),
        "witness_username": walk.actors["clinician"].username,
        "witness_password": walk.actors["clinician"].password,
    }
    walk.call(
        "clinician",
        "POST",
        "/infusions",
        status=403,
        why="the witness is a second person",
        json=infusion,
    )
    infusion |= {
        "witness_username": walk.actors["witness"].username,
        "witness_password": walk.actors["witness"].password,
    }
    walk.call(
        "clinician",
        "POST",
        "/infusions",
        status=201,
        why="the infusion is recorded by two clinicians",
        json=infusion,
    )
    walk.state["infused"] = code
    walk.call(
        "clinician",
        "POST",
        "/infusions/verify",
        status=409,
        error="already_infused",
        why="a dose is infused only once",
        json=check,
    )


def coi7(walk: Walk) -> None:
    patient, code = walk.need("patient_a"), walk.need("doses")[0]
    trace = walk.call(
        "qa",
        "GET",
        f"/patients/{patient['id']}/trace",
        status=200,
        why="from the patient to every dose",
    )
    walk.verify("the patient's trace lists the dose", "dose code", code in trace.text)
    back = walk.call(
        "qa", "GET", f"/vessels/{code}/trace", status=200, why="from the dose back to the patient"
    )
    walk.verify("the dose traces back to the patient's COI", "COI", patient["coi"] in back.text)
