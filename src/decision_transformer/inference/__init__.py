"""Inference: the batched, stateful Agent (agent.py) and its forward backends: PyTorch (in the
model), ONNX Runtime (onnx.py), the approximate KV cache (cached.py); reference.py is the blog's
loop, the reference the Agent is tested against."""
