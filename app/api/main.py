"""The FastAPI application. Resources open in `lifespan`, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from app import __version__
from app import metrics as process_metrics
from app.api import errors, health, metrics, openapi
from app.api.limits import BodyLimits, RequestLimits
from app.api.secret import HEADER, HeaderSecret
from app.api.v0 import bulk, check_email, download, proxies
from app.api.v1 import bulk as v1_bulk
from app.api.v1 import check_email as v1_check_email
from app.api.v1 import webhook
from app.db.session import make_engine, make_sessionmaker
from app.settings import Settings, get_settings
from app.verifiers import open_verifier
from app.web import pages as web_pages

CORS_METHODS = ("GET", "POST", "DELETE")
CORS_HEADERS = (HEADER, "Authorization", "Content-Type")
CORS_EXPOSED = ("Content-Disposition", "Retry-After")
"""MXPROBE_CORS_ORIGINS: what a page on those origins may send, and read of the answers."""

_OPEN_ROUTES = frozenset({"/healthz", "/version"})
"""Open even with MXPROBE_HEADER_SECRET, with the documentation pages (they hold no data)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set (the CLI starts an embedded PostgreSQL)")
        app.state.settings = settings
        app.state.db_engine = make_engine(settings.database_url)
        app.state.sessionmaker = make_sessionmaker(app.state.db_engine)
        app.state.database_figures = metrics.DatabaseFigures()
        try:
            # Single checks draw on the same per-MX budget as the workers.
            async with open_verifier(settings, observer=process_metrics.OBSERVER) as verifier:
                app.state.verifier = verifier
                yield
        finally:
            await app.state.db_engine.dispose()

    app = FastAPI(
        title="mxprobe",
        version=__version__,
        description="Reacher-compatible email verification",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(errors.ErrorAnswers)  # first, so innermost: next to the routes
    open_paths = _OPEN_ROUTES | _documentation(app) | web_pages.OPEN_PATHS
    if settings.header_secret:
        app.add_middleware(
            HeaderSecret,
            secret=settings.header_secret,
            open_paths=open_paths,
            open_prefixes=web_pages.OPEN_PREFIXES,  # the web page: it asks for the secret
        )
    limits = BodyLimits.from_settings(settings)
    # Outside the secret: no body is read before its limits apply.
    app.add_middleware(RequestLimits, limits=limits, body_timeout=settings.http_body_timeout)
    if settings.cors_origins:
        # Added last, so outermost: a preflight (no secret, no body) is answered here, and
        # every answer of the layers inside (a 401, a 413) carries the CORS headers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
            expose_headers=list(CORS_EXPOSED),
        )

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": __version__}

    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(check_email.router)
    app.include_router(bulk.router)
    app.include_router(download.router)
    app.include_router(v1_check_email.router)
    app.include_router(v1_bulk.router)
    app.include_router(web_pages.router(settings, max_upload_bytes=limits.bulk))
    app.mount(web_pages.STATIC_PATH, web_pages.static_files(), name="static")
    webhook.describe(app)
    # Built now, once: FastAPI serves the document it finds in `openapi_schema`.
    app.openapi_schema = openapi.corrected(
        app.openapi(),
        limits=limits,
        body_timeout=settings.http_body_timeout,
        secret_required=bool(settings.header_secret),
        open_paths=open_paths,
        proxy_schema=proxies.openapi_schema(settings),
        bodies=(bulk.BulkIn,),
    )
    return app


def _documentation(app: FastAPI) -> frozenset[str]:
    """The paths of the API's documentation pages, as this app serves them."""
    urls = (app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url, app.openapi_url)
    return frozenset(url for url in urls if url)
