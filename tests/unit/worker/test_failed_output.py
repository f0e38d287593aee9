"""A row the engine could not check (a bug) is stored `unknown`, with its real syntax: the
crash says nothing about whether the address is well formed."""

from __future__ import annotations

from worker.tasks import failed_output


def test_a_crashed_row_keeps_its_syntax_and_says_what_went_wrong() -> None:
    output = failed_output(
        "alice@example.org", ValueError("byte must be in range(0, 256)")
    ).to_json()

    assert output["is_reachable"] == "unknown"
    assert output["syntax"]["is_valid_syntax"] is True
    assert output["syntax"]["domain"] == "example.org"
    assert output["syntax"]["username"] == "alice"
    assert output["smtp"]["error"] == {
        "type": "InternalError",
        "message": "ValueError: byte must be in range(0, 256)",
    }


def test_a_crashed_row_that_is_not_an_address_says_so() -> None:
    output = failed_output("not an address", RuntimeError("boom")).to_json()

    assert output["is_reachable"] == "unknown"
    assert output["syntax"]["is_valid_syntax"] is False
