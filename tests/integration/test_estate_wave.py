"""A wave across named locations on the sandbox: residency refused or left out of scope, destinations and
regions checked before any write, identities in the attestation, failures kept to their location, and a
resume bound to the estate."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from migrator.attest.keys import generate_keypair, load_public_key, load_signer
from migrator.attest.policy import AllOf, Inputs, RequireManifest, RequireRecords, Threshold
from migrator.attest.verify import verify_attestation
from migrator.config import WaveSettings, load_wave
from migrator.errors import InputError, StateError
from migrator.plan import plan_wave
from migrator.runner import run_wave
from migrator.sandbox.buckets import create_bucket, gcs_client, s3_client
from migrator.sandbox.control import AWS_PROFILE_AWS, AWS_PROFILE_DC, SandboxState
from tests.conftest import unique


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "keys")


class Estate:
    """Buckets in four locations on the sandbox: the data centre's S3 (its own server, owner and
    credentials) and AWS's, each holding its own bucket called `shared`; GCS; and OCI declared as
    us-ashburn-1."""

    def __init__(self, sandbox: SandboxState, tmp_path: Path) -> None:
        self.sandbox, self.tmp = sandbox, tmp_path
        self.dc, self.aws, self.gcs, self.dst = unique("edc"), unique("eaws"), unique("egcs"), unique("edst")
        self.shared = unique("eshared")
        for bucket in (self.dc, self.shared):
            create_bucket(sandbox, "s3", bucket, versioned=True, server="s3dc")
        for bucket in (self.aws, self.shared):
            create_bucket(sandbox, "s3", bucket, versioned=True)
        create_bucket(sandbox, "gs", self.gcs, versioned=True, soft_delete_seconds=0)
        create_bucket(sandbox, "oci", self.dst, versioned=True)
        self.ns = sandbox.oci_namespace

    def wave(self, policy: str = "", *, oci_region: str = "us-ashburn-1", extra: str = "",
             dc_endpoint: str | None = None) -> WaveSettings:
        s, ca = self.sandbox, self.sandbox.ca_file
        trust = f'ca_bundle = "{ca}"\n' if ca else ""
        assert s.s3dc is not None
        text = (f'[locations.dc]\nkind = "s3"\nendpoint = "{dc_endpoint or s.s3dc.url}"\nregion = "us-east-1"\n'
                f'buckets = ["{self.dc}", "{self.shared}"]\naddressing_style = "path"\nprofile = "{AWS_PROFILE_DC}"\n'
                f'{trust}'

                f'[locations.aws-us]\nkind = "s3"\nendpoint = "{s.s3.url}"\nregion = "us-east-1"\n'
                f'buckets = ["{self.aws}", "{self.shared}"]\n{trust}'
                f'[locations.gcp]\nkind = "gs"\nendpoint = "{s.gcs.url}"\nbuckets = ["{self.gcs}"]\n{trust}'
                f'[locations.oci-us]\nkind = "oci"\nendpoint = "{s.oci.url}"\nregion = "{oci_region}"\n'
                f'owner = "{self.ns}"\nbuckets = ["{self.dst}"]\nconfig_file = "{s.oci_config}"\n{trust}'
                f'{extra}[policy]\n{policy}')
        path = self.tmp / "wave.toml"
        path.write_text(text)
        return load_wave(path, {}, s.env())

    def put(self, where: str, key: str, body: bytes) -> None:
        if where == "gcs":
            gcs_client(self.sandbox).bucket(self.gcs).blob(key).upload_from_string(body)
        else:   # `shared` is the data centre's bucket of that name
            server = "s3" if where == "aws" else "s3dc"
            s3_client(self.sandbox, server).put_object(Bucket=getattr(self, where), Key=key, Body=body)

    def manifest(self, rows: list[dict[str, Any]]) -> Path:
        path = self.tmp / "m.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    def present(self, bucket: str, key: str, server: str = "s3dc") -> bool:
        r = s3_client(self.sandbox, server).list_object_versions(Bucket=bucket, Prefix=key)
        return bool(r.get("Versions"))


US = 'residency = "US"\nallowed_regions = ["us-ashburn-1"]\n'


def _rows(e: Estate) -> list[dict[str, Any]]:
    e.put("dc", "u/1", b"dc one")
    e.put("shared", "u/2", b"in the data centre's bucket called shared")
    e.put("gcs", "u/3", b"gcs three")
    e.put("dc", "eu/4", b"an EU user's object")
    return [
        {"source": f"s3://{e.dc}/u/1", "destination": f"oci://{e.ns}/{e.dst}/u/1", "residency": "US"},
        {"source": f"s3://dc@{e.shared}/u/2", "destination": f"oci://{e.ns}/{e.dst}/u/2", "residency": "US"},
        {"source": f"gs://{e.gcs}/u/3", "destination": f"oci://{e.ns}/{e.dst}/u/3", "residency": "US"},
        {"source": f"s3://{e.dc}/eu/4", "destination": f"oci://{e.ns}/{e.dst}/eu/4", "residency": "EU"},
    ]


def test_a_wave_across_locations_leaves_other_residencies_untouched_and_attests_identities(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e))
    s3_client(sandbox).put_object(Bucket=e.shared, Key="u/2", Body=b"AWS's own bucket called shared")
    settings = e.wave(US + 'other_residency = "out-of-scope"\n')
    plan = plan_wave(manifest, settings)
    assert plan.ready and plan.out_of_scope == 1 and not plan.refusals
    used = {b["bucket"]: b for loc in plan.estate or [] for b in loc["used"]}
    assert used[f"s3://dc@{e.dc}"]["region"] == "us-east-1"
    assert used[f"s3://dc@{e.dc}"]["region_source"] == "GetBucketLocation of a custom endpoint"
    assert not used[f"oci://oci-us@{e.ns}/{e.dst}"]["region_verified"]   # a loopback endpoint cannot say

    result = run_wave(manifest, tmp_path / "st", load_signer(keys[0]), settings)
    assert (result.removed, result.held, result.failed, result.out_of_scope) == (3, 0, 0, 1) and result.complete
    assert e.present(e.dc, "eu/4")                       # untouched
    assert not e.present(e.dc, "u/1") and not e.present(e.shared, "u/2")
    assert e.present(e.shared, "u/2", "s3")   # AWS's bucket of the same name is another bucket: untouched
    records = [json.loads(line) for line in (tmp_path / "st" / "records.jsonl").read_text().splitlines()]
    assert records[1]["source"] == f"s3://dc@{e.shared}/u/2" and records[0]["destination"].startswith("oci://oci-us@")
    assert records[3]["state"] == "OUT_OF_SCOPE" and records[3]["reason"] == "other residency"
    assert records[3]["versions"] == [] and records[3]["deletions"] == []
    v = verify_attestation((tmp_path / "st" / "attestation.json").read_bytes(),
                           Inputs(records=(tmp_path / "st" / "records.jsonl").read_bytes(),
                                  manifest=manifest.read_bytes()),
                           AllOf(Threshold([load_public_key(keys[1])]), RequireRecords(), RequireManifest()))
    p = v.predicate
    assert p["totals"] == {"rows": 4, "removed": 3, "held": 0, "failed": 0, "out_of_scope": 1} and p["complete"]
    names = [loc["name"] for loc in p["locations"]]
    assert names == ["aws-us", "dc", "gcp", "oci-us"]
    assert "profile" not in json.dumps(p["locations"]) and p["policy"]["residency"] == "US"


def test_a_row_of_another_residency_refuses_the_wave_before_any_write(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e))
    settings = e.wave(US)
    plan = plan_wave(manifest, settings)
    assert not plan.ready and plan.refusals == [f"{manifest}:4: residency: row 4 (s3://dc@{e.dc}/eu/4): "
                                                "residency 'EU'; the wave moves US rows only"]
    with pytest.raises(InputError, match="refused before any write") as err:
        run_wave(manifest, tmp_path / "st", load_signer(keys[0]), settings)
    assert f"{manifest}:4" in str(err.value)
    assert not (tmp_path / "st").exists()   # not even the state folder
    assert e.present(e.dc, "u/1") and e.present(e.dc, "eu/4")


def test_a_destination_outside_the_allowed_regions_or_missing_is_refused(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    e = Estate(sandbox, tmp_path)
    rows = _rows(e)[:3]
    manifest = e.manifest(rows)
    plan = plan_wave(manifest, e.wave(US, oci_region="eu-frankfurt-1"))
    assert "region eu-frankfurt-1 is not allowed for US rows" in plan.refusals[0]
    # Then every row writing there, by file and line; and none of them is planned as a hold.
    assert [r.split(": ")[0] for r in plan.refusals[1:]] == [f"{manifest}:{n}" for n in (1, 2, 3)]
    assert all(": destination: " in r and "not allowed" in r for r in plan.refusals[1:])
    assert not plan.rows_held and not plan.rows_failing
    missing = unique("enodst")
    manifest = e.manifest([{**rows[0], "destination": f"oci://{e.ns}/{missing}/u/1"}])
    e.wave(US)
    text = (tmp_path / "wave.toml").read_text().replace(f'buckets = ["{e.dst}"]',
                                                        f'buckets = ["{e.dst}", "{missing}"]')
    (tmp_path / "wave.toml").write_text(text)
    settings = load_wave(tmp_path / "wave.toml", {}, sandbox.env())
    with pytest.raises(InputError, match="destination bucket not found") as err:
        run_wave(manifest, tmp_path / "st", load_signer(keys[0]), settings)
    assert f"{manifest}:1: destination: row 1 (oci://oci-us@{e.ns}/{missing}/u/1): the destination bucket does " \
        "not exist" in str(err.value)
    assert not plan_wave(manifest, settings).rows_held   # refused, not also counted as held
    assert e.present(e.dc, "u/1")


def test_a_declared_region_the_cloud_contradicts_is_refused(sandbox: SandboxState, tmp_path: Path) -> None:
    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e)[:1])
    e.wave(US)
    text = (tmp_path / "wave.toml").read_text().replace('region = "us-east-1"', 'region = "ap-southeast-1"', 1)
    (tmp_path / "wave.toml").write_text(text)
    plan = plan_wave(manifest, load_wave(tmp_path / "wave.toml", {}, sandbox.env()))
    assert any("declares region ap-southeast-1, the cloud says us-east-1" in r for r in plan.refusals), plan.refusals


def test_a_missing_source_bucket_fails_its_rows_in_plan_and_run(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    e = Estate(sandbox, tmp_path)
    rows = _rows(e)[:3]
    gone = unique("egone")
    text_rows = [*rows, {"source": f"s3://{gone}/x", "destination": f"oci://{e.ns}/{e.dst}/x", "residency": "US"}]
    manifest = e.manifest(text_rows)
    e.wave(US)
    text = (tmp_path / "wave.toml").read_text().replace(f'buckets = ["{e.aws}", ',
                                                        f'buckets = ["{gone}", "{e.aws}", ')
    (tmp_path / "wave.toml").write_text(text)
    settings = load_wave(tmp_path / "wave.toml", {}, sandbox.env())
    plan = plan_wave(manifest, settings)
    assert not plan.refusals and plan.rows_failing == {"source not found": 1}
    result = run_wave(manifest, tmp_path / "st", load_signer(keys[0]), settings)
    assert (result.removed, result.failed) == (3, 1)
    assert result.held_rows == [(4, "FAILED", f"source not found: s3://aws-us@{gone}/x")]


def test_an_outage_in_one_location_fails_only_its_rows(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e)[:3])
    # The data centre's endpoint is down (nothing listens on port 9 of loopback).
    settings = e.wave(US, dc_endpoint="https://127.0.0.1:9")
    result = run_wave(manifest, tmp_path / "st", load_signer(keys[0]), settings)
    states = {row: state for row, state, _ in result.held_rows}
    assert states == {1: "FAILED", 2: "FAILED"} and result.removed == 1   # the GCS row went through
    assert e.present(e.dc, "u/1")


def test_a_resume_is_bound_to_the_estate_unless_allowed_and_then_attested(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e)[:3])
    signer = load_signer(keys[0])
    first = run_wave(manifest, tmp_path / "st", signer, e.wave(US, dc_endpoint="https://127.0.0.1:9"))
    assert first.failed == 2
    # The endpoint URL is information only (the same store by another hostname): not a change.
    again = run_wave(manifest, tmp_path / "st", signer, e.wave(US))
    assert again.complete and again.removed == 3
    # A location's identity is: the refusal names the one field that changed.
    extra = unique("eextra")
    e.wave(US)
    wave = tmp_path / "wave.toml"
    wave.write_text(wave.read_text().replace(f'buckets = ["{e.dst}"]', f'buckets = ["{e.dst}", "{extra}"]'))
    changed = load_wave(wave, {}, sandbox.env())
    with pytest.raises(StateError) as err:
        run_wave(manifest, tmp_path / "st", signer, changed)
    assert f'locations.oci-us.buckets ["{e.dst}"] (this run: ["{e.dst}", "{extra}"])' in str(err.value)
    run_wave(manifest, tmp_path / "st", signer, changed, allow_changed_policy=True)
    statement = json.loads(base64.b64decode(json.loads((tmp_path / "st" / "attestation.json").read_text())["payload"]))
    [change] = statement["predicate"]["policy_changes"]
    assert change["changed"] == {"locations.oci-us.buckets": {"before": [e.dst], "after": [e.dst, extra]}}


def _auditor_file(e: Estate, path: Path, owner: str | None = None) -> Path:
    """The auditor's own locations file: the attested identities, their own way in (here the sandbox by
    another hostname, ``localhost``, and their own choices of addressing and config), and no buckets."""
    s = e.sandbox
    url = {name: ep.url.replace("127.0.0.1", "localhost") for name, ep in (("s3", s.s3), ("gs", s.gcs),
                                                                           ("oci", s.oci))}
    trust = f'ca_bundle = "{s.ca_file}"\n' if s.ca_file else ""
    assert s.s3dc is not None
    dc = s.s3dc.url.replace("127.0.0.1", "localhost")
    path.write_text(
        f'[locations.dc]\nkind = "s3"\nregion = "us-east-1"\nendpoint = "{dc}"\n'
        f'addressing_style = "path"\nprofile = "{AWS_PROFILE_DC}"\n{trust}'
        f'[locations.aws-us]\nkind = "s3"\nregion = "us-east-1"\nendpoint = "{url["s3"]}"\n'
        f'addressing_style = "path"\n{trust}'
        f'[locations.gcp]\nkind = "gs"\nendpoint = "{url["gs"]}"\n{trust}'
        f'[locations.oci-us]\nkind = "oci"\nregion = "us-ashburn-1"\nowner = "{owner or e.ns}"\n'
        f'endpoint = "{url["oci"]}"\nconfig_file = "{s.oci_config}"\n{trust}')
    return path


def test_the_auditor_reaches_each_attested_location_through_their_own_file(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from migrator.attest.live import check_live
    from migrator.live_stores import attested_locations, auditor_estate, reach_scope
    from migrator.stores.registry import Stores

    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e))
    settings = e.wave(US + 'other_residency = "out-of-scope"\n')
    run_wave(manifest, tmp_path / "st", load_signer(keys[0]), settings)
    att = (tmp_path / "st" / "attestation.json").read_bytes()
    records = (tmp_path / "st" / "records.jsonl").read_bytes()
    assert [loc["name"] for loc in attested_locations(att)] == ["aws-us", "dc", "gcp", "oci-us"]
    auditor = _auditor_file(e, tmp_path / "auditor.toml")
    estate = auditor_estate(att, auditor)
    assert estate.get("dc").buckets == (e.dc, e.shared)            # the attestation's word
    stores = Stores(dataclasses.replace(load_wave(None, {}, sandbox.env()).stores, locations=estate.locations))
    policy = Threshold([load_public_key(keys[1])])
    report = check_live(att, records, policy, reach_scope(att, stores), sample=4, seed=1, download=True)
    assert report.ok, [f for r in report.results for f in r.findings if not f.ok]
    rows = {r.row: r for r in report.results}
    assert rows[4].state == "OUT_OF_SCOPE" and [f.check for f in rows[4].findings] == ["untouched"]
    assert rows[2].findings[-1].uri == f"s3://dc@{e.shared}/u/2"   # read in the data centre, not in AWS
    # The EU user's object, left untouched by the wave, deleted since: the live check names it.
    s3_client(sandbox, "s3dc").delete_object(Bucket=e.dc, Key="eu/4")
    row = check_live(att, records, policy, reach_scope(att, stores), sample=4, seed=1, download=False).results[3]
    [bad] = row.problems
    assert (bad.check, bad.uri) == ("untouched", f"s3://dc@{e.dc}/eu/4") and "removed or deleted since" in bad.detail
    # Another owner is refused, naming the field, before any store is built.
    with pytest.raises(InputError, match="has owner") as exc:
        auditor_estate(att, _auditor_file(e, tmp_path / "other.toml", owner="otherns"))
    assert exc.value.field == "locations.oci-us.owner"


def test_audit_check_with_the_auditors_locations_file(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    """As the auditor runs it: exit 0 when the sample holds; 2, before any sample, for a missing location."""
    import subprocess
    import sys

    e = Estate(sandbox, tmp_path)
    settings = e.wave(US + 'other_residency = "out-of-scope"\n')
    run_wave(e.manifest(_rows(e)), tmp_path / "st", load_signer(keys[0]), settings)
    auditor = _auditor_file(e, tmp_path / "auditor.toml")
    check = [sys.executable, "-m", "migrator", "audit", "check", str(tmp_path / "st" / "attestation.json"),
             "--live", "--key", str(keys[1]), "--sample", "4", "--seed", "7"]
    proc = subprocess.run([*check, "--locations", str(auditor)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[ok] untouched s3://dc@{e.dc}/eu/4" in proc.stdout and "every sampled object holds" in proc.stdout
    auditor.write_text(auditor.read_text().replace("[locations.gcp]", "[locations.gcp-old]"))
    proc = subprocess.run([*check, "--locations", str(auditor)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "gcp, which this file does not map" in proc.stderr, proc.stderr
    # The auditor's own endpoint is down, or reaches another store: exit 2 before any sample, naming it.
    good = _auditor_file(e, tmp_path / "good.toml").read_text()
    assert sandbox.s3dc is not None
    dc_url = sandbox.s3dc.url.replace("127.0.0.1", "localhost")
    for text, words in ((good.replace(dc_url, "https://127.0.0.1:9"), "cannot reach"),
                        (good.replace(AWS_PROFILE_DC, AWS_PROFILE_AWS), "refuses your access")):   # AWS's keys
        auditor.write_text(text)
        proc = subprocess.run([*check, "--locations", str(auditor)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and "field 'locations.dc'" in proc.stderr and words in proc.stderr, proc.stderr
        assert "[FAIL]" not in proc.stdout


def test_audit_prove_takes_the_uri_with_or_without_its_location(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from migrator.attest.recindex import prove_record_file

    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e)[:3])
    run_wave(manifest, tmp_path / "st", load_signer(keys[0]), e.wave(US))
    att, recs = (tmp_path / "st" / "attestation.json").read_bytes(), tmp_path / "st" / "records.jsonl"
    for use_index in (True, False):
        qualified = prove_record_file(att, recs, f"s3://dc@{e.shared}/u/2", use_index=use_index)
        bare = prove_record_file(att, recs, f"s3://{e.shared}/u/2", use_index=use_index)
        assert qualified == bare and bare["object_uri"] == f"s3://dc@{e.shared}/u/2"
        with pytest.raises(InputError, match="no record of this wave names"):
            prove_record_file(att, recs, f"s3://aws-us@{e.shared}/u/2", use_index=use_index)


def test_an_s3_location_of_another_owner_is_refused_before_any_write(
        sandbox: SandboxState, tmp_path: Path, keys: tuple[Path, Path]) -> None:
    from migrator.sandbox.control import AWS_OWNER, DC_OWNER

    e = Estate(sandbox, tmp_path)
    manifest = e.manifest(_rows(e)[:1])
    e.wave(US)
    wave = tmp_path / "wave.toml"
    owned = wave.read_text().replace('addressing_style = "path"\n', 'addressing_style = "path"\nowner = "{}"\n')
    wave.write_text(owned.format(DC_OWNER))
    plan = plan_wave(manifest, load_wave(wave, {}, sandbox.env()))
    assert plan.ready and not plan.refusals
    used = {b["bucket"]: b for loc in plan.estate or [] for b in loc["used"]}
    assert used[f"s3://dc@{e.dc}"]["owner"] == DC_OWNER
    assert used[f"s3://dc@{e.dc}"]["owner_source"] == "ExpectedBucketOwner"
    wave.write_text(owned.format(AWS_OWNER))   # the data centre's bucket is not AWS's account's
    with pytest.raises(InputError, match="access denied"):
        run_wave(manifest, tmp_path / "st", load_signer(keys[0]), load_wave(wave, {}, sandbox.env()))
    assert e.present(e.dc, "u/1") and not (tmp_path / "st" / "journal.sqlite").exists()
