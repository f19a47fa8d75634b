"""Helpers shared by the test suite and the benchmarks, outside the apps.

``tests/`` and ``bench/`` both import from here and never from each other.
Nothing here imports Django or the apps, so a benchmark can use it before it
sets Django up, and nothing here ships in the flakewatch package.
"""
