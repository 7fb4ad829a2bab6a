"""Reading CSV files (pure): delimiters, quoting, header names and per-row reasons."""

from __future__ import annotations

import pytest

from sukverse_user_mgmt.csvimport import CsvError, parse

ROLES = {"student", "instructor", "admin"}


def read(text: str, max_rows: int = 100) -> list[tuple[int, str | None, str | None]]:
    return [
        (row.line, row.email, row.reason)
        for row in parse(text.encode(), known_roles=ROLES, max_rows=max_rows)
    ]


def test_semicolons_with_quoted_commas_and_crlf() -> None:
    rows = parse(
        b'EMAIL ; Full_Name ;Organisation\r\na@example.com;"Lovelace, Ada";"Acme; Inc"\r\n',
        known_roles=ROLES,
        max_rows=10,
    )
    assert [(r.email, r.full_name, r.role, r.fields) for r in rows] == [
        ("a@example.com", "Lovelace, Ada", "student", {"organisation": "Acme; Inc"})
    ]


def test_commas_with_quoted_semicolons_and_a_quoted_newline() -> None:
    rows = parse(
        b'email,full_name,bio\na@example.com,"Ada; Countess","line one\nline two"\n',
        known_roles=ROLES,
        max_rows=10,
    )
    assert rows[0].full_name == "Ada; Countess"
    assert rows[0].fields == {"bio": "line one\nline two"}


def test_each_row_gets_its_own_reason() -> None:
    assert read(
        "email,full_name,role\n"
        "a@example.com,A,student\n"
        ",Nobody,student\n"
        "b@example.com,,student\n"
        "c@example.com,C,student,extra\n"
        "A@EXAMPLE.COM,Again,student\n"
        "d@example.com,D\n"
    ) == [
        (2, "a@example.com", None),
        (3, None, "email: missing"),
        (4, "b@example.com", "full_name: missing"),
        (5, None, "has 4 fields, the header 3"),
        (6, "a@example.com", "email: duplicate in file (first on line 2)"),
        (7, "d@example.com", None),  # a missing trailing role means the default
    ]


def test_the_row_limit_counts_data_rows_only() -> None:
    text = "email,full_name\n\n" + "".join(f"u{i}@example.com,U\n" for i in range(3))
    assert len(read(text, max_rows=3)) == 3
    with pytest.raises(CsvError) as refused:
        read(text + "u9@example.com,U\n", max_rows=3)
    assert refused.value.too_large
