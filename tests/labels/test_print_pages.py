"""Printing to a registered Zebra printer from the pages (issue 12 item 7, LBL-3): the batch
record's and the recorded step's print forms offer the printers of `GET /printers`, and a choice
queues the ZPL for that printer (the outbox sends it; nothing is sent inside the request)."""

from app.auth.permissions import Role
from tests.helpers import ok, unique
from tests.labels.printers import dead_port
from tests.test_pages import _page_login, submit


def _printer(api) -> dict:
    body = {"name": unique("Zebra bench "), "host": "127.0.0.1", "port": dead_port()}
    return ok(api.post(Role.ADMIN, "/printers", body), 201)


def _jobs(api) -> list[dict]:
    return ok(api.get(Role.TECHNICIAN, "/print-jobs"))


def test_lbl3_the_batch_record_prints_a_vessel_label_to_the_chosen_printer(api):
    batch, flasks = api.expanded_batch()
    printer = _printer(api)
    _page_login(api, Role.TECHNICIAN)
    record = api.client.get(f"/batches/{batch['id']}")
    assert f'<option value="{printer["id"]}">{printer["name"]}</option>' in record.text
    sent = submit(
        api,
        f"/batches/{batch['id']}/vessels/{flasks[0]}/print",
        data={"format": "pdf", "printer_id": str(printer["id"])},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith("#labels")
    (job,) = _jobs(api)
    assert job["printer"] == printer["name"] and job["labels"][0]["vessel_code"] == flasks[0]


def test_lbl3_a_recorded_steps_output_label_goes_to_the_chosen_printer(api):
    batch = api.batch()
    step = api.step(batch["id"], "isolation", [batch["tube_code"]], ["flask"]).json()
    printer = _printer(api)
    _page_login(api, Role.TECHNICIAN)
    page = api.client.get(f"/steps/{step['id']}")
    assert page.status_code == 200 and printer["name"] in page.text
    flask = step["outputs"][0]["code"]
    sent = submit(
        api, f"/steps/{step['id']}/print", data={"code": flask, "printer_id": str(printer["id"])}
    )
    assert sent.status_code == 200 and f"sent to printer {printer['name']}" in sent.text
    (job,) = _jobs(api)
    assert job["printer"] == printer["name"] and job["labels"][0]["vessel_code"] == flask
