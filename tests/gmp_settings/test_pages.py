"""QA's change-control page (QC-3): specification versions and GMP settings shown with their
status and signatures; a proposal and its e-signed approval made from the page, the same services
as the API."""

from app.auth.permissions import Role
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import Group
from tests.helpers import PASSWORD, make_user
from tests.test_pages import _page_login, submit


def test_qc3_the_change_control_page_lists_versions_to_qa_only(api):
    _page_login(api, Role.TECHNICIAN)
    assert api.client.get("/qa/change-control").status_code == 403
    _page_login(api, Role.QA)
    page = api.client.get("/qa/change-control")
    assert page.status_code == 200
    for title in ("QC specification", "Culture limits", "Product data on dose labels"):
        assert title in page.text
    assert "approved" in page.text and "Installation QA" in page.text


def test_qc3_a_proposal_and_its_approval_from_the_page(api):
    """QC-3 / SIG-1 / SIG-4: QA 1 proposes on the page (a draft, with its reason); QA 2 approves
    it with password and reason; the new value is in force."""
    _page_login(api, Role.QA)
    proposed = submit(
        api,
        "/qa/gmp-settings",
        data={"group": "infusion_protocol", "value.doses": "4", "reason": "Protocol amendment 2"},
        follow_redirects=False,
    )
    assert proposed.status_code == 303, proposed.text
    (draft,) = [
        v for v in gmp_settings.list_public(api.db, group=Group.INFUSION_PROTOCOL) if v.version == 2
    ]
    assert draft.status == "draft" and draft.values["doses"] == 4
    approver = make_user(api.db, api.settings, roles=[Role.QA])
    api.client.cookies.clear()
    login = submit(
        api,
        "/login",
        data={"username": approver.username, "password": PASSWORD},
        follow_redirects=False,
    )
    assert login.status_code == 303
    wrong = submit(
        api,
        f"/qa/gmp-settings/{draft.id}/approve",
        data={"password": "wrong-password", "reason": "Amendment approved"},
    )
    assert wrong.status_code == 401
    assert gmp_settings.infusion_protocol(api.db).doses == 3
    approved = submit(
        api,
        f"/qa/gmp-settings/{draft.id}/approve",
        data={"password": PASSWORD, "reason": "Amendment approved"},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    assert gmp_settings.infusion_protocol(api.db).doses == 4
    assert "Amendment approved" in api.client.get("/qa/change-control").text


def test_qc3_a_specification_draft_is_approved_from_the_page(api):
    """QC-3: the draft's approve form signs it `approved` and puts it in force."""
    (current,) = [v for v in api.get(Role.QA, "/specifications").json() if v["in_force"]]
    tests = [{k: v for k, v in t.items() if k != "limit"} for t in current["tests"]]
    draft = api.post(Role.QA, "/specifications", {"tests": tests, "password": PASSWORD}).json()
    _page_login(api, Role.QA)  # another QA user than the author
    approved = submit(
        api,
        f"/qa/specifications/{draft['id']}/approve",
        data={"password": PASSWORD, "comment": "CC-7"},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    shown = api.get(Role.TECHNICIAN, f"/specifications/{draft['id']}").json()
    assert shown["status"] == "approved"
    assert [s["meaning"] for s in shown["signatures"]] == ["performed", "approved"]
