"""The request pipeline: admission, then authentication and the unit of work, each in ONE thread.

FastAPI runs every sync dependency and a sync endpoint in separate thread-pool calls, and
validates a sync endpoint's response in yet another, before a `yield` dependency's commit. An
open transaction then waits for a free thread while it holds its locks; when every thread waits
for those locks, the server hangs for good (docs/adr/0014). Here instead:

1. `SessionDep` admits the request (one of `threadpool_size` slots, waited for at most
   `busy_timeout_s`, else 503 `busy`) and gives it a session that has not touched the database.
2. Authentication runs in one thread call and ends its (read-only) transaction there.
3. A route built by `Router` runs its whole body and the commit in one thread call; the
   response is validated afterwards, on the event loop, with no transaction open.
"""

import functools
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import nullcontext
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from sqlmodel import Session

from app.db import reads_only, transaction
from app.errors import Busy

T = TypeVar("T")

READ_METHODS = frozenset({"GET", "HEAD"})


def _limiters(request: Request) -> tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]:
    """(admission, execution) limiters of this application, made on first use in its loop."""
    state = request.app.state
    if getattr(state, "admission", None) is None:
        slots = state.settings.threadpool_size
        state.admission = anyio.CapacityLimiter(slots)
        # Admission already bounds the threads; this only keeps anyio's shared default
        # limiter (Starlette's file responses, sync dependencies) out of the way.
        state.execution = anyio.CapacityLimiter(slots + 1)
    return state.admission, state.execution


_LIMITER = "homeward_execution_limiter"


async def in_thread(session: Session, work: Callable[[], T]) -> T:
    """Run `work` in a worker thread of the admitted request that owns `session`."""
    return await anyio.to_thread.run_sync(work, limiter=session.info[_LIMITER])


async def _admitted_session(request: Request) -> AsyncIterator[Session]:
    admission, execution = _limiters(request)
    slot = object()
    with anyio.move_on_after(request.app.state.settings.busy_timeout_s) as waited:
        await admission.acquire_on_behalf_of(slot)
    if waited.cancelled_caught:
        raise Busy("The server is at capacity; nothing was changed, retry shortly.")
    session = request.app.state.session_factory()
    session.info[_LIMITER] = execution
    try:
        yield session
    finally:
        try:
            if session.in_transaction():  # only when a route bypassed the unit of work
                await in_thread(session, session.close)
            else:
                session.close()
        finally:
            admission.release_on_behalf_of(slot)


SessionDep = Annotated[Session, Depends(_admitted_session, scope="function")]


def run_unit(session: Session, work: Callable[[], T], *, read_only: bool) -> T:
    """`work` and its commit as one transaction on `session`, in the calling thread."""
    with reads_only() if read_only else nullcontext(), transaction(session):
        return work()


def _unit_of_work_endpoint(endpoint: Callable[..., Any], *, read_only: bool) -> Callable:
    """An async endpoint that runs the sync `endpoint` and its commit in one thread call."""

    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> Any:
        sessions = {id(v): v for v in kwargs.values() if isinstance(v, Session)}
        assert len(sessions) <= 1, "a route has one session"
        work = functools.partial(endpoint, **kwargs)
        if not sessions:
            return await anyio.to_thread.run_sync(work)
        (session,) = sessions.values()
        return await in_thread(
            session, functools.partial(run_unit, session, work, read_only=read_only)
        )

    return run


class UnitOfWorkRoute(APIRoute):
    """An APIRoute whose sync endpoint runs, with its commit, in one thread call."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            methods = {m.upper() for m in (kwargs.get("methods") or ["GET"])}
            endpoint = _unit_of_work_endpoint(endpoint, read_only=methods <= READ_METHODS)
        super().__init__(path, endpoint, **kwargs)


def Router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes run through the request pipeline (every router uses this)."""
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)
