"""Pure parts of logical backups: COPY text digests, session options, TOC parsing, error lines."""

from __future__ import annotations

import blake3
import pytest

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.postgres.datagen import mutate, row_counts
from seawall.postgres.logical import _DATA_ENTRY, tool_error
from seawall.postgres.tablestats import CopyDigest, copy_statement, digest_bytes, pgoptions, session_settings

ROWS = b"1\tAnna\t\\N\n2\tline1\\nline2\\ttab\\\\back\n3\t\n"
TERMINATOR = b"\\.\n\n\n"  # what pg_dump appends to every table file


def expected(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def test_terminator_is_excluded_from_rows_and_checksum() -> None:
    assert digest_bytes(ROWS + TERMINATOR) == (3, expected(ROWS))


def test_live_copy_output_without_terminator_gives_the_same_figures() -> None:
    assert digest_bytes(ROWS) == digest_bytes(ROWS + TERMINATOR)


def test_empty_table_file_is_zero_rows() -> None:
    assert digest_bytes(TERMINATOR) == (0, expected(b""))
    assert digest_bytes(b"") == (0, expected(b""))


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 16, 17, 1000])
def test_pieces_of_any_size_give_the_same_result(piece: int) -> None:
    data = ROWS * 50 + TERMINATOR
    digest = CopyDigest()
    for i in range(0, len(data), piece):
        digest.update(memoryview(data)[i:i + piece])
    assert digest.finish() == (150, expected(ROWS * 50))


def test_backslash_dot_inside_a_line_is_data() -> None:
    # A value `x\.` is escaped by COPY as `x\\.`; a line not *starting* with `\.` is never the terminator.
    data = b"1\tx\\\\.\n"
    assert digest_bytes(data) == (1, expected(data))
    assert digest_bytes(b"1\tx\\.\n") == (1, expected(b"1\tx\\.\n"))


def test_terminator_needs_no_trailing_blank_lines() -> None:
    assert digest_bytes(ROWS + b"\\.\n") == (3, expected(ROWS))


def test_empty_string_rows_are_counted() -> None:
    data = b"\n\n"  # two rows of a one-column table holding ''
    assert digest_bytes(data + TERMINATOR) == (2, expected(data))


def test_session_matches_pg_dump_and_forced_options() -> None:
    settings = session_settings()
    assert settings["extra_float_digits"] == "3" and settings["DateStyle"] == "ISO"
    assert settings["TimeZone"] == "UTC" and settings["bytea_output"] == "hex"


def test_pgoptions_keeps_the_users_own_and_ours_come_last() -> None:
    assert pgoptions("-c work_mem=64MB") == "-c work_mem=64MB -c TimeZone=UTC -c bytea_output=hex"
    assert pgoptions("") == "-c TimeZone=UTC -c bytea_output=hex"


def test_copy_statement_is_the_one_pg_dump_runs() -> None:
    stmt = copy_statement("public", "Odd Name", ["id", "a b"])
    assert stmt.as_string(None) == 'COPY "public"."Odd Name" ("id", "a b") TO STDOUT'


@pytest.mark.parametrize(("line", "parsed"), [
    ("3384; 0 16389 TABLE DATA public customers postgres", ("3384", "16389")),
    ("3390; 0 16500 TABLE DATA a b c d app", ("3390", "16500")),  # "a b"."c d": names are not parsed
    ("3211; 1259 16389 TABLE public customers postgres", None),
    (";     Dumped from database version: 15.18", None),
])
def test_toc_lines_map_table_data_to_files(line: str, parsed: tuple | None) -> None:
    match = _DATA_ENTRY.match(line)
    assert (match.groups() if match else None) == parsed


@pytest.mark.parametrize(("stderr", "cls"), [
    ('pg_dump: error: connection to server at "db" (10.0.0.1), port 5432 failed: Connection refused', RetryableError),
    ("pg_dump: error: Dumping the contents of table \"t\" failed: server closed the connection unexpectedly",
     RetryableError),
    ('pg_dump: error: connection failed: FATAL:  password authentication failed for user "u"', AuthError),
    ("pg_dump: error: query failed: ERROR:  permission denied for table secret", PermanentError),
    ("pg_dump: error: query failed: ERROR:  permission denied for table t\npg_dump: detail: Query was: LOCK t",
     PermanentError),
    ("", PermanentError),
])
def test_tool_errors_are_classified_and_keep_the_last_line(stderr: str, cls: type) -> None:
    exc = tool_error("pg_dump", "pg_dump: warning: something\n" + stderr, "dumping db")
    assert type(exc) is cls
    assert str(exc).startswith("pg_dump failed dumping db: ")
    assert (stderr.split("\n")[0] or "something") in str(exc)


def test_row_counts_scale_and_bad_mutation_arguments_are_refused() -> None:
    small, large = row_counts(10), row_counts(100)
    assert all(large[t] > small[t] for t in small)
    with pytest.raises(ConfigError):
        mutate("dbname=x", 0)
    with pytest.raises(ConfigError):
        mutate("dbname=x", 0.01, pattern="everywhere")
