"""Shards: how a run is split over processes, and the few collective operations the training loop needs.

Three ways to run:
- one shard: everything in the calling process, no process group;
- `--num-shards N` on one machine: N processes spawned here (torch.multiprocessing, start method "spawn"),
  meeting at 127.0.0.1:`--port` over gloo (CPU) or nccl (CUDA), as the original;
- under `torchrun` (several machines): each process reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
  MASTER_PORT from the environment and joins the process group torchrun set up.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from qrnn.errors import QRNNError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Launch:
    """Where this process sits: its rank among `world_size` shards, its rank on this machine, how many shards
    share this machine, and whether a process group connects them (False for a single shard)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    distributed: bool
    torchrun: bool = False


def torchrun_launch() -> Launch | None:
    """The launch torchrun describes in the environment, or None when not run by torchrun."""
    if not all(name in os.environ for name in ("RANK", "WORLD_SIZE")):
        return None
    try:
        rank = int(os.environ["RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    except ValueError:
        raise QRNNError("RANK, WORLD_SIZE, LOCAL_RANK must be integers (as torchrun sets them)") from None
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise QRNNError(f"RANK and WORLD_SIZE are set but {', '.join(missing)} is not; run under torchrun")
    if not 0 <= rank < world_size:
        raise QRNNError(f"RANK must be in [0, WORLD_SIZE), got RANK={rank}, WORLD_SIZE={world_size}")
    return Launch(rank, world_size, local_rank, local_world_size, distributed=world_size > 1, torchrun=True)


def check_port_free(port: int) -> None:
    """One-line error if something on this machine already listens on `port` (the rendezvous would hang or
    fail later, inside the shards)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            raise _port_in_use(port) from None


def _port_in_use(port: int) -> QRNNError:
    return QRNNError(f"--port {port} is in use on this machine; choose a free port with --port")


def open_rendezvous(port: int) -> dist.TCPStore:
    """The store where spawned shards meet, bound by the launching process before any shard starts. Binding is
    the port check that holds: a check followed by a later bind lets two runs started together both pass it,
    and then the shards of one join the other's rendezvous. One-line error when the port is taken."""
    try:
        return dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False)
    except RuntimeError:  # torch's DistNetworkError: EADDRINUSE, or no permission for the port
        raise _port_in_use(port) from None


def backend_for(device: torch.device) -> str:
    """nccl between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def join_process_group(launch: Launch, device: torch.device, address: str | None, port: int | None) -> None:
    """Connect this shard to the others (`address`/`port` None: torchrun's environment)."""
    if not launch.distributed:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if address is not None and port is not None:
        # The launching process holds the store (`open_rendezvous`); the shards connect to it as clients.
        store = dist.TCPStore(address, port, is_master=False)
        dist.init_process_group(backend_for(device), store=store, rank=launch.rank, world_size=launch.world_size)
        return
    dist.init_process_group(backend_for(device), rank=launch.rank, world_size=launch.world_size)


def synchronise(launch: Launch) -> None:
    """Wait until every shard reaches this point (nothing to wait for on a single shard)."""
    if launch.distributed and dist.is_initialized():
        dist.barrier()


def leave_process_group(launch: Launch) -> None:
    """Tear the process group down (after the last collective)."""
    if launch.distributed and dist.is_initialized():
        dist.destroy_process_group()


class Collectives:
    """The collective operations of the training loop; on a single shard they return their input."""

    def __init__(self, launch: Launch, device: torch.device) -> None:
        self.launch = launch
        self.device = device

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over shards (a new tensor)."""
        values = values.detach().clone().to(self.device)
        if self.launch.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def max(self, values: torch.Tensor) -> torch.Tensor:
        """Elementwise maximum over shards (a new tensor)."""
        values = values.detach().clone().to(self.device)
        if self.launch.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over shards: every shard gets the same number."""
        return self.sum(value) / self.launch.world_size

    def gather(self, item: Any) -> list[Any]:
        """Every shard's `item` (picklable), in rank order, on every shard."""
        if not self.launch.distributed:
            return [item]
        items: list[Any] = [None] * self.launch.world_size
        dist.all_gather_object(items, item)
        return items
