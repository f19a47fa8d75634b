"""Time CODEOWNERS matching: 200 rules against 100,000 test file paths.

Run: ``.venv/bin/python bench/codeowners_speed.py [--rules 200] [--paths 100000]``.
Prints the parse time, the matching time (wall clock, and CPU time, which a
busy shared machine inflates less) and the 10 s target beside it. The
rules mix every pattern kind (``*.ext``, ``dir/``, ``/anchored/``, ``**``,
un-owning lines) in a GitLab file with sections, the slow case: every
section is matched separately.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flakewatch.codeowners import parse_codeowners

TARGET_SECONDS = 10.0
SERVICES = [f"svc{i:02d}" for i in range(40)]


def codeowners_text(rules: int, *, seed: int = 7) -> str:
    """Return a GitLab CODEOWNERS file with about ``rules`` rules."""
    rng = random.Random(seed)
    lines = ["# generated for bench/codeowners_speed.py", "* @acme/platform"]
    shapes = (
        "/services/{s}/",
        "services/{s}/tests/integration/",
        "*.{s}.py",
        "/services/{s}/**/test_*.py",
        "{s}/",
        "/services/{s}/legacy",
    )
    section, count = 0, 1
    while count < rules:
        if count % 40 == 0:
            section += 1
            lines.append(f"[Area {section}] @acme/area-{section}")
        count += 1
        service = rng.choice(SERVICES)
        pattern = rng.choice(shapes).format(s=service)
        owner = "" if rng.random() < 0.05 else f" @acme/team-{rng.randrange(30)}"
        lines.append(pattern + owner)
    return "\n".join(lines) + "\n"


def test_paths(count: int, *, seed: int = 11) -> list[str]:
    """Return ``count`` test file paths shaped like a monorepo's."""
    rng = random.Random(seed)
    kinds = ("unit", "integration", "e2e")
    return [
        f"services/{rng.choice(SERVICES)}/tests/{rng.choice(kinds)}/"
        f"pkg{rng.randrange(50)}/test_mod{i}.py"
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200, help="rules in the file")
    parser.add_argument("--paths", type=int, default=100_000, help="paths to match")
    args = parser.parse_args()
    text = codeowners_text(args.rules)
    paths = test_paths(args.paths)
    started = time.perf_counter()
    owners = parse_codeowners(text)
    parsed = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), time.process_time()
    owned = sum(1 for path in paths if owners.owners_of(path))
    matched = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"{len(owners.rules)} rules ({owners.dialect}), {len(paths):,} paths: "
        f"parse {parsed * 1000:.1f} ms, match {matched:.2f} s ({cpu:.2f} s CPU) "
        f"(target < {TARGET_SECONDS:.0f} s: {'met' if matched < TARGET_SECONDS else 'missed'}); "
        f"{owned:,} owned"
    )


if __name__ == "__main__":
    main()
