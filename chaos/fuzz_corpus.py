"""Fixed corpora the fuzz strategies (:mod:`chaos.fuzz`) draw from: edge-case text, invalid
UTF-8 sequences, malformed numbers, edge timestamps and wrong-typed field values."""

from __future__ import annotations

TIMESTAMP = "2025-01-01T00:00:00Z"
"""A valid ``submitted_at``."""

EDGE_TEXT = (
    "\ufeff",  # byte order mark
    "\x00",
    "\u202e",  # right-to-left override
    "\u200d",  # zero-width joiner
    "e\u0301\u0301\u0301",  # stacked combining marks
    "\uffff",
    "\ufffe",
    "\U0010ffff",
    "\U0001f4a9",
    "\ud800",  # lone surrogates: json.dumps writes them as escapes
    "\udfff",
    "\ud83d",
    "Ａ１",  # full-width
    "٣",  # an Arabic-Indic digit
    "\r\n\t\x0b\x0c",
    "İı",
    "ß" * 3,
    '"\\/',
)

BAD_UTF8 = (
    b"\xc0\xaf",  # overlong '/'
    b"\xe0\x80\xaf",  # overlong, three bytes
    b"\xed\xa0\x80",  # CESU-8 surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # five-byte form
    b"\xff",
    b"\xfe\xff",
    b"\xe2\x82",  # truncated sequence
    b"\x80",  # lone continuation byte
)

NUMBERS = (
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "0.0",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "1_000",
    "01",
    "+1",
    ".5",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1.7976931348623157e308",
)

TIMESTAMPS = (
    TIMESTAMP,
    "2025-01-01T00:00:00.123456789+00:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+23:59",
    "2024-02-29T12:00:00+05:30",
    "2025-01-01t00:00:00z",
    "2025-01-01 00:00:00Z",
    "2025-01-01T00:00:00",
    "2025-13-01T00:00:00Z",
    "2025-01-01T24:00:00Z",
    "2016-12-31T23:59:60Z",
)


WRONG_VALUES: tuple[object, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    [],
    {},
    "",
    " ",
    ["x"],
    {"$": "x"},
    "x" * 65,
    "a:b",
    "bad id!",
    "poll",
    "POST",
    "0",
)

RAW_VALUES: tuple[bytes, ...] = (
    b"null",
    b"true",
    b"{}",
    b"[]",
    b'""',
    b"0",
    b" ",
    b"\x00" * 16,
    b'{"kind": "post"}',
    b"{" * 3,
    b"",
    b"\xef\xbb\xbf{}",
)
"""Classic values that are not a submission object."""
