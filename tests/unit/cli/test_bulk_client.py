"""The bulk client's pure parts: what it sends and how it names files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.api import secret
from app.cli import client


def test_the_client_sends_the_header_the_api_reads() -> None:
    assert client.SECRET_HEADER == secret.HEADER


@pytest.mark.parametrize(
    ("name", "expected"),
    [("results.csv", "csv"), ("out.JSON", "json"), ("dir.v2/results.Csv", "csv")],
)
def test_the_results_format_is_the_file_extension(name: str, expected: str) -> None:
    assert client.output_format(Path(name)) == expected


@pytest.mark.parametrize("name", ["results", "results.xlsx", "results.csv.gz"])
def test_other_names_are_refused_with_a_hint(name: str) -> None:
    with pytest.raises(client.ClientError, match=r"\.csv or \.json"):
        client.output_format(Path(name))


def test_upload_fields_are_the_options_given() -> None:
    assert client.SubmitOptions().form() == {}
    options = client.SubmitOptions(hello_name="mx.example.org", smtp_ports=(25, 587))
    assert options.form() == {"hello_name": "mx.example.org", "smtp_ports": "25,587"}
