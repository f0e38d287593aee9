"""Lists of addresses from files: a pure, incremental parser (no I/O, no HTTP, no database).

One address per line, or a CSV (``,`` ``;`` or tab; quoted fields; a header or none), as UTF-8
(with or without a BOM), UTF-16 with a BOM, or Windows-1252, optionally gzip-compressed. See
`app.lists.reader` and `app.lists.sniff` for the decisions it makes.
"""

from app.lists.reader import ListReader, read_rows
from app.lists.rows import ListError, Row
from app.lists.sniff import Layout, looks_like_address, names_email

__all__ = [
    "Layout",
    "ListError",
    "ListReader",
    "Row",
    "looks_like_address",
    "names_email",
    "read_rows",
]
