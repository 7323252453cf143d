"""Change control of the specification (QC-3): the shipped default is a draft until QA approves it
with an e-signature (SIG-1..4); no batch is registered before; approving supersedes the version in
force; refusals change nothing; two approvals at once leave one version in force (REL)."""

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.audit.service import verify_chain
from app.auth.permissions import Role
from app.batches.models import Batch
from app.cli import cli
from app.config import get_settings
from app.db import make_engine, session_factory_for, unit_of_work
from app.gmp_settings import service as gmp_settings
from app.gmp_settings.groups import Group
from app.signatures.models import Signature
from app.signatures.schemas import SignatureInput
from app.specifications import service as specifications
from app.specifications.models import Specification
from app.specifications.schemas import SpecificationCreate, SpecificationTestIn
from tests.helpers import (
    PASSWORD,
    Api,
    approve_gmp_settings,
    audit_events,
    error,
    make_user,
    ok,
    one_winner,
    race,
)
from tests.races import Contender, committed_api, wait_for_lock_waiters


def _versions(api: Api) -> list[dict[str, Any]]:
    return ok(api.get(Role.TECHNICIAN, "/specifications"))


def _approve(api: Api, spec_id: int, headers: dict[str, str] | None = None, **body: Any):
    """POST the approval as `headers`' user (by default a QA user of its own)."""
    headers = headers or api.headers_for(make_user(api.db, api.settings, roles=[Role.QA]))
    return api.client.post(
        f"/api/v1/specifications/{spec_id}/approve",
        headers=headers,
        json={"password": PASSWORD} | body,
    )


def _draft(api: Api, *, viability: float) -> dict[str, Any]:
    """A new version by the (cached) QA author, a draft, with another viability limit."""
    (base,) = [v for v in _versions(api) if v["version"] == 1]
    tests = [{k: v for k, v in t.items() if k != "limit"} for t in base["tests"]]
    tests = [t | {"min": viability} if t["test"] == "viability" else t for t in tests]
    body = {"tests": tests, "note": "change", "password": PASSWORD}
    return ok(api.post(Role.QA, "/specifications", body), 201)


def _status(api: Api) -> dict[int, str]:
    return {v["version"]: v["status"] for v in _versions(api)}


def _register(api: Api):
    biopsy = api.received_biopsy()
    return api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]})


def _batches(api: Api) -> int:
    count = api.db.execute(select(func.count()).select_from(Batch)).scalar_one()
    api.db.commit()  # on SQLite, the read transaction would hold the write lock
    return count


# -- a fresh install -------------------------------------------------------------------------------


def test_qc3_the_shipped_specification_is_a_draft_and_no_batch_registers_before_approval(
    fresh_engine, settings
):
    """QC-3: at install version 1 is a draft, not in force, signed by nobody; registering a batch
    is refused with 409 `no_approved_specification` and creates nothing; QA's approval puts it in
    force (e-signed `approved`), and the same registration then succeeds."""
    with committed_api(fresh_engine, settings) as (api, _):
        (shipped,) = _versions(api)
        assert (shipped["version"], shipped["status"], shipped["in_force"]) == (1, "draft", False)
        assert shipped["signatures"] == []
        biopsy = api.received_biopsy()
        before = _batches(api)
        detail = error(
            api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]}),
            409,
            "no_approved_specification",
        )
        assert "approve" in detail
        assert _batches(api) == before

        approver = make_user(api.db, settings, roles=[Role.QA])
        approved = ok(_approve(api, shipped["id"], api.headers_for(approver), comment="Go-live"))
        assert approved["status"] == "approved" and approved["in_force"] is True
        (signature,) = approved["signatures"]
        assert signature["meaning"] == "approved" and signature["user_id"] == approver.id
        assert signature["comment"] == "Go-live" and signature["matches"] is True
        batch = ok(api.post(Role.TECHNICIAN, "/batches", {"biopsy_id": biopsy["id"]}), 201)
        assert batch["specification_id"] == shipped["id"]
        (event,) = audit_events(api.db, "specification.approved")
        assert event.actor_id == approver.id and event.entity_id == shipped["id"]
        assert json.loads(event.old_values or "{}") == {"status": "draft"}
        assert json.loads(event.new_values or "{}") == {"status": "approved", "version": 1}
        assert event.reason == "Go-live"
        assert verify_chain(api.db).ok


def test_qc3_the_shipped_default_takes_the_dose_range_approved_before_it_is_drafted(
    fresh_engine, settings
):
    """QC-1 / QC-3: "viable cells per dose within the configured dose range": a site that
    approves its own dose range before first use ships version 1 with that range."""
    with committed_api(fresh_engine, settings) as (api, _):
        gmp_settings.install_defaults(api.db)
        api.db.commit()
        approve_gmp_settings(api.db, settings, Group.DOSE_RANGE, cells_min=2e7, cells_max=3e8)
        (shipped,) = _versions(api)
        cells = next(t for t in shipped["tests"] if t["test"] == "viable_cells_per_dose")
        assert (cells["min"], cells["max"]) == (2e7, 3e8)


def test_qc3_homeward_demo_approves_the_shipped_specification_and_settings_as_qa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """QC-3: the two-command start still works: `homeward demo` approves the draft specification
    and every group of GMP settings as the demo QA user, each with an e-signature."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    monkeypatch.setenv("HOMEWARD_DATABASE_URL", url)
    monkeypatch.setenv("HOMEWARD_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("HOMEWARD_ARGON2_MEMORY_KIB", "1024")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        result = runner.invoke(cli, ["demo"])
        assert result.exit_code == 0, result.output
    finally:
        get_settings.cache_clear()
    engine = make_engine(url)
    try:
        with session_factory_for(engine)() as session:
            (spec,) = specifications.list_public(session)
            assert spec.status == "approved"
            assert [(s.username, s.meaning) for s in spec.signatures] == [("qa", "approved")]
            versions = gmp_settings.list_public(session)
            assert {v.group for v in versions if v.in_force} == set(Group)
            for version in versions:
                assert [(s.username, s.meaning) for s in version.signatures] == [("qa", "approved")]
            assert session.execute(select(func.count()).select_from(Batch)).scalar_one() > 0
    finally:
        engine.dispose()


# -- approving a new version -----------------------------------------------------------------------


def test_qc3_approving_a_version_supersedes_the_one_in_force(api):
    """QC-3: versions 2 and 3 are drafts side by side; approving 2 supersedes 1; approving 3
    supersedes 2; each move is audited; an older draft approved after a newer one is refused."""
    v2, v3, v4 = (_draft(api, viability=v) for v in (71, 72, 73))
    assert _status(api) == {1: "approved", 2: "draft", 3: "draft", 4: "draft"}
    ok(_approve(api, v3["id"]))
    assert _status(api) == {1: "superseded", 2: "draft", 3: "approved", 4: "draft"}
    before = _status(api)
    assert "older" in error(_approve(api, v2["id"]), 409, "not_draft")
    assert _status(api) == before
    ok(_approve(api, v4["id"]))
    assert _status(api) == {1: "superseded", 2: "draft", 3: "superseded", 4: "approved"}
    superseded = [e.entity_id for e in audit_events(api.db, "specification.superseded")]
    assert superseded[-2:] == [_versions(api)[-1]["id"], v3["id"]]
    batch = api.batch()
    assert batch["specification_id"] == v4["id"]


def _signatures(api: Api) -> int:
    return api.db.execute(select(func.count()).select_from(Signature)).scalar_one()


def test_qc3_sig1_a_wrong_password_approves_nothing_and_is_audited(api):
    """SIG-1 / SIG-5: the approval re-authenticates; a wrong password changes nothing."""
    draft = _draft(api, viability=75)
    before, signed = _status(api), _signatures(api)
    failed = len(audit_events(api.db, "signature.failed"))
    error(_approve(api, draft["id"], password="not-the-password"), 401, "invalid_credentials")
    assert _status(api) == before and _signatures(api) == signed
    (attempt,) = audit_events(api.db, "signature.failed")[failed:]
    assert json.loads(attempt.new_values or "{}")["record_id"] == draft["id"]


def test_qc3_sig4_the_author_of_a_version_cannot_approve_it(api):
    """SIG-4: four-eyes: QA's own draft needs another QA user's approval."""
    draft = _draft(api, viability=75)
    before, signed = _status(api), _signatures(api)
    error(_approve(api, draft["id"], api.as_role(Role.QA)), 403, "forbidden")
    assert _status(api) == before and _signatures(api) == signed


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.CLINICIAN, Role.ADMIN])
def test_qc3_only_qa_approves_a_version(api, role):
    draft = _draft(api, viability=75)
    before = _status(api)
    error(_approve(api, draft["id"], api.as_role(role)), 403, "forbidden")
    assert _status(api) == before


def test_qc3_an_approved_or_superseded_version_is_not_approved_again(api):
    (current,) = [v for v in _versions(api) if v["in_force"]]
    error(_approve(api, current["id"]), 409, "not_draft")
    draft = _draft(api, viability=75)
    ok(_approve(api, draft["id"]))
    before, signed = _status(api), _signatures(api)
    assert "superseded" in error(_approve(api, current["id"]), 409, "not_draft")
    assert _status(api) == before and _signatures(api) == signed


@pytest.mark.parametrize(
    "body", [{}, {"password": ""}, {"password": PASSWORD, "meaning": "released"}]
)
def test_rel_a_malformed_approval_is_422_and_changes_nothing(api, body):
    draft = _draft(api, viability=75)
    headers = api.headers_for(make_user(api.db, api.settings, roles=[Role.QA]))
    before = _status(api)
    response = api.client.post(
        f"/api/v1/specifications/{draft['id']}/approve", headers=headers, json=body
    )
    error(response, 422, "invalid_request")
    assert _status(api) == before


def test_an_unknown_specification_cannot_be_approved(api):
    error(_approve(api, 999_999), 404, "not_found")


# -- two approvals at once (REL) -------------------------------------------------------------------


def _committed_drafts(factory, settings, count: int) -> list[int]:
    """`count` new drafts (copies of version 1) committed for real by one QA author."""
    with unit_of_work(factory) as session:
        specifications.install_default(session)
    with unit_of_work(factory) as session:
        author = make_user(session, settings, roles=[Role.QA])
        (first,) = [s for s in specifications.list_public(session) if s.version == 1]
        data = SpecificationCreate(
            tests=[SpecificationTestIn(**t.model_dump(exclude={"limit"})) for t in first.tests],
            password=PASSWORD,
        )
        return [
            specifications.create(session, settings, actor=author, data=data).id or 0
            for _ in range(count)
        ]


def _approved(factory) -> list[int]:
    with factory() as session:
        return list(
            session.execute(
                select(Specification.id).where(Specification.status == "approved")
            ).scalars()
        )


@pytest.mark.postgres_only
@pytest.mark.parametrize("drafts", [1, 2], ids=["same_draft", "two_drafts"])
def test_rel_qc3_an_approval_waiting_for_another_is_refused_once_that_one_commits(
    committed_engine, settings, drafts
):
    """REL / QC-3, the interleaving provoked: QA 1's approval holds the versions, uncommitted;
    QA 2's approval (of the same draft, or of another) is seen waiting; QA 1 commits; QA 2 is
    refused with a 409. One version is in force, one approval signed, the trail intact."""
    with committed_api(committed_engine, settings) as (api, factory):
        ids = _committed_drafts(factory, settings, drafts)
        first = make_user(api.db, settings, roles=[Role.QA])
        second = api.headers_for(make_user(api.db, settings, roles=[Role.QA]))
        signature = SignatureInput(password=PASSWORD)
        with unit_of_work(factory) as session:
            specifications.approve(
                session, settings, actor=first, specification_id=ids[0], data=signature
            )
            late = Contender(lambda: _approve(api, ids[-1], second))
            wait_for_lock_waiters(committed_engine, 1)
        refused = late.response()
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"] in {"not_draft", "conflict"}
    assert _approved(factory) == [ids[0]]
    with factory() as session:
        approvals = session.execute(
            select(func.count())
            .select_from(Signature)
            .where(Signature.record_type == "specification", Signature.meaning == "approved")
            .where(Signature.record_id.in_(ids))
        ).scalar_one()
        assert approvals == 1
        assert verify_chain(session).ok


@pytest.mark.postgres_only
def test_rel_qc3_two_first_approvals_at_once_leave_one_version_in_force(fresh_engine, settings):
    """REL / QC-3: with nothing in force yet there is no row to lock: two QA users approving two
    drafts at the same moment meet at the one-approved index; one wins, the other is a 409 (or,
    when they did not overlap, the newer supersedes the older). One version is in force."""
    factory = session_factory_for(fresh_engine)
    drafts = _committed_drafts(factory, settings, 1)
    with factory() as session:
        shipped = specifications.list_public(session)[-1].id
    with unit_of_work(factory) as session:
        approvers = [make_user(session, settings, roles=[Role.QA]) for _ in range(2)]
    targets = iter(zip(approvers, [shipped, *drafts], strict=True))

    def approve(session):
        actor, spec_id = next(targets)
        return specifications.approve(
            session,
            settings,
            actor=actor,
            specification_id=spec_id,
            data=SignatureInput(password=PASSWORD),
        )

    outcomes = race(factory, approve)
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(getattr(o, "code", None) in {"not_draft", "conflict"} for o in refused), outcomes
    (in_force,) = _approved(factory)
    if not refused:
        # The two did not overlap: version 1 was in force first, then version 2 superseded it
        # (the other order is refused: version 1 is older than the version in force).
        assert in_force == drafts[0], outcomes
    with factory() as session:
        assert verify_chain(session).ok


def test_rel_qc3_two_simultaneous_approvals_leave_one_version_in_force(committed_engine, settings):
    """REL / QC-3 on both databases: two QA users approve one draft at the same moment; one
    approval stands, the other is a 409, the trail verifies."""
    factory = session_factory_for(committed_engine)
    (draft,) = _committed_drafts(factory, settings, 1)
    with unit_of_work(factory) as session:
        approvers = iter([make_user(session, settings, roles=[Role.QA]) for _ in range(2)])
    signature = SignatureInput(password=PASSWORD)
    outcomes = race(
        factory,
        lambda s: specifications.approve(
            s, settings, actor=next(approvers), specification_id=draft, data=signature
        ),
    )
    one_winner(outcomes, {"not_draft", "conflict"})
    assert _approved(factory) == [draft]
    with factory() as session:
        assert verify_chain(session).ok
