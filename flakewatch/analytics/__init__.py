"""Verdicts on tests from their history: pure maths, no database.

``flakewatch.analysis`` reads the history and writes the results; the
modules here only compute (runs, verdicts, durations, scoring, signatures).
"""
