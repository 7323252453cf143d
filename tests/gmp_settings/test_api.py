"""GMP settings under change control through the HTTP API (QC-3): versioned records, proposed by
QA with a reason, approved by another QA user with an e-signature and a reason (SIG-1..4), the
version in force superseded, every change audited, refusals changing nothing; and the code that
decides GMP outcomes reads the version in force."""

import dataclasses
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from app.auth.permissions import Role
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import DEFAULTS, Group, LabelProduct
from app.gmp_settings.models import GmpSetting
from app.signatures.models import Signature
from app.signatures.schemas import SignedRecord
from tests.helpers import PASSWORD, Api, audit_events, error, make_user, ok
from tests.races import committed_api

REASON = "Validated on site (CC-2026-04)"


def _versions(api: Api, group: Group | None = None) -> list[dict[str, Any]]:
    query = f"?group={group.value}" if group else ""
    return ok(api.get(Role.TECHNICIAN, f"/gmp-settings{query}"))


def _in_force(api: Api, group: Group) -> dict[str, Any]:
    (current,) = [v for v in _versions(api, group) if v["in_force"]]
    return current


def _propose(api: Api, group: Group, role: Role = Role.QA, **values: Any):
    body = {"group": group.value, "values": values, "reason": REASON}
    return api.post(role, "/gmp-settings", body)


def _approve(api: Api, setting_id: int, headers: dict[str, str] | None = None, **body: Any):
    headers = headers or api.headers_for(make_user(api.db, api.settings, roles=[Role.QA]))
    return api.client.post(
        f"/api/v1/gmp-settings/{setting_id}/approve",
        headers=headers,
        json={"password": PASSWORD, "reason": "Approved after review"} | body,
    )


def _counts(api: Api) -> dict[str, int]:
    db = api.db
    return {
        "versions": db.execute(select(func.count()).select_from(GmpSetting)).scalar_one(),
        "approved": db.execute(
            select(func.count()).select_from(GmpSetting).where(GmpSetting.status == "approved")
        ).scalar_one(),
        "signatures": db.execute(select(func.count()).select_from(Signature)).scalar_one(),
        # Users made and logins by the test itself are not what a refusal must not add.
        "events": len(
            [e for e in audit_events(db) if e.action.startswith(("gmp_setting.", "signature.ap"))]
        ),
    }


# -- what ships ------------------------------------------------------------------------------------


def test_qc3_every_group_ships_its_defaults_approved_here_by_the_fixtures(api):
    """QC-3: one version 1 per group, the shipped defaults, created by the system (the test
    fixtures approve them, e-signed, as a site's QA does before first use; they then turn every
    qualification rule on with a version 2, which supersedes that group's version 1: SEC-5)."""
    versions = [v for v in _versions(api) if v["version"] == 1]
    assert {v["group"] for v in versions} == {g.value for g in Group}
    for version in versions:
        group = Group(version["group"])
        if group is Group.QUALIFICATION_GATING:
            assert version["status"] == "superseded"
            assert version["values"] == {"people": False, "equipment": False, "lots": False}
            continue
        assert version["version"] == 1 and version["status"] == "approved"
        assert version["created_by"] == "system (shipped default)"
        assert version["values"] == dataclasses.asdict(DEFAULTS[group])
        (signature,) = version["signatures"]
        assert signature["meaning"] == "approved" and signature["matches"] is True
        assert signature["record_type"] == "gmp_setting"


def test_qc3_the_label_product_group_has_exactly_the_label_fields(api):
    """QC-3 / LBL-6: the dose label's product data is one group, read as a dataclass."""
    product = gmp_settings.label_product(api.db)
    assert isinstance(product, LabelProduct)
    assert [f.name for f in dataclasses.fields(product)] == [
        "product_name",
        "product_description",
        "pharmaceutical_form",
        "route_of_administration",
        "excipients",
        "storage_conditions",
        "storage_temperature",
        "establishment_name",
        "establishment_address",
        "investigational",
        "sponsor",
        "trial_code",
        "isbt_product_code",
    ]
    assert product.investigational is True


def test_qc3_on_a_fresh_install_every_group_is_a_draft_and_the_shipped_default_is_read(
    fresh_engine, settings
):
    """QC-3: before QA approves, each group's version 1 is a draft awaiting approval and the
    values read are the shipped defaults (validated with the release), nothing else."""
    with committed_api(fresh_engine, settings) as (api, _):
        versions = _versions(api)
        assert {(v["group"], v["version"], v["status"]) for v in versions} == {
            (g.value, 1, "draft") for g in Group
        }
        assert all(v["signatures"] == [] for v in versions)
        assert gmp_settings.culture_limits(api.db) == DEFAULTS[Group.CULTURE_LIMITS]
        assert gmp_settings.dose_range(api.db) == DEFAULTS[Group.DOSE_RANGE]


# -- proposing and approving -----------------------------------------------------------------------


def test_qc3_sig2_a_proposal_is_a_draft_until_another_qa_user_approves_it_with_a_reason(api):
    """QC-3 / SIG-2 / SIG-4: a proposal keeps the fields it does not change, is audited with its
    reason, changes nothing in force; the approval by another QA user is e-signed `approved`
    with the reason, supersedes version 1, and the new limits are the ones the code reads."""
    old = _in_force(api, Group.CULTURE_LIMITS)
    draft = ok(_propose(api, Group.CULTURE_LIMITS, passage_soft=5, passage_hard=8), 201)
    assert draft["version"] == 2 and draft["status"] == "draft" and draft["in_force"] is False
    assert draft["values"] == old["values"] | {"passage_soft": 5, "passage_hard": 8}
    assert draft["reason"] == REASON and draft["signatures"] == []
    assert gmp_settings.culture_limits(api.db).passage_hard == 10  # still version 1
    (proposed,) = [
        e for e in audit_events(api.db, "gmp_setting.proposed") if e.entity_id == draft["id"]
    ]
    assert proposed.reason == REASON
    assert json.loads(proposed.new_values or "{}")["values"] == draft["values"]

    approver = make_user(api.db, api.settings, roles=[Role.QA])
    approved = ok(_approve(api, draft["id"], api.headers_for(approver), reason="CC approved"))
    assert approved["status"] == "approved" and approved["in_force"] is True
    (signature,) = approved["signatures"]
    assert (signature["meaning"], signature["user_id"]) == ("approved", approver.id)
    assert signature["comment"] == "CC approved" and signature["matches"] is True
    assert _in_force(api, Group.CULTURE_LIMITS)["id"] == draft["id"]
    assert {v["version"]: v["status"] for v in _versions(api, Group.CULTURE_LIMITS)} == {
        1: "superseded",
        2: "approved",
    }
    # The version superseded keeps its signature valid: the status is not signed content.
    (first,) = [v for v in _versions(api, Group.CULTURE_LIMITS) if v["version"] == 1]
    assert first["signatures"][0]["matches"] is True
    assert gmp_settings.culture_limits(api.db).passage_hard == 8
    for action, entity in (
        ("gmp_setting.approved", draft["id"]),
        ("gmp_setting.superseded", old["id"]),
    ):
        (event,) = [e for e in audit_events(api.db, action) if e.entity_id == entity]
        assert event.actor_id == approver.id and event.reason == "CC approved"


def test_qc3_the_culture_limit_in_force_refuses_a_step(api):
    """QC-3: a hard limit approved by QA is what the step service enforces."""
    draft = ok(_propose(api, Group.CULTURE_LIMITS, passage_soft=0, passage_hard=0), 201)
    ok(_approve(api, draft["id"]))
    batch = api.batch()
    isolation = ok(api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"]), 201)
    refused = api.step(batch["id"], "passage", [isolation["outputs"][0]["code"]], ["flask"])
    assert "hard limit 0" in error(refused, 409, "culture_limit")


def test_qc3_sig4_the_author_of_a_proposal_cannot_approve_it(api):
    draft = ok(_propose(api, Group.DOSE_RANGE, cells_min=2e7), 201)
    author = api.as_role(Role.QA)
    before = _counts(api)
    error(_approve(api, draft["id"], author), 403, "forbidden")
    assert _counts(api) == before


def test_qc3_sig1_a_wrong_password_approves_nothing_and_is_audited(api):
    draft = ok(_propose(api, Group.DOSE_RANGE, cells_min=2e7), 201)
    failed = len(audit_events(api.db, "signature.failed"))
    before = _counts(api)
    error(_approve(api, draft["id"], password="not-the-password"), 401, "invalid_credentials")
    assert _counts(api) == before
    (attempt,) = audit_events(api.db, "signature.failed")[failed:]
    assert json.loads(attempt.new_values or "{}")["record_type"] == SignedRecord.GMP_SETTING


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN])
def test_qc3_only_qa_proposes_and_approves(api, role):
    draft = ok(_propose(api, Group.DOSE_RANGE, cells_min=2e7), 201)
    headers = api.as_role(role)
    before = _counts(api)
    error(_propose(api, Group.DOSE_RANGE, role=role, cells_min=3e7), 403, "forbidden")
    error(_approve(api, draft["id"], headers), 403, "forbidden")
    assert _counts(api) == before


def test_qc3_only_a_draft_newer_than_the_version_in_force_is_approved(api):
    older = ok(_propose(api, Group.INFUSION_PROTOCOL, doses=2), 201)
    newer = ok(_propose(api, Group.INFUSION_PROTOCOL, doses=4), 201)
    ok(_approve(api, newer["id"]))
    before = _counts(api)
    assert "older" in error(_approve(api, older["id"]), 409, "not_draft")
    assert "approved" in error(_approve(api, newer["id"]), 409, "not_draft")
    assert _counts(api) == before
    assert gmp_settings.infusion_protocol(api.db).doses == 4


INVALID = {
    "soft_above_hard": (Group.CULTURE_LIMITS, {"passage_soft": 12}),
    "min_above_max": (Group.DOSE_RANGE, {"cells_min": 6e8}),
    "negative_cells": (Group.DOSE_RANGE, {"cells_min": -1}),
    "unknown_field": (Group.TRANSPORT_TEMPERATURES, {"fresh_min": 3}),
    "not_a_number": (Group.INFUSION_PROTOCOL, {"doses": "three"}),
    "too_many_doses": (Group.INFUSION_PROTOCOL, {"doses": 21}),
    "below_absolute_zero": (Group.TRANSPORT_TEMPERATURES, {"cryopreserved_max_c": -300}),
    "bad_product_code": (Group.LABEL_PRODUCT, {"isbt_product_code": "bad code"}),
    "empty_name": (Group.LABEL_PRODUCT, {"product_name": "  "}),
}


@pytest.mark.parametrize(("group", "values"), list(INVALID.values()), ids=list(INVALID))
def test_rel_qc3_an_invalid_proposal_is_422_and_changes_nothing(api, group, values):
    before = _counts(api)
    error(_propose(api, group, **values), 422, "invalid_request")
    assert _counts(api) == before


@pytest.mark.parametrize(
    "body",
    [
        {"group": "dose_range", "values": {"cells_min": 2e7}},  # no reason
        {"group": "dose_range", "values": {}, "reason": " "},
        {"group": "unknown", "values": {}, "reason": "x"},
        {"group": "dose_range", "values": {"cells_min": [1]}, "reason": "x"},
    ],
)
def test_rel_qc3_a_malformed_proposal_is_422(api, body):
    before = _counts(api)
    error(api.post(Role.QA, "/gmp-settings", body), 422, "invalid_request")
    assert _counts(api) == before


def test_rel_qc3_an_approval_needs_a_reason_and_a_password(api):
    draft = ok(_propose(api, Group.DOSE_RANGE, cells_min=2e7), 201)
    headers = api.headers_for(make_user(api.db, api.settings, roles=[Role.QA]))
    before = _counts(api)
    for body in ({"password": PASSWORD}, {"reason": "why"}, {"password": PASSWORD, "reason": ""}):
        response = api.client.post(
            f"/api/v1/gmp-settings/{draft['id']}/approve", headers=headers, json=body
        )
        error(response, 422, "invalid_request")
    assert _counts(api) == before


def test_unknown_gmp_settings_versions_are_404(api):
    error(api.get(Role.QA, "/gmp-settings/999999"), 404, "not_found")
    error(_approve(api, 999_999), 404, "not_found")


def test_qc3_a_version_is_read_by_id(api):
    version = _in_force(api, Group.LABEL_PRODUCT)
    assert ok(api.get(Role.CLINICIAN, f"/gmp-settings/{version['id']}")) == version
