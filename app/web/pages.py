"""The page's routes: `/` (submit a list), `/jobs` (recent jobs), `/jobs/{ref}` (one job),
and its static files under `/static/`.

They are open without `MXPROBE_HEADER_SECRET`, like the API's documentation: they hold no
data. What is rendered into them is what the served OpenAPI document tells anyone already
(whether a secret and job tokens are required, the proxies' names, the list's limits); the
scripts then fetch every job and result from the API with the secret the page asks for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

from app.settings import Settings

HERE = Path(__file__).parent

OPEN_PATHS = frozenset({"/", "/jobs"})
"""The pages' exact paths, open with MXPROBE_HEADER_SECRET."""

OPEN_PREFIXES = ("/jobs/", "/static/")
"""And everything under these: one job's page, and the scripts, styles and icon."""

STATIC_PATH = "/static"

SECURITY_HEADERS = {
    # Only our own scripts and styles run: an address in a result is text, never markup.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # A job's page may be named by its token: no other site learns it from a Referer.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_files() -> StaticFiles:
    """The scripts, styles and icon, to mount at `STATIC_PATH`."""
    return StaticFiles(directory=HERE / "static")


def router(settings: Settings, *, max_upload_bytes: int) -> APIRouter:
    """The pages, rendered with what they need to know of this server's settings."""
    templates = Jinja2Templates(directory=HERE / "templates")
    server: dict[str, Any] = {
        "secret_required": bool(settings.header_secret),
        "job_token_required": settings.require_job_token,
        "proxies": sorted(settings.proxies),
        "max_emails": settings.bulk_max_emails,
        "max_upload_bytes": max_upload_bytes,
    }
    pages = APIRouter(include_in_schema=False)

    def render(request: Request, template: str, **context: Any) -> HTMLResponse:
        root = str(request.scope.get("root_path", ""))  # served under a prefix: its links too
        return templates.TemplateResponse(
            request,
            template,
            {"server": server, "root": root, **context},
            headers=SECURITY_HEADERS,
        )

    @pages.get("/")
    async def home(request: Request) -> HTMLResponse:
        return render(request, "home.html", page="home")

    @pages.get("/jobs")
    async def jobs(request: Request) -> HTMLResponse:
        return render(request, "jobs.html", page="jobs")

    @pages.get("/jobs/{ref}")
    async def job(request: Request, ref: str) -> HTMLResponse:
        # Any text: the script asks the API, whose 400 or 404 the page shows.
        return render(request, "job.html", page="job", ref=ref)

    return pages
