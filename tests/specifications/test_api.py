"""QC specifications through the HTTP API (QC-1): the shipped default (approved once per test
database by the fixtures, QC-3), QA's e-signed new versions, drafts until another QA user approves
them (SIG-1..4, QC-3), the version each batch is pinned to, and refusals that change nothing."""

import json
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.auth import service as auth
from app.auth.models import User
from app.auth.permissions import Role
from app.gmp_settings import service as gmp_settings
from app.signatures.models import Signature
from app.specifications.models import Specification, SpecificationTest
from tests.helpers import PASSWORD, Api, audit_events, qualify, unique
from tests.helpers import error as _error
from tests.helpers import ok as _ok

# -- helpers ---------------------------------------------------------------------------------------


def _versions(api: Api) -> list[dict[str, Any]]:
    return _ok(api.get(Role.TECHNICIAN, "/specifications"))


def _in_force(api: Api) -> dict[str, Any]:
    (current,) = [v for v in _versions(api) if v["in_force"]]
    return current


def _tests_in(version: dict[str, Any]) -> list[dict[str, Any]]:
    """The tests of a version as input to a new version (the public form minus `limit`)."""
    return [{k: v for k, v in t.items() if k != "limit"} for t in version["tests"]]


def _with(tests: list[dict[str, Any]], code: str, **changes: Any) -> list[dict[str, Any]]:
    return [t | changes if t["test"] == code else t for t in tests]


def _create(api: Api, tests: list[dict[str, Any]], role: Role = Role.QA, **extra: Any):
    body = {"tests": tests, "note": "Viability limit raised", "password": PASSWORD} | extra
    return api.post(role, "/specifications", body)


def _approve(api: Api, specification_id: int, **body: Any):
    """QC-3: approval by a QA user of their own (never the author: SIG-4)."""
    _, headers = _named_user(api, Role.QA, "Second QA")
    return api.client.post(
        f"/api/v1/specifications/{specification_id}/approve",
        headers=headers,
        json={"password": PASSWORD} | body,
    )


def _in_force_new(api: Api, tests: list[dict[str, Any]]) -> dict[str, Any]:
    """A new version drafted by QA and approved by another QA user: in force (QC-3)."""
    draft = _ok(_create(api, tests), 201)
    return _ok(_approve(api, draft["id"], comment="CC approved"))


def _counts(api: Api) -> dict[str, int]:
    """Rows a refused creation must not add."""
    db = api.db
    return {
        "specifications": db.execute(select(func.count()).select_from(Specification)).scalar_one(),
        "tests": db.execute(select(func.count()).select_from(SpecificationTest)).scalar_one(),
        "signatures": db.execute(select(func.count()).select_from(Signature)).scalar_one(),
        "created": len(audit_events(db, "specification.created")),
    }


def _named_user(api: Api, role: Role, full_name: str) -> tuple[User, dict[str, str]]:
    """A user with a printed name of its own, and its headers."""
    user = auth.create_user(
        api.db,
        api.settings,
        actor="test",
        username=unique("named-"),
        full_name=full_name,
        password=PASSWORD,
        roles=[role],
    )
    qualify(api.db, user)  # SEC-5: the builder qualifies as make_user does
    api.db.commit()
    return user, api.headers_for(user)


# -- the shipped default ---------------------------------------------------------------------------


def test_qc1_the_default_specification_ships_with_every_qc1_test_and_limit(api):
    """QC-1: version 1 for autologous mesoangioblasts, created by the system, with the limits of
    DESIGN §8 (the dose range from the settings)."""
    (version,) = _versions(api)
    assert version["version"] == 1 and version["in_force"] is True
    assert version["status"] == "approved"  # by the fixtures' QA, as a site's QA would (QC-3)
    assert version["product"] == "autologous mesoangioblasts"
    assert version["created_by"] == "system (shipped default)"
    assert [s["meaning"] for s in version["signatures"]] == ["approved"]
    tests = {t["test"]: t for t in version["tests"]}
    assert list(tests) == [
        "viability",
        "viable_cells_per_dose",
        "sterility",
        "mycoplasma",
        "endotoxin",
        "identity",
        "mtdna_heteroplasmy",
        "karyotype",
    ]

    def numeric(code: str) -> tuple[Any, ...]:
        t = tests[code]
        assert t["expected"] is None and t["answers"] is None
        return (t["unit"], t["min"], t["max"], t["min_inclusive"], t["max_inclusive"])

    assert numeric("viability") == ("%", 70, None, True, True)
    assert tests["viability"]["limit"] == "≥ 70 %"
    dose = gmp_settings.dose_range(api.db)
    assert numeric("viable_cells_per_dose") == ("cells", dose.cells_min, dose.cells_max, True, True)
    assert numeric("endotoxin") == ("EU/mL", None, 0.5, True, True)
    assert tests["endotoxin"]["limit"] == "≤ 0.5 EU/mL"
    assert "K/M" in tests["endotoxin"]["method"]
    assert numeric("identity") == ("%", 80, None, True, True)
    assert "ALP" in tests["identity"]["name"]
    # Heteroplasmy must be strictly below 10 %: 10 itself fails.
    assert numeric("mtdna_heteroplasmy") == ("%", None, 10, True, False)
    assert tests["mtdna_heteroplasmy"]["limit"] == "< 10 %"

    qualitative = {
        code: (tests[code]["expected"], tests[code]["unit"], tests[code]["min"], tests[code]["max"])
        for code in ("sterility", "mycoplasma", "karyotype")
    }
    assert qualitative == {
        "sterility": ("no growth", None, None, None),
        "mycoplasma": ("not detected", None, None, None),
        "karyotype": ("normal", None, None, None),
    }
    assert tests["sterility"]["answers"]["growth"] is False
    assert tests["mycoplasma"]["answers"]["detected"] is False
    assert tests["karyotype"]["answers"] == {"normal": True, "abnormal": False}
    # Every release-critical test of QC-1 is marked critical (karyotype is informative).
    assert {code for code, t in tests.items() if t["critical"]} == set(tests) - {"karyotype"}


def test_qc1_the_default_is_created_once_and_audited_as_the_system(api, db):
    """QC-1 / AUD-1: reading the specifications again does not make another version 1."""
    first = _versions(api)
    again = _versions(api)
    assert [v["id"] for v in again] == [v["id"] for v in first]
    assert _ok(api.get(Role.CLINICIAN, f"/specifications/{first[0]['id']}"))["version"] == 1
    (created,) = audit_events(db, "specification.created")
    assert created.actor == "system" and created.actor_id is None
    assert created.entity_id == first[0]["id"]
    assert json.loads(created.new_values or "{}")["version"] == 1


def test_an_unknown_specification_is_404(api):
    _versions(api)
    _error(api.get(Role.TECHNICIAN, "/specifications/999999"), 404, "not_found")


# -- new versions: QA only, e-signed ---------------------------------------------------------------


def test_qc1_qc3_sig2_a_new_version_is_a_draft_signed_by_its_author_until_approved(api, db):
    """QC-1 / QC-3 / SIG-2 / SIG-3: QA's new version is the next number, a draft that is not in
    force, signed `performed` by its author; another QA user's approval (`approved`) puts it in
    force and supersedes the old one. Each signature shows its manifestation (printed name,
    meaning, record hash) matching the content."""
    old = _in_force(api)
    author, headers = _named_user(api, Role.QA, "Quinn Assurance")
    tests = _with(_tests_in(old), "viability", min=75)
    response = api.client.post(
        "/api/v1/specifications",
        headers=headers,
        json={
            "tests": tests,
            "note": "Viability limit raised after validation",
            "password": PASSWORD,
            "comment": "CC-2024-17",
        },
    )
    new = _ok(response, 201)
    assert new["version"] == old["version"] + 1
    assert new["status"] == "draft" and new["in_force"] is False
    assert new["created_by"] == author.username
    assert new["note"] == "Viability limit raised after validation"
    viability = next(t for t in new["tests"] if t["test"] == "viability")
    assert viability["min"] == 75 and viability["limit"] == "≥ 75 %"
    (signature,) = new["signatures"]
    assert signature["signed_by"] == "Quinn Assurance"
    assert signature["username"] == author.username and signature["user_id"] == author.id
    assert signature["meaning"] == "performed"  # authored: the approval is another's act
    assert signature["record_type"] == "specification" and signature["record_id"] == new["id"]
    assert len(signature["record_hash"]) == 64 and signature["matches"] is True
    assert signature["comment"] == "CC-2024-17"

    assert _ok(api.get(Role.TECHNICIAN, f"/specifications/{new['id']}")) == new
    assert _in_force(api)["id"] == old["id"]  # a draft changes nothing in force

    approver, headers = _named_user(api, Role.QA, "Quentin Approver")
    approved = _ok(
        api.client.post(
            f"/api/v1/specifications/{new['id']}/approve",
            headers=headers,
            json={"password": PASSWORD, "comment": "CC-2024-17 approved"},
        )
    )
    assert approved["status"] == "approved" and approved["in_force"] is True
    authored, approval = approved["signatures"]
    assert authored["meaning"] == "performed" and authored["matches"] is True
    assert approval["meaning"] == "approved" and approval["signed_by"] == "Quentin Approver"
    assert approval["user_id"] == approver.id and approval["comment"] == "CC-2024-17 approved"
    assert approval["record_hash"] == authored["record_hash"] and approval["matches"] is True
    listed = {v["version"]: v for v in _versions(api)}
    assert listed[old["version"]]["status"] == "superseded"
    assert listed[old["version"]]["in_force"] is False
    assert listed[new["version"]]["in_force"] is True
    (created,) = [e for e in audit_events(db, "specification.created") if e.entity_id == new["id"]]
    assert created.actor_id == author.id
    applied = [json.loads(e.new_values or "{}") for e in audit_events(db, "signature.applied")]
    assert {"record_type": "specification", "record_id": new["id"]}.items() <= applied[-1].items()


def test_qc3_sig6_the_meaning_of_a_version_signature_is_bound_to_the_act(api):
    """SIG-6 / QC-3: the author signs `performed`, the approver `approved`; a client cannot choose
    another meaning (the field is refused, nothing is created)."""
    tests = _tests_in(_in_force(api))
    before = _counts(api)
    _error(_create(api, tests, meaning="approved"), 422, "invalid_request")
    assert _counts(api) == before


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN])
def test_qc1_only_qa_creates_a_version(api, role):
    """QC-1: the specification is changed only by QA; other roles are refused and nothing is
    created."""
    tests = _with(_tests_in(_in_force(api)), "viability", min=60)
    before = _counts(api)
    _error(_create(api, tests, role=role), 403, "forbidden")
    assert _counts(api) == before
    assert _in_force(api)["version"] == 1


def test_qc1_sig1_creating_a_version_needs_the_right_password(api, db):
    """SIG-1 / SIG-5: a wrong password signs nothing, creates nothing, and is audited."""
    tests = _with(_tests_in(_in_force(api)), "viability", min=60)
    before = _counts(api)
    failed = len(audit_events(db, "signature.failed"))
    _error(_create(api, tests, password="not-my-password"), 401, "invalid_credentials")
    assert _counts(api) == before
    assert _in_force(api)["version"] == 1
    (attempt,) = audit_events(db, "signature.failed")[failed:]
    assert json.loads(attempt.new_values or "{}")["record_type"] == "specification"


def test_qc1_sig3_a_changed_version_no_longer_matches_its_signature(api, db):
    """SIG-3: a version edited behind the application's back shows its signature broken."""
    new = _ok(_create(api, _tests_in(_in_force(api))), 201)
    db.execute(
        update(SpecificationTest)
        .where(SpecificationTest.specification_id == new["id"])
        .where(SpecificationTest.test == "endotoxin")
        .values(maximum=5.0)
    )
    db.flush()
    shown = _ok(api.get(Role.QA, f"/specifications/{new['id']}"))
    assert next(t for t in shown["tests"] if t["test"] == "endotoxin")["max"] == 5.0
    assert shown["signatures"][0]["matches"] is False


# -- the version a batch is pinned to --------------------------------------------------------------


def test_qc1_a_batch_keeps_the_version_in_force_when_it_was_registered(api):
    """QC-1 / QC-2: a new version applies to batches registered after it; an earlier batch is
    still tested against the version pinned at its registration."""
    before = api.batch()
    old = _in_force(api)
    draft = _ok(_create(api, _with(_tests_in(old), "viability", min=75)), 201)
    assert api.batch()["specification_id"] == old["id"]  # a draft is not in force (QC-3)
    new = _ok(_approve(api, draft["id"]))
    after = api.batch()

    assert before["specification_id"] == old["id"]
    assert after["specification_id"] == new["id"]
    old_qc, new_qc = api.qc(before["id"]), api.qc(after["id"])
    assert old_qc["specification_version"] == old["version"]
    assert new_qc["specification_version"] == new["version"]
    assert next(t for t in old_qc["tests"] if t["test"] == "viability")["min"] == 70
    assert next(t for t in new_qc["tests"] if t["test"] == "viability")["min"] == 75

    # 72 % passes the old limit and fails the new one.
    assert _ok(api.result(before["id"], "viability", 72), 201)["outcome"] == "pass"
    assert _ok(api.result(after["id"], "viability", 72), 201)["outcome"] == "fail"


def test_qc1_a_new_version_may_add_and_drop_tests(api):
    """QC-1: a version is a whole list of tests; a batch on it is tested on exactly that list."""
    tests = [t for t in _tests_in(_in_force(api)) if t["test"] != "karyotype"] + [
        {
            "test": "cd56",
            "name": "CD56-negative fraction",
            "method": "Flow cytometry",
            "unit": "%",
            "min": 90,
            "min_inclusive": False,
        }
    ]
    new = _in_force_new(api, tests)
    assert new["tests"][-1]["limit"] == "> 90 %"
    batch = api.batch()
    codes = [t["test"] for t in api.qc(batch["id"])["tests"]]
    assert "karyotype" not in codes and codes[-1] == "cd56"
    assert _ok(api.result(batch["id"], "cd56", 90), 201)["outcome"] == "fail"  # exclusive
    _error(api.result(batch["id"], "karyotype", "normal"), 422, "unknown_test")


# -- invalid definitions ---------------------------------------------------------------------------

_NUMERIC = {"test": "viability", "name": "Viability", "method": "Trypan blue", "unit": "%"}
_QUALITATIVE = {"test": "sterility", "name": "Sterility", "method": "Ph. Eur. 2.6.27"}

INVALID = {
    "min_above_max": [_NUMERIC | {"min": 90, "max": 80}],
    "numeric_without_unit": [{k: v for k, v in _NUMERIC.items() if k != "unit"} | {"min": 70}],
    "limits_and_expected": [_NUMERIC | {"min": 70, "expected": "normal"}],
    "no_limit_nor_expected": [_NUMERIC],
    "answers_on_a_numeric_test": [_NUMERIC | {"min": 70, "answers": {"high": True}}],
    "expected_answer_that_fails": [
        _QUALITATIVE | {"expected": "no growth", "answers": {"no growth": False, "growth": True}}
    ],
    "expected_answer_not_listed": [
        _QUALITATIVE | {"expected": "no growth", "answers": {"negative": True}}
    ],
    "duplicate_test": [_NUMERIC | {"min": 70}, _NUMERIC | {"min": 80}],
    "no_tests": [],
    "bad_test_code": [_NUMERIC | {"test": "Viability %", "min": 70}],
    "unknown_field": [_NUMERIC | {"min": 70, "minimum": 70}],
    "limit_not_a_number": [_NUMERIC | {"min": "seventy"}],
}


@pytest.mark.parametrize("tests", list(INVALID.values()), ids=list(INVALID))
def test_rel_an_invalid_specification_is_refused_and_changes_nothing(api, tests):
    """REL / QC-1: a definition that could not be evaluated unambiguously is a 422."""
    _versions(api)  # version 1 exists before counting
    before = _counts(api)
    _error(_create(api, tests), 422, "invalid_request")
    assert _counts(api) == before
    assert _in_force(api)["version"] == 1


def test_rel_a_version_without_a_password_is_refused(api):
    """REL / SIG-1: the password is not optional."""
    _versions(api)
    before = _counts(api)
    body = {"tests": _tests_in(_in_force(api)), "note": "x"}
    _error(api.post(Role.QA, "/specifications", body), 422, "invalid_request")
    assert _counts(api) == before
