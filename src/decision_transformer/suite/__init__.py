"""The dataset suite: collecting with any policy (collect.py), behaviour policies as numpy actors
(policies.py) and their training (behaviour.py), and the D4RL-style suite itself (build.py)."""
