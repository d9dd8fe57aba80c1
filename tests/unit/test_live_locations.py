"""Live checks of a wave with named locations, on in-memory stores: each record's URIs are read through their
own location's store; an OUT_OF_SCOPE record needs its source still there and no destination; the
auditor's locations file must state the attested identity, map every location and no other, and every
location's store is reached before any sample is drawn."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from migrator.attest.live import check_live
from migrator.attest.policy import Threshold
from migrator.errors import InputError
from migrator.live_stores import auditor_estate, reach_scope
from migrator.stores.base import ObjectStore, PutRequest
from migrator.stores.memory import MemoryStore
from migrator.uri import ObjectURI, parse_uri
from tests.conftest import store_transfer
from tests.unit.test_proofs import Wave, make_wave

CLI = [sys.executable, "-m", "migrator"]
T = "2026-12-01T12:00:00Z"
LOCATIONS: list[dict[str, Any]] = [
    {"name": "dc", "kind": "s3", "region": "us-east-1", "owner": "000000000042", "endpoint": "https://dc.example:9000",
     "buckets": ["users"], "used": [{"bucket": "s3://dc@users", "roles": ["source"], "rows": 1}]},
    {"name": "eu", "kind": "s3", "region": "eu-west-1", "owner": "123456789012", "endpoint": None,
     "buckets": ["eu-*"], "used": []},
    {"name": "oci-us", "kind": "oci", "region": "us-ashburn-1", "owner": "ns", "endpoint": None,
     "buckets": ["us-users"], "used": [{"bucket": "oci://oci-us@ns/us-users", "roles": ["destination"], "rows": 1}]},
]
AUDITOR = """
[locations.dc]
kind = "s3"
region = "us-east-1"
owner = "000000000042"
endpoint = "https://dc-readonly.example:9443"
ca_bundle = "/etc/auditor/dc-ca.pem"
addressing_style = "path"
profile = "auditor-dc"

[locations.eu]
kind = "s3"
region = "eu-west-1"
owner = "123456789012"
profile = "auditor-eu"

[locations.oci-us]
kind = "oci"
region = "us-ashburn-1"
owner = "ns"
config_file = "/etc/auditor/oci/config"
profile = "AUDITOR"
"""


class Estate:
    """One memory store per location; ``asked`` records which location each read was routed to."""

    def __init__(self) -> None:
        t = store_transfer()
        self.stores = {"dc": MemoryStore("s3", transfer=t), "eu": MemoryStore("s3", transfer=t),
                       "oci-us": MemoryStore("oci", transfer=t)}
        self.asked: list[str] = []
        self.stores["dc"].create_bucket("users", versioned=True)
        self.stores["eu"].create_bucket("eu-users", versioned=True)
        self.stores["oci-us"].create_bucket("us-users", versioned=True)

    def store_for(self, uri: ObjectURI) -> ObjectStore:
        assert uri.at, f"{uri} reached the store without its location"
        self.asked.append(uri.at)
        return self.stores[uri.at]


def put(store: MemoryStore, uri: str, data: bytes) -> str | None:
    return store.put(parse_uri(uri), io.BytesIO(data), PutRequest(size=len(data))).version


@pytest.fixture
def estate_wave() -> tuple[Estate, Wave]:
    """Row 1 moved from the data centre into OCI us (REMOVED); row 2 of another residency left in eu."""
    e = Estate()
    data = b"a" * 100
    dest = "oci://oci-us@ns/us-users/a.jpg"
    dv = put(e.stores["oci-us"], dest, data)
    info = e.stores["oci-us"].stat(parse_uri(dest))
    put(e.stores["eu"], "s3://eu@eu-users/b.jpg", b"b" * 50)
    source = "s3://dc@users/a.jpg"
    removed = {"schema": 2, "row": 1, "state": "REMOVED", "reason": None, "source": source, "destination": dest,
               "replicas": [], "versions": [{"version": "v1", "etag": '"e1"', "size": len(data),
                                             "destination_version": dv, "destination_etag": info.etag,
                                             "digests": [{"algorithm": "sha256", "provenance": "computed",
                                                          "hex": hashlib.sha256(data).hexdigest()}]}],
               "deletions": [{"at": T, "kind": "version", "uri": source, "version": "v1"}],
               "proof": {"empty": True, "listed_at": T, "locations": [source]}}
    untouched = {"schema": 2, "row": 2, "state": "OUT_OF_SCOPE", "reason": "other residency",
                 "detail": "residency EU; the wave moves US", "residency": "EU",
                 "source": "s3://eu@eu-users/b.jpg", "destination": "oci://oci-us@ns/us-users/b.jpg",
                 "replicas": [], "versions": [], "deletions": []}
    return e, make_wave(recs=[removed, untouched], locations=LOCATIONS)


def check(e: Estate, w: Wave, download: bool = True) -> dict[int, Any]:
    report = check_live(w.envelope, w.records, Threshold(w.pubs), e.store_for, sample=2, seed=1, download=download)
    return {r.row: r for r in report.results}


def test_each_uri_is_read_through_its_own_location(estate_wave: tuple[Estate, Wave]) -> None:
    e, w = estate_wave
    rows = check(e, w)
    assert rows[1].ok and rows[2].ok, [f.detail for r in rows.values() for f in r.problems]
    assert {f.uri for f in rows[1].findings} >= {"s3://dc@users/a.jpg", "oci://oci-us@ns/us-users/a.jpg"}
    assert set(e.asked) == {"dc", "eu", "oci-us"}
    # A copy planted back in the data centre is found there, under its qualified name.
    planted = put(e.stores["dc"], "s3://dc@users/a.jpg", b"back")
    [bad] = check(e, w)[1].problems
    assert (bad.check, bad.uri) == ("source", "s3://dc@users/a.jpg") and f"version {planted}" in bad.detail


def test_an_out_of_scope_source_must_still_be_there(estate_wave: tuple[Estate, Wave]) -> None:
    e, w = estate_wave
    [ok] = check(e, w)[2].findings
    assert ok.ok and ok.check == "untouched" and "still there (50 bytes)" in ok.detail
    e.asked.clear()
    check(e, w, download=False)
    assert e.asked.count("eu") == 1      # one stat of the source; its destination is not demanded
    e.stores["eu"].delete_current(parse_uri("s3://eu@eu-users/b.jpg"))
    row = check(e, w)[2]
    [bad] = row.problems
    assert (row.state, bad.check, bad.uri) == ("OUT_OF_SCOPE", "untouched", "s3://eu@eu-users/b.jpg")
    assert "removed or deleted since" in bad.detail


# ---- the auditor's locations file ---------------------------------------------------------------------------

def att(e_w: tuple[Estate, Wave]) -> bytes:
    return e_w[1].envelope


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "auditor-locations.toml"
    path.write_text(text)
    return path


def test_the_auditors_file_maps_each_identity_to_the_auditors_own_access(tmp_path: Path,
                                                                          estate_wave: tuple[Estate, Wave]) -> None:
    estate = auditor_estate(att(estate_wave), write(tmp_path, AUDITOR))
    dc = estate.get("dc")
    assert (dc.endpoint, dc.profile, dc.addressing_style, dc.ca_bundle) == (
        "https://dc-readonly.example:9443", "auditor-dc", "path", "/etc/auditor/dc-ca.pem")
    assert dc.buckets == ("users",) and estate.get("eu").buckets == ("eu-*",)   # the attestation's word
    assert estate.get("oci-us").config_file == "/etc/auditor/oci/config"


@pytest.mark.parametrize(("change", "field", "says"), [
    (('owner = "000000000042"', 'owner = "000000000099"', 1), "locations.dc.owner", "has owner '000000000042'"),
    (('region = "eu-west-1"', 'region = "eu-central-1"', 1), "locations.eu.region", "has region 'eu-west-1'"),
    (('owner = "ns"\n', "", 1), "locations.oci-us.owner", "has owner 'ns', this file says None"),
    (('kind = "oci"', 'kind = "s3"', 1), "locations.oci-us", "applies to"),   # config_file is oci's alone
    (("[locations.eu]", "[locations.eu-old]", 1), "locations", "which this file does not map"),
    (('profile = "auditor-eu"', 'profile = "auditor-eu"\nbuckets = ["eu-users"]', 1), "locations.eu.buckets",
     "leave buckets out"),
    (("", '\n[locations.gcp]\nkind = "gs"\n', 0), "locations.gcp", "the attestation names no location 'gcp'"),
    (("", 'wave = "x"\n', 0), "wave", "only [locations.NAME] tables"),
])
def test_a_file_that_does_not_state_the_attested_identity_is_refused(
        tmp_path: Path, estate_wave: tuple[Estate, Wave], change: tuple[str, str, int], field: str,
        says: str) -> None:
    old, new, count = change
    text = AUDITOR.replace(old, new, count) if old else (new + AUDITOR if new.startswith("wave") else AUDITOR + new)
    with pytest.raises(InputError, match=re.escape(says)) as exc:
        auditor_estate(att(estate_wave), write(tmp_path, text))
    assert exc.value.file == str(tmp_path / "auditor-locations.toml")
    assert exc.value.field is not None and exc.value.field.startswith(field), exc.value.field
    if field in ("locations.dc.owner", "locations.eu.region"):   # the line that says it, as in a wave file
        assert exc.value.line is not None
        line = text.splitlines()[exc.value.line - 1]
        assert line == new, (exc.value.line, line)


@pytest.mark.parametrize("data", [b"\xff\xfe[locations.dc]\n", AUDITOR.replace("dc", "d\u00e9").encode("latin-1")])
def test_a_file_that_is_not_utf8_is_bad_input_naming_it(tmp_path: Path, estate_wave: tuple[Estate, Wave],
                                                        data: bytes) -> None:
    path = tmp_path / "auditor-locations.toml"
    path.write_bytes(data)
    with pytest.raises(InputError, match=r"not valid UTF-8 \(byte \d+ of the file\); TOML is UTF-8") as exc:
        auditor_estate(att(estate_wave), path)
    assert exc.value.file == str(path)


def test_the_file_goes_with_locations_and_only_with_them(tmp_path: Path, estate_wave: tuple[Estate, Wave]) -> None:
    with pytest.raises(InputError, match=r"names location\(s\) dc, eu, oci-us: map each .* --locations FILE"):
        auditor_estate(att(estate_wave), None)
    plain = make_wave(3, locations=None)
    assert not auditor_estate(plain.envelope, None)           # the environment's endpoints, as before
    with pytest.raises(InputError, match="names no locations: leave out --locations"):
        auditor_estate(plain.envelope, write(tmp_path, AUDITOR))


def test_an_owner_declared_by_none_may_be_left_out_or_pinned_to_what_the_cloud_reported(tmp_path: Path) -> None:
    """A wave that declared no owner still attests the one its cloud reported: the auditor may pin that one."""
    ident = {**LOCATIONS[0], "owner": None,
             "used": [{"bucket": "s3://dc@users", "roles": ["source"], "rows": 1, "owner": "000000000042"}]}
    w = make_wave(3, locations=[ident])
    one = AUDITOR.split("[locations.eu]")[0]
    assert auditor_estate(w.envelope, write(tmp_path, one)).get("dc").owner == "000000000042"
    assert auditor_estate(w.envelope, write(tmp_path, one.replace('owner = "000000000042"\n', ""))).get("dc").owner \
        is None
    says = "has owner None (declared none; the cloud reported '000000000042')"
    with pytest.raises(InputError, match=re.escape(says)) as exc:
        auditor_estate(w.envelope, write(tmp_path, one.replace("000000000042", "000000000099")))
    assert exc.value.field == "locations.dc.owner"


class Recording:
    """Stores that record what is built, and refuse to be read."""

    def __init__(self) -> None:
        self.built: list[tuple[str, str]] = []

    def get(self, scheme: str, at: str = "") -> None:
        self.built.append((scheme, at))

    def for_uri(self, uri: ObjectURI) -> ObjectStore:
        raise AssertionError("nothing is read before the check")


def test_every_location_is_reached_before_sampling(estate_wave: tuple[Estate, Wave]) -> None:
    stores = Recording()
    assert reach_scope(att(estate_wave), stores) == stores.for_uri   # type: ignore[arg-type]
    assert stores.built == [("s3", "dc"), ("s3", "eu"), ("oci", "oci-us")]   # no default store: all are named
    plain = Recording()
    reach_scope(make_wave(3, locations=None).envelope, plain)      # type: ignore[arg-type]
    assert plain.built == [("gs", ""), ("oci", ""), ("s3", "")]


def test_audit_check_refuses_a_wrong_owner_before_any_store(tmp_path: Path,
                                                            estate_wave: tuple[Estate, Wave]) -> None:
    (tmp_path / "attestation.json").write_bytes(att(estate_wave))
    (tmp_path / "records.jsonl").write_bytes(estate_wave[1].records)
    pub = tmp_path / "signing.pub"
    pub.write_bytes(estate_wave[1].signers[0].public_key_pem())
    locations = write(tmp_path, AUDITOR.replace("000000000042", "000000000099"))
    proc = subprocess.run([*CLI, "audit", "check", str(tmp_path / "attestation.json"), "--live", "--key", str(pub),
                           "--locations", str(locations)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "locations.dc.owner" in proc.stderr and "the auditor must reach the same store" in proc.stderr
    proc = subprocess.run([*CLI, "audit", "check", str(tmp_path / "attestation.json"), "--live", "--key", str(pub)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--locations FILE" in proc.stderr, proc.stderr
