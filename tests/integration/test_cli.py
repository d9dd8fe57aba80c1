"""The command line as a user meets it: the demo, exit codes, bad input, tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "migrator"]


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    where = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MIGRATOR_", "STORAGE_"))}
    # --keep: the auditor's live checks below need the clouds the wave ran against.
    proc = _run("demo", "--dir", str(where / ".demo"), "--keep", cwd=where, env=env)
    try:
        yield where, proc
    finally:
        _run("sandbox", "down", "--dir", str(where / ".demo" / "sandbox"))


def test_demo_runs_a_whole_wave_and_verifies(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    where, proc = demo
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "attestation verified" in proc.stdout
    assert "removed 218, held 3, failed 0" in proc.stdout
    for reason in ("S3 Object Lock legal hold", "divergent replica", "unlisted replication target"):
        assert reason in proc.stdout
    assert (where / "manifests" / "demo.jsonl").exists()
    assert "sandbox is still running" in proc.stdout


def test_audit_verify_cli_accepts_and_detects_tampering(demo: tuple[Path, subprocess.CompletedProcess[str]],
                                                        tmp_path: Path) -> None:
    where, _ = demo
    state, pub = where / ".demo" / "state", where / ".demo" / "keys" / "signing.pub"
    manifest = where / "manifests" / "demo.jsonl"
    ok = _run("audit", "verify", str(state / "attestation.json"), "--key", str(pub),
              "--records", str(state / "records.jsonl"), "--manifest", str(manifest))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified" in ok.stdout
    # A record changed after signing.
    lines = (state / "records.jsonl").read_text().splitlines(keepends=True)
    rec = json.loads(lines[0])
    rec["state"] = "REMOVED" if rec["state"] != "REMOVED" else "HELD"
    bad = tmp_path / "records.jsonl"
    bad.write_text(json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n" + "".join(lines[1:]))
    out = _run("audit", "verify", str(state / "attestation.json"), "--key", str(pub), "--records", str(bad))
    assert out.returncode == 3 and "subject records" in out.stderr
    # A manifest that is not the wave's.
    other = tmp_path / "m.jsonl"
    other.write_text(manifest.read_text().replace("us-0004", "us-0005", 1))
    out = _run("audit", "verify", str(state / "attestation.json"), "--key", str(pub), "--manifest", str(other))
    assert out.returncode == 3 and "subject manifest" in out.stderr
    # A payload byte changed.
    env = json.loads((state / "attestation.json").read_text())
    middle = "AAAA" if env["payload"][-8:-4] != "AAAA" else "BBBB"
    env["payload"] = env["payload"][:-8] + middle + env["payload"][-4:]
    forged = tmp_path / "attestation.json"
    forged.write_bytes(json.dumps(env, separators=(",", ":"), sort_keys=True).encode())
    out = _run("audit", "verify", str(forged), "--key", str(pub))
    assert out.returncode == 3


def test_manifest_validate_with_a_wave_checks_residency_row_by_row(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in (
        {"source": "s3://dc@users/a", "destination": "oci://ns/us/a", "residency": "US"},
        {"source": "s3://users/b", "destination": "oci://ns/us/b", "residency": "SG"},
        {"source": "s3://users/c", "destination": "oci://ns/us/c"},
        {"source": "s3://users/d", "destination": "oci://ns/eu/d", "residency": "US"})))
    wave = tmp_path / "wave.toml"
    locations = ('[locations.dc]\nkind = "s3"\nbuckets = ["users"]\n'
                 '[locations.oci-us]\nkind = "oci"\nregion = "us-ashburn-1"\nbuckets = ["us"]\n'
                 '[locations.oci-eu]\nkind = "oci"\nregion = "eu-frankfurt-1"\nbuckets = ["eu"]\n')
    wave.write_text(locations + '[policy]\nresidency = "US"\nallowed_regions = ["us-ashburn-1"]\n')
    out = _run("manifest", "validate", str(m), "--wave", str(wave))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "residency US: 1 row(s) to move, 0 out of scope (left untouched), 3 refused" in out.stdout
    assert f"{m}:2: residency: row 2 (s3://dc@users/b): residency 'SG'" in out.stdout
    assert f"{m}:3: residency: row 3 (s3://dc@users/c): no residency tag" in out.stdout
    # A destination whose location declares a region the policy does not allow: no cloud needed to say so.
    assert f"{m}:4: destination: row 4 (oci://oci-eu@ns/eu/d): destination region eu-frankfurt-1 is not allowed" \
        in out.stdout
    wave.write_text(locations + '[policy]\nresidency = "US"\nallowed_regions = ["us-ashburn-1"]\n'
                    'other_residency = "out-of-scope"\nrequire_residency = false\n')
    out = _run("manifest", "validate", str(m), "--wave", str(wave))
    assert out.returncode == 2 and "2 row(s) to move, 1 out of scope (left untouched), 1 refused" in out.stdout, \
        out.stdout + out.stderr
    assert "not checked here" in out.stdout
    # The option's help keeps its brackets (rich would read [locations.NAME] as markup and drop it).
    assert "[locations.NAME]" in _run("manifest", "validate", "--help").stdout


def test_bad_manifest_names_file_line_field_and_writes_nothing(tmp_path: Path) -> None:
    m = tmp_path / "bad.csv"
    m.write_text("source,destination\ns3://good-bucket/a,oci://ns/dest/a\nftp://x/y,oci://ns/dest/b\n")
    out = _run("manifest", "validate", str(m))
    assert out.returncode == 2
    assert "bad.csv" in out.stderr and "line 3" in out.stderr and "source" in out.stderr
    assert "Traceback" not in out.stderr
    keys = tmp_path / "keys"
    assert _run("keys", "generate", "--out", str(keys)).returncode == 0
    assert oct((keys / "signing.key").stat().st_mode & 0o777) == "0o600"
    run = _run("run", str(m), "--state", str(tmp_path / "state"), "--signing-key", str(keys / "signing.key"))
    assert run.returncode == 2 and "line 3" in run.stderr
    assert not (tmp_path / "state").exists()


def test_bad_wave_file_is_refused_before_the_state_folder_exists(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _run("keys", "generate", "--out", str(keys)).returncode == 0
    m = tmp_path / "m.csv"
    m.write_text("source,destination\ns3://good-bucket/a,oci://ns/dest/a\n")
    for text, words in (("[transfer]\npart_size = 1048576\n", "line 2, field 'transfer.part_size'"),
                        ("transfer = 5\n", "field 'transfer'"), ("policy = 5\n", "field 'policy'")):
        wave = tmp_path / "wave.toml"
        wave.write_text(text)
        for cmd in (("run", str(m), "--state", str(tmp_path / "state"), "--signing-key", str(keys / "signing.key")),
                    ("plan", str(m))):
            out = _run(*cmd, "--wave", str(wave))
            assert out.returncode == 2 and "wave.toml" in out.stderr and words in out.stderr, out.stderr
            assert "Traceback" not in out.stderr
        assert not (tmp_path / "state").exists()


def test_world_readable_signing_key_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _run("keys", "generate", "--out", str(keys)).returncode == 0
    (keys / "signing.key").chmod(0o644)
    m = tmp_path / "m.csv"
    m.write_text("source,destination\ns3://good-bucket/a,oci://ns/dest/a\n")
    out = _run("run", str(m), "--state", str(tmp_path / "state"), "--signing-key", str(keys / "signing.key"))
    assert out.returncode == 2 and "chmod 600" in out.stderr
    assert "PRIVATE KEY" not in out.stderr + out.stdout


def test_usage_errors_exit_2() -> None:
    assert _run("run").returncode == 2
    assert _run("no-such-command").returncode == 2


def test_auditor_session_live_checks_and_log(demo: tuple[Path, subprocess.CompletedProcess[str]],
                                             tmp_path: Path) -> None:
    where, _ = demo
    d = where / ".demo"
    env = dict(os.environ)
    for line in _run("sandbox", "env", "--dir", str(d / "sandbox")).stdout.splitlines():
        k, _, v = line.removeprefix("export ").partition("=")
        env[k] = v.strip("'")
    att, pub = str(d / "state" / "attestation.json"), str(d / "keys" / "signing.pub")
    # The demo's wave names locations, so the auditor maps each to their own access: here the same sandbox
    # endpoints, the attested identities, and no buckets (the attestation says them).
    wave = (d / "wave.toml").read_text().split("[policy]")[0]
    auditor = tmp_path / "auditor-locations.toml"
    auditor.write_text("".join(line + "\n" for line in wave.splitlines() if not line.startswith("buckets")))
    mine = ("--locations", str(auditor))
    live = _run("audit", "check", att, "--live", "--key", pub, "--sample", "8", "--seed", "1", *mine, env=env)
    assert live.returncode == 0 and "every sampled object holds" in live.stdout, live.stdout + live.stderr
    dl = _run("audit", "check", att, "--live", "--download", "--key", pub, "--sample", "4", "--seed", "2", *mine,
              env=env)
    assert dl.returncode == 0, dl.stdout + dl.stderr
    unmapped = _run("audit", "check", att, "--live", "--key", pub, env=env)
    assert unmapped.returncode == 2 and "--locations FILE" in unmapped.stderr, unmapped.stderr
    vkey = _run("keys", "vkey", "--key", pub, "--name", "demo.migrator.invalid/waves").stdout.strip()
    seen = tmp_path / "seen.ckpt"
    assert _run("audit", "log", "checkpoint", "--log", str(d / "log"), "-o", str(seen)).returncode == 0
    # A second wave appends to the log.
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                      verify=env["AWS_CA_BUNDLE"])   # the demo's sandbox has its own CA
    s3.create_bucket(Bucket="second-wave")
    s3.put_bucket_versioning(Bucket="second-wave", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="second-wave", Key="users/us-0999/a.txt", Body=b"second")
    m = tmp_path / "w2.csv"
    m.write_text(f"source,destination\ns3://second-wave/users/us-0999/a.txt,"
                 f"oci://{env['MIGRATOR_OCI_NAMESPACE']}/us-users/users/us-0999/a.txt\n")
    run = _run("run", str(m), "--state", str(tmp_path / "st"), "--signing-key", str(d / "keys" / "signing.key"),
               "--log", str(d / "log"), "--log-origin", "demo.migrator.invalid/waves", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    ok = _run("audit", "log", "verify", "--log", str(d / "log"), "--key", vkey, "--since", str(seen))
    assert ok.returncode == 0 and "consistent with the checkpoint of size 1" in ok.stdout, ok.stdout + ok.stderr
    # A dropped wave is detected.
    (d / "log" / "entries" / "000000000000.json").unlink()
    bad = _run("audit", "log", "verify", "--log", str(d / "log"), "--key", vkey, "--since", str(seen))
    assert bad.returncode == 3


def test_auditor_session_proofs_subjects_cosign_threshold(demo: tuple[Path, subprocess.CompletedProcess[str]],
                                                          tmp_path: Path) -> None:
    where, _ = demo
    d = where / ".demo"
    att = tmp_path / "attestation.json"
    att.write_bytes((d / "state" / "attestation.json").read_bytes())
    for name in ("records.jsonl", "subjects.jsonl"):
        (tmp_path / name).write_bytes((d / "state" / name).read_bytes())
    pub, skey = str(d / "keys" / "signing.pub"), str(d / "custodian" / "subject.key")
    full = _run("audit", "verify", str(att), "--key", pub, "--records", str(tmp_path / "records.jsonl"),
                "--manifest", str(where / "manifests" / "demo.jsonl"), "--subjects", str(tmp_path / "subjects.jsonl"),
                "--subject-key", skey)
    assert full.returncode == 0, full.stdout + full.stderr
    proof = _run("audit", "prove", str(att), "oci://sandboxns/us-users/users/us-0001/videos/holiday.mp4")
    assert proof.returncode == 0, proof.stderr
    malformed = _run("audit", "prove", str(att), "s9://bucket/key")
    assert malformed.returncode == 2 and "OBJECT_URI" in malformed.stderr and "Traceback" not in malformed.stderr
    nowhere = _run("audit", "prove", str(att), "s3://us-users-src/not/in/this/wave")
    assert nowhere.returncode == 2 and "no record of this wave names" in nowhere.stderr
    (tmp_path / "proof.json").write_text(proof.stdout)
    ok = _run("audit", "verify-proof", str(tmp_path / "proof.json"), "--attestation", str(att), "--key", pub)
    assert ok.returncode == 0 and "record proof" in ok.stdout
    forged = json.loads(proof.stdout)
    forged["audit_path"][0] = "00" * 32
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    bad = _run("audit", "verify-proof", str(tmp_path / "forged.json"), "--attestation", str(att), "--key", pub)
    assert bad.returncode == 3
    sproof = _run("audit", "prove", str(att), "--subject", "us-0001", "--subject-key", skey)
    assert sproof.returncode == 0, sproof.stderr
    assert len(json.loads(sproof.stdout)["records"]) >= 2
    (tmp_path / "sproof.json").write_text(sproof.stdout)
    ok = _run("audit", "verify-proof", str(tmp_path / "sproof.json"), "--attestation", str(att), "--key", pub,
              "--subject-key", skey)
    assert ok.returncode == 0 and "subject proof" in ok.stdout
    custodian = tmp_path / "custodian"
    assert _run("keys", "generate", "--out", str(custodian), "--algorithm", "ecdsa-p256").returncode == 0
    cos = _run("audit", "cosign", str(att), "--signing-key", str(custodian / "signing.key"), "--key", pub)
    assert cos.returncode == 0, cos.stderr
    two = _run("audit", "verify", str(att), "--key", pub, "--key", str(custodian / "signing.pub"), "--threshold", "2")
    assert two.returncode == 0, two.stdout + two.stderr
    other = tmp_path / "other"
    assert _run("keys", "generate", "--out", str(other)).returncode == 0
    untrusted = _run("audit", "verify", str(att), "--key", pub, "--key", str(other / "signing.pub"),
                     "--threshold", "2")
    assert untrusted.returncode == 3


def test_audit_verify_says_what_its_flags_left_unchecked(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    where, _ = demo
    d = where / ".demo"
    att, pub = str(d / "state" / "attestation.json"), str(d / "keys" / "signing.pub")
    alone = _run("audit", "verify", att, "--key", pub)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "(records not checked: pass --records)" in alone.stdout
    assert "manifest not checked: pass --manifest" in alone.stdout
    assert "subject index not checked: pass --subjects" in alone.stdout
    # The subject key's hashes are checked against the records' subjects: without --records, it says so.
    index = _run("audit", "verify", att, "--key", pub, "--subjects", str(d / "state" / "subjects.jsonl"),
                 "--subject-key", str(d / "custodian" / "subject.key"))
    assert index.returncode == 0, index.stdout + index.stderr
    assert "subject hashes not checked against the subject key: pass --records" in index.stdout
    assert "subject index not checked" not in index.stdout and index.stdout.endswith("verified\n")


def test_bad_places_and_files_are_clear_errors_that_write_nothing(tmp_path: Path) -> None:
    # Found by a new-user trial: each was a traceback (exit 1), or an error only after the wave had run.
    keys = tmp_path / "keys"
    assert _run("keys", "generate", "--out", str(keys)).returncode == 0
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"source":"s3://bucket-a/k","destination":"oci://ns/bucket-b/k"}\n')
    (tmp_path / "file").write_text("x")
    under_a_file = _run("run", str(manifest), "--state", str(tmp_path / "file" / "st"), "--signing-key",
                        str(keys / "signing.key"))
    assert under_a_file.returncode == 2 and "cannot create the folder" in under_a_file.stderr
    not_utf8 = tmp_path / "wave.toml"
    not_utf8.write_bytes(b"\xff\xfe[policy]\n")
    bad_wave = _run("plan", str(manifest), "--wave", str(not_utf8))
    assert bad_wave.returncode == 2 and "not valid UTF-8" in bad_wave.stderr
    log = tmp_path / "log"
    log.mkdir()
    (log / "log.json").write_bytes(b'{"format":"migrator-tlog/v1","origin":"one.invalid/waves"}')
    state = tmp_path / "state"
    other_origin = _run("run", str(manifest), "--state", str(state), "--signing-key", str(keys / "signing.key"),
                        "--log", str(log), "--log-origin", "other.invalid/waves")
    assert other_origin.returncode == 2 and "has origin 'one.invalid/waves'" in other_origin.stderr
    assert not state.exists(), "the wave ran before the log was checked"
    for proc in (under_a_file, bad_wave, other_origin):
        assert "Traceback" not in proc.stderr
    key = _run("subjects", "key", "--out", str(tmp_path / "custodian" / "subject.key"))
    assert key.returncode == 0 and (tmp_path / "custodian" / "subject.key").exists()


def test_ctrl_c_says_the_wave_can_be_resumed(tmp_path: Path, sandbox_env: dict[str, str]) -> None:
    """SIGINT while a request hangs (a loopback port that accepts and never answers): exit 130 with the
    words an operator needs, no traceback (typer alone would exit 130 in silence)."""
    import signal
    import socket
    import time

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = {**os.environ, **sandbox_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        m = tmp_path / "m.csv"
        m.write_text(f"source,destination\ns3://hang/a,oci://{sandbox_env['MIGRATOR_OCI_NAMESPACE']}/dest/a\n")
        proc = subprocess.Popen([*CLI, "plan", str(m)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # wait until the S3 request is in flight
            silent.settimeout(0.2)
            try:
                conn, _ = silent.accept()
                break
            except TimeoutError:
                assert proc.poll() is None, proc.communicate()
        else:
            proc.kill()
            pytest.fail("the CLI never reached the S3 endpoint")
        with conn:
            proc.send_signal(signal.SIGINT)
            out, errs = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + errs
    assert "interrupted; run the same command again to resume" in errs and "Traceback" not in errs


def test_user_files_that_are_not_utf8_are_bad_input_naming_the_file(tmp_path: Path) -> None:
    """Every text file a user hands migrator: a wave file, a manifest, a verifier key, an OCI config, subject
    hashes. Bytes that are not UTF-8 (\\xff\\xfe, or latin-1 é) are exit 2 with one error line naming the file."""
    keys = tmp_path / "keys"
    assert _run("keys", "generate", "--out", str(keys)).returncode == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\ns3://bucket-a/k,oci://ns/bucket-b/k\n")
    (tmp_path / "log").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MIGRATOR_", "STORAGE_"))}
    for data in (b"\xff\xfe[policy]\n", "# caf\u00e9\n".encode("latin-1")):
        bad = tmp_path / "bad.txt"
        bad.write_bytes(data)
        for cmd, cmd_env in (
                (("plan", str(manifest), "--no-list", "--wave", str(bad)), None),
                (("manifest", "validate", str(bad)), None),
                (("audit", "log", "verify", "--log", str(tmp_path / "log"), "--key", str(bad)), None),
                (("plan", str(manifest), "--no-list"), {**env, "MIGRATOR_OCI_CONFIG": str(bad)}),
                (("run", str(manifest), "--state", str(tmp_path / "st"), "--signing-key", str(keys / "signing.key"),
                  "--subject-hashes", str(bad)), None)):
            out = _run(*cmd, env=cmd_env)
            assert out.returncode == 2, (cmd, out.stdout, out.stderr)
            lines = out.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], (cmd, out.stderr)
    assert not (tmp_path / "st").exists()


def test_user_text_prints_verbatim_never_as_emoji_or_markup(tmp_path: Path) -> None:
    """Paths, keys and reasons are the users': rich must not read ":smile:" as an emoji or "[red]" as a style."""
    folder = tmp_path / "[red]x["   # with the file's name, the path reads .../[red]x[/red]:smile:.csv
    folder.mkdir()
    m = folder / "red]:smile:.csv"
    m.write_text("source,destination\ns3://bucket-a/:thumbs_up:[bold]k[/bold],oci://ns/bucket-b/k\n")
    ok = _run("manifest", "validate", str(m))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{m}: 1 rows"), ok.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("source,destination\ns3://ab/:thumbs_up:[bold]k[/bold],oci://ns/bucket-b/k\n")
    refused = _run("manifest", "validate", str(bad))
    assert refused.returncode == 2 and "s3://ab/:thumbs_up:[bold]k[/bold]" in refused.stderr, refused.stderr
    for text in (ok.stdout, refused.stderr):
        assert "\U0001f604" not in text and "\U0001f44d" not in text


def test_run_exits_3_when_its_log_does_not_verify_and_says_so_in_its_help(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert _run("keys", "generate", "--out", str(keys)).returncode == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text("source,destination\ns3://bucket-a/k,oci://ns/bucket-b/k\n")
    log = tmp_path / "log"
    log.mkdir()
    (log / "log.json").write_bytes(b'{ "origin": "one.invalid/waves" }')   # not canonical: altered by hand
    state = tmp_path / "state"
    out = _run("run", str(manifest), "--state", str(state), "--signing-key", str(keys / "signing.key"),
               "--log", str(log), "--log-origin", "one.invalid/waves")
    assert out.returncode == 3 and out.stderr == "error: log: log.json is not canonical JSON\n", out.stderr
    assert not state.exists()
    shown = " ".join(_run("run", "--help").stdout.split())
    assert "3 when the --attestation-log log does not verify" in shown
    assert "130 when stopped by SIGINT (Ctrl-C), 143 when stopped by SIGTERM" in shown
