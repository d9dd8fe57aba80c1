"""Request and byte caps in the settings: the wave file's [transfer] and [locations.NAME] keys and load_wave's
overrides, bad values named by field, caps left out of what a state folder binds, and the registry's buckets
(one wave-wide bucket per kind for every store it builds)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from migrator.config import TransferSettings, load_wave
from migrator.errors import InputError
from migrator.journal import Journal
from migrator.limits import NO_LIMITS, Rates, TokenBucket
from migrator.stores.registry import Stores

MiB = 2**20
LOCATIONS = """
[locations.dc]
kind = "s3"
endpoint = "http://127.0.0.1:9"
buckets = ["users"]
requests_per_second = 20
bytes_per_second = 8388608

[locations.gcp]
kind = "gs"
endpoint = "http://127.0.0.1:9"
buckets = ["g"]
requests_per_second = 2.5

[locations.aws]
kind = "s3"
endpoint = "http://127.0.0.1:9"
buckets = ["a"]
"""


def _wave(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wave.toml"
    path.write_text(text)
    return path


def test_the_wave_file_gives_wave_wide_and_per_location_caps(tmp_path: Path) -> None:
    settings = load_wave(_wave(tmp_path, "[transfer]\nrequests_per_second = 100\nbytes_per_second = 16777216\n"
                                         + LOCATIONS), {}, {})
    assert settings.transfer.rates == Rates(100, 16 * MiB)
    assert settings.stores.rates == Rates(100, 16 * MiB)
    dc, gcp, aws = (settings.estate.get(n) for n in ("dc", "gcp", "aws"))
    assert (dc.requests_per_second, dc.bytes_per_second) == (20, 8 * MiB)
    assert gcp.rates == Rates(2.5) and aws.rates == Rates() and not aws.rates


def test_no_caps_by_default() -> None:
    settings = load_wave(None, {}, {})
    assert settings.transfer.requests_per_second is None and settings.transfer.bytes_per_second is None
    assert not settings.stores.rates


def test_overrides_beat_the_file_and_zero_lifts_a_cap(tmp_path: Path) -> None:
    path = _wave(tmp_path, "[transfer]\nrequests_per_second = 100\nbytes_per_second = 16777216\n")
    settings = load_wave(path, {"requests_per_second": 5.5, "bytes_per_second": None}, {})
    assert settings.transfer.rates == Rates(5.5, 16 * MiB)
    lifted = load_wave(path, {"requests_per_second": 0, "bytes_per_second": 0}, {})
    assert not lifted.transfer.rates   # 0 = unlimited, as rclone's --tpslimit 0


@pytest.mark.parametrize(("text", "field"), [
    ("[transfer]\nrequests_per_second = -1\n", "transfer.requests_per_second"),
    ("[transfer]\nrequests_per_second = inf\n", "transfer.requests_per_second"),
    ("[transfer]\nrequests_per_second = nan\n", "transfer.requests_per_second"),
    ("[transfer]\nrequests_per_second = \"10\"\n", "transfer.requests_per_second"),
    ("[transfer]\nrequests_per_second = true\n", "transfer.requests_per_second"),
    ("[transfer]\nbytes_per_second = -1\n", "transfer.bytes_per_second"),
    ("[transfer]\nbytes_per_second = 1.5\n", "transfer.bytes_per_second"),
    ("[transfer]\nbytes_per_second = \"16MiB\"\n", "transfer.bytes_per_second"),
    ("[locations.dc]\nkind = \"s3\"\nbuckets = [\"b\"]\nrequests_per_second = -3\n",
     "locations.dc.requests_per_second"),
    ("[locations.dc]\nkind = \"s3\"\nbuckets = [\"b\"]\nrequests_per_second = \"fast\"\n",
     "locations.dc.requests_per_second"),
    ("[locations.dc]\nkind = \"gs\"\nbuckets = [\"b\"]\nbytes_per_second = 2.5\n", "locations.dc.bytes_per_second"),
    ("[locations.dc]\nkind = \"oci\"\nbuckets = [\"b\"]\nbytes_per_second = -1\n", "locations.dc.bytes_per_second"),
    ("[locations.dc]\nkind = \"oci\"\nbuckets = [\"b\"]\nbytes_per_second = false\n",
     "locations.dc.bytes_per_second"),
])
def test_bad_caps_in_the_wave_file_name_their_field(tmp_path: Path, text: str, field: str) -> None:
    path = _wave(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_wave(path, {}, {})
    assert caught.value.field == field and caught.value.file == str(path)
    assert caught.value.line is not None   # the line of the bad key


@pytest.mark.parametrize(("flags", "field"), [
    ({"requests_per_second": -1.0}, "--tps-limit"),
    ({"requests_per_second": float("inf")}, "--tps-limit"),
    ({"bytes_per_second": -1}, "--bw-limit"),
    ({"bytes_per_second": 2.5}, "--bw-limit"),
])
def test_bad_overrides_name_the_flag(flags: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        load_wave(None, flags, {})
    assert caught.value.field == field


def test_caps_are_not_bound_so_a_resume_may_change_them(tmp_path: Path) -> None:
    capped = load_wave(_wave(tmp_path, "[transfer]\nrequests_per_second = 100\nbytes_per_second = 16777216\n"
                                       + LOCATIONS), {}, {})
    uncapped_locations = LOCATIONS.replace("requests_per_second = 20\n", "").replace(
        "bytes_per_second = 8388608\n", "").replace("requests_per_second = 2.5\n", "requests_per_second = 1\n")
    other = load_wave(_wave(tmp_path, uncapped_locations), {"requests_per_second": 3}, {})
    assert capped.binding() == other.binding()
    assert "requests_per_second" not in str(capped.binding()) and "bytes_per_second" not in str(capped.binding())
    assert capped.estate.identities() == other.estate.identities()   # what the attestation names
    journal = Journal(tmp_path / "state")
    try:
        first = journal.bind_manifest("a" * 64, "wave-1", capped.binding())
        assert journal.bind_manifest("a" * 64, "wave-2", other.binding()) == first   # not refused
        assert journal.get_meta("policy_changes") is None
    finally:
        journal.close()


def test_transfer_settings_check_their_caps() -> None:
    assert TransferSettings(requests_per_second=0.5, bytes_per_second=1).rates == Rates(0.5, 1)
    with pytest.raises(InputError) as caught:
        TransferSettings(bytes_per_second=-1)
    assert caught.value.field == "bytes_per_second"


GS_LOCATIONS = LOCATIONS.replace('kind = "s3"', 'kind = "gs"')


def _stores(tmp_path: Path, text: str) -> Stores:
    """A registry of GCS stores only: an anonymous client on a loopback endpoint opens no socket when built."""
    settings = load_wave(_wave(tmp_path, text), {}, {})
    endpoints = dataclasses.replace(settings.endpoints, gcs_endpoint="http://127.0.0.1:9")
    return Stores(dataclasses.replace(settings.stores, endpoints=endpoints))


def test_the_registry_shares_one_wave_bucket_across_its_stores(tmp_path: Path) -> None:
    stores = _stores(tmp_path, "[transfer]\nrequests_per_second = 100\nbytes_per_second = 16777216\n"
                     + GS_LOCATIONS)
    dc, gcp, aws, default = (stores.get("gs", at) for at in ("dc", "gcp", "aws", ""))
    wave_requests = default.limits.requests.limiters[-1]
    assert isinstance(wave_requests, TokenBucket) and wave_requests.rate == 100
    assert len(default.limits.requests.limiters) == 1
    assert all(s.limits.requests.limiters[-1] is wave_requests for s in (dc, gcp, aws))
    assert all(s.limits.bytes.limiters[-1] is default.limits.bytes.limiters[-1] for s in (dc, gcp, aws))
    own = dc.limits.requests.limiters[0]
    assert isinstance(own, TokenBucket) and own.rate == 20 and len(aws.limits.requests.limiters) == 1
    assert [b.rate for b in dc.limits.bytes.limiters if isinstance(b, TokenBucket)] == [8 * MiB, 16 * MiB]
    assert stores.get("gs", "dc") is dc


def test_the_gcs_session_meters_every_request(tmp_path: Path) -> None:
    from migrator.stores.gcs import GcsStore, MeteredAdapter

    store = _stores(tmp_path, GS_LOCATIONS).get("gs", "dc")
    assert isinstance(store, GcsStore)
    for prefix in ("http://", "https://"):
        adapter = store.client._http.get_adapter(prefix + "127.0.0.1:9/x")
        assert isinstance(adapter, MeteredAdapter) and adapter.gate is store.limits.requests


def test_an_uncapped_registry_builds_no_buckets(tmp_path: Path) -> None:
    stores = _stores(tmp_path, "[transfer]\n")
    assert stores.get("gs").limits is NO_LIMITS and not stores.caps
