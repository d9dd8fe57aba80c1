"""What the CLI prints is plain text: user strings come out exactly as given."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migrator import cli
from migrator.runner import WaveResult


def test_a_wave_summary_prints_reasons_and_paths_verbatim(capsys: pytest.CaptureFixture[str]) -> None:
    reason = "held: bucket :smile: says [red]x[/red] :thumbs_up:"
    records = Path("/st/[bold]records[/bold].jsonl")
    cli._print_wave(WaveResult(wave_id="wave-:smile:", rows=1, removed=0, held=1, failed=0, out_of_scope=0,
                               bytes=3, complete=False, attestation=Path("/st/:smile:.json"), records=records,
                               exceptions={}, held_rows=[(1, "HELD", reason)]))
    printed = capsys.readouterr().out
    assert "wave wave-:smile:: 1 objects" in printed
    assert f"row 1: HELD - {reason}" in printed
    assert f"records     {records}" in printed and "attestation /st/:smile:.json" in printed
    assert "\U0001f604" not in printed and "\U0001f44d" not in printed


def test_the_consoles_read_no_markup_and_no_emoji() -> None:
    for console in (cli.out, cli.err):
        assert console._markup is False and console._emoji is False and console._highlight is False


def _commands() -> list[list[str]]:
    import typer

    def walk(command: object, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(cli.app), [])


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "migrator")
def test_help_names_values_in_words_not_python_types(path: list[str]) -> None:
    """Typer prints a parameter's Python type as its metavar (<path>, <list[Path]>, <str>, <bool> beside
    flags and --help); help shows FILE, DIR, N, TEXT... instead, and nothing beside a flag."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert not re.search(r"<[^<>\s]*>", text), text          # <path>, <list[Path]>, <str>, <int>, <bool>
    assert not re.search(r"\bBOOL(EAN)?\b|list\[|\bPath\b", text), text   # nor the same without brackets
    help_line = next(line for line in text.splitlines() if "--help" in line)
    assert re.search(r"--help\s+Show this message", help_line), help_line


def test_help_gives_the_metavars_chosen_for_files_folders_and_keys() -> None:
    from typer.testing import CliRunner

    text = CliRunner().invoke(cli.app, ["audit", "verify", "--help"], env={"COLUMNS": "200"}).output
    assert "{ATTESTATION}" in text
    for option, metavar in (("--key", "FILE"), ("--threshold", "N"), ("--records", "FILE")):
        assert re.search(rf"{option}\s+{metavar}\s", text), (option, text)
    text = CliRunner().invoke(cli.app, ["keys", "generate", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--out\s+DIR\s", text), text
