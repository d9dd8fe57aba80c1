"""The command line. The only module that prints or exits."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, TyperOption

from migrator import __version__
from migrator.errors import MigratorError
from migrator.files import read_input

if TYPE_CHECKING:
    from typer._click import Command, Context, Parameter  # typer's own click, which its classes use

    from migrator.attest.policy import Threshold
    from migrator.attest.tlog import LogStorage
    from migrator.config import WaveSettings
    from migrator.events import EventSink
    from migrator.plan import WavePlan
    from migrator.rehearsal import Rehearsal
    from migrator.runner import RunControls, WaveResult
    from migrator.stopping import Stopper
    from migrator.stores.registry import Stores

# What --help shows beside a value: a word for the user (FILE, DIR, N, TEXT), never a Python type.
_WORDS = {"path": "PATH", "Path": "PATH", "file": "FILE", "dir": "DIR", "str": "TEXT", "int": "N",
          "float": "NUMBER", "bool": "BOOL"}


class _Argument(TyperArgument):
    """An argument's help shows its name as the user types it (MANIFEST) and no type beside it."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return None


def _user_facing(param: Parameter, ctx: Context) -> None:
    """Typer (0.2x) prints each parameter's Python type as its metavar: ``<path>``, ``<list[Path]>``,
    ``<str>``, and ``<bool>`` even beside flags and --help. A flag gets none; an option without an explicit
    ``metavar=`` gets the word for its type; an argument is named in capitals, as click does. Idempotent."""
    if isinstance(param, TyperArgument):
        if param.metavar is None and param.name:
            param.metavar = param.name.upper()
        if type(param) is TyperArgument and hasattr(TyperArgument, "display_type_rich"):
            param.__class__ = _Argument
    elif isinstance(param, TyperOption) and param.metavar is None:
        if param.is_flag or param.count:
            param.metavar = ""
        elif hasattr(param, "display_type"):
            label = param.display_type(ctx).strip("<>")
            inner = label.removeprefix("list[").removesuffix("]")
            if inner in _WORDS:
                param.metavar = _WORDS[inner]


class _Group(TyperGroup):
    """Every group and command of the CLI gets user-facing metavars (``_user_facing``) before help is shown."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        for param in params:
            _user_facing(param, ctx)
        return params

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            for param in command.get_params(ctx):
                _user_facing(param, ctx)
        return command


app = typer.Typer(help="Move regulated objects into OCI Object Storage and prove the sources are gone.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False, cls=_Group)
sandbox_app = typer.Typer(help="Local S3, GCS and OCI endpoints on 127.0.0.1 for demos and tests.",
                          no_args_is_help=True, cls=_Group)
app.add_typer(sandbox_app, name="sandbox")
keys_app = typer.Typer(help="Signing keys for attestations.", no_args_is_help=True, cls=_Group)
app.add_typer(keys_app, name="keys")
manifest_app = typer.Typer(help="Manifests: one row per object to move.", no_args_is_help=True, cls=_Group)
app.add_typer(manifest_app, name="manifest")
audit_app = typer.Typer(help="Check attestations: the auditor's side.", no_args_is_help=True, cls=_Group)
app.add_typer(audit_app, name="audit")
log_app = typer.Typer(help="The append-only log of every wave's attestation.", no_args_is_help=True, cls=_Group)
audit_app.add_typer(log_app, name="log")
subjects_app = typer.Typer(help="The custodian's side of subject completeness: the key and keyed hashes.",
                           no_args_is_help=True, cls=_Group)
app.add_typer(subjects_app, name="subjects")

# Everything printed is plain text: bucket names, keys, reasons and paths are the users', and rich would turn
# ":smile:" into an emoji and "[red]" into a style (both even with markup=False on a call, for emoji).
out = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)

DirOpt = Annotated[Path, typer.Option("--dir", metavar="DIR", help="Sandbox state folder.")]


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        out.print(f"migrator {__version__}")
        raise typer.Exit(0)


@sandbox_app.command("up")
def sandbox_up(directory: DirOpt = Path(".migrator-sandbox"),
               http: Annotated[bool, typer.Option("--http", help="Plain HTTP instead of HTTPS.")] = False) -> None:
    """Start the endpoints in the background and record them. They speak HTTPS with a certificate from the
    sandbox's own CA (in the state folder); `sandbox env` exports what the SDKs need to trust it. The data
    centre's S3 and OCI's EU region are there for a wave file's [locations] (see docs/sandbox.md)."""
    from migrator.sandbox import control

    state = control.up(directory, tls=not http)
    out.print(f"S3  (moto)            {state.s3.url}  owner {control.AWS_OWNER}, profile {control.AWS_PROFILE_AWS}",
              markup=False)
    if state.s3dc is not None:
        out.print(f"S3  data centre       {state.s3dc.url}  owner {control.DC_OWNER}, profile "
                  f"{control.AWS_PROFILE_DC}, path-style only", markup=False)
    out.print(f"GCS (migrator)        {state.gcs.url}", markup=False)
    out.print(f"OCI (migrator)        {state.oci.url}  {control.OCI_REGION}, namespace {state.oci_namespace}",
              markup=False)
    if state.oci_eu is not None:
        out.print(f"OCI EU (migrator)     {state.oci_eu.url}  {control.OCI_EU_REGION}, namespace "
                  f"{state.oci_namespace}", markup=False)
    if state.aws_credentials is not None:
        out.print(f"AWS profiles          {state.aws_credentials} (AWS_SHARED_CREDENTIALS_FILE in `sandbox env`)",
                  markup=False)
    if state.ca_file is not None:
        out.print(f"CA bundle             {state.ca_file}")
    out.print(f"state in {state.directory}; `eval \"$(migrator sandbox env --dir {directory})\"` to use it")


@sandbox_app.command("env")
def sandbox_env(directory: DirOpt = Path(".migrator-sandbox")) -> None:
    """Print export lines that point the SDKs (and migrator) at the sandbox."""
    from migrator.sandbox import control

    for k, v in control.load(directory).env().items():
        print(f"export {k}={shlex.quote(v)}")


@sandbox_app.command("down")
def sandbox_down(directory: DirOpt = Path(".migrator-sandbox")) -> None:
    """Stop the endpoints."""
    from migrator.sandbox import control

    if control.down(directory, missing_ok=True):
        out.print("sandbox stopped")
    else:
        out.print(f"no sandbox recorded in {directory}")


@keys_app.command("generate")
def keys_generate(out_dir: Annotated[Path, typer.Option(
    "--out", metavar="DIR", help="Folder for signing.key and signing.pub.")],
                  algorithm: Annotated[str, typer.Option(help="ed25519 or ecdsa-p256.")] = "ed25519") -> None:
    """Write DIR/signing.key (mode 0600) and DIR/signing.pub (PEM)."""
    from migrator.attest.keys import generate_keypair, keyid, load_public_key

    if algorithm not in ("ed25519", "ecdsa-p256"):
        raise typer.BadParameter("want ed25519 or ecdsa-p256", param_hint="--algorithm")
    key, pub = generate_keypair(out_dir, algorithm)  # type: ignore[arg-type]
    out.print(f"private key {key} (mode 0600: keep it secret)")
    out.print(f"public key  {pub}")
    out.print(f"keyid       {keyid(load_public_key(pub))}")


@manifest_app.command("validate")
def manifest_validate(file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSONL manifest.")],
                      wave: Annotated[Path | None, typer.Option(
                          "--wave", metavar="FILE",
                          help="Wave file: URIs resolve against its \\[locations.NAME] tables, and its "
                                   "residency policy is checked row by row.")] = None,
                      ) -> None:
    """Check every row; print a summary, or one line naming the file, line and field of the first error.

    With --wave, also the wave's residency, row by row (exit 2 naming every refused row). No cloud is
    asked: `migrator plan` checks the buckets, owners and regions.
    """
    import os

    from migrator.config import load_wave
    from migrator.manifest import validate
    from migrator.preflight import check_offline

    settings = load_wave(wave, {}, os.environ)
    policy = settings.policy
    if policy.residency is not None:
        summary, pre = check_offline(file, settings)
    else:
        summary, pre = validate(file, estate=settings.estate), None
    out.print(f"{file}: {summary.rows} rows ({summary.format}), sha256 {summary.sha256}")
    for loc, n in sorted(summary.sources_by_location.items()):
        out.print(f"  {loc}: {n}")
    if summary.declared_bytes:
        out.print(f"  declared bytes: {summary.declared_bytes}")
    if summary.subjects:
        out.print(f"  data subjects: {summary.subjects} (run needs the custodian's --subject-hashes; "
                  "see `migrator subjects --help`)")
    if pre is not None:
        moved = summary.rows - pre.out_of_scope - pre.refused_rows - pre.bucket_rows
        out.print(f"  residency {policy.residency}: {moved} row(s) to move, {pre.out_of_scope} out of scope "
                  f"(left untouched), {pre.refused_rows + pre.bucket_rows} refused", markup=False)
        for refusal in pre.refusals:
            out.print(f"    {refusal}", markup=False)
        out.print("  buckets, owners and the regions the clouds report: not checked here (`migrator plan --wave` "
                  "asks the clouds)")
        if pre.refusals:
            raise typer.Exit(2)


def _print_wave(result: WaveResult, console: Console | None = None) -> None:
    console = console or out
    if result.reused:
        console.print(f"wave {result.wave_id} finished earlier: its attestation stands and is not signed again "
                      "(--reattest signs it again)")
    console.print(f"wave {result.wave_id}: {result.rows} objects, {result.bytes} bytes")
    console.print(f"  removed {result.removed}, held {result.held}, failed {result.failed}"
                  + (f", out of scope (untouched) {result.out_of_scope}" if result.out_of_scope else ""))
    exceptions = [r for r in result.held_rows if r[1] != "OUT_OF_SCOPE"]   # those are counted above
    for row, state, reason in exceptions[:50]:
        console.print(f"  row {row}: {state} - {reason}")
    if len(exceptions) > 50:
        console.print(f"  ... {len(exceptions) - 50} more in {result.records}")
    snap = result.snapshot
    if snap is not None and snap.elapsed_seconds > 0:
        from migrator.display import human_bytes, human_duration

        console.print(f"  this run: {human_bytes(snap.bytes_this_run)} in {human_duration(snap.elapsed_seconds)}"
                      f" ({human_bytes(snap.bytes_this_run / snap.elapsed_seconds)}/s)")
    console.print(f"records     {result.records}")
    console.print(f"attestation {result.attestation}")


def _byte_rate(text: str | None) -> int | None:
    """--bw-limit: bytes a second, with rclone's binary suffixes (K, M, G, T: KiB..TiB; B or none: bytes)."""
    import re

    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:/s)?\s*", text, re.IGNORECASE)
    if m is None:
        raise typer.BadParameter(f"{text!r}: want bytes a second, e.g. 50M (50 MiB/s), 800K or 1G",
                                 param_hint="--bw-limit")
    return int(float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2).lower() or "_"))


class _Run:
    """The run in progress, for the signal handler: its stopper, and whether stderr shows a live display
    (whose hidden cursor a hard stop restores)."""

    stopper: Stopper | None = None
    live = False


class _LiveControls:
    """The run's controls (events to every sink, the stopper the signal handler sets) and, on a terminal,
    a rich Live display on stderr fed by the same events."""

    def __init__(self, show_progress: bool, sinks: list[EventSink], reattest: bool) -> None:
        from migrator.display import LiveView
        from migrator.events import Fanout
        from migrator.runner import RunControls
        from migrator.stopping import Stopper

        self.view = LiveView() if show_progress else None
        self.stopper = Stopper()
        every = [*sinks, *([self.view] if self.view is not None else [])]
        self.controls = RunControls(events=Fanout(every) if every else None, stopper=self.stopper,
                                    reattest=reattest)
        self._live: Any = None

    def __enter__(self) -> RunControls:
        _Run.stopper = self.stopper
        if self.view is not None:
            from rich.live import Live

            self._live = Live(console=err, get_renderable=self.view.render, refresh_per_second=4,
                              redirect_stdout=False, redirect_stderr=False, transient=False)
            self._live.start()
            _Run.live = True
        return self.controls

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
        _Run.stopper, _Run.live = None, False


@app.command("run")
def run(manifest: Annotated[Path, typer.Argument(help="The wave's manifest.")],
        state: Annotated[Path, typer.Option("--state", metavar="DIR",
                                            help="State folder: journal, lock, records, attestation.")],
        signing_key: Annotated[str, typer.Option(
            "--signing-key", metavar="KEY",
            help="Key file (0600) or signer spec: file:PATH, awskms:KEY_ID, ocikms:OCID@ENDPOINT.")],
        subject_hashes: Annotated[Path | None, typer.Option(
            "--subject-hashes", metavar="FILE",
            help="The custodian's keyed hashes of the manifest's subjects.")] = None,
        wave: Annotated[Path | None, typer.Option(
            "--wave", metavar="FILE",
            help="Wave file (TOML): \\[policy], \\[transfer] and \\[locations.NAME] tables.")] = None,
        versions: Annotated[str | None, typer.Option(
            metavar="WHICH",
            help="all: migrate every version (default); current: delete noncurrent versions unmigrated, "
                 "each recorded as disposed by policy.")] = None,
        soft_delete: Annotated[str | None, typer.Option(
            "--soft-delete", metavar="MODE",
            help="GCS: require-off (default) holds buckets with soft delete on; "
                 "attest-pending deletes and keeps the wave incomplete until hard deletion.")] = None,
        second_read: Annotated[bool | None, typer.Option(
            "--second-read/--no-second-read", help="Allow a second read as the last source evidence.")] = None,
        allow_unprotected_destination: Annotated[bool, typer.Option(
            "--allow-unprotected-destination",
            help="Delete sources even when the destination bucket is neither versioned nor retained.")] = False,
        bypass_governance: Annotated[bool, typer.Option(
            "--bypass-governance", help="Delete S3 GOVERNANCE-locked versions (needs the permission).")] = False,
        concurrency: Annotated[int | None, typer.Option(metavar="N", help="Objects in flight (default 16).")] = None,
        tps_limit: Annotated[float | None, typer.Option(
            "--tps-limit", metavar="N",
            help="At most N requests a second, every cloud together (0: no cap; per location: the wave file).")] = None,
        bw_limit: Annotated[str | None, typer.Option(
            "--bw-limit", metavar="RATE",
            help="At most RATE bytes a second copied, e.g. 50M (MiB/s), 800K, 1G (0: no cap).")] = None,
        attestation_log: Annotated[str | None, typer.Option(
            "--attestation-log", "--log", metavar="LOG",
            help="Append the attestation to this transparency log: a folder or oci://ns/bucket/prefix "
                 "(--log: the old name).")] = None,
        log_origin: Annotated[str | None, typer.Option(
            "--attestation-log-origin", "--log-origin", metavar="ORIGIN", help="The log's origin line.")] = None,
        events: Annotated[str | None, typer.Option(
            "--events", metavar="FILE|-",
            help="Append JSON-lines events (docs/events.md) to FILE, or write them to stdout (-).")] = None,
        log_file: Annotated[Path | None, typer.Option(
            "--log-file", metavar="FILE",
            help="Append an operational JSON log: one line per step, with the cloud's request id.")] = None,
        json_out: Annotated[bool, typer.Option(
            "--json", help="Print the result as JSON on stdout (with --events -: the last event, type summary).")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary; errors only.")] = False,
        progress: Annotated[bool | None, typer.Option(
            "--progress/--no-progress", help="Live progress on stderr (default: when stderr is a terminal).")] = None,
        reattest: Annotated[bool, typer.Option(
            "--reattest", help="Sign a finished wave's attestation again (default: show the existing one).")] = False,
        allow_changed_policy: Annotated[bool, typer.Option(
            "--allow-changed-policy",
            help="Resume under a policy or locations that differ from the first run's (the attestation "
                 "records the change).")] = False,
        ) -> None:
    """Copy, verify, delete and attest a wave. Running it again resumes it.

    Ctrl-C (or SIGTERM) stops cleanly: the steps in flight are journaled, open uploads aborted, and running
    the same command again resumes; a second Ctrl-C stops at once, the journal intact.

    Exit 0 when every row was removed, 1 when rows are held or failed, 2 on bad input or usage,
    3 when the --attestation-log log does not verify (its entries or signed checkpoint),
    130 when stopped by SIGINT (Ctrl-C), 143 when stopped by SIGTERM.
    """
    import os

    from migrator.attest.signers import load_signer_spec
    from migrator.attest.subjects import load_subject_hashes
    from migrator.config import load_wave
    from migrator.errors import WaveStopped
    from migrator.runner import run_wave
    from migrator.state_files import state_folder_warnings

    settings = load_wave(wave, {
        "versions": versions, "soft_delete": soft_delete, "second_read": second_read, "concurrency": concurrency,
        "require_destination_protection": False if allow_unprotected_destination else None,
        "bypass_governance": True if bypass_governance else None,
        "requests_per_second": tps_limit, "bytes_per_second": _byte_rate(bw_limit)}, os.environ)
    if attestation_log is not None and not log_origin:
        raise typer.BadParameter("--attestation-log needs --attestation-log-origin",
                                 param_hint="--attestation-log-origin")
    events_to_stdout = events == "-"
    # stdout carries one thing: the events, or the JSON result, or the human summary.
    human = None if quiet or json_out else (err if events_to_stdout else out)
    hasher = load_subject_hashes(subject_hashes) if subject_hashes is not None else None
    # Once: a cloud signer makes its clients and fetches its public key when it is made.
    signer = load_signer_spec(signing_key, settings.signers)
    log_storage = None
    if attestation_log is not None and log_origin:
        from migrator.attest import tlog
        from migrator.stores.registry import Stores

        log_storage = _open_log(attestation_log, Stores(settings.stores) if attestation_log.startswith("oci://")
                                else None)
        tlog.check_appendable(log_storage, log_origin)   # before any copy or delete, not after the wave
    for warning in state_folder_warnings(state):
        err.print(f"warning: {warning}")
    sinks, closers = _event_sinks(events, log_file)
    show = (err.is_terminal and not quiet and not (events_to_stdout and out.is_terminal)) \
        if progress is None else progress and not quiet
    wave_id = None
    stopped: WaveStopped | None = None
    try:
        live = _LiveControls(show, sinks, reattest)
        with live as controls:
            try:
                result = run_wave(manifest, state, signer, settings, controls=controls, subject_hasher=hasher,
                                  allow_changed_policy=allow_changed_policy)
            except WaveStopped as exc:
                wave_id = live.view.wave_id if live.view is not None else None
                stopped = exc
        if stopped is not None:
            record = {"status": "stopped", "signal": stopped.signal_name, "exit_code": stopped.exit_code,
                      "resume": "run the same command again", "state": str(state)}
            _summary(record, sinks, json_out, events_to_stdout, wave_id)
            err.print(str(stopped))
            raise typer.Exit(stopped.exit_code)
        entry = None
        if log_storage is not None and log_origin:
            entry = tlog.append(log_storage, result.attestation.read_bytes(), signer, log_origin)
        record = {"status": "complete" if result.complete else "incomplete", **result.as_record(),
                  "exit_code": 0 if result.complete else 1,
                  "log_entry": None if entry is None else {"seq": entry.seq, "wave_id": entry.wave_id}}
        _summary(record, sinks, json_out, events_to_stdout, result.wave_id)
        if human is not None:
            _print_wave(result, human)
            if entry is not None:
                human.print(f"log entry {entry.seq} for {entry.wave_id}"
                            + (f" (supersedes {entry.supersedes[:16]}...)" if entry.supersedes else ""))
    finally:
        for close in closers:
            close()
    for sink in sinks:
        failed = getattr(sink, "failed", None)
        if failed:
            err.print(f"warning: {getattr(sink, 'what', 'events')} stopped being written: {failed}")
    raise typer.Exit(0 if result.complete else 1)


def _event_sinks(events: str | None, log_file: Path | None) -> tuple[list[EventSink], list[Any]]:
    from migrator.events import JsonLines, open_events
    from migrator.oplog import OpLog

    sinks: list[EventSink] = []
    closers: list[Any] = []
    if events == "-":
        sinks.append(JsonLines(sys.stdout))
    elif events is not None:
        sink = open_events(Path(events), "--events file")
        sinks.append(sink)
        closers.append(sink.close)
    if log_file is not None:
        oplog = OpLog(open_events(log_file, "--log-file"))
        sinks.append(oplog)
        closers.append(oplog.close)
    return sinks, closers


def _summary(record: dict[str, Any], sinks: list[EventSink], json_out: bool, events_to_stdout: bool,
             wave_id: str | None) -> None:
    """--json: the result on stdout; when the events are on stdout too, as their last event (type summary)."""
    import json as _json

    if not json_out:
        return
    record = {k: v for k, v in record.items() if k != "wave_id"}
    if events_to_stdout:
        from migrator.events import event

        sinks[0].emit(event("summary", wave_id, **record))
    else:
        print(_json.dumps({"schema": "migrator.summary/1", "wave_id": wave_id, **record}, sort_keys=True,
                          default=str))


@app.command("rehearse")
def rehearse_cmd(manifest: Annotated[Path, typer.Argument(help="The wave's manifest (CSV or JSONL).")],
                 wave: Annotated[Path | None, typer.Option(
                     "--wave", metavar="FILE",
                     help="The real wave file: its policy and \\[locations.NAME], pointed at the sandbox.")] = None,
                 scale: Annotated[float, typer.Option(
                     metavar="F", help="Seed each object at its declared size times F (default 1).")] = 1.0,
                 sample: Annotated[int | None, typer.Option(
                     metavar="N", help="Rehearse N rows drawn at random, and project the rest from them.")] = None,
                 versions: Annotated[int, typer.Option(
                     metavar="N", help="Versions seeded per source object (default 1).")] = 1,
                 seed: Annotated[int, typer.Option(metavar="N", help="Seed of the sample and the bytes.")] = 0,
                 directory: Annotated[Path | None, typer.Option(
                     "--dir", metavar="DIR",
                     help="Keep the rehearsal here: its manifest, state, keys (default: a temp folder, removed).")
                 ] = None,
                 json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
                 ) -> None:
    """Rehearse a whole wave on the sandbox: no real cloud is touched.

    Every location's endpoint, credentials and owner are replaced by the sandbox's (the credential files
    the wave file names are never opened), objects shaped like the manifest are seeded, the wave runs
    with the real policy and its attestation is verified. Reports refusals, held rows, requests per
    object, the projected duration at the wave's caps, and what a rehearsal cannot predict.

    Exit 0 when every in-scope row was removed and the attestation verified, 1 when the rehearsal
    shows rows held or failed (or the attestation does not verify), 2 on bad input or a refused wave,
    130/143 when stopped.
    """
    import json as _json
    import shutil
    import tempfile

    from migrator.errors import WaveStopped
    from migrator.rehearsal import RehearsalOptions, rehearse

    options = RehearsalOptions(scale=scale, sample=sample, versions=versions, seed=seed)
    folder = directory or Path(tempfile.mkdtemp(prefix="migrator-rehearsal-"))
    try:
        with _LiveControls(err.is_terminal and not json_out, [], reattest=False) as controls:
            result = rehearse(manifest, wave, folder, options, controls=controls)
    except WaveStopped as exc:
        err.print(f"{exc} (`migrator rehearse` starts afresh)")
        raise typer.Exit(exc.exit_code) from None
    finally:
        if directory is None:
            shutil.rmtree(folder, ignore_errors=True)
    if json_out:
        out.print(_json.dumps(result.as_record(), indent=2))
    else:
        _print_rehearsal(result)
    if not result.ok:
        raise typer.Exit(1)


def _print_rehearsal(r: Rehearsal) -> None:
    from migrator.display import human_bytes, human_duration

    p = r.projection
    out.print(f"rehearsal of {r.manifest}: {p.rows} rows, {p.in_scope_rows} in scope; on the sandbox, no real cloud")
    for line in r.placement:
        out.print(f"  {line}")
    s = r.seeded
    out.print(f"seeded {s.rows} row(s): {s.objects} object(s), {human_bytes(s.bytes)}")
    w = r.wave
    out.print(f"wave {w.wave_id}: removed {w.removed}, held {w.held}, failed {w.failed}, "
              f"out of scope (untouched) {w.out_of_scope}")
    for n, ln, st, why in r.not_removed[:50]:
        out.print(f"  {r.manifest}:{ln}: row {n}: {st} - {why}")
    if len(r.not_removed) > 50:
        out.print(f"  ... {len(r.not_removed) - 50} more")
    out.print("attestation verified" if r.verified else f"attestation NOT verified: {r.verify_error}")
    by = ", ".join(f"{name} {n}" for name, n in r.requests_by_endpoint.items() if n)
    out.print(f"requests: {p.requests} ({by}); {p.requests_per_object:g} per object")
    out.print(f"projection for {p.in_scope_rows} in-scope row(s), {human_bytes(p.declared_bytes)} declared"
              + (f" ({p.rows_without_size} row(s) declare no size)" if p.rows_without_size else "")
              + f": {p.projected_requests} requests")
    if p.seconds is None:
        out.print("  no caps (tps or bandwidth) in the wave: its duration is the clouds', not projected")
    else:
        out.print(f"  at the caps ({'; '.join(p.caps)}): at least {human_duration(p.seconds)}")
        for cap, seconds in p.bounds:
            out.print(f"    {human_duration(seconds):>10}  {cap}")
    for note in r.notes:
        out.print(f"note: {note}")
    out.print("not predicted by a rehearsal:")
    for item in r.cannot_predict:
        out.print(f"  - {item}")
    out.print("ready: the wave would remove every in-scope row" if r.ok else "NOT ready: see above")


@app.command("plan")
def plan(manifest: Annotated[Path, typer.Argument(help="The wave's manifest.")],
         wave: Annotated[Path | None, typer.Option(
             "--wave", metavar="FILE", help="Wave file (TOML), as for run.")] = None,
         soft_delete: Annotated[str | None, typer.Option("--soft-delete", help="As for run.")] = None,
         allow_unprotected_destination: Annotated[bool, typer.Option(
             "--allow-unprotected-destination", help="As for run.")] = False,
         list_objects: Annotated[bool, typer.Option(
             "--list/--no-list", help="List every source, replica and destination key (batched, as a wave "
                                      "does); --no-list checks only the manifest and the buckets.")] = True,
         as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
         ) -> None:
    """What a wave would find and hold, without copying, deleting or writing anything.

    Exit 0 when no row would be held for a bucket's settings and every source exists, 1 otherwise,
    2 on bad input or when `run` would refuse the wave (residency, destinations, regions).
    """
    import json as _json
    import os

    from migrator.config import load_wave
    from migrator.plan import plan_wave

    settings = load_wave(wave, {
        "soft_delete": soft_delete,
        "require_destination_protection": False if allow_unprotected_destination else None}, os.environ)
    result = plan_wave(manifest, settings, list_objects=list_objects)
    if as_json:
        print(_json.dumps(result.as_record(), indent=2, sort_keys=True))
    else:
        m = result.manifest
        out.print(f"{manifest}: {m.rows} rows, {m.declared_bytes} declared bytes, sha256 {m.sha256}", markup=False)
        for name, count in sorted(result.found.items()):
            out.print(f"  {name}: {count}", markup=False)
        for verb, counts in (("hold", result.rows_held), ("fail", result.rows_failing)):
            for reason, count in sorted(counts.items()):
                out.print(f"  would {verb} {count} row(s): {reason}", markup=False)
                for example in result.examples.get(reason, []):
                    out.print(f"    {example}", markup=False)
        for location, entry in sorted(result.locations.items()):
            roles = ", ".join(f"{role} {n}" for role, n in sorted(entry["roles"].items()))
            found = ", ".join(f"{k} {v}" for k, v in sorted((entry.get("settings") or {}).items()))
            out.print(f"  {location}: {roles}; {found}", markup=False)
        for need in result.needs:
            out.print(f"  run will need {need}", markup=False)
        _print_estate(result)
        if result.refusals:
            out.print(f"refused: run would stop before any write ({len(result.refusals)} refusal(s)):")
            for refusal in result.refusals:
                out.print(f"  {refusal}", markup=False)
        else:
            out.print("ready" if result.ready
                      else "not ready: fix the above, or expect those rows to be held or failed")
    raise typer.Exit(2 if result.refusals else 0 if result.ready else 1)


def _print_estate(result: WavePlan) -> None:
    if result.residency is not None:
        r = result.residency
        out.print(f"  residency: moves {r['moves']} rows into {', '.join(r['allowed_regions'])}; rows of another "
                  f"residency: {r['other_residency']}; rows without a tag: "
                  f"{'refused' if r['require_residency'] else 'moved'}", markup=False)
    if result.out_of_scope:
        out.print(f"  out of scope (another residency, left untouched): {result.out_of_scope} row(s)")
    for loc in result.estate or []:
        out.print(f"  location {loc['name']}: {loc['kind']} region {loc['region'] or '-'} owner {loc['owner'] or '-'} "
                  f"endpoint {loc['endpoint'] or '(the cloud' + chr(39) + 's own)'}", markup=False)
        for b in loc["used"]:
            how = "verified by" if b["region_verified"] else "unverified:"
            state = " MISSING" if b.get("missing") else f" ERROR {b['error']}" if b.get("error") else ""
            out.print(f"    {b['bucket']}: {', '.join(b['roles'])}; {b['rows']} row(s); region {b['region'] or '-'}"
                      f" ({how} {b['region_source']}); owner {b['owner'] or '-'} ({b['owner_source']}){state}",
                      markup=False)


@app.command("status")
def status(state: Annotated[Path, typer.Option("--state", metavar="DIR", help="State folder of a wave.")],
           json_out: Annotated[bool, typer.Option("--json", help="Print the status as one JSON object.")] = False,
           ) -> None:
    """A wave's state, from another terminal while it runs or after: whether a run is going on, rows by
    state, bytes, rate and ETA, per location, the rows held or failed and why, and the attestation's state.
    Reads only: the journal read-only, the run's last progress snapshot, the lock."""
    import json as _json

    from migrator.display import human_bytes, human_duration
    from migrator.state_files import state_folder_warnings
    from migrator.status import wave_status

    st = wave_status(state)
    if json_out:
        print(_json.dumps(st.as_record(), sort_keys=True, default=str))
        return
    for warning in state_folder_warnings(state):
        err.print(f"warning: {warning}")
    out.print(f"wave {st.wave_id}: {st.run}" + (f" (pid {st.pid})" if st.pid else ""))
    out.print(f"  manifest sha256 {st.manifest_sha256}")
    out.print("  policy " + ", ".join(f"{k} {_json.dumps(v)}" for k, v in sorted(st.policy.items())))
    out.print(f"  rows {st.rows}: " + ", ".join(f"{k.lower()} {v}" for k, v in st.by_state.items()))
    p = st.progress
    if p is not None:
        total = p.get("bytes_total")
        out.print(f"  bytes {human_bytes(int(p.get('bytes_done') or 0))}"
                  + (f" of {human_bytes(int(total))}" if total else "")
                  + f", {human_bytes(float(p.get('bytes_per_second') or 0))}/s, "
                    f"{float(p.get('objects_per_second') or 0):.1f} objects/s, "
                    f"ETA {human_duration(p.get('eta_seconds'))}  (as of {p.get('updated')})")
        for name, f in (p.get("by_location") or {}).items():
            out.print(f"  location {name or '-'}: {f.get('rows', 0)} rows, reached {f.get('reached', 0)}, "
                      f"{human_bytes(int(f.get('bytes', 0)))}"
                      + "".join(f", {k.lower()} {v}" for k, v in (f.get("by_state") or {}).items()))
    for x in st.exceptions:
        out.print(f"  row {x['row']}: {x['state']} - {x['reason']}")
    if st.exceptions_total > len(st.exceptions):
        out.print(f"  ... {st.exceptions_total - len(st.exceptions)} more held or failed (`status --json` "
                  f"shows the first {len(st.exceptions)}; records.jsonl has all once attested)")
    a = st.attestation
    if a["state"] == "none":
        out.print("  attestation: none yet")
    elif a["state"] == "unreadable":
        out.print(f"  attestation: unreadable ({a['error']})")
    else:
        out.print(f"  attestation: {a['state']}" + (" (the next run signs it again)" if a["state"] == "stale" else "")
                  + f", complete {_json.dumps(a.get('complete'))}, signed {a.get('finished')}: {a['path']}")


@audit_app.command("verify")
def audit_verify(attestation: Annotated[Path, typer.Argument(help="attestation.json (DSSE envelope).")],
                 key: Annotated[list[Path], typer.Option(
                     "--key", metavar="FILE", help="Trusted public key (PEM); repeatable.")],
                 threshold: Annotated[int, typer.Option(help="Signatures needed from distinct keys.")] = 1,
                 records: Annotated[Path | None, typer.Option(metavar="FILE", help="records.jsonl to check.")] = None,
                 manifest: Annotated[Path | None, typer.Option(
                     metavar="FILE", help="The wave's manifest to check.")] = None,
                 subjects: Annotated[Path | None, typer.Option(metavar="FILE", help="subjects.jsonl to check.")] = None,
                 subject_key: Annotated[Path | None, typer.Option(
                     "--subject-key", metavar="FILE",
                     help="The custodian's subject key: check every subject's hash.")] = None,
                 ) -> None:
    """Verify an attestation offline. Exit 0 when every check holds, 3 naming the failed check.

    The policy follows the flags: the --key/--threshold signatures always; the records, the manifest and
    the subject index when given (the subject key's hashes with --records too). What was not checked is said.
    """
    from migrator.attest.policy import AllOf, Inputs, Policy, RequireManifest, RequireRecords, RequireSubjectIndex
    from migrator.attest.subjects import load_subject_key
    from migrator.attest.verify import verify_attestation

    for given in (attestation, records, manifest, subjects):
        if given is not None:
            _read_check(given)
    envelope = read_input(attestation)
    demands: list[Policy] = [_threshold(key, threshold)]
    demands += [RequireRecords()] if records is not None else []
    demands += [RequireManifest()] if manifest is not None else []
    hasher = load_subject_key(subject_key) if subject_key else None
    if subjects is not None:
        demands.append(RequireSubjectIndex(hasher if records is not None else None))
    verified = verify_attestation(envelope, Inputs(records=records, manifest=manifest, subjects=subjects),
                                  AllOf(*demands))
    p = verified.predicate
    t = p.get("totals", {})
    untouched = f", out of scope {t['out_of_scope']}" if "out_of_scope" in t else ""
    out.print(f"wave {p.get('wave_id')}: {t.get('rows')} rows, removed {t.get('removed')}, held {t.get('held')}, "
              f"failed {t.get('failed')}{untouched}, complete {str(p.get('complete')).lower()}")
    out.print(f"signed by {', '.join(verified.signed_by)}")
    out.print(f"merkle root {verified.merkle_root.hex()} over {verified.tree_size} records"
              + ("" if verified.records_checked else " (records not checked: pass --records)"))
    if not verified.manifest_checked:
        out.print("manifest not checked: pass --manifest")
    if p.get("subjects") and not verified.subjects_checked:
        out.print("subject index not checked: pass --subjects")
    elif verified.subjects_checked and hasher is not None and not verified.records_checked:
        out.print("subject hashes not checked against the subject key: pass --records")
    out.print("verified")


@audit_app.command("prove")
def audit_prove(attestation: Annotated[Path, typer.Argument(help="attestation.json (DSSE envelope).")],
                object_uri: Annotated[str | None, typer.Argument(help="An object URI named by a record.")] = None,
                records: Annotated[Path | None, typer.Option(
                    metavar="FILE", help="records.jsonl (default: beside it).")] = None,
                row: Annotated[int | None, typer.Option(help="Which record, when several name the URI.")] = None,
                subject: Annotated[str | None, typer.Option(
                    metavar="ID", help="Prove every record of this subject.")] = None,
                subject_key: Annotated[Path | None, typer.Option(
                    "--subject-key", metavar="FILE", help="The custodian's key.")] = None,
                subjects: Annotated[Path | None, typer.Option(
                    metavar="FILE", help="subjects.jsonl (default: beside it).")] = None,
                index: Annotated[Path | None, typer.Option(
                    metavar="FILE",
                    help="records.idx, to find the record without a scan (default: beside the records; "
                         "untrusted: every proof is checked against the signed root).")] = None,
                ) -> None:
    """Print an inclusion proof of one record, or of all of one subject's records and that there are no others."""
    import json as _json

    from migrator.attest.proofs import prove_subject
    from migrator.attest.recindex import prove_record_file
    from migrator.attest.subjects import load_subject_key
    from migrator.errors import InputError

    recs = records or attestation.parent / "records.jsonl"
    _read_check(recs)
    if subject is not None:
        if subject_key is None:
            raise InputError("--subject needs --subject-key (the custodian's key)")
        index = subjects or attestation.parent / "subjects.jsonl"
        _read_check(index)
        proof = prove_subject(read_input(attestation), recs, index, subject, load_subject_key(subject_key))
    elif object_uri is not None:
        from migrator.uri import parse_uri

        parse_uri(object_uri, field="OBJECT_URI")   # a malformed URI is bad input, not "no record names it"
        # Without a location name it also finds the one record naming it in one location (proofs.py).
        proof = prove_record_file(read_input(attestation), recs, object_uri, row=row, index=index)
    else:
        raise InputError("give an OBJECT_URI or --subject ID")
    print(_json.dumps(proof, indent=2, sort_keys=True))


@audit_app.command("verify-proof")
def audit_verify_proof(proof: Annotated[Path, typer.Argument(help="A proof from `audit prove`.")],
                       attestation: Annotated[Path, typer.Option(
                           "--attestation", metavar="FILE", help="The signed attestation.")],
                       key: Annotated[list[Path], typer.Option(
                           "--key", metavar="FILE", help="Trusted public key; repeatable.")],
                       threshold: Annotated[int, typer.Option(help="Signatures needed.")] = 1,
                       subject_key: Annotated[Path | None, typer.Option(
                           "--subject-key", metavar="FILE",
                           help="The custodian's subject key, for a subject proof.")] = None) -> None:
    """Check a proof against the signed root, without the records file. Exit 0, or 3 naming the failure."""
    from migrator.attest.proofs import VerifiedSubjectProof, verify_any_proof
    from migrator.attest.subjects import load_subject_key

    verified = verify_any_proof(read_input(proof), read_input(attestation), _threshold(key, threshold),
                                subject_key=load_subject_key(subject_key) if subject_key else None)
    kind = "subject" if isinstance(verified, VerifiedSubjectProof) else "record"
    out.print(f"verified: {kind} proof against the signed root")


@audit_app.command("cosign")
def audit_cosign(attestation: Annotated[Path, typer.Argument(help="attestation.json to co-sign in place.")],
                 signing_key: Annotated[str, typer.Option(
                     "--signing-key", metavar="KEY", help="Key file or signer spec.")],
                 key: Annotated[list[Path], typer.Option(
                     "--key", metavar="FILE", help="Keys trusted to have signed it already.")],
                 threshold: Annotated[int, typer.Option(help="Signatures it must already carry.")] = 1,
                 output: Annotated[Path | None, typer.Option(
                     "-o", "--output", metavar="FILE", help="Write here instead.")] = None,
                 ) -> None:
    """Add a custodian's signature. Refuses an attestation that does not verify."""
    import stat

    from migrator.attest.cosign import cosign
    from migrator.attest.signers import load_signer_spec
    from migrator.attest.verify import parse_attestation
    from migrator.files import replace_atomically

    signer = load_signer_spec(signing_key, _env_settings().signers)
    envelope = read_input(attestation)
    signed = cosign(envelope, signer, _threshold(key, threshold))
    target = output or attestation
    # In place (e.g. in a state folder, 0600), the file keeps its mode; replace_atomically would give 0666 & ~umask.
    mode = stat.S_IMODE(target.stat().st_mode) if target.is_file() else 0o666
    replace_atomically(target, signed, mode=mode)
    n = len(parse_attestation(signed)[0].signatures)
    out.print(f"co-signed {target} as {signer.keyid}; it now carries {n} signatures")


@subjects_app.command("key")
def subjects_key(output: Annotated[Path, typer.Option(
    "--out", metavar="FILE", help="Where to create the key (0600).")]) -> None:
    """(Custodian) Create the HMAC key that hides subject ids in the subject index."""
    from migrator.attest.subjects import generate_subject_key

    k = generate_subject_key(output)
    out.print(f"subject key {output} (mode 0600: the custodian keeps it); key id {k.key_id}")


@subjects_app.command("hash")
def subjects_hash(key: Annotated[Path, typer.Option("--key", metavar="FILE", help="The custodian's subject key.")],
                  manifest: Annotated[Path, typer.Option("--manifest", metavar="FILE", help="The wave's manifest.")],
                  output: Annotated[Path, typer.Option(
                      "-o", "--output", metavar="FILE", help="Keyed hashes for the wave.")]) -> None:
    """(Custodian) Keyed hashes of the manifest's subjects, for `run --subject-hashes`."""
    from migrator.attest.subjects import load_subject_key, write_subject_hashes
    from migrator.manifest import iter_rows, validate

    validate(manifest, estate=None)   # subjects need no locations: URIs are checked as written
    subjects = (r.subject for r in iter_rows(manifest, estate=None) if r.subject)
    n = write_subject_hashes(load_subject_key(key), subjects, output)
    out.print(f"{n} subjects hashed into {output}")


def _read_check(p: Path) -> None:
    """Fail with a clear message before a library call gets a path it cannot open."""
    from migrator.errors import InputError

    if not p.is_file():
        raise InputError(f"cannot read {p}: no such file")


def _vkey(text: str) -> str:
    from migrator.errors import InputError

    p = Path(text)
    if not p.exists():
        return text
    try:
        return read_input(p, "verifier key").decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start + 1} of the file); a verifier key file holds "
                         "one vkey line", file=str(p)) from None


def _threshold(key: list[Path], threshold: int) -> Threshold:
    """The signature policy of --key (repeatable) and --threshold."""
    from migrator.attest.keys import load_public_key
    from migrator.attest.policy import Threshold

    return Threshold([load_public_key(k) for k in key], threshold)


def _open_log(loc: str, stores: Stores | None = None) -> LogStorage:
    """A log folder, or an oci:// log through ``stores`` (default: built from the environment)."""
    from migrator import logstore

    if loc.startswith("oci://"):
        if stores is None:
            from migrator.stores.registry import Stores

            stores = Stores(_env_settings().stores)
        return logstore.open_log(loc, stores.get("oci"))
    return logstore.open_log(Path(loc))


def _env_settings() -> WaveSettings:
    """For commands without a wave file: the defaults, and the environment's endpoints and SDK config."""
    import os

    from migrator.config import load_wave

    return load_wave(None, {}, os.environ)


@audit_app.command("check")
def audit_check(attestation: Annotated[Path, typer.Argument(help="attestation.json (DSSE envelope).")],
                key: Annotated[list[Path], typer.Option(
                    "--key", metavar="FILE", help="Trusted public key (PEM); repeatable.")],
                live: Annotated[bool, typer.Option("--live", help="Check the clouds now (read calls only).")] = False,
                sample: Annotated[int, typer.Option(help="Records to check.")] = 20,
                seed: Annotated[int | None, typer.Option(help="Sampling seed (printed when not given).")] = None,
                download: Annotated[bool, typer.Option(help="Read destination bytes and compare SHA-256.")] = False,
                threshold: Annotated[int, typer.Option(help="Signatures needed from distinct keys.")] = 1,
                records: Annotated[Path | None, typer.Option(
                    metavar="FILE", help="records.jsonl (default: beside it).")] = None,
                locations: Annotated[Path | None, typer.Option(
                    "--locations", metavar="FILE",
                    help="Your \\[locations.NAME] tables: your endpoint and read-only credentials "
                                        "for each location the attestation names.")] = None,
                as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Spot-check a reproducible random sample of records against the clouds, with read-only access.

    Exit 0 only when every sampled object holds; 3 otherwise; 2 when a store cannot be reached, or the
    locations file does not map every attested location to the same identity.
    """
    import dataclasses
    import json as _json
    import secrets

    from migrator.attest.live import check_live
    from migrator.errors import InputError
    from migrator.live_stores import auditor_estate, probe_locations, reach_scope
    from migrator.stores.registry import Stores

    if not live:
        raise InputError("audit check needs --live (offline checks are `audit verify`)")
    seed = secrets.randbelow(2**63) if seed is None else seed
    att = read_input(attestation)
    estate = auditor_estate(att, locations)
    settings = dataclasses.replace(_env_settings().stores, locations=estate.locations)
    stores = Stores(settings)
    store_for = reach_scope(att, stores)
    probe_locations(att, stores, locations)   # an unreachable or wrong store stops here, before any sample
    report = check_live(att, read_input(records or attestation.parent / "records.jsonl", "records"),
                        _threshold(key, threshold), store_for, sample=sample, seed=seed, download=download)
    if as_json:
        print(_json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        for r in report.results:
            out.print(f"row {r.row} {r.state} {'ok' if r.ok else 'FAIL'}", markup=False)
            for f in r.findings:
                out.print(f"  [{'ok' if f.ok else 'FAIL'}] {f.check} {f.uri}: {f.detail}", markup=False)
        summary = ", ".join(f"{k} {v}" for k, v in report.summary().items())
        out.print(f"wave {report.wave_id}: {summary}; seed {report.seed}"
                  f"{'; bytes downloaded' if download else ''}", markup=False)
        out.print("every sampled object holds" if report.ok else "NOT every sampled object holds")
    raise typer.Exit(0 if report.ok else 3)


@log_app.command("verify")
def log_verify(log: Annotated[str, typer.Option("--log", metavar="LOG", help="Log folder or oci://ns/bucket/prefix.")],
               key: Annotated[str, typer.Option(
                   "--key", metavar="VKEY", help="Verifier key (signed-note vkey, or a file).")],
               since: Annotated[Path | None, typer.Option(
                   metavar="FILE", help="A checkpoint saved earlier.")] = None) -> None:
    """Verify the latest checkpoint, every entry, and consistency with an earlier checkpoint."""
    from migrator.attest import tlog

    state = tlog.verify_log(_open_log(log), _vkey(key), read_input(since, "checkpoint") if since else None)
    out.print(f"log {state.origin}: {state.size} entries, {len(state.waves())} waves, root {state.root.hex()}")
    if state.since_size is not None:
        out.print(f"consistent with the checkpoint of size {state.since_size}")
    out.print("verified")


@log_app.command("prove")
def log_prove(wave: Annotated[str, typer.Argument(help="Wave id.")],
              log: Annotated[str, typer.Option(
                  "--log", metavar="LOG", help="Log folder or oci://ns/bucket/prefix.")]) -> None:
    """Print an inclusion proof of one wave's latest attestation in the log."""
    import json as _json

    from migrator.attest import tlog

    print(_json.dumps(tlog.prove_wave(_open_log(log), wave), indent=2, sort_keys=True))


@log_app.command("checkpoint")
def log_checkpoint(log: Annotated[str, typer.Option(
    "--log", metavar="LOG", help="Log folder or oci://ns/bucket/prefix.")],
                   output: Annotated[Path, typer.Option(
                       "-o", "--output", metavar="FILE", help="Where to save it.")]) -> None:
    """Save the log's current signed checkpoint (what the auditor saw)."""
    from migrator.attest import tlog
    from migrator.files import replace_atomically

    data = tlog.checkpoint(_open_log(log))
    replace_atomically(output, data)
    out.print(f"saved {output} ({data.decode().splitlines()[1]} entries)")


@keys_app.command("vkey")
def keys_vkey(key: Annotated[Path, typer.Option("--key", metavar="FILE", help="Public key (PEM).")],
              name: Annotated[str, typer.Option("--name", metavar="ORIGIN", help="The log's origin line.")]) -> None:
    """Print the signed-note verifier key (vkey) of a public key for a log origin."""
    from migrator.attest import notes
    from migrator.attest.keys import load_public_key

    print(notes.vkey(name, load_public_key(key)))


@app.command("demo")
def demo(directory: DirOpt = Path(".demo"),
         keep: Annotated[bool, typer.Option(help="Leave the sandbox running afterwards.")] = False) -> None:
    """Sandbox + seeded users' data + a whole wave into OCI + audit verify."""
    from migrator.demo import LOG_ORIGIN, run_demo
    from migrator.errors import WaveStopped

    try:
        with _LiveControls(err.is_terminal, [], reattest=False) as controls:
            result = run_demo(directory, keep=keep, controls=controls)
    except WaveStopped as exc:
        err.print(f"{exc} (`migrator demo` starts afresh)")
        raise typer.Exit(exc.exit_code) from None
    _print_wave(result.wave)
    out.print("attestation verified" if result.verified else "attestation NOT verified")
    for m in result.mismatches:
        out.print(f"unexpected: {m}", markup=False)
    if result.mismatches or not result.verified:
        raise typer.Exit(1)
    out.print(f"log         {result.log_dir} (origin {LOG_ORIGIN})")
    out.print(f"verified: every outcome matches the seeded data (audit with --key {result.public_key})")
    if keep:
        out.print(f"the sandbox is still running: eval \"$(migrator sandbox env --dir {result.sandbox_dir})\"")


@sandbox_app.command("faults")
def sandbox_faults(directory: DirOpt = Path(".migrator-sandbox"),
                   rate: Annotated[float, typer.Option(help="Share of requests that get a fault (0..1).")] = 0.0,
                   kinds: Annotated[str, typer.Option(
                       help="Comma-separated: 500, 503-slowdown, 429, reset-before, reset-after, timeout, "
                            "truncate, flip-get, flip-put.")] = "",
                   latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added to every request.")] = 0.0,
                   seed: Annotated[int, typer.Option(help="Seed of the fault draws.")] = 0,
                   off: Annotated[bool, typer.Option("--off", help="Turn faults and latency off.")] = False,
                   show: Annotated[bool, typer.Option("--show", help="Only print plans and counts.")] = False) -> None:
    """Inject faults and latency into all three sandbox endpoints, or show what was injected."""
    import json as _json

    from migrator.sandbox import control
    from migrator.sandbox.faults import FaultPlan, get_faults, set_faults

    state = control.load(directory)
    plan = None if off else FaultPlan(latency_ms=latency_ms, rate=rate, seed=seed,
                                      kinds=frozenset(k for k in kinds.split(",") if k))
    for ep in (state.s3, state.gcs, state.oci):
        snap = get_faults(ep.url, ca_file=state.ca_file) if show else set_faults(ep.url, plan, ca_file=state.ca_file)
        out.print(f"{ep.name}: {_json.dumps(snap, sort_keys=True)}", markup=False)


class _Interrupted(BaseException):
    """SIGINT or SIGTERM outside a wave, raised in place of KeyboardInterrupt: typer turns that into a
    silent exit 130, and the operator must be told what happened. A BaseException, as KeyboardInterrupt is,
    so no ``except Exception`` on the way up swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    """During a wave the first SIGINT/SIGTERM asks for a clean stop (the wave journals its steps in flight
    and aborts its open uploads); the second stops at once, as a kill would: the journal is written before
    each step, so it stays intact. Outside a wave: stop here. Only os.write: this runs between two bytecodes
    of the main thread, perhaps inside a print that holds the console's lock."""
    import os

    stopper = _Run.stopper
    if stopper is None:
        raise _Interrupted(signum)
    if not stopper.requested:
        stopper.request(signum)
        os.write(2, b"\nstopping: finishing the steps in flight and journaling them "
                    b"(Ctrl-C again stops at once; the journal stays intact)\n")
        return
    os.write(2, (b"\x1b[?25h" if _Run.live else b"")
             + b"\nstopped at once; run the same command again to resume\n")
    os._exit(128 + signum)


def main() -> None:
    import os
    import signal

    from migrator.errors import WaveStopped

    if os.environ.get("MIGRATOR_NO_BACKOFF") == "1":   # tests' CLI processes: retries do not sleep
        from migrator import retry

        retry.set_backoff(False)
    # Click handles usage errors (exit 2) and typer.Exit itself; migrator's own errors end here.
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # not when SIGINT is ignored
        signal.signal(signal.SIGINT, _on_signal)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_signal)
    try:
        app()
    except WaveStopped as exc:
        err.print(str(exc))
        sys.exit(exc.exit_code)
    except MigratorError as exc:
        err.print(f"error: {exc.diagnostics()}")
        sys.exit(exc.exit_code)
    except _Interrupted as exc:
        err.print("interrupted; run the same command again to resume")
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        err.print("interrupted; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
