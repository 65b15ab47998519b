"""Evaluation: episodes in vectorised envs with honest statistics (evaluate.py), env groups in
threads (parallel.py)."""
