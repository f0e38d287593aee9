"""Reacher's ``is_reachable`` rule, with our corrections.

Reacher checks "risky" before "invalid", so a role account whose mailbox does not exist comes
out ``risky``. We let a definite "no such mailbox" win: it is ``invalid`` whoever it belongs to.
Other corrections:

- a null MX (RFC 7505), NXDOMAIN or no MX at all arrives here as ``accepts_mail=False``:
  ``invalid`` (Reacher reports a null MX as a record "." and says ``unknown``).
- no SMTP answer at all (not probed, or ``can_connect_smtp`` false) is ``unknown``, not
  ``invalid``: we learnt nothing about the mailbox.
- disposable domains reach this rule (Reacher rejects them as bad syntax first) and are
  ``risky``.
"""

from __future__ import annotations

from app.engine.model import MiscDetails, MxDetails, MxError, Reachable, SmtpDetails, SmtpError


def is_reachable(
    *,
    syntax_valid: bool,
    mx: MxDetails | MxError | None,
    smtp: SmtpDetails | SmtpError | None,
    misc: MiscDetails,
) -> Reachable:
    """Combine syntax, MX, SMTP and misc results into one verdict."""
    if not syntax_valid:
        return Reachable.INVALID
    if mx is None or isinstance(mx, MxError):
        return Reachable.UNKNOWN
    if not mx.accepts_mail:
        return Reachable.INVALID
    if smtp is None or isinstance(smtp, SmtpError) or not smtp.can_connect_smtp:
        return Reachable.UNKNOWN
    if smtp.is_disabled or not (smtp.is_deliverable or smtp.has_full_inbox):
        return Reachable.INVALID
    if smtp.has_full_inbox or smtp.is_catch_all or misc.is_disposable or misc.is_role_account:
        return Reachable.RISKY
    return Reachable.SAFE
