"""Analytics speed at 10 million stored executions: the entry point.

    .venv/bin/python -m bench.analytics_speed --help

Sets Django up on the benchmark's own database (``flakewatch_bench_analytics``)
with an in-memory broker and eager tasks off, then runs the phases of
``bench.analytics_phases``, whose docstring says what is measured. The phases
import the models, which Django must have set up first: hence two modules.
"""

from __future__ import annotations

import logging


def main() -> None:
    """Set Django up for the benchmark, then run it."""
    from bench.environment import Bench

    # The same defaults analytics_phases.BENCH reads, before it can be imported.
    bench = Bench.named("flakewatch_bench_analytics", "memory://")
    bench.setup_django(FLAKEWATCH_EAGER_TASKS="0", FLAKEWATCH_LOG_LEVEL="WARNING")
    # The memory:// broker's connection warns that it has no host name.
    logging.getLogger("kombu").setLevel(logging.ERROR)

    from bench import analytics_phases  # imports the models: after setup

    analytics_phases.main()


if __name__ == "__main__":
    main()
