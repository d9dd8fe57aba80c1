"""The suite's own guards: every test starts with retry back-off off."""

from __future__ import annotations

from migrator import retry


def test_every_test_starts_with_retry_back_off_off() -> None:
    # Switched on here, as test_s3_store's module teardown once did; tests/conftest.py restores it afterwards.
    assert retry.set_backoff(True) is False
