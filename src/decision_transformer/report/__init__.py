"""Reporting: figures (plots.py) and the results pages with model cards (page.py: suite v0, v1.py: suite v1)."""
