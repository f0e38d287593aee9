"""The engine's public surface is its `__all__`, and it is complete."""

from __future__ import annotations

import app.engine


def test_everything_exported_exists() -> None:
    for name in app.engine.__all__:
        assert hasattr(app.engine, name), name


def test_all_lists_every_public_name_imported_into_the_package() -> None:
    public = {
        name
        for name, value in vars(app.engine).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("app.engine")
    }
    assert public <= set(app.engine.__all__)
