"""DATABASE_URL is a plain libpq URL; each driver gets the form it needs."""

from __future__ import annotations

import pytest

from app.db.session import asyncpg_url, libpq_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db.test:5433/mx", "postgresql+asyncpg://u:p@db.test:5433/mx"),
        ("postgres://u@db.test/mx", "postgresql+asyncpg://u@db.test/mx"),
        (
            "postgresql://postgres@/mxprobe?host=/tmp/pg",
            "postgresql+asyncpg://postgres@/mxprobe?host=%2Ftmp%2Fpg",
        ),
        (
            "postgresql://u@db.test/mx?sslmode=require",
            "postgresql+asyncpg://u@db.test/mx?ssl=require",
        ),
        ("postgresql://u@db.test/mx?application_name=x", "postgresql+asyncpg://u@db.test/mx"),
    ],
)
def test_asyncpg_url_is_derived(given: str, expected: str) -> None:
    assert asyncpg_url(given).render_as_string(hide_password=False) == expected


def test_libpq_url_drops_a_driver_suffix() -> None:
    assert libpq_url("postgresql+asyncpg://u:p@h/db") == "postgresql://u:p@h/db"


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        asyncpg_url("mysql://u@h/db")
