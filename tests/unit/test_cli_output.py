"""What the CLI prints is plain text: user strings come out exactly as given."""

from __future__ import annotations

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
        assert console._markup is False and console._emoji is False and console._highlight is False   # noqa: SLF001
