"""Verdict accuracy at the issue's size: 3,000 tests, 300 default-branch commits.

    .venv/bin/python -m bench.accuracy                  # full size
    .venv/bin/python -m bench.accuracy --scale small    # the test suite's size
    .venv/bin/python -m bench.accuracy --scale tiny     # a smoke run, minutes
    .venv/bin/python -m bench.accuracy --seed 7 --recompute

What it does, on the production stack (PostgreSQL + Redis + Celery + gunicorn):

1. Generates a synthetic CI history with known ground truth
   (flakewatch/synthetic_history.py): six jobs in five JUnit dialects
   (pytest, Surefire, jest-junit, gotestsum, cargo-nextest), in-run and
   job re-runs, feature branches, incidents whose texts name each test,
   flaky, broken, fixed and slow tests. The full size is about 2,300 uploads, 2 million executions and
   400 MB of XML; generating it takes about 20 s and 450 MB of memory.
2. Drops and re-creates its own database (``flakewatch_bench_accuracy``),
   flushes its own Redis db (``/13``), creates a project whose default
   branch is ``main``, and starts a Celery worker, beat and gunicorn. Beat's
   sweeper re-sends uploads whose enqueue was lost (Redis restarted by
   someone else mid-run); it waits 10 minutes, not the default 2, so that
   the backlog of a fast feed is not re-sent over and over.
3. POSTs every upload in history order (raw XML body, fields as query
   parameters) and waits, bounded, until every upload is processed and analysed.
4. Reads every verdict through ``GET /api/v1/projects/<slug>/tests`` and
   scores it against the truth: flaky precision and recall, broken and
   branch-broken tests called flaky, fixed tests reported fixed,
   first_flaky_commit accuracy, duration_regressed precision and recall.
5. With ``--recompute``, runs ``manage.py recompute`` and reports every
   verdict that the full recompute answers differently.

Prints the scores against the issue's targets and every misjudged test with
its evidence, and writes them as JSON to ``var/bench-accuracy.json``;
process logs go to ``var/bench/``. Exit status 0 when the run completed,
whether or not the targets were met.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from bench.environment import LOG_DIR, PYTHON, VAR, Bench
from flakewatch.synthetic_history import (
    SCALES,
    SEED,
    Verdict,
    generate_history,
    score,
)
from support import stack
from support.stack import ROOT, Processes, free_port, http_request

# Its own database and Redis db, so it never disturbs bench.ingest_speed's.
BENCH = Bench.named("flakewatch_bench_accuracy", "redis://127.0.0.1:6379/13")
# Read by the worker, which runs the sweep that beat schedules.
SWEEP_ENV = {"FLAKEWATCH_REQUEUE_AFTER_SECONDS": "600"}
# A smoke run: the generator's smallest history, not a figure to report.
SIZES = {**SCALES, "tiny": {"tests": 40, "commits": 20, "branches": 1, "incidents": 1}}
RESULTS_JSON = VAR / "bench-accuracy.json"
SLUG = "accuracy"
COMPARED = (
    "status",
    "flake_score",
    "flake_rate",
    "runs",
    "failures",
    "first_flaky_commit",
    "flaky_since",
    "duration_regressed",
)


def post_uploads(port: int, token: str, uploads) -> float:
    """POST every upload in order; return the seconds it took."""
    started = time.monotonic()
    for number, upload in enumerate(uploads, 1):
        status, raw = http_request(
            port,
            "POST",
            f"/api/v1/uploads?{urlencode(upload.params())}",
            body=upload.body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/xml",
            },
        )
        if status != 202:
            raise RuntimeError(f"upload {number} answered {status}: {raw[:300]!r}")
        if number % 250 == 0:
            print(f"  posted {number}/{len(uploads)}", flush=True)
    return time.monotonic() - started


def upload_counts(db) -> dict[str, int]:
    """Count uploads by stage; done but not yet analysed counts as 'analysing'."""
    rows = db.execute(
        "SELECT CASE WHEN u.status = 'done' AND u.analyzed_at IS NULL"
        " THEN 'analysing' ELSE u.status END AS stage, count(*)"
        " FROM flakewatch_upload u"
        " JOIN flakewatch_project p ON p.id = u.project_id WHERE p.slug = %s"
        " GROUP BY stage",
        (SLUG,),
    ).fetchall()
    return dict(rows)


def wait_until_processed(db, expected: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        counts = upload_counts(db)
        # Verdicts are read once every upload is stored and analysed.
        pending = sum(counts.get(s, 0) for s in ("queued", "processing", "analysing"))
        if sum(counts.values()) >= expected and not pending:
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"uploads still pending after {timeout:.0f}s: {counts}")
        if time.monotonic() - last_report > 30:
            print(f"  processing: {counts}", flush=True)
            last_report = time.monotonic()
        time.sleep(1)


def read_verdicts(port: int, token: str) -> dict[tuple, Verdict]:
    verdicts: dict[tuple, Verdict] = {}
    path = f"/api/v1/projects/{SLUG}/tests?page=1"
    while path:
        status, raw = http_request(
            port, "GET", path, headers={"Authorization": f"Bearer {token}"}
        )
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {raw[:300]!r}")
        body = json.loads(raw)
        for row in body["results"]:
            key = (row["suite"], row["classname"], row["name"], row["file"])
            verdicts[key] = Verdict(
                status=row["status"],
                flake_score=row["flake_score"],
                flake_rate=row["flake_rate"],
                runs=row["runs"],
                failures=row["failures"],
                first_flaky_commit=row["first_flaky_commit"] or "",
                duration_regressed=row["duration_regressed"],
                flaky_since=row["flaky_since"] or "",
            )
        nxt = body["next"]
        path = nxt and f"{urlsplit(nxt).path}?{urlsplit(nxt).query}"
    return verdicts


def recompute(timeout: float) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [PYTHON, "manage.py", "recompute", "--project", SLUG],
        cwd=ROOT,
        env=BENCH.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"recompute failed ({done.returncode}):\n{done.stderr}")
    return time.monotonic() - started


def differences(before: dict, after: dict) -> list[str]:
    lines = []
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        changed = [
            f"{name} {getattr(old, name, None)!r} -> {getattr(new, name, None)!r}"
            for name in COMPARED
            if getattr(old, name, None) != getattr(new, name, None)
        ]
        if changed:
            lines.append(f"{key[1]}::{key[2]}: " + ", ".join(changed))
    return sorted(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Score flakewatch's verdicts on a synthetic CI history with "
        "known ground truth (see the module docstring).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scale", choices=sorted(SIZES), default="full")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="Celery worker processes"
    )
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument(
        "--recompute",
        action="store_true",
        help="also run manage.py recompute and compare its verdicts",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=7200,
        help="seconds to wait for processing (and for recompute)",
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating the {args.scale} history (seed {args.seed})...", flush=True)
    started = time.monotonic()
    history = generate_history(
        **SIZES[args.scale],
        seed=args.seed,
        end_at=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1),
    )
    print(f"  {history.summary()} ({time.monotonic() - started:.0f}s)", flush=True)

    BENCH.reset_database()
    BENCH.reset_redis()
    token = BENCH.create_project(SLUG, "--default-branch", "main")
    procs = Processes()
    result: dict = {
        "scale": args.scale,
        "seed": args.seed,
        "history": history.summary(),
        "database": BENCH.database_url,
    }
    try:
        port = free_port()
        env = BENCH.env(**SWEEP_ENV)
        procs.add(
            stack.start_gunicorn(
                env=env,
                log=LOG_DIR / "gunicorn.log",
                port=port,
                workers=args.gunicorn_workers,
            )
        )
        procs.add(
            stack.start_worker(
                env=env,
                log=LOG_DIR / "analytics-worker.log",
                concurrency=args.concurrency,
            )
        )
        procs.add(
            stack.start_beat(
                env=env,
                log=LOG_DIR / "analytics-beat.log",
                schedule=LOG_DIR / "analytics-beat-schedule",
            )
        )
        fed = time.monotonic()
        result["post_seconds"] = post_uploads(port, token, history.uploads)
        with BENCH.connect(autocommit=True) as db:
            counts = wait_until_processed(db, len(history.uploads), args.timeout)
        result["processed_seconds"] = time.monotonic() - fed
        result["uploads_by_status"] = counts
        verdicts = read_verdicts(port, token)
        scores = score(history.truth, verdicts, positions=history.positions)
        print(
            f"\nposted {len(history.uploads)} uploads in "
            f"{result['post_seconds']:.0f}s; all processed after "
            f"{result['processed_seconds']:.0f}s ({counts})\n"
        )
        print(scores.report())
        print(f"\n{scores.table()}")
        missed = scores.target_failures()
        if args.recompute:
            try:
                result["recompute_seconds"] = recompute(args.timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                result["recompute_error"] = str(exc)[-3000:]
                missed.append("manage.py recompute did not finish")
                print(f"\nrecompute did not finish:\n{result['recompute_error']}")
            else:
                changed = differences(verdicts, read_verdicts(port, token))
                result["recompute_differences"] = changed
                if changed:
                    missed.append(f"recompute changed {len(changed)} verdicts")
                print(
                    f"\nrecompute took {result['recompute_seconds']:.0f}s and "
                    f"changed {len(changed)} verdicts"
                )
                for line in changed[:50]:
                    print(f"  {line}")
        print(
            "\ntargets: "
            + ("all met" if not missed else "MISSED: " + "; ".join(missed))
        )
        result["scores"] = {
            "flaky_precision": scores.flaky_precision,
            "flaky_recall": scores.flaky_recall,
            "flaky_recall_all": scores.flaky_recall_all,
            "recall_population": scores.recall_population,
            "forbidden_flaky": scores.forbidden_flaky,
            "wrongly_flaky": scores.wrongly_flaky,
            "fixed_reported_fixed": scores.fixed_reported_fixed,
            "first_flaky_accuracy": scores.first_flaky_accuracy,
            "first_flaky_median_distance": scores.first_flaky_median_distance,
            "first_flaky_median_lag": scores.first_flaky_median_lag,
            "duration_precision": scores.duration_precision,
            "duration_recall": scores.duration_recall,
            "flaky_recall_any_rate": scores.flaky_recall_any_rate,
            "flaky_f1": scores.flaky_f1,
            "wrongly_fixed": scores.wrongly_fixed,
            "until_still_flaky": scores.until_still_flaky,
            "broken_fixed_ok": scores.broken_fixed_ok,
            "first_flaky_within_3": scores.first_flaky_within_3,
            "flaky_since_coverage": scores.flaky_since_coverage,
            "flaky_since_median_width": scores.flaky_since_median_width,
            "populations": scores.populations(),
            "table": scores.table(),
            "status_by_kind": {k: dict(v) for k, v in scores.status_by_kind.items()},
            "misjudged": [m.line() for m in scores.misjudged],
            "targets_missed": missed,
        }
    finally:
        procs.stop_all()
    RESULTS_JSON.write_text(json.dumps(result, indent=2, default=str))
    print(f"written to {RESULTS_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
