"""The request pipeline: admission, then authentication and the unit of work, each in ONE thread.

FastAPI runs every sync dependency and a sync endpoint in separate thread-pool calls, and
validates a sync endpoint's response in yet another, before a `yield` dependency's commit. An
open transaction then waits for a free thread while it holds its locks; when every thread waits
for those locks, the server hangs for good (docs/adr/0014). Here instead:

1. `SessionDep` admits the request (one of `threadpool_size` slots, waited for at most
   `busy_timeout_s`, else 503 `busy`) and gives it a session that has not touched the database.
2. Dependencies that need the database (authentication) do not touch it on the event loop:
   they return a `Deferred`, resolved inside the route's unit of work.
3. A route built by `Router` resolves its deferred dependencies, runs its whole body and the
   commit in ONE thread call, in one transaction; the response is validated afterwards, on the
   event loop, with no transaction open.
"""

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, nullcontext
from typing import Annotated, Any, Generic, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _effective_route_context_var, serialize_response
from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from app.db import reads_only, transaction
from app.errors import Busy

T = TypeVar("T")
U = TypeVar("U")
M = TypeVar("M", bound=BaseModel)

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
_DEFERRED = "homeward_deferred"


async def in_thread(session: Session, work: Callable[[], T]) -> T:
    """Run `work` in a worker thread of the admitted request that owns `session`."""
    return await anyio.to_thread.run_sync(work, limiter=session.info[_LIMITER])


@asynccontextmanager
async def admitted_session(request: Request) -> AsyncIterator[Session]:
    """The request's slot (or 503 `busy`) and its session, released and closed on exit."""
    admission, execution = _limiters(request)
    slot = object()
    with anyio.move_on_after(request.app.state.settings.busy_timeout_s) as waited:
        await admission.acquire_on_behalf_of(slot)
    if waited.cancelled_caught:
        raise Busy("The server is at capacity; nothing was changed, retry shortly.")
    session = request.app.state.session_factory()
    session.info[_LIMITER] = execution
    request.state.homeward_session = session
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


async def _admitted_session(request: Request) -> AsyncIterator[Session]:
    async with admitted_session(request) as session:
        yield session


SessionDep = Annotated[Session, Depends(_admitted_session, scope="function")]


class Deferred(Generic[T]):
    """A dependency's value that needs the request's transaction (ADR 0014).

    Resolved once, by the route's unit of work, in its thread and transaction, before the
    endpoint runs; `then` chains a check on the value (a permission) resolved with it.
    """

    def __init__(self, session: Session, resolve: Callable[[Session], T]) -> None:
        self.session = session
        self._resolve = resolve
        self._value: tuple[T] | None = None
        session.info.setdefault(_DEFERRED, []).append(self)

    def then(self, step: Callable[[T], U]) -> "Deferred[U]":
        return Deferred(self.session, lambda session: step(self.resolve()))

    def resolve(self) -> T:
        if self._value is None:
            self._value = (self._resolve(self.session),)
        return self._value[0]


def run_unit(session: Session, work: Callable[[], T], *, read_only: bool) -> T:
    """`work` and its commit as one transaction on `session`, in the calling thread."""
    with reads_only() if read_only else nullcontext(), transaction(session):
        return work()


def _unit_of_work_endpoint(endpoint: Callable[..., Any], *, read_only: bool) -> Callable:
    """An async endpoint that runs the sync `endpoint` and its commit in one thread call."""

    @functools.wraps(endpoint)
    async def run(**kwargs: Any) -> Any:
        sessions = {id(v): v for v in kwargs.values() if isinstance(v, Session)}
        sessions |= {id(v.session): v.session for v in kwargs.values() if isinstance(v, Deferred)}
        assert len(sessions) <= 1, "a route has one session"
        work = functools.partial(_resolved_call, endpoint, kwargs)
        if not sessions:
            return await anyio.to_thread.run_sync(work)
        (session,) = sessions.values()
        return await in_thread(
            session, functools.partial(run_unit, session, work, read_only=read_only)
        )

    return run


async def settle_deferred(request: Request) -> None:
    """Resolve the request's deferred dependencies in a read-only unit of work of their own.

    For a request refused before its route ran (an invalid body): who is calling, and whether
    they may, is still answered first (401/403 before 422), as if authentication had run first.
    """
    session: Session | None = getattr(request.state, "homeward_session", None)
    deferred = session.info.get(_DEFERRED, []) if session is not None else []
    if session is None or not deferred:
        return

    def settle() -> None:
        for value in deferred:
            value.resolve()

    await in_thread(session, functools.partial(run_unit, session, settle, read_only=True))


def _resolved_call(endpoint: Callable[..., T], kwargs: dict[str, Any]) -> T:
    """`endpoint(**kwargs)` with every deferred dependency resolved first, in its order."""
    values = {k: v.resolve() if isinstance(v, Deferred) else v for k, v in kwargs.items()}
    return endpoint(**values)


class UnitOfWorkRoute(APIRoute):
    """An APIRoute whose sync endpoint runs, with its commit, in one thread call."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            methods = {m.upper() for m in (kwargs.get("methods") or ["GET"])}
            endpoint = _unit_of_work_endpoint(endpoint, read_only=methods <= READ_METHODS)
        super().__init__(path, endpoint, **kwargs)


Arguments = Callable[[Request, Session], Awaitable[dict[str, Any]]]


class DirectRoute(UnitOfWorkRoute):
    """A UnitOfWorkRoute whose arguments are resolved by `arguments`, not by FastAPI (ADR 0033).

    For the hottest route (the scan): FastAPI's dependency solving was an eighth of its CPU.
    The endpoint's signature still declares the route (OpenAPI, the permission walk); at run
    time `arguments(request, session)` gives exactly those parameters, from the same
    dependency functions called directly, and the endpoint runs in the same unit of work.
    """

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, arguments: Arguments, **kwargs: Any
    ) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._arguments = arguments
        self._parameters = frozenset(inspect.signature(self.endpoint).parameters)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        included = _effective_route_context_var.get()
        added = (
            included is not None
            and included.original_route is self
            and (len(included.dependant.dependencies) != len(self.dependant.dependencies))
        )
        if added:  # dependencies of an including router (a CSRF check) would be skipped
            raise RuntimeError(
                "a DirectRoute cannot take dependencies from the router including it"
            )

        async def handle(request: Request) -> Response:
            async with admitted_session(request) as session:
                kwargs = await self._arguments(request, session)
                if kwargs.keys() != self._parameters:  # not an assert: it must hold under -O
                    raise TypeError(
                        f"{self.path}: arguments {sorted(kwargs)} do not match the endpoint"
                    )
                result = await self.endpoint(**kwargs)
            content = await serialize_response(
                field=self.response_field, response_content=result, dump_json=True
            )
            return Response(content, self.status_code or 200, media_type="application/json")

        return handle


async def json_body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`; anything else is the usual 422 (RequestValidationError)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise RequestValidationError(
            [{"type": "model_attributes_type", "loc": ("body",),
              "msg": "The body must be JSON (Content-Type: application/json)", "input": None}]
        )  # fmt: skip
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc


def Router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes run through the request pipeline (every router uses this)."""
    return APIRouter(route_class=UnitOfWorkRoute, **kwargs)
