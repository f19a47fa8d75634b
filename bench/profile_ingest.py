"""Profile the worker's ingest path in-process: where does process_upload spend time?

Runs ``ingest.services.process_upload`` directly (no Celery, no HTTP) on the
benchmark's generated pytest report, against the benchmark database
(``flakewatch_bench``; ``--setup`` drops, re-creates and migrates it first, as
``bench.ingest_speed`` does), and prints:

* for a first upload (new cases) and a repeat (existing cases): the wall time
  of the whole ``process_upload`` and of its phases (each wrapped with a timer
  where the current code has it: ``parse_report``, ``execution_rows``,
  ``store_results``, ``_ensure_rows``), and the
  slowest SQL statements (Django's execute_wrapper; COPY goes around it);
* the cProfile top functions of a third ``process_upload`` (profiling slows
  Python-heavy code about 1.5-2x; use the phase table for absolute times);
* with ``--memory``: instead of cProfile, tracemalloc's peak for a
  ``process_upload`` and the allocation sites holding the most memory at the
  end of the phase where the most was held (tracemalloc slows it 2-3x).

    .venv/bin/python -m bench.profile_ingest --setup            # 100k testcases
    .venv/bin/python -m bench.profile_ingest -n 10000 --top 40 --sort cumulative
    .venv/bin/python -m bench.profile_ingest --memory
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import io
import pstats
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

from bench import reports
from bench.environment import Bench

# The same database as bench.ingest_speed.
BENCH = Bench.named("flakewatch_bench", "redis://127.0.0.1:6379/12")

# (module, attribute path, label): timed if the current code has them.
PHASES = [
    ("ingest.services", "parse_report", "parse_report"),
    ("ingest.services", "execution_rows", "execution_rows"),
    ("flakewatch.results", "store_results", "store_results"),
    ("flakewatch.results", "_ensure_rows", "  _ensure_rows (case/message lookup)"),
]


class Timers:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.sql: dict[str, list[float]] = defaultdict(list)
        self.fullest: tuple[int, str, tracemalloc.Snapshot | None] = (0, "", None)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.sql.clear()

    def wrap(self, module_name: str, path: str, label: str) -> bool:
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
            if owner is None:
                return False
        original = getattr(owner, name, None)
        if original is None:
            return False

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1
                if tracemalloc.is_tracing():
                    current = tracemalloc.get_traced_memory()[0]
                    if current > self.fullest[0]:
                        snapshot = tracemalloc.take_snapshot()
                        self.fullest = (current, label, snapshot)

        setattr(owner, name, timed)
        return True

    def sql_wrapper(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = " ".join(sql.split())[:90]
            self.sql[key].append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--testcases", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=30, help="profile rows to print")
    parser.add_argument("--sql", type=int, default=8, help="SQL statements to print")
    parser.add_argument(
        "--setup", action="store_true", help="drop, re-create and migrate the DB"
    )
    parser.add_argument(
        "--sort", default="tottime", help="pstats sort key (tottime, cumulative)"
    )
    parser.add_argument(
        "--memory", action="store_true", help="tracemalloc instead of cProfile"
    )
    args = parser.parse_args()

    if args.setup:
        BENCH.reset_database()
    BENCH.setup_django(FLAKEWATCH_LOG_LEVEL="WARNING")
    from django.db import connection

    from flakewatch.models import Project, Upload
    from ingest import services

    timers = Timers()
    wrapped = [
        label for module, path, label in PHASES if timers.wrap(module, path, label)
    ]
    data = reports.junit_report(args.testcases, seed=7, package="tests_profile")
    project = Project.objects.create(slug=f"profile-{time.time_ns()}", name="profile")

    def new_upload(build: str) -> int:
        meta = services.UploadMetadata(
            commit_sha="c0ffee", branch="main", build=build, job="profile"
        )
        received = services.receive_file("report.xml", [data], budget=1 << 30)
        upload, _ = services.accept_upload(
            project=project, meta=meta, files=[received], enqueue=False
        )
        return upload.pk

    print(
        f"report: {args.testcases:,} testcases, {len(data) / 1e6:.1f} MB; "
        f"timed phases: {', '.join(wrapped)}"
    )
    for label in ("first (new cases)", "repeat (existing cases)"):
        upload_id = new_upload(label)
        timers.reset()
        with connection.execute_wrapper(timers.sql_wrapper):
            started = time.perf_counter()
            services.process_upload(upload_id)
            total = time.perf_counter() - started
        status = Upload.objects.get(pk=upload_id).status
        print(f"\n{label}: process_upload {total:.3f}s -> {status}")
        for phase in wrapped:
            if phase in timers.seconds:
                seconds = timers.seconds[phase]
                print(
                    f"  {phase:<26} {seconds:7.3f}s {seconds / total:6.1%}"
                    f"  ({timers.calls[phase]} call(s))"
                )
        sql_total = sum(sum(v) for v in timers.sql.values())
        print(
            f"  {'SQL via execute (all)':<26} {sql_total:7.3f}s {sql_total / total:6.1%}"
        )
        slowest = sorted(timers.sql.items(), key=lambda kv: -sum(kv[1]))
        for sql, times in slowest[: args.sql]:
            print(f"    {sum(times):7.3f}s ×{len(times):<3} {sql}")

    upload_id = new_upload("profiled")
    if args.memory:
        tracemalloc.start()
        services.process_upload(upload_id)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        held, phase, snapshot = timers.fullest
        print(
            f"\ntracemalloc: peak {peak / 2**20:.0f} MiB traced during process_upload;"
            f" {held / 2**20:.0f} MiB held at the end of {phase.strip()}, by:"
        )
        if snapshot is not None:
            for stat in snapshot.statistics("lineno")[: args.top]:
                frame = stat.traceback[0]
                print(
                    f"  {stat.size / 2**20:7.1f} MiB {stat.count:>9,} blocks  "
                    f"{Path(frame.filename).name}:{frame.lineno}"
                )
        return
    profiler = cProfile.Profile()
    profiler.enable()
    services.process_upload(upload_id)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
