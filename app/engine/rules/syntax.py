"""Address syntax: what we accept, what goes on the wire, and Gmail normalisation.

We accept a deliberately narrow form, the one every mail server handles: an ASCII dot-atom
local part (RFC 5322 ``atext``, no quoted strings, no comments) and a host name domain (no
IP literals). Internationalised domains are accepted and converted to their IDNA 2008 A-label
form (UTS #46 mapping), which is what DNS and SMTP see. Nothing is trimmed: leading or trailing
white space, and any control character, make the address invalid, so nothing an attacker
smuggles into the input can reach an SMTP command line.

Where we differ from Reacher: disposable domains are valid syntax here (``lists.is_disposable``
reports them instead), and IDN domains are valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import idna

from app.engine.rules import suggest

MAX_LOCAL_OCTETS = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN_OCTETS = 253  # RFC 1035 2.3.4, without the root's trailing dot
MAX_LABEL_OCTETS = 63
MAX_ADDRESS_OCTETS = 254  # RFC 5321 path limit (256) less the angle brackets

# RFC 5322 atext, joined by single dots.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_DOT_ATOM = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
# LDH label, lower case (checked on the A-label form). Labels may start with a digit
# (RFC 1123 2.1): 163.com, 1example.com, x.123.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")

_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    is_valid: bool
    address: str | None  # the input as given, when valid
    username: str  # local part as given ("" when invalid)
    domain: str  # domain as given ("" when invalid)
    ascii_domain: str  # lower-case IDNA A-label form for DNS and SMTP ("" when invalid)
    normalized_email: str | None
    suggestion: str | None  # typo suggestion "user@gmail.com" or None
    error: str | None  # short human reason when invalid, else None

    @property
    def ascii_address(self) -> str:
        """The address as it goes on the wire: local part as given, A-label domain."""
        return f"{self.username}@{self.ascii_domain}"


class _Invalid(ValueError):
    """Raised inside this module with the human reason; never escapes `parse_address`."""


def has_control_chars(value: str) -> bool:
    """True if `value` holds any C0 or C1 control character, DEL, or a Unicode line separator.

    That covers NUL, TAB, CR and LF, so a value for which this is False cannot split or end an
    SMTP command line.
    """
    for char in value:
        point = ord(char)
        if point < 0x20 or 0x7F <= point <= 0x9F or point in (0x2028, 0x2029):
            return True
    return False


def parse_address(raw: str) -> ParsedAddress:
    """Parse and validate one address, as given (no trimming, no case folding)."""
    try:
        username, domain, ascii_domain = _split_and_check(raw)
    except _Invalid as exc:
        return ParsedAddress(
            is_valid=False,
            address=None,
            username="",
            domain="",
            ascii_domain="",
            normalized_email=None,
            suggestion=None,
            error=str(exc),
        )
    return ParsedAddress(
        is_valid=True,
        address=raw,
        username=username,
        domain=domain,
        ascii_domain=ascii_domain,
        normalized_email=normalize_email(username, domain),
        suggestion=suggest.suggest_domain(username, domain),
        error=None,
    )


def normalize_email(username: str, domain: str) -> str:
    """Reacher's normalisation: only for gmail.com and googlemail.com, matched exactly.

    Gmail ignores dots and a ``+tag`` in the local part and treats googlemail.com as gmail.com,
    so ``A.B.C+123@googlemail.com`` becomes ``abc@gmail.com``. Other domains are unchanged (and
    keep their case). When stripping would leave nothing (``+tag@gmail.com``), the address is
    returned unchanged rather than as ``@gmail.com``.
    """
    if domain in _GMAIL_DOMAINS:
        local = username.split("+", 1)[0].replace(".", "").lower()
        if local:
            return f"{local}@gmail.com"
    return f"{username}@{domain}"


def _split_and_check(raw: str) -> tuple[str, str, str]:
    if not raw:
        raise _Invalid("empty address")
    if has_control_chars(raw):
        raise _Invalid("contains a control character")
    if any(char.isspace() for char in raw):
        raise _Invalid("contains white space")
    if raw.count("@") != 1:
        raise _Invalid("must contain exactly one @")
    username, domain = raw.split("@")
    _check_local_part(username)
    ascii_domain = _to_ascii_domain(domain)
    if len(username) + 1 + len(ascii_domain) > MAX_ADDRESS_OCTETS:
        raise _Invalid(f"address is longer than {MAX_ADDRESS_OCTETS} octets")
    return username, domain, ascii_domain


def _check_local_part(local: str) -> None:
    if not local:
        raise _Invalid("missing local part")
    if not local.isascii():
        raise _Invalid("local part must be ASCII")
    if len(local) > MAX_LOCAL_OCTETS:
        raise _Invalid(f"local part is longer than {MAX_LOCAL_OCTETS} octets")
    if local.startswith('"'):
        raise _Invalid("quoted local parts are not supported")
    if _DOT_ATOM.fullmatch(local) is None:
        raise _Invalid("local part is not a dot-atom (bad character or misplaced dot)")


def _to_ascii_domain(domain: str) -> str:
    """Return the lower-case A-label form of `domain`, or raise `_Invalid`."""
    if not domain:
        raise _Invalid("missing domain")
    if domain.startswith("["):
        raise _Invalid("IP-literal domains are not supported")
    if domain.isascii():
        # An ASCII name goes to DNS as it is: checking it with the LDH rule below, not IDNA,
        # keeps names such as ab--cd.com that IDNA 2008 would refuse (hyphens in 3rd and 4th).
        ascii_domain = domain.lower()
    else:
        try:
            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise _Invalid("domain is not a valid internationalised name") from exc
    _check_host_name(ascii_domain)
    return ascii_domain


def _check_host_name(ascii_domain: str) -> None:
    if len(ascii_domain) > MAX_DOMAIN_OCTETS:
        raise _Invalid(f"domain is longer than {MAX_DOMAIN_OCTETS} octets")
    labels = ascii_domain.split(".")
    if len(labels) < 2:
        raise _Invalid("domain needs at least one dot")
    for label in labels:
        if not label:
            raise _Invalid("domain has an empty label (leading, trailing or double dot)")
        if len(label) > MAX_LABEL_OCTETS:
            raise _Invalid(f"domain label is longer than {MAX_LABEL_OCTETS} octets")
        if _LABEL.fullmatch(label) is None:
            raise _Invalid(
                "domain label may hold only letters, digits and inner hyphens: " + repr(label)
            )
