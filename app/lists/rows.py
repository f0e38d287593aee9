"""What reading a list yields: one `Row` per non-blank data row, or a `ListError`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of a list, in file order.

    ``address`` is the address cell as read, surrounding whitespace stripped (``""`` for an empty
    cell); it is not checked here, so a row whose cell is not an address is still a row.
    ``extra`` holds the row's other cells in file order, one per name in `ListReader.columns`.
    """

    address: str
    extra: tuple[str, ...] = ()


class ListError(ValueError):
    """The input cannot be read as a list; ``str(exc)`` is a message fit for a client."""
