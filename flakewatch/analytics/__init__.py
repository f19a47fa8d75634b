"""Verdicts on tests from their history: pure maths here, database work in update.py."""
