"""Drafting a new specification version on a page (issue 12 item 4; QC-1, QC-3): the form starts
from the version in force, is sent as the API's SpecificationCreate (refused alike), is e-signed
by its author, and then waits on change control for another QA user's approval."""

import html
import re

from app.auth.permissions import Role
from tests.helpers import PASSWORD, audit_events, ok
from tests.test_pages import _page_login, submit

FIELD = re.compile(
    r'<input type="(text|hidden|checkbox)" (?:id="[^"]*" )?name="([^"]+)" value="([^"]*)"([^>]*)>'
)


def _form(page_html: str) -> dict[str, str]:
    """What a browser sends of the draft form as shown: its boxes, checked checkboxes."""
    sent = {}
    for kind, name, value, rest in FIELD.findall(page_html):
        if name == "csrf_token" or (kind == "checkbox" and "checked" not in rest):
            continue
        sent[name] = html.unescape(value)
    return sent


def _row_of(form: dict[str, str], code: str) -> str:
    """The form's prefix of the row of test `code`."""
    (name,) = [k for k, v in form.items() if k.endswith("-test") and v == code]
    return name.removesuffix("test")


def _versions(api):
    return ok(api.get(Role.QA, "/specifications"))


def test_qc1_qc3_qa_drafts_a_version_from_the_one_in_force_and_it_waits_for_approval(api, db):
    (in_force,) = [v for v in _versions(api) if v["in_force"]]
    author = _page_login(api, Role.QA)
    assert 'href="/qa/specifications/new"' in api.client.get("/qa/change-control").text
    page = api.client.get("/qa/specifications/new")
    assert page.status_code == 200 and f"Drafted from version {in_force['version']}" in page.text
    form = _form(page.text)
    viability = _row_of(form, "viability")
    assert form[viability + "min"] == "70" and form[viability + "unit"] == "%"
    sterility = _row_of(form, "sterility")
    assert "no growth: pass" in form[sterility + "answers"]
    form[viability + "min"] = "75"
    form |= {"note": "viability raised", "password": PASSWORD}
    drafted = submit(api, "/qa/specifications", data=form, follow_redirects=False)
    assert drafted.status_code == 303, drafted.text
    newest = _versions(api)[0]
    assert drafted.headers["location"] == f"/qa/change-control#specification-{newest['id']}"
    assert newest["status"] == "draft" and newest["version"] == in_force["version"] + 1
    assert newest["created_by"] == author.username and newest["note"] == "viability raised"
    assert [s["meaning"] for s in newest["signatures"]] == ["performed"]
    # Every test as it was, but the one limit changed (and the text of that limit).
    expected = [
        t | {"min": 75.0, "limit": newest["tests"][0]["limit"]} if t["test"] == "viability" else t
        for t in in_force["tests"]
    ]
    assert newest["tests"] == expected
    # It waits on change control, where another QA user approves it (QC-3).
    board = api.client.get("/qa/change-control").text
    assert f'id="specification-{newest["id"]}"' in board
    assert f'action="/qa/specifications/{newest["id"]}/approve"' in board
    _page_login(api, Role.QA)
    approved = submit(
        api, f"/qa/specifications/{newest['id']}/approve", data={"password": PASSWORD}
    )
    assert approved.status_code == 200
    assert next(v for v in _versions(api) if v["in_force"])["id"] == newest["id"]


def test_qc1_a_draft_the_api_refuses_is_refused_on_the_page_as_typed(api):
    """min above max: the same refusal as the API's, the form back with what was typed (never
    the password), nothing drafted."""
    _page_login(api, Role.QA)
    form = _form(api.client.get("/qa/specifications/new").text)
    viability = _row_of(form, "viability")
    form |= {viability + "min": "90", viability + "max": "80", "password": PASSWORD}
    before = len(_versions(api))
    refused = submit(api, "/qa/specifications", data=form)
    assert refused.status_code == 422 and "viability: min is above max" in refused.text
    assert "Nothing was drafted or signed." in refused.text
    assert _form(refused.text)[viability + "max"] == "80"
    assert PASSWORD not in refused.text
    tests = [{k: v for k, v in t.items() if k != "limit"} for t in _versions(api)[0]["tests"]]
    tests = [t | {"min": 90, "max": 80} if t["test"] == "viability" else t for t in tests]
    api_refusal = api.post(Role.QA, "/specifications", {"tests": tests, "password": PASSWORD})
    assert api_refusal.status_code == 422 and "min is above max" in api_refusal.text
    assert len(_versions(api)) == before


def test_qc1_answers_typed_wrongly_and_an_empty_draft_are_refused_in_words(api):
    _page_login(api, Role.QA)
    form = _form(api.client.get("/qa/specifications/new").text)
    sterility = _row_of(form, "sterility")
    before = len(_versions(api))
    bad_answers = form | {sterility + "answers": "no growth maybe", "password": PASSWORD}
    refused = submit(api, "/qa/specifications", data=bad_answers)
    assert refused.status_code == 422 and "write each answer as" in refused.text
    emptied = {k: ("" if k.endswith("-test") else v) for k, v in form.items()}
    refused = submit(api, "/qa/specifications", data=emptied | {"password": PASSWORD})
    assert refused.status_code == 422 and "Check the tests" in refused.text
    assert len(_versions(api)) == before


def test_sig1_a_wrong_password_signs_nothing_and_is_audited(api, db):
    _page_login(api, Role.QA)
    form = _form(api.client.get("/qa/specifications/new").text)
    before = len(_versions(api))
    failed_before = len(audit_events(db))
    refused = submit(api, "/qa/specifications", data=form | {"password": "not-it"})
    assert refused.status_code == 401 and "Wrong password" in refused.text
    assert "New QC specification version" in refused.text  # still the draft form
    assert len(_versions(api)) == before
    assert len(audit_events(db)) > failed_before  # the failed signature left its trace


def test_qc1_only_qa_drafts_a_version(api):
    for role in (Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN):
        _page_login(api, role)
        assert api.client.get("/qa/specifications/new").status_code == 403
        refused = submit(api, "/qa/specifications", data={"rows": "0", "password": PASSWORD})
        assert refused.status_code == 403 and "You may not do this" in refused.text
    assert len(_versions(api)) == 1


def test_sec_the_draft_form_is_refused_without_the_csrf_token(api):
    _page_login(api, Role.QA)
    form = _form(api.client.get("/qa/specifications/new").text)
    forged = api.client.post("/qa/specifications", data=form | {"password": PASSWORD})
    assert forged.status_code == 403 and len(_versions(api)) == 1
