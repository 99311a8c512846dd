"""`qrnn bench`: time full training steps (forward with postselection on the targets, the loss, backward,
gradient clipping, optimizer step) on random data of the shapes the paper's experiments use.

Each configuration runs in a fresh subprocess so that its peak resident memory is its own. The `ws*` rows are
large workspaces (the statevector path's territory); `--method` forces one way of running a pass (default auto).
On CUDA the peak of allocated GPU memory is reported as well (`--device cuda`: not yet run on a GPU by us).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from qrnn.errors import QRNNError


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark row: model and data sizes, and the original code's time per step on a 2-core machine."""

    name: str
    input_size: int
    workspace_size: int
    stages: int
    order: int
    degree: int
    batch: int
    length: int
    original_seconds: float | None


CONFIGS = {
    c.name: c
    for c in [
        # The original's experiment scripts: experiment-1 (simple-seq) and experiment-2 (Elman XOR).
        BenchConfig("simple-seq", 3, 5, 2, 2, 3, 2, 20, None),
        BenchConfig("elman-xor", 2, 4, 1, 2, 3, 16, 36, None),
        BenchConfig("umap", 2, 6, 2, 2, 3, 160, 5, 0.50),
        BenchConfig("mnist01", 2, 8, 2, 2, 2, 20, 100, 4.5),
        BenchConfig("dna100", 3, 5, 1, 2, 3, 16, 100, 2.0),
        BenchConfig("elman-letter", 3, 4, 2, 2, 2, 16, 36, 0.8),
        BenchConfig("dna500", 3, 5, 1, 2, 3, 128, 500, 92.0),
        BenchConfig("dna1000", 3, 5, 1, 2, 3, 128, 1000, None),
        # The original's times for ws6-ws12: the side-by-side runs of 1 Dec 2026 (qrnn and the original alternating
        # on one core), the README's "Large workspaces" table, which quotes these; ws12 the faster of two rounds
        # (6.09 s, 7.18 s).
        BenchConfig("ws6", 2, 6, 1, 2, 2, 16, 20, 1.03),
        BenchConfig("ws8", 2, 8, 1, 2, 2, 16, 20, 1.40),
        BenchConfig("ws10", 2, 10, 1, 2, 2, 16, 20, 1.61),
        BenchConfig("ws12", 2, 12, 1, 2, 2, 16, 20, 6.09),
        BenchConfig("ws16", 2, 16, 1, 2, 2, 16, 20, None),
        BenchConfig("ws20", 2, 20, 1, 2, 2, 4, 10, None),
    ]
}
# ws6, ws8 (the scaling figure's small end), ws16 and ws20 (seconds to a minute per step) run by name.
DEFAULT_CONFIGS = ["umap", "mnist01", "dna100", "elman-letter", "dna500", "dna1000", "ws10", "ws12"]
# A step slower than this gets one warm-up step and may be timed once.
_SLOW_STEP_SECONDS = 5.0


class _BenchMember:
    """What a pool's training step needs of a member (as `ShardTrainer` has it): model, optimizer, clipping."""

    def __init__(self, model: object, optimizer: object, clip: float) -> None:
        self.model = model
        self.optimizer = optimizer
        self.clip = clip

    def clip_gradients(self) -> None:
        import torch

        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)  # type: ignore[attr-defined]


def _median_seconds(step: object, repeats: int) -> tuple[float, int]:
    """Median seconds of `step()` (after warm-up), within about 20 s of timing."""
    start = time.perf_counter()
    step()  # type: ignore[operator]
    slow = time.perf_counter() - start > _SLOW_STEP_SECONDS
    if not slow:
        step()  # type: ignore[operator]
    times = []
    budget_end = time.perf_counter() + 20.0
    for _ in range(repeats):
        start = time.perf_counter()
        step()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
        if time.perf_counter() > budget_end and len(times) >= (1 if slow else 3):
            break
    return statistics.median(times), len(times)


def time_config(
    config: BenchConfig, device: str, dtype: str, repeats: int, seed: int = 0, method: str = "auto", pool: int = 0
) -> dict[str, object]:
    """Median seconds per training step of `config`, the method the model ran, and the process's peak resident
    memory (and peak CUDA memory on a GPU). With `pool` M > 0, also the seconds of one training step of a pool
    of M members (different seeds and learning rates, each its own AdamW), timed in the same process."""
    import resource

    import torch

    from qrnn.bits import bits_to_int
    from qrnn.loss import original_loss
    from qrnn.model import QRNN, ParameterPool
    from qrnn.training.config import TrainConfig
    from qrnn.training.models import flush_denormals
    from qrnn.training.pool import PooledOptimizers, pool_step

    generator = torch.Generator().manual_seed(seed)

    def new_model(member_seed: int) -> QRNN:
        member = QRNN(config.input_size, config.workspace_size, config.stages, config.order, config.degree,
                      method=method)
        member.reset_parameters(generator=torch.Generator().manual_seed(member_seed))
        return member.to(device=device, dtype=getattr(torch, dtype))

    model = new_model(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, foreach=True)
    shape = (config.batch, config.length, config.input_size)
    inputs = torch.randint(0, 2, shape, generator=generator).to(device)
    targets = torch.randint(0, 2, shape, generator=generator).to(device)
    target_words = bits_to_int(targets[:, 1:])

    clip = TrainConfig().gradient_clip  # the original's step clips at its default

    def synchronise() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def step() -> None:
        optimizer.zero_grad()
        probs, _, _ = model(inputs, targets, postselect=True)
        loss = original_loss(probs, target_words)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        synchronise()

    pool_row: dict[str, object] = {}
    # Timed as training runs them: with subnormal floats flushed (see flush_denormals).
    with flush_denormals():
        seconds, runs = _median_seconds(step, repeats)
        if pool:
            models = [new_model(seed + 1 + m) for m in range(pool)]
            members = [
                _BenchMember(member, torch.optim.AdamW(member.parameters(), lr=0.001 * (1 + m // 10), foreach=True),
                             clip)
                for m, member in enumerate(models)
            ]
            parameters = ParameterPool(models)
            optimizers = PooledOptimizers(parameters, [member.optimizer for member in members])
            pool_shape = (pool, *shape)
            pool_inputs = torch.randint(0, 2, pool_shape, generator=generator).to(device)
            pool_targets = torch.randint(0, 2, pool_shape, generator=generator).to(device)
            pool_words = bits_to_int(pool_targets[:, :, 1:])

            def pooled() -> None:
                pool_step(members, parameters, optimizers, pool_inputs, pool_targets,
                          lambda start, end, probs: original_loss(probs, pool_words[start:end]), [clip] * pool)
                synchronise()

            # One-model and pool steps alternate, so that both medians see the same machine (its load and clock
            # drift between runs of a few seconds).
            singles, pools = [], []
            pooled()
            for _ in range(repeats):
                start = time.perf_counter()
                step()
                singles.append(time.perf_counter() - start)
                start = time.perf_counter()
                pooled()
                pools.append(time.perf_counter() - start)
            seconds, pool_seconds = statistics.median(singles), statistics.median(pools)
            pool_row = {
                "pool": pool,
                "pool_seconds_per_step": pool_seconds,
                "pool_speedup": pool * seconds / pool_seconds,
            }
    return {
        "config": config.name,
        "seconds_per_step": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "runs": runs,
        "method": model.choose_method(config.batch, config.length),
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
        "threads": torch.get_num_threads(),
        "device": device,
        "dtype": dtype,
        "original_seconds_per_step": config.original_seconds,
        "speedup": None if config.original_seconds is None else config.original_seconds / seconds,
        **pool_row,
        **{k: v for k, v in asdict(config).items() if k not in ("name", "original_seconds")},
    }


def run_bench(args: argparse.Namespace) -> int:
    """Run the selected configurations, each in its own subprocess, and print a table or JSON lines."""
    names = args.config or DEFAULT_CONFIGS
    for name in names:
        if name not in CONFIGS:
            raise QRNNError(f"unknown benchmark config {name!r}; valid: {', '.join(CONFIGS)}")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise QRNNError(f"--device must be cpu or cuda, got {args.device!r}")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise QRNNError("--device cuda was asked for, but torch sees no CUDA device here")
    if args.pool < 0:
        raise QRNNError(f"--pool must be a number of models >= 1 (0: no pool), got {args.pool}")
    if args.threads is not None and args.threads < 1:
        raise QRNNError(f"--threads must be >= 1, got {args.threads}")
    pool_header = f" {'pool s/step':>12} {'pool gain':>9}" if args.pool else ""
    if not args.json:
        print(
            f"{'name':<13} {'I':>2} {'H':>2} {'S':>2} {'k':>2} {'d':>2} {'B':>4} {'L':>5} "
            f"{'s/step':>9} {'original':>9} {'speedup':>8} {'peak RSS MB':>12} {'method':>12}{pool_header}"
        )
    for name in names:
        command = [
            sys.executable,
            "-m",
            "qrnn.bench",
            "--child",
            name,
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--repeats",
            str(args.repeats),
            "--method",
            args.method,
            "--pool",
            str(args.pool),
        ]
        if args.threads is not None:
            command += ["--threads", str(args.threads)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{name}: failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        row = json.loads(result.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        original = row["original_seconds_per_step"]
        original_text = "-" if original is None else f"{original:.2f}s"
        speedup_text = "-" if row["speedup"] is None else f"{row['speedup']:.0f}x"
        pool_text = ""
        if args.pool:
            pool_text = f" {row['pool_seconds_per_step'] * 1000:>10.1f}ms {row['pool_speedup']:>8.1f}x"
        print(
            f"{name:<13} {row['input_size']:>2} {row['workspace_size']:>2} {row['stages']:>2} "
            f"{row['order']:>2} {row['degree']:>2} {row['batch']:>4} {row['length']:>5} "
            f"{row['seconds_per_step'] * 1000:>7.1f}ms "
            f"{original_text:>9} {speedup_text:>8} {row['peak_rss_mb']:>12.0f} {row['method']:>12}{pool_text}",
            flush=True,
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `qrnn bench`."""
    parser = subparsers.add_parser(
        "bench",
        help="time training steps on the paper's model sizes",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--config",
        action="append",
        metavar="NAME",
        help=f"run only this config (repeatable); one of {', '.join(CONFIGS)}; default: all",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per config (median reported)")
    parser.add_argument(
        "--method", default="auto", choices=["auto", "kernel", "statevector"], help="how a pass runs (see qrnn.QRNN)"
    )
    parser.add_argument(
        "--pool", type=int, default=0, metavar="M",
        help="also time one training step of a pool of M models (different seeds and learning rates), and its "
        "gain: M one-model steps over one pool step",
    )
    parser.add_argument("--threads", type=int, default=None, help="intra-op CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per config")
    parser.set_defaults(func=run_bench)


def _child_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--pool", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    row = time_config(CONFIGS[args.child], args.device, args.dtype, args.repeats, method=args.method, pool=args.pool)
    print(json.dumps(row))


if __name__ == "__main__":
    _child_main()
