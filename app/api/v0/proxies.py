"""The proxy a request chose (`"proxy"`), under the server's proxy settings (README "Proxies").

- A name (`"proxy": "eu"`) picks one of MXPROBE_PROXIES, the operator's (trusted) proxies.
- An object (`{"host", "port", "username", "password"}`, Reacher's shape) is a free-form
  proxy: refused unless MXPROBE_ALLOW_REQUEST_PROXY, and then a literal IP address must be
  public unless MXPROBE_ALLOW_PRIVATE_PROXY (a host name is resolved and checked by the
  engine when it connects).
- A bulk job stores a name as the name, and a free-form proxy's credentials sealed under
  MXPROBE_SECRET_KEY: without a key, such a job is refused.

Every refusal is a 400 `{"error": ...}` naming the setting that decides it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from app import sealing
from app.api.errors import ApiError
from app.api.v0.schemas import ProxyIn
from app.db.jobs import NamedProxy, RequestProxy, StoredProxy
from app.engine.config import ProxyConfig
from app.engine.probes.dns import is_public_address
from app.settings import Settings

FREE_FORM_DISABLED = (
    "free-form proxies are disabled on this server: name one of its proxies "
    '("proxy": "name", from MXPROBE_PROXIES), or set MXPROBE_ALLOW_REQUEST_PROXY=true on the '
    "server to allow them"
)


def openapi_schema(settings: Settings) -> dict[str, Any]:
    """The `proxy` field as this server accepts it, for the served OpenAPI document: the
    names of its proxies, the free-form object if allowed, or null (the default proxy)."""
    choices: list[dict[str, Any]] = []
    if settings.proxies:
        choices.append(
            {
                "type": "string",
                "enum": sorted(settings.proxies),
                "description": "The name of one of the server's proxies (MXPROBE_PROXIES)",
            }
        )
    if settings.allow_request_proxy:
        choices.append({"$ref": f"#/components/schemas/{ProxyIn.__name__}"})
    choices.append({"type": "null"})
    return {
        "anyOf": choices,
        "default": None,
        "title": "Proxy",
        "description": 'The proxy to probe through (README "Proxies"); null or absent: the '
        "server's default proxy (MXPROBE_PROXY), if any",
    }


def for_check(choice: ProxyIn | str | None, *, settings: Settings) -> ProxyConfig | None:
    """The proxy a single check connects through (None: the default, MXPROBE_PROXY)."""
    if choice is None:
        return None
    if isinstance(choice, str):
        return _named(choice, settings=settings)
    _allowed(choice, settings=settings)
    return choice.to_config(allow_private=settings.allow_private_proxy)


def for_job(choice: ProxyIn | str | None, *, settings: Settings) -> StoredProxy | None:
    """The proxy a bulk job stores for its workers: a name, or host, port and sealed
    credentials; never credentials in plain text."""
    if choice is None:
        return None
    if isinstance(choice, str):
        _named(choice, settings=settings)
        return NamedProxy(name=choice)
    _allowed(choice, settings=settings)
    sealed = None
    if choice.username is not None and choice.password is not None:
        if settings.secret_key is None:
            raise ApiError(
                "a bulk job with a proxy username and password needs MXPROBE_SECRET_KEY set on "
                "the server, which stores them encrypted until the job ends; or name one of "
                'the server\'s proxies ("proxy": "name")'
            )
        sealed = sealing.seal(
            settings.secret_key.get_secret_value(),
            username=choice.username,
            password=choice.password,
        )
    return RequestProxy(host=choice.host, port=int(choice.port), sealed_credentials=sealed)


def _named(name: str, *, settings: Settings) -> ProxyConfig:
    proxy = settings.named_proxies().get(name)
    if proxy is None:
        raise ApiError(f'proxy "{name}" is not one of the server\'s proxies (MXPROBE_PROXIES)')
    return proxy


def _allowed(proxy: ProxyIn, *, settings: Settings) -> None:
    if not settings.allow_request_proxy:
        raise ApiError(FREE_FORM_DISABLED)
    try:
        literal = ipaddress.ip_address(proxy.host)
    except ValueError:
        return  # a name: resolved and checked when the engine connects
    if not settings.allow_private_proxy and not is_public_address(str(literal)):
        raise ApiError(
            f"proxy.host {proxy.host} is not a public address: set "
            "MXPROBE_ALLOW_PRIVATE_PROXY=true on the server to allow private proxies"
        )
