"""Server-rendered pages: login with an HttpOnly cookie, home, scan station, batch record."""

from datetime import UTC, datetime

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.web import local_time, number, parse_local_datetime
from app.websecurity import CSRF_COOKIE, CSRF_FIELD
from tests.helpers import PASSWORD, audit_events, make_user


def submit(api, path: str, data: dict | None = None, **kwargs):
    """Send a page form as a browser does: with the CSRF token of this browser's cookie (a page
    is loaded first when the browser has none yet)."""
    if CSRF_COOKIE not in api.client.cookies:
        api.client.get("/login")
    token = api.client.cookies[CSRF_COOKIE]
    return api.client.post(path, data=(data or {}) | {CSRF_FIELD: token}, **kwargs)


def _page_login(api, role: Role):
    user = make_user(api.db, api.settings, roles=[role])
    response = submit(
        api,
        "/login",
        data={"username": user.username, "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    return user


def test_pages_redirect_to_login_when_not_logged_in(api):
    for path in ("/", "/scan", "/batches/1"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login"


def test_sec_a_wrong_password_shows_the_login_form_again_and_is_audited(api, db):
    user = make_user(db, api.settings, roles=[Role.QA])
    response = submit(api, "/login", data={"username": user.username, "password": "nope-nope"})
    assert response.status_code == 401
    assert "Wrong username or password" in response.text and "<form" in response.text
    assert len(audit_events(db, AuditAction.LOGIN_FAILED)) == 1


def test_home_lists_batches_with_din_and_coi(api):
    batch = api.batch()
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get("/")
    assert page.status_code == 200
    assert batch["batch_number"] in page.text and batch["coi"] in page.text


def test_aud5_batch_record_shows_the_timeline_to_qa_only(api):
    batch = api.batch()
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200
    assert batch["tube_code"] in page.text and "batch.registered" in page.text
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200 and "batch.registered" not in page.text


def test_sec_logout_revokes_the_page_session(api):
    _page_login(api, Role.CLINICIAN)
    assert api.client.get("/", follow_redirects=False).status_code == 200
    token = api.client.cookies.get("homeward_token")
    out = submit(api, "/logout", follow_redirects=False)
    assert out.status_code == 303
    api.client.cookies.set("homeward_token", token)
    assert api.client.get("/", follow_redirects=False).status_code == 303


def test_admin_sees_no_patient_data_on_pages(api):
    api.batch()
    _page_login(api, Role.ADMIN)
    page = api.client.get("/")
    assert page.status_code == 200 and "COI" not in page.text
    assert api.client.get("/scan").status_code == 403


def test_coi7_batch_record_page_shows_steps_lineage_custody_and_culture(api):
    """The electronic batch record QA reads before release: steps with who/when/measurements,
    the vessel tree, custody and the culture clocks."""
    batch, flasks = api.expanded_batch()
    moved = api.post(
        Role.TECHNICIAN,
        f"/vessels/{flasks[0]}/custody",
        {"event": "moved", "location": "Incubator 3", "temperature_c": 37.0},
    )
    assert moved.status_code == 201
    _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200
    for expected in ("isolation", "passage", flasks[0], flasks[1], "Incubator 3", "passage 1"):
        assert expected in page.text


def test_rel3_qa_releases_from_the_batch_record_page_with_an_e_signature(api, db):
    """REL-3 and SIG-1 on the page: the form signs with the password, the record then shows the
    decision and its manifestation (SIG-2); a wrong password signs nothing and is audited."""
    batch, _ = api.formulated(doses=1)
    api.pass_qc(batch["id"])
    qa = _page_login(api, Role.QA)
    page = api.client.get(f"/batches/{batch['id']}")
    assert page.status_code == 200
    assert 'action="/batches/{}/release"'.format(batch["id"]) in page.text
    assert "Viability" in page.text and "≥ 70 %" in page.text

    wrong = submit(
        api, f"/batches/{batch['id']}/release", data={"decision": "release", "password": "nope"}
    )
    assert wrong.status_code == 401 and "nothing was signed" in wrong.text
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "quarantine"
    assert len(audit_events(db, AuditAction.SIGNATURE_FAILED)) == 1

    signed = submit(
        api,
        f"/batches/{batch['id']}/release",
        data={"decision": "release", "password": PASSWORD, "comment": "all tests passed"},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    record = api.client.get(f"/batches/{batch['id']}")
    assert "released" in record.text and qa.full_name in record.text
    assert "record unchanged since signing" in record.text
    assert "/certificate?format=pdf" in record.text


def test_rel1_the_qa_queue_lists_batches_awaiting_a_decision_and_open_deviations(api):
    """The QA queue: batches in quarantine with their QC progress, deviations to close, and
    critical results awaiting a second person's review; QA only."""
    waiting, _ = api.formulated(doses=1)
    api.pass_qc(waiting["id"], skip=("sterility",))
    failing, _ = api.formulated(doses=1)
    row = next(t for t in api.qc(failing["id"])["tests"] if t["test"] == "viability")
    assert api.result(failing["id"], "viability", 10).json()["outcome"] == "fail"
    _page_login(api, Role.QA)
    queue = api.client.get("/qa")
    assert queue.status_code == 200
    assert waiting["batch_number"] in queue.text and failing["batch_number"] in queue.text
    assert "7 of 8 passed" in queue.text
    assert "Out of specification" in queue.text and row["name"] in queue.text
    assert "awaiting" in queue.text.lower()
    _page_login(api, Role.TECHNICIAN)
    assert api.client.get("/qa").status_code == 403


def _at_clinic(api):
    """A released batch whose first dose was dispatched and received: (batch, dose, patient)."""
    batch, doses = api.released(doses=2)
    move = {"event": "dispatched", "location": "Courier", "temperature_c": 5.0}
    assert api.post(Role.TECHNICIAN, f"/vessels/{doses[0]}/custody", move).status_code == 201
    move = {"event": "received", "location": "Ward 4", "temperature_c": 6.0}
    assert api.post(Role.CLINICIAN, f"/vessels/{doses[0]}/custody", move).status_code == 201
    patient = api.get(Role.CLINICIAN, f"/patients/{batch['patient_id']}").json()
    return batch, doses[0], patient


def test_cln1_the_clinic_board_page_shows_ready_and_the_reason_when_not(api):
    """CLN-1 on the page: the ready patient is marked READY, another shows why not."""
    batch, _, patient = _at_clinic(api)
    waiting, _ = api.formulated(doses=1)
    _page_login(api, Role.CLINICIAN)
    page = api.client.get("/clinic")
    assert page.status_code == 200
    assert "READY" in page.text and patient["mrn"] in page.text
    assert batch["batch_number"] in page.text and waiting["batch_number"] in page.text
    assert "QC 0 of 8 complete" in page.text
    _page_login(api, Role.TECHNICIAN)
    assert api.client.get("/clinic").status_code == 403


def test_coi6_the_bedside_page_confirms_identity_then_records_the_witnessed_infusion(api, db):
    """COI-6 on the page: a wrong wristband is a refusal page; the right one is confirmed, and
    the infusion is recorded only with a second clinician's password."""
    batch, dose, patient = _at_clinic(api)
    witness = make_user(db, api.settings, roles=[Role.CLINICIAN])
    _page_login(api, Role.CLINICIAN)
    form = {"wristband_mrn": patient["mrn"], "birth_date": patient["birth_date"], "dose_code": dose}
    wrong = submit(api, "/bedside/verify", data=form | {"wristband_mrn": "MRN-OTHER"})
    assert wrong.status_code == 409 and "STOP" in wrong.text
    confirmed = submit(api, "/bedside/verify", data=form)
    assert confirmed.status_code == 200 and "IDENTITY CONFIRMED" in confirmed.text
    refused = submit(
        api,
        "/bedside/infuse",
        data=form | {"witness_username": witness.username, "witness_password": "wrong-one"},
    )
    assert refused.status_code == 401
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "issued"
    recorded = submit(
        api,
        "/bedside/infuse",
        data=form | {"witness_username": witness.username, "witness_password": PASSWORD},
    )
    assert recorded.status_code == 200 and "INFUSION RECORDED" in recorded.text
    assert len(audit_events(db, AuditAction.INFUSION_RECORDED)) == 1


def test_numbers_on_pages_are_grouped_without_a_stray_decimal():
    """Issue 12: '150000000.0 cells' is shown as '150,000,000'."""
    assert number(150000000.0) == "150,000,000"
    assert number(2.50) == "2.5" and number(0.125) == "0.125" and number(37) == "37"
    assert (
        number(12.345, 1) == "12.3"
        and number(None) == ""
        and number("not detected") == ("not detected")
    )


def test_times_on_pages_are_local_with_their_zone():
    """CONVENTIONS 11: a UTC instant is shown in the display zone, the zone named (CET/CEST)."""
    winter = datetime(2026, 1, 10, 8, 30, tzinfo=UTC)
    summer = datetime(2026, 7, 10, 8, 30, tzinfo=UTC)
    assert local_time(winter, "Europe/Rome") == "2026-01-10 09:30 CET"
    assert local_time(summer, "Europe/Rome") == "2026-07-10 10:30 CEST"
    typed = parse_local_datetime("2026-07-10T10:30", "Europe/Rome")
    assert typed == summer


def test_a_refused_page_form_shows_the_refusal_on_its_page_with_the_header(api):
    """A refusal stays inside the site's frame, signed-in header included, in plain words."""
    _page_login(api, Role.CLINICIAN)
    refused = submit(api, "/clinic/receive", data={"dose_code": "NOT-A-CODE", "location": "Ward"})
    assert refused.status_code == 422
    assert "Log out" in refused.text and 'id="dose_code"' in refused.text
