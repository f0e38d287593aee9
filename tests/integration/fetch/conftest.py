"""Fetching runs in the API process, under uvloop (uvicorn's default) and asyncio's own loop
(`mxprobe bulk`, the tests): every test here runs under both, against a real HTTP(S) server
on loopback (`tests/fixtures/http_files.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

from tests.fixtures.http_files import http_files, tls_http_files

__all__ = ["http_files", "tls_http_files"]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
