"""A state folder keeps its first run's policy: a resume with another is refused, naming what differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import WavePolicy
from migrator.errors import StateError
from migrator.journal import Journal


def test_the_first_runs_policy_binds_the_state_folder(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    try:
        first = journal.bind_manifest("a" * 64, "wave-1", WavePolicy(soft_delete="attest-pending").as_record())
        assert journal.bind_manifest("a" * 64, "wave-2", WavePolicy(soft_delete="attest-pending").as_record()) == first
        with pytest.raises(StateError) as err:
            journal.bind_manifest("a" * 64, "wave-3", WavePolicy(second_read=False).as_record())
        assert str(err.value).count("(this run:") == 2
        assert 'second_read true (this run: false); soft_delete "attest-pending" (this run: "require-off")' \
            in str(err.value)
        assert journal.get_meta("wave_id") == "wave-1"
    finally:
        journal.close()
