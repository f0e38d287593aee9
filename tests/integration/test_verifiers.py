"""`open_verifier` builds the rate limiter each process needs, and closes what it opened."""

from __future__ import annotations

from app.db.mx_rates import PostgresRateLimiter
from app.engine import LocalRateLimiter
from app.settings import Settings
from app.verifiers import open_verifier


async def test_shared_limits_book_rates_in_postgresql(fresh_database_url: str) -> None:
    settings = Settings(database_url=fresh_database_url, mx_rate="1/s")

    async with open_verifier(settings) as verifier:
        rates = verifier.pool._rates
        assert isinstance(rates, PostgresRateLimiter)
        assert await rates.reserve("mx.a.test") == 0.0

    assert rates._conn.is_closed()


async def test_no_rate_needs_no_connection(fresh_database_url: str) -> None:
    async with open_verifier(Settings(database_url=fresh_database_url)) as verifier:
        assert isinstance(verifier.pool._rates, LocalRateLimiter)


async def test_a_single_process_keeps_its_rates_in_process() -> None:
    settings = Settings(mx_limits={"gmail": {"max_msg_rate": "9/m"}})

    async with open_verifier(settings, shared_limits=False) as verifier:
        rates = verifier.pool._rates
        assert isinstance(rates, LocalRateLimiter)
        assert await rates.reserve("gmail") == 0.0
        assert await rates.reserve("gmail") > 6
