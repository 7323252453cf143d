"""Custody and storage-location pages (issue 12 item 7): vessels moved and dispatched by
scanning, whose they are shown after each scan, refusals on the same page with nothing changed
and the input focused, the locations listed and added by an admin; roles and CSRF."""

import re

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from tests.helpers import audit_events, error, ok, unique
from tests.test_pages import _page_login, submit


def _position(api) -> str:
    """A freezer box position made through the API (admin): its code."""
    freezer = ok(
        api.post(
            Role.ADMIN, "/locations", {"code": unique("FRZ"), "name": "Freezer", "kind": "freezer"}
        ),
        201,
    )
    code = unique("POS")
    body = {"code": code, "name": "A1", "kind": "position", "parent_id": freezer["id"]}
    ok(api.post(Role.ADMIN, "/locations", body), 201)
    return code


def _history(api, code: str) -> list[dict]:
    return ok(api.get(Role.TECHNICIAN, f"/vessels/{code}/custody"))


def test_cln3_a_dose_is_dispatched_by_scanning_it_with_patient_coi_and_batch_shown(api, db):
    batch, doses = api.released(doses=1)
    patient = api.get(Role.CLINICIAN, f"/patients/{batch['patient_id']}").json()
    _page_login(api, Role.TECHNICIAN)
    empty = api.client.get("/custody")
    assert empty.status_code == 200
    assert re.search(r'id="code" name="code"[^>]*autofocus', empty.text)
    assert 'href="/custody"' in empty.text  # the nav link
    scanned = api.client.get("/custody", params={"code": doses[0]})
    assert scanned.status_code == 200
    assert f"{patient['family_name'].upper()}, {patient['given_name']}" in scanned.text
    assert batch["coi"] in scanned.text and batch["batch_number"] in scanned.text
    assert "no-store" in scanned.headers["cache-control"]  # patient data is never cached
    # For a dose, Enter dispatches: its button comes first; the destination box has the focus.
    buttons = re.findall(r'<button type="submit" name="event" value="(\w+)"', scanned.text)
    assert buttons == ["dispatched", "moved"]
    assert re.search(r'id="location"[^>]*autofocus', scanned.text)
    done = submit(
        api,
        "/custody",
        data={
            "code": doses[0],
            "event": "dispatched",
            "location": "Courier",
            "temperature_c": "4,5",
        },
    )
    assert done.status_code == 200, done.text
    assert "DISPATCHED" in done.text and "4.5 °C" in done.text
    assert re.search(r'id="code" name="code"[^>]*autofocus', done.text)  # the next vessel
    recent = done.text.split("Recent custody events", 1)[1]
    assert doses[0] in recent and "Courier" in recent
    (event,) = _history(api, doses[0])
    assert event["event"] == "dispatched" and event["temperature_c"] == 4.5
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "issued"
    assert len(audit_events(db, AuditAction.CUSTODY_RECORDED)) == 1


def test_a_vessel_is_moved_to_a_position_and_a_taken_position_is_refused_on_the_page(api, db):
    _batch, flasks = api.expanded_batch()
    position = _position(api)
    _page_login(api, Role.TECHNICIAN)
    scanned = api.client.get("/custody", params={"code": flasks[0]})
    assert f'<option value="{position}">' in scanned.text  # chosen from the locations
    buttons = re.findall(r'<button type="submit" name="event" value="(\w+)"', scanned.text)
    assert buttons == ["moved", "dispatched"]
    assert "Record move" in scanned.text and "Dispatch" in scanned.text
    moved = submit(
        api, "/custody", data={"code": flasks[0], "event": "moved", "location": position}
    )
    assert moved.status_code == 200 and "MOVED" in moved.text
    body = {"code": flasks[1], "event": "moved", "location": position.lower()}
    taken = submit(api, "/custody", data=body)
    api_taken = api.post(
        Role.TECHNICIAN, f"/vessels/{flasks[1]}/custody", {"event": "moved", "location": position}
    )
    assert taken.status_code == 409 and api_taken.status_code == 409
    assert api_taken.json()["error"] == "position_taken"
    assert "already holds another vessel" in taken.text and 'role="alert"' in taken.text
    # Still the custody form for that vessel, what was typed kept, the destination focused.
    assert re.search(rf'id="location"[^>]*value="{position.lower()}" autofocus', taken.text)
    assert flasks[1] in taken.text and "Log out" in taken.text
    assert _history(api, flasks[1]) == []
    assert len(audit_events(db, AuditAction.CUSTODY_RECORDED)) == 1


def test_cln3_a_dose_of_an_unreleased_batch_is_not_dispatched_from_the_page(api, db):
    _batch, doses = api.formulated(doses=1)
    _page_login(api, Role.TECHNICIAN)
    body = {"code": doses[0], "event": "dispatched", "location": "Courier", "temperature_c": "5"}
    refused = submit(api, "/custody", data=body)
    assert refused.status_code == 409
    assert "Do not use: the batch is not released" in refused.text
    no_temperature = submit(api, "/custody", data=body | {"temperature_c": ""})
    assert no_temperature.status_code == 409  # the release is checked first, as the API does
    unreadable = submit(api, "/custody", data=body | {"temperature_c": "cold"})
    assert unreadable.status_code == 422 and "not a number" in unreadable.text
    no_event = submit(api, "/custody", data=body | {"event": "teleported"})
    assert no_event.status_code == 422 and "Check the event" in no_event.text
    assert _history(api, doses[0]) == []
    assert audit_events(db, AuditAction.CUSTODY_RECORDED) == []


def test_coi4_a_bad_or_unknown_code_is_refused_in_words_with_the_scan_box_focused(api):
    _page_login(api, Role.TECHNICIAN)
    bad = api.client.get("/custody", params={"code": "not-a-code"})
    assert bad.status_code == 422 and "scan it again" in bad.text
    assert re.search(r'id="code" name="code"[^>]*autofocus', bad.text)
    assert 'id="location"' not in bad.text


def test_sec_custody_page_roles_and_csrf(api, db):
    _batch, flasks = api.expanded_batch()
    _page_login(api, Role.ADMIN)
    assert api.client.get("/custody").status_code == 403
    _page_login(api, Role.CLINICIAN)  # records receipts only
    body = {"code": flasks[0], "event": "moved", "location": "Bench 2"}
    refused = submit(api, "/custody", data=body)
    assert refused.status_code == 403 and "You may not do this" in refused.text
    as_api = {"event": "moved", "location": "Bench 2"}
    error(api.post(Role.CLINICIAN, f"/vessels/{flasks[0]}/custody", as_api), 403, "forbidden")
    _page_login(api, Role.TECHNICIAN)
    forged = api.client.post("/custody", data=body)
    assert forged.status_code == 403
    assert _history(api, flasks[0]) == []


def test_an_admin_lists_and_adds_storage_locations_and_a_duplicate_stays_on_the_page(api, db):
    _page_login(api, Role.ADMIN)
    page = api.client.get("/locations")
    assert page.status_code == 200 and "Add location" in page.text
    assert 'href="/locations"' in page.text
    site = unique("SITE")
    added = submit(api, "/locations", data={"code": site, "name": "Main lab", "kind": "site"})
    assert added.status_code == 200 and "LOCATION ADDED" in added.text
    (created,) = [loc for loc in ok(api.get(Role.ADMIN, "/locations")) if loc["code"] == site]
    room = unique("ROOM")
    inside = {"code": room, "name": "Cell room", "kind": "room", "parent_id": str(created["id"])}
    assert submit(api, "/locations", data=inside).status_code == 200
    listed = api.client.get("/locations")
    assert f"{site} &gt; {room}" in listed.text
    again = submit(api, "/locations", data={"code": site, "name": "Twin", "kind": "site"})
    assert again.status_code == 409 and f"{site} exists" in again.text
    assert 'value="Twin"' in again.text and "Cell room" in again.text  # form and list kept
    wrong_kind = submit(api, "/locations", data={"code": unique("X"), "name": "X", "kind": "shelf"})
    assert wrong_kind.status_code == 422
    assert len(audit_events(db, AuditAction.LOCATION_CREATED)) == 2


def test_sec_locations_page_roles_and_csrf(api, db):
    _page_login(api, Role.TECHNICIAN)  # reads the catalogue, manages none of it
    page = api.client.get("/locations")
    assert page.status_code == 200 and "Add location" not in page.text
    refused = submit(api, "/locations", data={"code": "T1", "name": "T", "kind": "site"})
    assert refused.status_code == 403
    _page_login(api, Role.CLINICIAN)
    assert api.client.get("/locations").status_code == 403
    _page_login(api, Role.ADMIN)
    forged = api.client.post("/locations", data={"code": "T2", "name": "T", "kind": "site"})
    assert forged.status_code == 403
    assert audit_events(db, AuditAction.LOCATION_CREATED) == []
