"""Pure verification rules: no asyncio, no sockets, no framework.

Import the modules by name (``from app.engine.rules import replies``):

- ``syntax``: parse and validate an address, IDNA form, Gmail normalisation.
- ``suggest``: typo suggestions for common provider domains.
- ``lists``: disposable domains, role accounts, consumer (B2C) providers.
- ``providers``: hosting provider from an MX host name (and SPF record), its politeness policy.
- ``spf``: a domain's SPF record read (not evaluated) from its TXT records.
- ``trust``: the trusted-provider list and the ``trusted_providers_only`` policy.
- ``username``: how random a username looks (``misc.username_entropy``).
- ``replies``: classify one SMTP reply (mostly to ``RCPT TO``).
- ``verdict``: Reacher's ``is_reachable`` rule, with our corrections.
- ``rates``: send rates such as ``"9/m"`` (a provider's `max_msg_rate`).
- ``adapt``: timeouts fitted to what an MX group was seen to do (the behaviour cache).

Nothing is imported here, so importing one rule does not load the large domain lists.
"""
