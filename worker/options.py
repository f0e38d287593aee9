"""A bulk job's stored options → the engine's CheckRequest, with this worker's settings.

The job stores its proxy as a name (looked up in this worker's MXPROBE_PROXIES) or as a
request's host and port with sealed credentials (opened with MXPROBE_SECRET_KEY). When this
worker cannot produce the proxy (a name it does not know, free-form proxies disabled here,
credentials it cannot open or already erased), the row is stored `unknown` with that reason
(`unavailable_output`): retrying would not help, and checking without the proxy would send
the probe from an address the client did not choose.
"""

from __future__ import annotations

from app import sealing
from app.db.jobs import JobOptions, NamedProxy, RequestProxy, StoredProxy
from app.engine import CheckEmailOutput, CheckRequest, ProxyConfig
from app.engine.model import CoreError, MxError, SmtpError, SyntaxDetails
from app.engine.rules import syntax
from app.settings import Settings


class ProxyUnavailable(Exception):
    """This worker cannot connect through the job's proxy; the message says why."""

    kind = "ProxyUnavailable"


def check_request(options: JobOptions, email: str, *, settings: Settings) -> CheckRequest:
    """What the engine is asked for one row. Raises `ProxyUnavailable`."""
    return CheckRequest(
        to_email=email,
        from_email=options.from_email,
        hello_name=options.hello_name,
        proxy=proxy_config(options.proxy, settings=settings),
        smtp_ports=options.smtp_ports,
        policy=options.policy,
    )


def proxy_config(stored: StoredProxy | None, *, settings: Settings) -> ProxyConfig | None:
    match stored:
        case None:
            return None
        case NamedProxy(name=name):
            named = settings.named_proxies().get(name)
            if named is None:
                raise ProxyUnavailable(
                    f'proxy "{name}" is not configured on this worker (MXPROBE_PROXIES)'
                )
            return named
        case RequestProxy() as proxy:
            if not settings.allow_request_proxy:
                raise ProxyUnavailable(
                    "free-form proxies are disabled on this worker (MXPROBE_ALLOW_REQUEST_PROXY)"
                )
            username, password = _credentials(proxy, settings=settings)
            return ProxyConfig(
                host=proxy.host,
                port=proxy.port,
                username=username,
                password=password,
                allow_private=settings.allow_private_proxy,
            )


def _credentials(proxy: RequestProxy, *, settings: Settings) -> tuple[str | None, str | None]:
    if proxy.erased:
        raise ProxyUnavailable("the proxy credentials of this job were erased: it has ended")
    if proxy.sealed_credentials is None:
        return None, None
    if settings.secret_key is None:
        raise ProxyUnavailable(
            "cannot read the proxy credentials of this job: MXPROBE_SECRET_KEY is not set on "
            "this worker"
        )
    try:
        return sealing.unseal(settings.secret_key.get_secret_value(), proxy.sealed_credentials)
    except sealing.Unreadable:
        raise ProxyUnavailable(
            "cannot read the proxy credentials of this job: they were sealed with another "
            "MXPROBE_SECRET_KEY than this worker's"
        ) from None


def unavailable_output(failed: CheckEmailOutput, exc: ProxyUnavailable) -> CheckEmailOutput:
    """`failed` (an `unknown` output for the row, `tasks.failed_output`) saying why: the
    proxy, in `mx` and `smtp`, as neither was tried; the syntax as checked."""
    error = CoreError(type=ProxyUnavailable.kind, message=str(exc))
    parsed = syntax.parse_address(failed.input)
    return failed.model_copy(
        update={
            "mx": MxError(error=error),
            "smtp": SmtpError(error=error),
            "syntax": SyntaxDetails(
                address=parsed.address,
                domain=parsed.domain,
                is_valid_syntax=parsed.is_valid,
                username=parsed.username,
                normalized_email=parsed.normalized_email,
                suggestion=parsed.suggestion,
            ),
        }
    )
