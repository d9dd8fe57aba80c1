"""The wave file, flags and environment resolved once into WaveSettings; bad values named by file and field."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest

from migrator import oci_config
from migrator.attest.signers import SignerSettings
from migrator.config import TransferSettings, WavePolicy, WaveSettings, load_wave
from migrator.errors import InputError
from migrator.stores.settings import EndpointSettings, StoreSettings, StoreTransfer

MiB = 2**20


def _wave(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wave.toml"
    path.write_text(text)
    return path


def test_both_tables_resolve(tmp_path: Path) -> None:
    path = _wave(tmp_path, "[policy]\nconcurrency = 4\nversions = 'current'\n[transfer]\n"
                           "multipart_threshold = 16777216\npart_size = 8388608\nbuffer_memory = 33554432\n")
    settings = load_wave(path, {"versions": None}, {})
    assert settings.policy == WavePolicy(versions="current")
    assert settings.transfer == TransferSettings(concurrency=4, multipart_threshold=16 * MiB, part_size=8 * MiB,
                                                 buffer_memory=32 * MiB)


def test_no_file_or_no_table_gives_defaults(tmp_path: Path) -> None:
    assert load_wave(None, {}, {}) == WaveSettings()
    assert load_wave(_wave(tmp_path, "[policy]\n"), {}, {}).transfer == TransferSettings()


def test_the_wave_file_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Any] = []
    real = tomllib.load

    def counting(fh: Any) -> dict[str, Any]:
        reads.append(fh.name)
        return real(fh)

    monkeypatch.setattr(tomllib, "load", counting)
    load_wave(_wave(tmp_path, "[policy]\nsecond_read = false\n[transfer]\nparts_in_flight = 2\n"), {}, {})
    assert reads == [str(tmp_path / "wave.toml")]


def test_a_given_flag_beats_the_file_and_none_means_not_given(tmp_path: Path) -> None:
    path = _wave(tmp_path, "[policy]\nconcurrency = 4\nsoft_delete = 'attest-pending'\n")
    settings = load_wave(path, {"concurrency": 9, "soft_delete": None, "bypass_governance": True}, {})
    assert settings.transfer.concurrency == 9
    assert settings.policy.soft_delete == "attest-pending" and settings.policy.bypass_governance is True


def test_a_bad_flag_value_names_the_field() -> None:
    with pytest.raises(InputError) as err:
        load_wave(None, {"concurrency": 0}, {})
    assert err.value.field == "--concurrency" and err.value.file is None and "between 1 and 1024" in str(err.value)


@pytest.mark.parametrize(("text", "field", "words"), [
    ("[transfer]\nchunk = 5\n", "transfer.chunk", "unknown transfer key"),
    ("[transfer]\nmultipart_threshold = '16MiB'\n", "transfer.multipart_threshold", "want an int"),
    ("[transfer]\nparts_in_flight = 0\n", "transfer.parts_in_flight", "at least 1"),
    ("[transfer]\npart_size = true\n", "transfer.part_size", "want an int"),
    ("[transfer]\npart_size = 1048576\n", "transfer.part_size", "between 5 MiB and 5 GiB"),
    ("[transfer]\npart_size = 6000000\n", "transfer.part_size", "multiple of 256 KiB"),
    ("[transfer]\nbuffer_memory = 0\n", "transfer.buffer_memory", "at least 1"),
    ("[transfer]\nconcurrency = 4\n", "transfer.concurrency", "unknown transfer key"),   # it lives in [policy]
    ("transfer = 5\n", "transfer", "want a [transfer] table"),
])
def test_bad_transfer_values_name_file_and_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = _wave(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_wave(path, {}, {})
    assert err.value.field == field and words in str(err.value)
    assert str(path) in str(err.value.file) and err.value.line == (1 if field == "transfer" else 2)


@pytest.mark.parametrize(("text", "field", "words"), [
    ("[policy]\nconcurrency = '4'\n", "policy.concurrency", "want an int, got '4'"),
    ("[policy]\nbatch_rows = true\n", "policy.batch_rows", "want an int, got True"),
    ("[policy]\nsecond_read = 1\n", "policy.second_read", "want a bool, got 1"),
    ("[policy]\nversions = 2\n", "policy.versions", "want a str, got 2"),
    ("[policy]\nversions = 'some'\n", "policy.versions", "versions must be one of all, current"),
    ("[policy]\ndelete_batch = 5000\n", "policy.delete_batch", "between 1 and 1000"),
    ("[policy]\npart_size = 8388608\n", "policy.part_size", "unknown policy key (known: allowed_regions, batch_rows, "
     "bypass_governance, concurrency, delete_batch, other_residency, require_destination_protection, "
     "require_residency, residency, second_read, soft_delete, versions)"),
])
def test_bad_policy_values_name_file_and_field(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = _wave(tmp_path, text)
    with pytest.raises(InputError) as err:
        load_wave(path, {}, {})
    assert err.value.field == field and words in str(err.value)
    assert str(path) in str(err.value.file) and err.value.line == (1 if field == "transfer" else 2)


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\[policy\], \[transfer\] or \[locations.NAME\]"):
        load_wave(_wave(tmp_path, "[speed]\nfast = true\n"), {}, {})


def test_policy_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_wave(_wave(tmp_path, "policy = 5\n"), {}, {})
    assert err.value.field == "policy" and "table" in str(err.value)


def test_the_policy_is_exactly_what_the_attestation_names() -> None:
    assert WavePolicy().as_record() == {"versions": "all", "second_read": True, "soft_delete": "require-off",
                                        "require_destination_protection": True, "bypass_governance": False}


def test_the_documented_memory_formula_matches_the_defaults() -> None:
    t = TransferSettings()
    peak = t.buffer_memory + t.concurrency * t.part_size * t.parts_in_flight
    assert peak == 768 * MiB
    assert "buffer_memory + concurrency x part_size x parts_in_flight" in (TransferSettings.__doc__ or "")
    assert "= 768 MiB" in (TransferSettings.__doc__ or "")


def test_the_environment_gives_endpoints_and_sdk_config_to_stores_and_signers_alike() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "STORAGE_EMULATOR_HOST": "127.0.0.1:2",
           "MIGRATOR_OCI_ENDPOINT": "http://127.0.0.1:3", "MIGRATOR_OCI_CONFIG": "/x/oci.conf",
           "MIGRATOR_OCI_PROFILE": "P", "AWS_REGION": "eu-west-1", "MIGRATOR_SANDBOX": "/box",
           "MIGRATOR_OCI_KMS_MANAGEMENT_ENDPOINT": "http://127.0.0.1:4", "MIGRATOR_CONCURRENCY": "99"}
    settings = load_wave(None, {}, env)
    endpoints = EndpointSettings(s3_endpoint="http://127.0.0.1:1", gcs_endpoint="127.0.0.1:2",
                                 oci_endpoint="http://127.0.0.1:3", oci_config="/x/oci.conf", oci_profile="P",
                                 aws_region="eu-west-1", sandbox=True)
    assert settings.stores == StoreSettings(endpoints=endpoints, transfer=StoreTransfer(
        part_size=8 * MiB, multipart_threshold=64 * MiB, parts_in_flight=4, max_pool_connections=64),
        load_oci_config=oci_config.load)
    assert settings.signers == SignerSettings(oci_config="/x/oci.conf", oci_profile="P",
                                              oci_kms_management_endpoint="http://127.0.0.1:4", aws_region="eu-west-1",
                                              load_oci_config=oci_config.load)   # one reader for both
    assert settings.transfer == TransferSettings()   # the environment never sets transfer or policy


def test_aws_default_region_wins_over_aws_region() -> None:
    env = {"AWS_DEFAULT_REGION": "us-east-2", "AWS_REGION": "eu-west-1"}
    assert load_wave(None, {}, env).endpoints.aws_region == "us-east-2"


def test_every_store_gets_the_same_transfer_value() -> None:
    t = TransferSettings(part_size=16 * MiB, multipart_threshold=32 * MiB, parts_in_flight=2,
                         max_pool_connections=8)
    assert dataclasses.asdict(WaveSettings(transfer=t).stores.transfer) == {
        "part_size": 16 * MiB, "multipart_threshold": 32 * MiB, "parts_in_flight": 2, "max_pool_connections": 8}


def test_an_unknown_flag_is_refused() -> None:
    with pytest.raises(InputError) as err:
        load_wave(None, {"speed": 3}, {})
    assert err.value.field == "speed"
