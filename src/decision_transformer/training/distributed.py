"""Multi-process training under torchrun (DDP): what each rank is, and the few collectives the
trainer needs.

`torchrun --nproc-per-node N --no-python dt train ...` (or `torchrun ... -m decision_transformer
train ...`) starts N copies of `dt train`; each finds RANK / WORLD_SIZE / LOCAL_RANK in its
environment and joins one process group: gloo on CPU, NCCL on CUDA (rank r uses cuda:LOCAL_RANK).
Each rank samples batch_size / N windows with its own RNG stream (rank 0's is the 1-process
stream), gradients are averaged by DDP, and the loss is normalised by the global number of real
steps, so N ranks take the same optimisation step as one process on the union of their windows
(tested). Only rank 0 holds the run directory's lock and writes metrics, checkpoints and
evaluations; a checkpoint holds every rank's RNG states, so a resume is exact. Collectives time
out after `DDP_TIMEOUT` seconds: a rank that dies ends the job with an error instead of a hang
(torchrun also stops the other ranks when one fails).
"""

from __future__ import annotations

import datetime
import importlib
import os

import torch
import torch.distributed as dist

from decision_transformer.errors import DTError

DDP_TIMEOUT = float(os.environ.get("DT_DDP_TIMEOUT", 300))


class Dist:
    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                self.device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(self.device)
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            # torch._dynamo (DDP imports it), when first imported after the group exists, keeps references to
            # the group for good: its gloo worker threads then live on into interpreter shutdown, where one
            # that drops a finished collective's tensors needs the GIL and aborts the process (SIGABRT, about
            # 1 run in 20, after training had finished). Imported first, it holds none, so close() joins them.
            importlib.import_module("torch._dynamo")
            try:
                dist.init_process_group(backend, timeout=datetime.timedelta(seconds=DDP_TIMEOUT))
            except Exception as e:
                raise DTError(f"cannot join the torchrun process group ({backend}, rank {self.rank} of {self.world}): "
                              f"{type(e).__name__}: {str(e)[:200]}")

    @property
    def on(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj):
        """Rank 0's value of a small picklable object, on every rank."""
        if not self.on:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's value, in rank order, on every rank."""
        if not self.on:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.on:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self) -> None:
        if self.on:
            dist.barrier()

    def close(self) -> None:
        """Leave the group; with no DDP wrapper left alive, this joins its worker threads."""
        if self.on and dist.is_initialized():
            dist.destroy_process_group()


class FitActions(torch.nn.Module):
    """DDP wraps a module's forward; ours trains forward_actions."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, *args):
        return self.m.forward_actions(*args)
