"""How a list's layout is decided from its first lines."""

from __future__ import annotations

import pytest

from app.lists import ListError, looks_like_address, names_email
from app.lists.sniff import SNIFF_LINES, Layout, sniff


@pytest.mark.parametrize(
    "cell",
    ["email", "Email", "E-mail", "E-Mail", "EMAIL ADDRESS", "e-mail address", "Email_Address",
     "mail", "Mail", " e - mail  address ", "e_mail", "MAIL-ADDRESS"],
)  # fmt: skip
def test_names_email(cell: str) -> None:
    assert names_email(cell)


@pytest.mark.parametrize(
    "cell", ["", "name", "emails", "email 2", "work email", "mailbox", "address", "e.mail"]
)
def test_does_not_name_email(cell: str) -> None:
    assert not names_email(cell)


@pytest.mark.parametrize(
    ("cell", "looks"),
    [
        ("a@example.com", True),
        ("x@y", True),
        ("Jane <jane@example.com>", True),  # the verifier decides; it has an @ between two parts
        ("", False),
        ("@example.com", False),
        ("jane@", False),
        ("jane.example.com", False),
        ("a@b@c", False),
        ("@", False),
    ],
)
def test_looks_like_address(cell: str, looks: bool) -> None:
    assert looks_like_address(cell) is looks


def layout(text: str) -> Layout:
    return sniff(text, complete=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a plain list, with and without a header naming it
        ("a@example.com\nb@example.com\n", Layout(None, False, 0, ())),
        ("Email\na@example.com\n", Layout(None, True, 0, ())),
        ("Contacts\na@example.com\n", Layout(None, True, 0, ())),
        # a first line shaped like a mistyped address is data, not a header
        ("jane.example.com\na@example.com\n", Layout(None, False, 0, ())),
        ("jane@\na@example.com\n", Layout(None, False, 0, ())),
        # a header naming the column wins over the values
        ("Name,E-Mail,Boss\nJane,,b@example.com\n", Layout(",", True, 1, ("Name", "Boss"))),
        # no header naming it: the first column of addresses, and the header by its shape
        ("Name;Contact\nJane;j@example.com\n", Layout(";", True, 1, ("Name",))),
        ("Jane\tj@example.com\tx\n", Layout("\t", False, 1, ("column_1", "column_3"))),
        ("Jane,jane.example.com\nBob,b@example.com\n", Layout(",", False, 1, ("column_1",))),
        # an empty header name is named by position
        ("email,,Note\na@example.com,1,2\n", Layout(",", True, 0, ("column_2", "Note"))),
        # a column with the odd address loses to the one made of them
        (
            "n@x.y,a@example.com\nnote,b@example.com\nnote,c@example.com\n",
            Layout(",", False, 1, ("column_1",)),
        ),
        # two columns of addresses: the first
        ("a@x.y,b@x.y\nc@x.y,d@x.y\n", Layout(",", False, 0, ("column_2",))),
        # the widest row of the lookahead sets the width when there is no header
        ("a@x.y,1\nb@x.y,1,2\nc@x.y,1\n", Layout(",", False, 0, ("column_2", "column_3"))),
    ],
)
def test_layout(text: str, expected: Layout) -> None:
    assert layout(text) == expected


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        # semicolons, with commas inside unquoted cells: the address cell is clean only with ;
        ("Doe, Jane;jane@example.com;3,5\nRoe, Bob;bob@example.com;4,5\n", ";"),
        # commas, with a semicolon in every row
        ("jane@example.com,a;b\nbob@example.com,c;d\n", ","),
        ("jane@example.com\tDoe, Jane\nbob@example.com\tRoe, Bob\n", "\t"),
        # a quoted delimiter does not count
        ('"Doe, Jane";jane@example.com\n"Roe, Bob";bob@example.com\n', ";"),
        # a header with a stray delimiter in a one-column file: still a plain list
        ("E-mail; work\na@example.com\n", None),
        # the odd line with a comma does not make a plain list a CSV
        ("a@example.com\nb@example.com\nc, d@example.com\n", None),
    ],
)
def test_delimiter(text: str, delimiter: str | None) -> None:
    assert layout(text).delimiter == delimiter


def test_a_list_with_no_address_is_refused() -> None:
    with pytest.raises(ListError, match=r"^no email address found in the first 2 lines of"):
        layout("name,phone\nJane,123\n\n")


def test_only_the_first_lines_are_looked_at() -> None:
    text = "name\n" * (SNIFF_LINES + 5) + "a@example.com\n"
    with pytest.raises(ListError, match=f"first {SNIFF_LINES} lines"):
        layout(text)


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ListError, match=r"^the list is empty$"):
        layout(" \n\r\n\t \n")


def test_an_incomplete_lookahead_ignores_its_last_partial_line() -> None:
    assert sniff("a@example.com\nb@exa", complete=False) == Layout(None, False, 0, ())
    with pytest.raises(ListError, match=r"^no complete line in the first 9 characters"):
        sniff("a@example", complete=False)
