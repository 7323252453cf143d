"""CPU instructions per scan in the server process, counted by valgrind's callgrind.

Wall-clock figures on a shared 2-core machine moved by 2x within an hour (docs/performance.md,
stop 23); an instruction count is the same for the same code and data whatever else runs. This
counts one process serving `POST /api/v1/scan` through the whole ASGI application, in-process
(no sockets: uvicorn's HTTP parsing and the access log are not counted, nor the database's own
work). Run it in two checkouts, each with its own virtual environment or from its own directory,
to compare two versions:

    .venv/bin/python scripts/scan_cost.py --server postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Needs valgrind (`apt-get install valgrind`); ~30 s for the default 200 scans.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.bench.database import bench_settings, load_demo, scratch_database  # noqa: E402
from app.bench.server import scan_bodies, token  # noqa: E402

WARM_UP = 50


def _serve_scans(url: str, count: int) -> None:
    """In the process under callgrind: warm up, then `count` scans with instrumentation on."""
    import uvloop
    from fastapi.testclient import TestClient

    from app.bench.run import _password
    from app.main import create_app, freeze_heap

    app = create_app(bench_settings(url))
    with TestClient(app) as client:
        bearer = token(client, "tech", _password("tech"))
        bodies = [json.dumps(body).encode() for body in scan_bodies(client, bearer)]
    headers = [
        (b"authorization", f"Bearer {bearer}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def scan(body: bytes) -> None:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/api/v1/scan", "raw_path": b"/api/v1/scan",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80), "state": {},
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answered: list[int] = []

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        await app(scope, receive, send)
        assert answered == [200], answered

    def instrument(on: bool) -> None:
        switch = ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())]
        subprocess.run(switch, check=True, capture_output=True)

    async def main() -> None:
        async with app.router.lifespan_context(app):
            freeze_heap(app)  # as `homeward serve` runs it
            for i in range(WARM_UP):
                await scan(bodies[i % len(bodies)])
            instrument(True)
            for i in range(count):
                await scan(bodies[i % len(bodies)])
            instrument(False)

    uvloop.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="a PostgreSQL server URL")
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _serve_scans(args.child, args.scans)
        return
    with scratch_database(args.server) as url, tempfile.TemporaryDirectory() as directory:
        load_demo(url)
        out = Path(directory) / "callgrind.out"
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={out}", sys.executable, __file__,
            "--server", args.server, "--scans", str(args.scans), "--child", url,
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        (total,) = (int(line.split()[1]) for line in out.read_text().splitlines()
                    if line.startswith("totals:"))  # fmt: skip
    print(f"{total / args.scans:,.0f} instructions per scan ({args.scans} scans, in-process)")


if __name__ == "__main__":
    main()
