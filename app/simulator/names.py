"""Domain names and addresses as the simulated world compares them."""

from __future__ import annotations

import ipaddress

__all__ = ["ascii_domain", "require_loopback", "split_address"]


def ascii_domain(name: str) -> str:
    """Lower-case ASCII (punycode) form of a domain, without the trailing dot.

    ``"Bücher.TEST."`` → ``"xn--bcher-kva.test"``; names already in ASCII are only lower-cased.
    """
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name
    return name.encode("idna").decode("ascii")


def split_address(address: str) -> tuple[str, str] | None:
    """(local part lower-cased, ASCII domain), or None when there is no ``@``."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        return local.lower(), ascii_domain(domain)
    except UnicodeError:
        return None


def require_loopback(ip: str) -> str:
    """Return `ip` if it is an IPv4 address in 127.0.0.0/8, else raise ValueError.

    The simulated world never listens on, or points clients at, anything else.
    """
    address = ipaddress.ip_address(ip)
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"{ip} is not in 127.0.0.0/8")
    return str(address)
