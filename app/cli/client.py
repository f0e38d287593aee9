"""The bulk API as the command line calls it: plain HTTP calls, no presentation.

Every failure is a `ClientError` whose message is one line a person can act on: the service
is not there (`Unreachable`), or it answered an error (`Refused`, with the API's own
`{"error": ...}` text). Bodies are streamed both ways: an uploaded list is read from its file
as it is sent, and a download is written to its sink as it arrives.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import httpx

SECRET_HEADER = "x-reacher-secret"
"""`app.api.secret.HEADER` (not imported: the client must not load the API)."""

DEFAULT_URL = "http://127.0.0.1:8080"

Format = Literal["json", "csv"]

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
_UPLOAD_TIMEOUT = httpx.Timeout(None, connect=10.0)
"""The server reads a whole list in the POST itself (a million rows take a while)."""


class ClientError(Exception):
    """A call to the service failed; the message says why, in one line."""


class Unreachable(ClientError):
    """No answer from the service (refused, unresolvable, timed out)."""


class Refused(ClientError):
    """The service answered with an error status (and perhaps a `Retry-After`, in seconds)."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def passing(self) -> bool:
        """A gateway's or a busy service's answer (502, 503, 504): worth asking again."""
        return self.status in (502, 503, 504)


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """The upload's form fields (`POST /v0/bulk`, multipart); None: the service's default."""

    from_email: str | None = None
    hello_name: str | None = None
    proxy: str | None = None
    smtp_ports: tuple[int, ...] = ()

    def form(self) -> dict[str, str]:
        fields = {
            "from_email": self.from_email,
            "hello_name": self.hello_name,
            "proxy": self.proxy,
            "smtp_ports": ",".join(str(port) for port in self.smtp_ports) or None,
        }
        return {name: value for name, value in fields.items() if value}


@dataclass(frozen=True, slots=True)
class Created:
    job_id: int
    job_token: str


class _Counted:
    """A binary file as httpx reads an upload: `read(n)`, each chunk reported to `sent`.

    `fileno()` only for a regular file, so httpx sends its size as Content-Length; a pipe
    (stdin) has none, and is sent chunked (a pipe's fstat says 0 bytes)."""

    def __init__(self, file: BinaryIO, sent: Callable[[int], None]) -> None:
        self._file = file
        self._sent = sent

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._sent(len(chunk))
        return chunk

    def fileno(self) -> int:
        fd = self._file.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        return fd


def file_size(file: BinaryIO) -> int | None:
    """The bytes a regular file holds; None for a pipe or a terminal."""
    try:
        info = os.fstat(file.fileno())
    except (AttributeError, OSError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class Client:
    """The bulk routes of one service (`url`), with its header secret if it has one."""

    def __init__(self, url: str, *, secret: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {SECRET_HEADER: secret} if secret else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def submit(
        self,
        file: BinaryIO,
        *,
        name: str,
        options: SubmitOptions,
        sent: Callable[[int], None] = lambda _n: None,
    ) -> Created:
        """Upload a list (one address per line, or a CSV; gzip too) as it is, for the
        service's own reader: it finds the address column and keeps the others."""
        files = {"file": (name, _Counted(file, sent), "application/octet-stream")}
        body = self._json(
            "POST", "/v0/bulk", files=files, data=options.form(), timeout=_UPLOAD_TIMEOUT
        )
        return Created(job_id=int(body["job_id"]), job_token=str(body["job_token"]))

    def status(self, job: str) -> dict[str, Any]:
        """`GET /v0/bulk/{job}`: progress and summary (`job` is an id or a token)."""
        return self._json("GET", f"/v0/bulk/{job}")

    def cancel(self, job: str) -> dict[str, Any]:
        """`DELETE /v0/bulk/{job}`: the status once the pending rows are cancelled."""
        return self._json("DELETE", f"/v0/bulk/{job}")

    def jobs(self, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """`GET /v0/bulk`: the newest jobs first."""
        body = self._json("GET", "/v0/bulk", params={"limit": limit, "offset": offset})
        return list(body["jobs"])

    def download(
        self,
        job: str,
        sink: BinaryIO,
        *,
        format: Format,
        received: Callable[[int], None] = lambda _n: None,
    ) -> int:
        """Stream every result of a finished job into `sink`; returns the bytes written."""
        params = {"format": format} if format == "csv" else {}
        written = 0
        with self._request("GET", f"/v0/bulk/{job}/download", params=params) as response:
            for chunk in response.iter_bytes():
                sink.write(chunk)
                written += len(chunk)
                received(len(chunk))
        return written

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._request(method, path, **kwargs) as response:
            response.read()
            body = response.json()
        if not isinstance(body, dict):
            raise ClientError(f"{self.url}{path} answered {body!r}, not a JSON object")
        return body

    @contextmanager
    def _request(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """The response, streamed, once its status says success; else a `ClientError`."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise Refused(
                        response.status_code,
                        _error_text(response),
                        retry_after=_retry_after(response),
                    )
                yield response
        except httpx.ConnectError as exc:
            raise Unreachable(
                f"no mxprobe service is answering at {self.url} ({_reason(exc)}): start one "
                "with `mxprobe serve`, or give --local to start one for this command"
            ) from exc
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.url} did not answer in time ({_reason(exc)})") from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"{self.url}: {_reason(exc)}") from exc
        except ValueError as exc:  # a success whose body is no JSON
            raise ClientError(f"{self.url}{path} answered something else than JSON") from exc


def _reason(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__


def _retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the API sends seconds; an HTTP date is not read)."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _error_text(response: httpx.Response) -> str:
    """The API's `{"error": ...}`, else the first line of whatever came back."""
    where = f"{response.request.method} {response.request.url.path}"
    try:
        message = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        message = response.text.strip().splitlines()[0] if response.text.strip() else ""
    text = f"{where}: HTTP {response.status_code}" + (f": {message}" if message else "")
    if response.status_code == 401:
        text += " (give the service's MXPROBE_HEADER_SECRET with --secret or that variable)"
    return text


def output_format(path: Path) -> Format:
    """A results file's format from its name: `.csv` or `.json` (`ClientError` else)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    raise ClientError(f"{path}: name the results file .csv or .json (or give --format)")
