"""Run the benchmark: `python -m benchmarks.run [--quick] [--cases 1,2,...] [--reps 3]`.

Writes benchmarks/results/latest.json (or --out), the same table as Markdown next to it (latest.md, for
docs/performance.md), and prints the table. Each case starts its own sandbox.
Ratios against rclone are taken between peers of the same case in the same run (median of the reps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.cases import CASES, MiB, Row, Settings, rows_as_json

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
SCALE_ENV = "MIGRATOR_BENCH_SCALE"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    try:
        from importlib.metadata import version

        versions = {p: version(p) for p in ("boto3", "botocore", "moto", "oci", "google-cloud-storage")}
    except Exception:  # noqa: BLE001 - informational only
        versions = {}
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory_mib": mem, "python": sys.version.split()[0],
            "platform": platform.platform(), "rclone": peers.rclone_version(), "packages": versions}


def targets(rows: list[Row]) -> list[dict[str, Any]]:
    """Issue 9's targets, each with the measured value and whether it is met."""
    out: list[dict[str, Any]] = []

    def find(case: str, peer: str = "migrator", variant: str | None = None) -> list[Row]:
        return [r for r in rows if r.case == case and r.peer == peer and (variant is None or r.variant == variant)]

    def add(name: str, value: float | None, goal: float, higher: bool, unit: str) -> None:
        met = None if value is None else (value >= goal if higher else value <= goal)
        out.append({"target": name, "value": value, "goal": goal, "unit": unit, "met": met})

    for r in find("1"):
        add(f"case 1 {r.variant}: objects/s vs rclone move", r.ratio_vs_rclone.get("objects_per_s"), 1.5, True, "x")
        add(f"case 1 {r.variant}: requests per object", r.metrics.get("requests_per_object"), 2.5, False, "req")
    for r in find("2"):
        add("case 2: MB/s vs rclone move", r.ratio_vs_rclone.get("mb_per_s"), 1.0, True, "x")
    for r in find("4"):
        add("case 4: peak RSS", r.metrics.get("peak_rss_mib"), 256, False, "MiB")
    for r in find("5"):
        add(f"case 5 {r.variant}: peak RSS", r.metrics.get("peak_rss_mib"), 512, False, "MiB")
    for r in find("6"):
        # The target is for a million records; a smaller (quick) run is dominated by start-up: n/a.
        full = (r.metrics.get("rows") or 0) >= 1_000_000
        add("case 6: audit verify of 1M records", r.metrics.get("wall_s") if full else None, 10, False, "s")
        add("case 6: one inclusion proof", r.metrics.get("inclusion_proof_ms"), 10, False, "ms")
    for r in find("7"):
        add("case 7: objects/s vs bound", r.metrics.get("fraction_of_bound"), 0.8, True, "of bound")
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


HEAD = ["case", "variant", "peer", "n", "obj or rows/s", "MB/s", "req/obj", "wall s", "CPU s", "RSS MiB", "x rclone",
        "limit"]


def _cells(r: Row) -> list[str]:
    m = r.metrics
    ratio = r.ratio_vs_rclone.get("mb_per_s" if r.case == "2" else "objects_per_s")
    n = r.objects or int(m.get("rows") or 0)
    return [r.case, r.variant, r.peer, f"{n:,}", _fmt(m.get("objects_per_s") or m.get("rows_per_s")),
            _fmt(m.get("mb_per_s")), _fmt(m.get("requests_per_object"), 2), _fmt(m.get("wall_s")),
            _fmt(m.get("cpu_s")), _fmt(m.get("peak_rss_mib"), 0), _fmt(ratio, 2),
            r.limit.split(":")[0] + ("" if all(rep.ok for rep in r.reps) else " [FAILED CHECK]")]


def table(rows: list[Row]) -> str:
    head = HEAD
    lines = [head] + [_cells(r) for r in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def markdown(result: dict[str, Any], rows: list[Row]) -> str:
    """The table, the targets and the notes as Markdown, for docs/performance.md."""
    m = result["machine"]
    lines = [f"Run {result['generated']} to {result['finished']}: `{result['command'].strip()}`", "",
             f"Machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_mib']:,} MiB memory, Python {m['python']}, "
             f"rclone {m['rclone'] or 'not installed'}; load average before/after "
             f"{result['load_before']} / {result['load_after']}.", ""]
    lines.append("| " + " | ".join(HEAD) + " |")
    lines.append("|" + "---|" * len(HEAD))
    for r in rows:
        lines.append("| " + " | ".join(_cells(r)) + " |")
    lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        state = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} {t['unit']} | {t['goal']} {t['unit']} | {state} |")
    notes = extras(rows)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", "Limits (CPU cores used during the run, median rep):", ""]
    lines += [f"- case {r.case} {r.variant} {r.peer}: {r.limit}" for r in rows if r.limit]
    return "\n".join(lines) + "\n"


def noise(rows: list[Row]) -> float | None:
    """Median CPU cores that processes other than the measured one and the sandbox used meanwhile."""
    shares = [rep.other_cpu_s / rep.wall_s for r in rows for rep in r.reps if rep.wall_s > 0]
    return statistics.median(shares) if shares else None


def extras(rows: list[Row]) -> list[str]:
    out = []
    other = noise(rows)
    if other is not None and other >= 0.25:
        out.append(f"WARNING: other processes used {other:.2f} of {os.cpu_count()} cores during the measured runs "
                   "(median): absolute numbers are perturbed; ratios between interleaved peers less so")
    for r in rows:
        m = r.metrics
        if r.case == "6" and "inclusion_proof_ms" in m:
            out.append(f"case 6: one inclusion proof {_fmt(m['inclusion_proof_ms'], 2)} ms, checking it offline "
                       f"{_fmt(m.get('verify_proof_ms'), 2)} ms"
                       + (f"; writing records.idx (once per wave) {_fmt(m['index_build_s'])} s, peak RSS "
                          f"{_fmt(m.get('index_build_peak_rss_mib'), 0)} MiB" if "index_build_s" in m else "")
                       + (f"; a fresh interpreter's proof with records.idx {_fmt(m['prove_indexed_s'])} s, "
                          f"by scan {_fmt(m.get('prove_scan_s'))} s" if "prove_indexed_s" in m else "")
                       + (f"; `migrator audit prove` end to end {_fmt(m['cli_prove_s'])} s, peak RSS "
                          f"{_fmt(m.get('cli_prove_peak_rss_mib'), 0)} MiB" if "cli_prove_s" in m else ""))
        if r.case == "7" and "bound_objects_per_s" in m:
            out.append(f"case 7 {r.peer}: {_fmt(m.get('objects_per_s'))} obj/s of a bound of "
                       f"{_fmt(m['bound_objects_per_s'])} ({_fmt(100 * (m.get('fraction_of_bound') or 0), 0)}%; "
                       f"latency bound {_fmt(m.get('latency_bound_objects_per_s'))}, capacity bound "
                       f"{_fmt(m.get('capacity_bound_objects_per_s'))} from "
                       f"{_fmt(m.get('capacity_requests_per_s'))} requests/s; "
                       f"{_fmt(m.get('requests_in_flight'), 2)} requests in flight on average)")
        if r.case in ("1", "2", "3", "7") and m.get("client_cpu_ms_per_object") is not None:
            out.append(f"case {r.case} {r.variant} {r.peer}: CPU per object {_fmt(m['client_cpu_ms_per_object'])} ms "
                       f"client + {_fmt(m.get('sandbox_cpu_ms_per_object'))} ms sandbox")
        if m.get("left_at_source"):
            out.append(f"case {r.case} {r.variant} {r.peer}: {_fmt(m['left_at_source'], 0)} versions or delete "
                       "markers left in the source bucket")
        for note in r.notes:
            out.append(f"case {r.case} {r.variant} {r.peer}: {note}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 rep, counts x0.1, 128 MiB large object")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case numbers (default: all)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per peer (default 3; --quick 1)")
    parser.add_argument("--scale", type=float, default=None,
                        help=f"multiply object, row and record counts (default 1; --quick 0.1; env {SCALE_ENV})")
    parser.add_argument("--concurrency", type=int, default=16, help="objects in flight for every peer")
    parser.add_argument("--latency-concurrency", type=int, default=4,
                        help="case 7's concurrency for every peer (default 4: latency-bound, not emulator-bound)")
    parser.add_argument("--big-mib", type=int, default=None, help="case 4's object size in MiB (default 1024)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--http", action="store_true",
                        help="run the sandbox over plain HTTP (default HTTPS, as the clouds are)")
    args = parser.parse_args(argv)

    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    scale = args.scale if args.scale is not None else float(os.environ.get(SCALE_ENV) or (0.1 if args.quick else 1.0))
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    big = (args.big_mib if args.big_mib is not None else (128 if args.quick else 1024)) * MiB
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="migrator-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(workdir=workdir.resolve(), reps=reps, scale=scale, concurrency=args.concurrency,
                        big_size=big, quick=args.quick, latency_concurrency=args.latency_concurrency,
                        tls=not args.http,
                        log=lambda msg: print(msg, file=sys.stderr, flush=True))
    # SIGTERM ends the run through the finally blocks, so each case's sandbox is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows: list[Row] = []
    errors: dict[str, str] = {}
    try:
        for case in wanted:
            print(f"case {case} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                rows.extend(CASES[case](settings))
            except Exception as exc:  # noqa: BLE001 - one broken case must not lose the others' results
                errors[case] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
            print(f"case {case} took {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    target_list = targets(rows)
    result: dict[str, Any] = {
        "generated": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"transport": "http" if args.http else "https",
                     "quick": args.quick, "reps": reps, "scale": scale, "concurrency": args.concurrency,
                     "big_object_mib": big // MiB, "latency_ms": settings.latency_ms,
                     "latency_concurrency": settings.latency_concurrency, "cases": wanted},
        "machine": machine(),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "other_processes_cores": noise(rows),
        "units": {"MB": "10^6 bytes", "MiB": "2^20 bytes", "cpu_s": "user + system seconds of the measured process",
                  "peak_rss_mib": "ru_maxrss of the measured process"},
        "rows": rows_as_json(rows),
        "targets": target_list,
        "errors": errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)
    args.out.with_suffix(".md").write_text(markdown(result, rows))
    print(table(rows))
    for line in extras(rows):
        print(line)
    for t in target_list:
        state = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        print(f"target {t['target']}: {_fmt(t['value'], 2)} {t['unit']} (goal {t['goal']}) {state}")
    for case, err in errors.items():
        print(f"case {case} failed: {err}")
    print(f"results in {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
