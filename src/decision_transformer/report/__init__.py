"""Reporting: figures (plots.py), videos (video.py) and the results page with model cards (page.py)."""
