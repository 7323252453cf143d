"""QA's pages (issue 12 item 5): the queue with each batch's gate before any dialog, the
second-person review, the deviation's investigation and e-signed closure, the release dialog
with the act's meaning and its unmistakable result."""

from app.audit.actions import AuditAction
from app.auth.permissions import Role
from app.web import number
from app.websecurity import CSRF_COOKIE, CSRF_FIELD
from tests.helpers import PASSWORD, audit_events, make_user
from tests.test_pages import _page_login, submit


def _sign_in(api, user) -> None:
    if CSRF_COOKIE not in api.client.cookies:
        api.client.get("/login")
    token = api.client.cookies[CSRF_COOKIE]
    response = api.client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, CSRF_FIELD: token},
        follow_redirects=False,
    )
    assert response.status_code == 303


def test_rel6_the_queue_shows_each_batch_gate_met_or_not_before_the_release_dialog(api):
    """The queue lists every condition from release.gate (met / NOT MET), and offers the
    release dialog only for a batch whose gate is met."""
    ready, _ = api.formulated(doses=1)
    api.pass_qc(ready["id"])
    waiting, _ = api.formulated(doses=1)
    api.pass_qc(waiting["id"], skip=("sterility",), prepare=False)
    _page_login(api, Role.QA)
    queue = api.client.get("/qa")
    assert queue.status_code == 200
    ready_part = queue.text.split(f'id="batch-{ready["id"]}"', 1)[1].split("</section>", 1)[0]
    waiting_part = queue.text.split(f'id="batch-{waiting["id"]}"', 1)[1].split("</section>")[0]
    assert "Release gate met" in ready_part and "Open the release dialog" in ready_part
    assert "NOT MET" not in ready_part
    assert "Release gate not met" in waiting_part and "NOT MET" in waiting_part
    assert "no result yet: sterility" in waiting_part
    assert "Open the release dialog" not in waiting_part


def test_rel3_the_release_dialog_signs_with_the_meaning_of_the_act_and_says_released(api, db):
    """SIG-6 on the page: the dialog states the meaning (`released`), asks the password again,
    and the record then opens on 'RELEASED — signed by … at …' with the certificate links."""
    batch, _ = api.formulated(doses=1)
    api.pass_qc(batch["id"])
    qa = _page_login(api, Role.QA)
    record = api.client.get(f"/batches/{batch['id']}")
    dialog = record.text.split('id="release"', 1)[1]
    assert dialog.index("Every condition is met") < dialog.index('name="password"')
    assert 'meaning <span class="meaning">released</span>' in dialog
    wrong = submit(
        api, f"/batches/{batch['id']}/release", data={"decision": "release", "password": "x"}
    )
    assert wrong.status_code == 401 and "Wrong password: nothing was signed" in wrong.text
    assert "Back to the batch record" in wrong.text
    signed = submit(
        api, f"/batches/{batch['id']}/release", data={"decision": "release", "password": PASSWORD}
    )
    assert signed.status_code == 200 and signed.url.fragment == "decision"
    assert f"RELEASED — signed by {qa.full_name} at " in signed.text
    assert "/certificate?format=pdf" in signed.text and 'name="password"' not in signed.text
    assert len(audit_events(db, AuditAction.RELEASE_DECIDED)) == 1


def test_sig4_a_result_is_reviewed_on_the_page_by_a_second_person_never_its_author(api, db):
    """The review form signs `reviewed` with the password; its author is refused in words."""
    batch, _ = api.formulated(doses=1)
    author = make_user(db, api.settings, roles=[Role.TECHNICIAN])
    entered = api.client.post(
        f"/api/v1/batches/{batch['id']}/qc-results",
        json={"test": "sterility", "value": "no growth"},
        headers=api.headers_for(author),
    )
    assert entered.status_code == 201, entered.text
    result_id = entered.json()["id"]
    _sign_in(api, author)
    refused = submit(
        api, f"/qa/results/{result_id}/review", data={"password": PASSWORD, "back": "batch"}
    )
    assert refused.status_code == 403 and "second person must review" in refused.text
    _page_login(api, Role.QA)
    assert f"/qa/results/{result_id}/review" in api.client.get("/qa").text
    reviewed = submit(
        api, f"/qa/results/{result_id}/review", data={"password": PASSWORD, "comment": "ok"}
    )
    assert reviewed.status_code == 200 and reviewed.url.path == "/qa"
    assert f"/qa/results/{result_id}/review" not in reviewed.text
    qc = api.qc(batch["id"])
    assert next(t for t in qc["tests"] if t["test"] == "sterility")["reviewed"] is True


def test_rel1_a_deviation_is_investigated_and_closed_e_signed_from_the_queue(api, db):
    """The investigation is saved, then QA signs the closure (meaning `approved`); the hold
    lifts with the batch's last open deviation."""
    batch, _ = api.formulated(doses=1)
    opened = api.post(
        Role.TECHNICIAN, f"/batches/{batch['id']}/deviations", {"description": "Door left open"}
    )
    assert opened.status_code == 201, opened.text
    deviation_id = opened.json()["id"]
    _page_login(api, Role.QA)
    base = f"/qa/deviations/{deviation_id}"
    too_soon = submit(api, f"{base}/close", data={"password": PASSWORD})
    assert too_soon.status_code == 422 and "cannot be closed before" in too_soon.text
    saved = submit(
        api,
        f"{base}/investigation",
        data={"investigation": "Checked logs", "root_cause": "Worn latch", "capa": "Replaced"},
    )
    assert saved.status_code == 200 and "Worn latch" in saved.text
    closed = submit(api, f"{base}/close", data={"password": PASSWORD, "back": "batch"})
    assert closed.status_code == 200 and closed.url.path == f"/batches/{batch['id']}"
    assert "meaning: approved" in closed.text
    assert api.get(Role.QA, f"/batches/{batch['id']}").json()["status"] == "quarantine"


def test_rel6_a_queued_review_reads_the_test_name_the_value_its_limit_and_outcome_in_words(api):
    """Issue 12 (lab day): a review row shows what is signed — the specification's test name,
    the value with its unit, the limit and the outcome in words — and the gate's 'not reviewed'
    line names tests as the specification does; batch numbers are identifiers kept unbroken."""
    batch, _ = api.formulated(doses=1)
    api.pass_qc(batch["id"], prepare=False)
    cells = next(t for t in api.qc(batch["id"])["tests"] if t["test"] == "viable_cells_per_dose")
    _page_login(api, Role.QA)
    queue = api.client.get("/qa")
    assert queue.status_code == 200
    reviews = queue.text.split('id="reviews"', 1)[1]
    row = reviews.split("Viable cells per dose", 1)[1].split("</tr>", 1)[0]
    assert f'<span class="num">{number(cells["value"])}</span> cells' in row
    assert cells["limit"] in row and "PASS</strong> — within the limit" in row
    gate = queue.text.split(f'id="batch-{batch["id"]}"', 1)[1].split("</section>", 1)[0]
    assert "not reviewed by a second person: Viability, Viable cells per dose" in gate
    assert "viable_cells_per_dose" not in queue.text and "mtdna_heteroplasmy" not in queue.text
    assert f'class="code">{batch["batch_number"]}</a></td>' in reviews


def test_rel6_the_queue_names_who_entered_a_result_and_opened_a_deviation_by_full_name(api, db):
    """Issue 12 (lab day): the queue reads people as the release does, by full name (username
    in smaller text)."""
    batch, _ = api.formulated(doses=1)
    author = make_user(db, api.settings, roles=[Role.TECHNICIAN], full_name="Tess Technician")
    entered = api.client.post(
        f"/api/v1/batches/{batch['id']}/qc-results",
        json={"test": "sterility", "value": "no growth"},
        headers=api.headers_for(author),
    )
    assert entered.status_code == 201, entered.text
    _page_login(api, Role.QA)
    reviews = api.client.get("/qa").text.split('id="reviews"', 1)[1]
    assert '<span class="person">Tess Technician</span>' in reviews
    assert f'<small class="muted username">{author.username}</small>' in reviews
