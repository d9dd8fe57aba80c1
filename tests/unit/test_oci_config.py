"""One OCI config loader for the store and the Vault signer: errors name file, profile, field or line, never
what the file holds. The store and the signer take the config it reads; the entry point's settings hand the
loader to the store registry and to the signer spec alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from migrator import oci_config
from migrator.attest.signers import SignerSettings, load_signer_spec
from migrator.config import WaveSettings, load_wave
from migrator.errors import InputError
from migrator.sandbox.oci_auth import write_sandbox_config
from migrator.stores.registry import Stores

CANARY = "pass_phrase_SECRET_9f2c"


def _error(path: Path, profile: str = "DEFAULT") -> InputError:
    with pytest.raises(InputError) as err:
        oci_config.load(str(path), profile)
    assert err.value.field == "oci_config"
    assert err.value.__cause__ is None and err.value.__suppress_context__   # no SDK message rides along
    return err.value


def _config(tmp_path: Path) -> Path:
    return write_sandbox_config(tmp_path / "oci", "ns").config_path


def _settings(config: str) -> WaveSettings:
    """As the CLI resolves them, with this OCI config file (nothing listens at the endpoints)."""
    return load_wave(None, {}, {"MIGRATOR_OCI_CONFIG": config, "MIGRATOR_OCI_ENDPOINT": "http://127.0.0.1:1"})


def _store_and_signer_errors(config: str) -> tuple[InputError, InputError]:
    settings = _settings(config)
    with pytest.raises(InputError) as store_err:
        Stores(settings.stores).get("oci")
    with pytest.raises(InputError) as signer_err:
        load_signer_spec("ocikms:ocid1.key.oc1..k@http://127.0.0.1:1", settings.signers)
    return store_err.value, signer_err.value


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    err = _error(tmp_path / "nope")
    assert str(err) == f"OCI config {tmp_path / 'nope'} (profile DEFAULT): no such file"


def test_a_malformed_file_names_the_line_not_its_text(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(f"[DEFAULT]\nuser=ocid1.user.oc1..a\n  {CANARY}\nno equals sign here {CANARY}\n")
    err = _error(path)
    assert "not a valid config file (line 4)" in str(err) and CANARY not in str(err)


def test_a_file_that_is_not_utf8_says_so_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_bytes(b"[DEFAULT]\nuser=caf\xe9\n")   # latin-1
    assert str(_error(path)) == f"OCI config {path} (profile DEFAULT): not valid UTF-8"


def test_a_file_without_a_section_names_line_one(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(f"pass_phrase={CANARY}\n")
    err = _error(path)
    assert "not a valid config file (line 1)" in str(err) and CANARY not in str(err)


def test_a_missing_profile_is_named(tmp_path: Path) -> None:
    err = _error(_config(tmp_path), "OTHER")
    assert str(err).endswith("(profile OTHER): no such profile in the file")


def test_missing_and_malformed_fields_are_named_without_values(tmp_path: Path) -> None:
    path = tmp_path / "config"
    key = write_sandbox_config(tmp_path / "oci", "ns").config_path.parent / "oci_api_key.pem"
    path.write_text(f"[DEFAULT]\nuser=ocid1.user.oc1..a\nfingerprint={CANARY}\nkey_file={key}\nregion=us-ashburn-1\n")
    err = _error(path)
    assert "fingerprint malformed" in str(err) and "tenancy missing" in str(err)
    assert CANARY not in str(err)


def test_a_key_file_that_is_not_a_file_is_named(tmp_path: Path) -> None:
    path = _config(tmp_path)
    text = path.read_text()
    path.write_text("\n".join(ln if not ln.startswith("key_file=") else f"key_file={tmp_path}/gone.pem"
                              for ln in text.splitlines()) + "\n")
    assert str(_error(path)).endswith("field key_file does not name a file")


def test_the_store_and_the_signer_report_a_bad_key_alike_and_never_quote_it(tmp_path: Path) -> None:
    path = _config(tmp_path)
    (path.parent / "oci_api_key.pem").write_text(f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----\n")
    store_err, signer_err = _store_and_signer_errors(str(path))
    assert str(store_err) == str(signer_err)
    assert str(store_err).endswith("field key_file is not a usable private key (or pass_phrase is wrong)")
    for err in (store_err, signer_err):
        assert CANARY not in str(err) and err.__cause__ is None and err.field == "oci_config"


def test_the_store_and_the_signer_report_a_missing_config_alike(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    store_err, signer_err = _store_and_signer_errors(missing)
    assert str(store_err) == str(signer_err) == f"OCI config {missing} (profile DEFAULT): no such file"


def test_a_good_config_loads(tmp_path: Path) -> None:
    config = oci_config.load(str(_config(tmp_path)), "DEFAULT")
    assert config["region"] and config["key_file"].endswith("oci_api_key.pem")


def test_other_errors_are_not_taken_for_config_problems() -> None:
    def broken() -> None:
        raise KeyError("a bug, not the config's fault")

    with pytest.raises(KeyError):
        oci_config.guard("OCI config x (profile DEFAULT)", broken)


def test_the_registry_reads_the_config_only_for_an_oci_store(tmp_path: Path) -> None:
    reads: list[tuple[str | None, str]] = []

    def counting(path: str | None, profile: str) -> Mapping[str, Any]:
        reads.append((path, profile))
        return oci_config.load(path, profile)

    settings = _settings(str(tmp_path / "nope"))
    stores = Stores(dataclasses.replace(settings.stores, load_oci_config=counting))
    assert reads == []               # building the registry reads nothing: a wave with no OCI location needs none
    with pytest.raises(InputError, match="no such file"):
        stores.get("oci")
    assert reads == [(str(tmp_path / "nope"), "DEFAULT")]


def test_an_ocikms_spec_without_the_config_reader_is_refused() -> None:
    with pytest.raises(InputError, match="no OCI config reader") as err:
        load_signer_spec("ocikms:ocid1.key.oc1..k@http://127.0.0.1:1", SignerSettings())
    assert err.value.field == "signing_key"
