"""The FastAPI application. Resources open in `lifespan`, never at import."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from app import __version__
from app.api import errors, health
from app.api.v0 import bulk, check_email, download
from app.db.session import make_engine, make_sessionmaker
from app.settings import Settings, get_settings
from app.verifiers import open_verifier

_OPEN_PATHS = {"/healthz", "/version", "/docs", "/openapi.json"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError("DATABASE_URL is not set (the CLI starts an embedded PostgreSQL)")
        app.state.settings = settings
        app.state.db_engine = make_engine(settings.database_url)
        app.state.sessionmaker = make_sessionmaker(app.state.db_engine)
        try:
            # Single checks draw on the same per-MX budget as the workers.
            async with open_verifier(settings) as verifier:
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

    @app.middleware("http")
    async def require_secret(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        secret = settings.header_secret
        if secret and request.url.path not in _OPEN_PATHS:
            given = request.headers.get("x-reacher-secret")
            if given is None:
                return JSONResponse({"error": "missing x-reacher-secret header"}, status_code=401)
            if not hmac.compare_digest(given.encode(), secret.encode()):
                return JSONResponse({"error": "invalid x-reacher-secret header"}, status_code=401)
        return await call_next(request)

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": __version__}

    app.include_router(health.router)
    app.include_router(check_email.router)
    app.include_router(bulk.router)
    app.include_router(download.router)
    return app
