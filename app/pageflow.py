"""Pages that must stay on screen when the act they send is refused (ADR 0026).

A refused act changes nothing: its unit of work is rolled back and only the refusal's own
record (its `aftermath`, ADR 0004) is written. A bench page (the scan station, step entry)
must then still show itself, with the refusal in it, rather than a bare error page. So such a
page's route is async and runs its units itself, each in one thread call as every route does
(ADR 0014): the act in one unit (`attempt`), and, whatever its outcome, what the page shows in
another that only reads (`read`). The refusal is never caught inside the act's transaction, so
nothing the act flushed before it was refused can be committed.
"""

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from sqlmodel import Session
from starlette.responses import RedirectResponse, Response

from app.auth.service import Principal
from app.errors import HomewardError, NotAuthenticated
from app.pipeline import in_thread, run_unit

T = TypeVar("T")
R = TypeVar("R")


async def attempt(session: Session, act: Callable[[], T]) -> T | HomewardError:
    """`act` and its commit as one unit of work; a refusal is returned (after its rollback and
    its aftermath), not raised. Being signed out still leads to the login form."""
    try:
        return await in_thread(session, partial(run_unit, session, act, read_only=False))
    except NotAuthenticated:
        raise
    except HomewardError as refusal:
        return refusal


async def read(session: Session, work: Callable[[], T]) -> T:
    """`work` in a unit of work that only reads (what the page shows)."""
    return await in_thread(session, partial(run_unit, session, work, read_only=True))


async def signed_in(session: Session, principal: object) -> Principal:
    """The page's principal. Where the pipeline defers authentication to the route's unit of
    work (a value with `resolve()`, ADR 0014), an async page resolves it first in a read-only
    unit of its own, so a 401 or 403 is raised here, before anything is read or done."""
    resolve = getattr(principal, "resolve", None)
    if resolve is None:
        assert isinstance(principal, Principal)
        return principal
    return await read(session, resolve)


async def act_or_show(
    session: Session,
    act: Callable[[], T],
    *,
    done: Callable[[T], R],
    show: Callable[[HomewardError], Awaitable[R]],
) -> R:
    """A page form's act (`attempt`): on success `done` with its result (a redirect), refused
    `show` with the refusal (the page again, read afresh, the refusal in it)."""
    outcome = await attempt(session, act)
    if isinstance(outcome, HomewardError):
        return await show(outcome)
    return done(outcome)


async def act_then_go(
    session: Session,
    act: Callable[[], str],
    shown: Callable[[HomewardError], Awaitable[Response]],
) -> Response:
    """`act_or_show` whose act returns the address to go to: a 303 there (post, redirect, get);
    refused, the page `shown` renders with the refusal, fresh read state beside it."""
    return await act_or_show(
        session, act, done=lambda url: RedirectResponse(url, status_code=303), show=shown
    )
