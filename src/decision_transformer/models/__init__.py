"""Models: the policy interface and registry (policy.py), the Decision Transformer (dt.py), its
stochastic Online-DT variant (odt.py), the BC baseline (bc.py), checkpoint I/O (checkpoint.py)
and the fused dropout kernel (dropout.py, csrc/)."""
