"""The CLI's pure parts: --input forms, exit codes, id prefixes, tables that keep ids whole."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from agentbus.cli._ids import unique
from agentbus.cli._output import ExitCode, exit_code, id_table, read_input
from agentbus.domain import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)


def test_input_is_json_a_file_or_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_input('{"a": 1}') == {"a": 1} and read_input(None) is None
    (tmp_path / "in.json").write_text('{"b": [2]}')
    assert read_input(f"@{tmp_path / 'in.json'}") == {"b": [2]}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"c": true}'))
    assert read_input("-") == {"c": True}
    with pytest.raises(InvalidInput, match="cannot read"):
        read_input(f"@{tmp_path / 'missing.json'}")
    (tmp_path / "in.json").write_text("{nope")
    with pytest.raises(InvalidInput, match=r"in\.json is not JSON"):
        read_input(f"@{tmp_path / 'in.json'}")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError("t"), ExitCode.TIMEOUT),
        (NotFound("x"), ExitCode.NOT_FOUND),
        (Unauthorized("x"), ExitCode.AUTH),
        (Forbidden("x"), ExitCode.AUTH),
        (InvalidInput("x"), ExitCode.USAGE),
        (ValidationFailed("x"), ExitCode.USAGE),
        (Conflict("x"), ExitCode.UNAVAILABLE),
        (RateLimited("x", 1.0), ExitCode.UNAVAILABLE),
        (Unavailable("x"), ExitCode.UNAVAILABLE),
    ],
)
def test_exit_codes(exc: BaseException, code: ExitCode) -> None:
    assert exit_code(exc) == code


def test_a_prefix_names_one_id_or_says_which_it_could_be() -> None:
    assert unique("ab", ["abc"], "job", "") == "abc"
    with pytest.raises(InvalidInput, match="ambiguous: 2 jobs") as ambiguous:
        unique("ab", ["abc", "abd"], "job", "")
    assert "abc" in ambiguous.value.message and "abd" in ambiguous.value.message
    with pytest.raises(NotFound):
        unique("zz", [], "job", "looked in all")


def test_an_80_column_table_keeps_the_ids_whole() -> None:
    table = id_table("id", "status", "prompt", "assignees", "deadline")
    ids = [f"{n:032x}-{n}" for n in range(1, 4)]
    for i in ids:
        table.add_row(i, "pending", "Publish this draft about bees? " * 3, "editors, alice, bob", "2026-12-01 13:30")
    console = Console(width=80, file=io.StringIO())
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert all(i in text for i in ids) and max(len(line) for line in text.splitlines()) <= 80
