"""create_app(): routers, error handlers, body limit, thread pool, templates."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import swagger_ui_bundle
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.orm import configure_mappers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app.models  # noqa: F401  (every table mapped before the first query)
from app.audit.api import router as audit_router
from app.audit.pages import router as audit_pages
from app.audit_review.api import router as audit_review_router
from app.audit_review.pages import router as audit_review_pages
from app.auth.admin_pages import router as admin_pages
from app.auth.api import router as auth_router
from app.auth.pages import router as auth_pages
from app.batches.api import router as batches_router
from app.batches.pages import router as batch_pages
from app.biopsies.api import router as biopsies_router
from app.biopsies.pages import router as biopsy_pages
from app.clinic.api import router as clinic_router
from app.clinic.pages import router as clinic_pages
from app.config import Settings, get_settings
from app.db import Limits, SessionFactory, make_engine, reads_only, session_factory_for
from app.deviations.api import router as deviations_router
from app.errors import HomewardError, InvalidRequest
from app.gmp_settings.api import router as gmp_settings_router
from app.gmp_settings.pages import router as gmp_settings_pages
from app.labels import printing
from app.labels.api import router as labels_router
from app.labels.pages import router as printer_pages
from app.logs import flush_batched
from app.materials.api import router as catalogue_router
from app.materials.pages import router as materials_pages
from app.notifications.api import router as notifications_router
from app.notifications.service import Worker
from app.oos_supply.api import router as oos_supply_router
from app.patients.api import router as patients_router
from app.patients.pages import router as patient_pages
from app.pipeline import settle_deferred
from app.qc.api import router as qc_router
from app.qc.pages import router as qc_pages
from app.qualifications.api import router as qualifications_router
from app.qualifications.pages import router as qualifications_pages
from app.release.api import router as release_router
from app.release.pages import router as release_pages
from app.scan.api import router as scan_router
from app.scan.pages import router as scan_pages
from app.specifications.api import router as specifications_router
from app.steps.api import router as steps_router
from app.steps.pages import router as step_pages
from app.storage.api import router as storage_router
from app.storage.pages import router as storage_pages
from app.validation.api import router as validation_router
from app.web import STATIC_DIR, page_error, render
from app.web import router as home_page
from app.websecurity import SecurityHeaders, csrf_protect

API_PREFIX = "/api/v1"
# Every JSON router; tests walk these to check each route's permission for every role.
# Routing tries routes in order, so the scan, the call technicians make most, comes first (its
# one path overlaps no other): matching the 35 routes before it cost ~5 % of a scan's CPU.
API_ROUTERS: tuple[APIRouter, ...] = (
    scan_router,
    auth_router,
    patients_router,
    biopsies_router,
    batches_router,
    steps_router,
    catalogue_router,
    storage_router,
    specifications_router,
    gmp_settings_router,
    qc_router,
    deviations_router,
    release_router,
    labels_router,
    clinic_router,
    notifications_router,
    audit_router,
    validation_router,
    audit_review_router,
    oos_supply_router,
    qualifications_router,
)
PAGE_ROUTERS: tuple[APIRouter, ...] = (
    home_page,
    auth_pages,
    scan_pages,
    step_pages,
    batch_pages,
    release_pages,
    clinic_pages,
    gmp_settings_pages,
    audit_review_pages,
    qualifications_pages,
    materials_pages,
    qc_pages,
    storage_pages,
    admin_pages,
    printer_pages,
    audit_pages,
    patient_pages,
    biopsy_pages,
)

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    """The one error shape: {"error": code, "detail": sentence}."""
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        fields.append({"field": location or "body", "problem": str(error.get("msg", "invalid"))})
    summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:5])
    return f"The request is not valid: {summary}.", fields


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            response = error_response(400, "bad_request", "The Content-Length header is invalid.")
            await response(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            response = error_response(
                413, "payload_too_large", f"The request body exceeds {self.max_bytes} bytes."
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise StarletteHTTPException(
                    413, f"The request body exceeds {self.max_bytes} bytes."
                )
            return message

        await self.app(scope, limited, send)


def _is_page(request: Request) -> bool:
    return not request.url.path.startswith(("/api/", "/docs", "/openapi"))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HomewardError)
    async def _homeward(request: Request, exc: HomewardError) -> Response:
        response = (
            page_error(request, exc)
            if _is_page(request)
            else error_response(exc.status, exc.code, exc.detail)
        )
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        try:
            await settle_deferred(request)  # 401/403 come before 422
        except HomewardError as refusal:
            return await _homeward(request, refusal)
        detail, fields = _describe_validation(exc)
        if _is_page(request):
            return page_error(request, InvalidRequest(detail))
        return error_response(422, "invalid_request", detail, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "There is nothing at this address."
        if exc.status_code == 405:
            detail = "This address does not accept that method."
        if _is_page(request) and "text/html" in request.headers.get("accept", ""):
            # A person's browser gets a page inside the site's frame, not raw JSON.
            refusal = HomewardError(detail)
            refusal.code, refusal.status = code, exc.status_code
            return render(request, "error.html", status_code=exc.status_code, error=refusal)
        return error_response(exc.status_code, code, detail)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Never echo internals (or personal data) back; the traceback goes to the server log.
        return error_response(
            500, "internal_error", "Something went wrong on the server; nothing was changed."
        )


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health(request: Request) -> JSONResponse:
        try:
            with reads_only(), request.app.state.session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "error", "database": "error"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    return router


def _docs_router(app: FastAPI) -> APIRouter:
    """Swagger UI from assets Homeward serves itself (swagger-ui-bundle), so /docs works with
    no internet and under the site's CSP (its start-up script is a file, not inline)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs", response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        return render(request, "docs.html", openapi_url=app.openapi_url)

    return router


def create_app(
    settings: Settings | None = None, session_factory: SessionFactory | None = None
) -> FastAPI:
    """The Homeward application; tests pass their own settings and session factory."""
    settings = settings or get_settings()
    engine = None
    if session_factory is None:
        engine = make_engine(settings.database_url, limits=Limits.of(settings))
        session_factory = session_factory_for(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
        worker = Worker(session_factory, settings).start() if settings.webhook_urls else None
        printers = printing.worker(session_factory).start()
        yield
        flush_batched()  # the access lines of the last requests (app/logs.py)
        printers.close()
        if worker is not None:
            worker.close()
        if engine is not None:
            engine.dispose()

    app = FastAPI(
        title="Homeward",
        version="0.1.0",
        description="Chain-of-identity LIS for autologous cell therapy batches.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.session_factory = session_factory
    _install_error_handlers(app)
    for router in (_health_router(), *API_ROUTERS):
        app.include_router(router, prefix=API_PREFIX)
    for router in PAGE_ROUTERS:
        app.include_router(router, dependencies=[Depends(csrf_protect)])
    app.include_router(_docs_router(app))
    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path))
    app.mount("/static", StaticFiles(directory=STATIC_DIR))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, secure_cookie=settings.environment == "production")
    return app


def serving_app() -> FastAPI:
    """The application as `homeward serve` runs it in each worker: `create_app()`, its heap
    then frozen (`freeze_heap`)."""
    return freeze_heap(create_app())


def freeze_heap(app: FastAPI) -> FastAPI:
    """`app` with everything built so far moved out of the garbage collector's reach.

    Modules, routes, models and mappers (~220,000 objects) are alive for the whole process; a
    full collection in a serving worker otherwise walked all of them: 120-300 ms with the GIL
    held, every request of that worker stalled meanwhile, twice in a 40 s run at 32 clients;
    frozen, 7-28 ms (docs/performance.md, stop 24). Tests build their apps unfrozen.
    """
    configure_mappers()  # lazily at the first query otherwise, after the freeze
    gc.collect()
    gc.freeze()
    return app
