"""Operations on batches of real statevectors.

A batch of states over n lanes (qubits) is a tensor of shape (B, 2, ..., 2) with one axis per lane, lane 0 first;
read as an integer, lane 0 is the most significant bit. Nothing here loops over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from qrnn.gates import Gate, Operation, Postselect


def zero_state(
    num_lanes: int, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """B copies of |0...0> over `num_lanes` lanes."""
    state = torch.zeros((batch,) + (2,) * num_lanes, dtype=dtype, device=device)
    state.view(batch, -1)[:, 0] = 1
    return state


def num_lanes(state: torch.Tensor) -> int:
    """The number of lanes of a batched lane-tensor state."""
    return state.dim() - 1


def apply_matrix(state: torch.Tensor, matrix: torch.Tensor, target: int, controls: Sequence[int] = ()) -> torch.Tensor:
    """Apply the 2x2 `matrix` on lane `target` of every state, on the part where all `controls` lanes are 1."""
    axis = target + 1
    moved = state.movedim(axis, -1)
    new = moved @ matrix.to(state.dtype).T
    if controls:
        mask = torch.zeros((2,) * num_lanes(state), dtype=torch.bool, device=state.device)
        index: list[slice | int] = [slice(None)] * num_lanes(state)
        for lane in controls:
            index[lane] = 1
        mask[tuple(index)] = True
        mask = mask.movedim(target, -1).unsqueeze(0)
        new = torch.where(mask, new, moved)
    return new.movedim(-1, axis)


def apply_rotation_table(
    state: torch.Tensor, target: int, cos_table: torch.Tensor, sin_table: torch.Tensor
) -> torch.Tensor:
    """Apply [[c, -s], [s, c]] on lane `target`, with c and s depending on the other lanes.

    `cos_table` and `sin_table` broadcast against `state` and have size 1 on the target's axis. This one kernel
    is a quantum neuron (c = cos(eta)^m, s = sin(eta)^m as tables over the source lanes) and an rY layer
    (constants), unnormalised.
    """
    axis = target + 1
    shape = [1] * state.dim()
    shape[axis] = 2
    sign = torch.tensor([-1.0, 1.0], dtype=state.dtype, device=state.device).view(shape)
    return cos_table * state + (sin_table * sign) * state.flip(axis)


def flip_lanes(state: torch.Tensor, lanes: Sequence[int], bits: torch.Tensor) -> torch.Tensor:
    """Apply X on lane `lanes[i]` of sample b where `bits[b, i]` is 1 (a classical word written per sample)."""
    batch = state.shape[0]
    for i, lane in enumerate(lanes):
        flip = bits[:, i].bool().view((batch,) + (1,) * num_lanes(state))
        state = torch.where(flip, state.flip(lane + 1), state)
    return state


def normalize(state: torch.Tensor) -> torch.Tensor:
    """Each state divided by its norm."""
    norms = state.reshape(state.shape[0], -1).norm(dim=1)
    return state / norms.view((-1,) + (1,) * num_lanes(state))


def project(state: torch.Tensor, lane: int, value: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project lane `lane` onto `value` (an int, or one per sample) and renormalise.

    Returns the projected states and the probability of that outcome, per sample.
    """
    axis = lane + 1
    batch = state.shape[0]
    values = torch.as_tensor(value, device=state.device).expand(batch)
    keep = torch.arange(2, device=state.device).view(1, 2) == values.view(batch, 1)
    shape = [1] * state.dim()
    shape[0], shape[axis] = batch, 2
    projected = state * keep.view(shape).to(state.dtype)
    probability = projected.reshape(batch, -1).pow(2).sum(1) / state.reshape(batch, -1).pow(2).sum(1)
    return normalize(projected), probability


def marginal_probabilities(state: torch.Tensor, lanes: Sequence[int]) -> torch.Tensor:
    """The distribution over the word on `lanes` (B x 2^len(lanes)), the first lane most significant."""
    n = num_lanes(state)
    others = [lane + 1 for lane in range(n) if lane not in lanes]
    squared = state.pow(2)
    if others:
        squared = squared.sum(dim=others)
    # The remaining axes are in ascending lane order; put them in the requested order.
    order = sorted(lanes)
    squared = squared.permute([0] + [order.index(lane) + 1 for lane in lanes])
    flat = squared.reshape(state.shape[0], -1)
    return flat / flat.sum(1, keepdim=True)


def run_circuit(state: torch.Tensor, operations: Iterable[Operation]) -> torch.Tensor:
    """Apply a circuit (gates and postselections, in order) to a batch of states; renormalise at the end."""
    for operation in operations:
        if isinstance(operation, Gate):
            state = apply_matrix(state, operation.matrix(state.dtype), operation.target, operation.controls)
        elif isinstance(operation, Postselect):
            state, _ = project(state, operation.lane, operation.value)
        else:
            raise TypeError(f"not a circuit operation: {operation!r}")
    return normalize(state)


# Per kind of pass, the buffer of a pass whose backward has finished, kept for the next pass on the CPU: a fresh
# buffer costs a page fault on first touching every 4 KiB (a quarter of a training step at H = 12 on the
# statevector path; most of a pool's kernel construction). One per kind. (CUDA's caching allocator already reuses
# memory.)
_spare_buffers: dict[str, tuple[torch.Tensor, object]] = {}


def reusable_buffer(kind: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """An uninitialised buffer of `shape` for a pass of `kind`: the spare one (`keep_buffer`) where it is large
    enough and of `like`'s dtype and device, else a new one. The spare is handed out once."""
    numel = math.prod(shape)
    spare, _ = _spare_buffers.pop(kind, (None, None))
    if spare is not None and spare.dtype == like.dtype and spare.device == like.device and spare.numel() >= numel:
        return spare[:numel].view(shape)
    return like.new_empty(shape)


def keep_buffer(kind: str, buffer: torch.Tensor) -> object:
    """Offer a finished pass's buffer (from `reusable_buffer`) to the next pass of `kind`; returns a token that
    `reclaim_buffer` takes to get it back untouched (if no pass took it meanwhile)."""
    token = object()
    if buffer.device.type == "cpu" and buffer.numel():
        base = buffer if buffer._base is None else buffer._base
        _spare_buffers[kind] = (base.view(-1), token)
    return token


def reclaim_buffer(kind: str, token: object) -> bool:
    """Take back the buffer kept with `token`, if it is still the spare (so its contents are as they were)."""
    if kind in _spare_buffers and _spare_buffers[kind][1] is token:
        del _spare_buffers[kind]
        return True
    return False


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_freed_memory_retained = False


def retain_freed_memory() -> bool:
    """Have the C library keep the memory the process frees for its next allocations: blocks up to 32 MiB come
    from the heap rather than from fresh mappings, and the heap's free top is not handed back to the system
    (up to 1 GiB). Every fresh page costs a page fault on first touch, and a pool's pass allocates and frees tens
    of megabytes of temporaries: a training step of a pool of 30 umap models took about 11,000 faults, a quarter
    of its time on a 2-core VM (none after this). The process's resident memory then stays near its peak. Once per
    process; True where it took effect (glibc), False elsewhere."""
    global _freed_memory_retained
    if _freed_memory_retained:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # 32 MiB: glibc's largest mmap threshold on 64-bit systems.
    _freed_memory_retained = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    return _freed_memory_retained


class _RotationProgram(torch.autograd.Function):
    """A fixed sequence of table rotations and dense maps on a batch of column states, with a hand-written
    backward pass that reuses preallocated buffers: building the cell's per-word kernels is dominated by
    memory traffic, and autograd's generic graph for it allocated and reduced far more than needed. States are
    columns (the last axis indexes them) so that every elementwise pass runs over contiguous memory.

    At a pool's sizes the passes run far outside the caches, so every pass over memory counts: the first step
    reads the input states where they are (an expanded identity), the last writes the result (no copies of
    either), a dense map's matrices are expanded into a reused buffer (not a fresh one per product), and the
    backward pass works in reused buffers. Each member's arithmetic is the same as the lone model's."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: object,
        cos_tables: torch.Tensor,
        sin_tables: torch.Tensor,
        dense: torch.Tensor,
        states: torch.Tensor,
        program: tuple[tuple[str, int, int], ...],
    ) -> torch.Tensor:
        groups, width, columns = states.shape
        lanes = width.bit_length() - 1
        lane_shape = (groups,) + (2,) * lanes + (columns,)
        if program and program[0][0] == "dense":
            states = states.contiguous()
        # The input of step s > 0 is history[s - 1]; step 0 reads `states` itself, the last step writes `result`.
        history = reusable_buffer("rotation program", (max(len(program) - 1, 0),) + lane_shape, states)
        result = states.new_empty((groups, width, columns))
        if not program:
            result.copy_(states)
        expanded = _expanded_buffer(dense, groups, width, states) if "dense" in (p[0] for p in program) else None
        last = len(program) - 1
        for step, (kind, index, lane) in enumerate(program):
            before = states.reshape(lane_shape) if step == 0 else history[step - 1]
            after = result.view(lane_shape) if step == last else history[step]
            if kind == "dense":
                _dense_product(dense[index], before, after, groups, width, columns, expanded)
                continue
            c, s = _table_views(cos_tables[index], sin_tables[index], lanes)
            low, high = before.select(1 + lane, 0), before.select(1 + lane, 1)
            new_low, new_high = after.select(1 + lane, 0), after.select(1 + lane, 1)
            torch.mul(low, c, out=new_low)
            new_low.addcmul_(high, s, value=-1)
            torch.mul(high, c, out=new_high)
            new_high.addcmul_(low, s)
        if expanded is not None:
            keep_buffer("rotation program matrices", expanded)
        if not any(ctx.needs_input_grad):  # type: ignore[attr-defined]
            keep_buffer("rotation program", history)
            return result
        ctx.save_for_backward(cos_tables, sin_tables, dense, history, states)  # type: ignore[attr-defined]
        ctx.program = program  # type: ignore[attr-defined]
        return result

    @staticmethod
    def backward(ctx: object, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        released = getattr(ctx, "released", None)
        if released is not None and not reclaim_buffer("rotation program", released):
            raise RuntimeError(
                "a second backward pass through the same kernel construction, after another pass reused its memory"
            )
        cos_tables, sin_tables, dense, history, states = ctx.saved_tensors  # type: ignore[attr-defined]
        program = ctx.program  # type: ignore[attr-defined]
        groups, width, columns = states.shape
        lanes = width.bit_length() - 1
        lane_shape = (groups,) + (2,) * lanes + (columns,)
        size = groups * width * columns
        # Two gradient buffers (the step's input and output), the products of a rotation's table gradients
        # (half a state) and, for dense maps, their gradients' per-group products: one reused buffer.
        dense_steps = "dense" in (p[0] for p in program)
        work = reusable_buffer(
            "rotation program gradients", (2 * size + size // 2 + (size if dense_steps else 0),), states
        )
        buffers = [work[:size].view(lane_shape), work[size : 2 * size].view(lane_shape)]
        product = work[2 * size : 2 * size + size // 2].view((groups,) + (2,) * (lanes - 1) + (columns,))
        per_group = work[2 * size + size // 2 :]
        expanded = _expanded_buffer(dense, groups, width, states) if dense_steps else None
        # The first step reads the incoming gradient where it is; later steps alternate between the buffers.
        grad = grad_output.contiguous().view(lane_shape)
        grad_cos = torch.zeros_like(cos_tables)
        grad_sin = torch.zeros_like(sin_tables)
        grad_dense = torch.zeros_like(dense)
        for step in range(len(program) - 1, -1, -1):
            kind, index, lane = program[step]
            before = states.reshape(lane_shape) if step == 0 else history[step - 1]
            spare = buffers[step % 2]
            if kind == "dense":
                matrix = dense[index]
                shape = _dense_groups(matrix, groups, width, columns)
                flat_grad = grad.view(shape)
                flat_before = before.view(shape)
                if matrix.dim() == 2:
                    grad_dense[index] += (flat_grad @ flat_before.transpose(-1, -2)).sum(-3)
                    torch.matmul(matrix.transpose(-1, -2).unsqueeze(-3), flat_grad, out=spare.view(shape))
                else:
                    products = per_group.view(groups, width, width)
                    torch.bmm(
                        grad.view(groups, width, columns), before.view(groups, width, columns).transpose(1, 2),
                        out=products,
                    )
                    grad_dense[index] += products.view(shape[:2] + (width, width)).sum(-3)
                    _dense_product(matrix.transpose(-1, -2), grad, spare, groups, width, columns, expanded)
                grad = spare
                continue
            c, s = _table_views(cos_tables[index], sin_tables[index], lanes)
            low, high = before.select(1 + lane, 0), before.select(1 + lane, 1)
            grad_low, grad_high = grad.select(1 + lane, 0), grad.select(1 + lane, 1)
            torch.mul(grad_low, low, out=product)
            product.addcmul_(grad_high, high)
            grad_cos[index] += product.sum(-1).reshape(groups, -1).sum_to_size(grad_cos[index].shape)
            torch.mul(grad_high, low, out=product)
            product.addcmul_(grad_low, high, value=-1)
            grad_sin[index] += product.sum(-1).reshape(groups, -1).sum_to_size(grad_sin[index].shape)
            new_low, new_high = spare.select(1 + lane, 0), spare.select(1 + lane, 1)
            torch.mul(grad_low, c, out=new_low)
            new_low.addcmul_(grad_high, s)
            torch.mul(grad_high, c, out=new_high)
            new_high.addcmul_(grad_low, s, value=-1)
            grad = spare
        keep_buffer("rotation program gradients", work)
        if expanded is not None:
            keep_buffer("rotation program matrices", expanded)
        # The history buffer goes to the next pass; a second backward (retain_graph) takes it back if no pass
        # has taken it meanwhile.
        ctx.released = keep_buffer("rotation program", history)  # type: ignore[attr-defined]
        return grad_cos, grad_sin, grad_dense, None, None


def _expanded_buffer(dense: torch.Tensor, groups: int, width: int, like: torch.Tensor) -> torch.Tensor | None:
    """A reused buffer for one matrix per group (a dense map's matrices expanded), where the maps have one per
    member (P x W x W); None for maps shared by all groups."""
    if dense.dim() < 4:
        return None
    return reusable_buffer("rotation program matrices", (groups, width, width), like)


def _dense_product(
    matrix: torch.Tensor,
    before: torch.Tensor,
    after: torch.Tensor,
    groups: int,
    width: int,
    columns: int,
    expanded: torch.Tensor | None,
) -> None:
    """after = matrix @ before for every group: a W x W matrix for all groups, or P x W x W, one per run of
    groups/P consecutive groups. The per-member matrices are expanded to one per group in `expanded` and
    multiplied by one batched product: exactly what `torch.matmul` does with them broadcast, without a fresh
    buffer for the expansion."""
    shape = _dense_groups(matrix, groups, width, columns)
    if matrix.dim() == 2 or expanded is None:
        torch.matmul(matrix.unsqueeze(-3), before.view(shape), out=after.view(shape))
        return
    expanded.view(shape[:2] + (width, width)).copy_(matrix.unsqueeze(-3).expand(shape[:2] + (width, width)))
    torch.bmm(expanded, before.view(groups, width, columns), out=after.view(groups, width, columns))


def _dense_groups(matrix: torch.Tensor, groups: int, width: int, columns: int) -> tuple[int, ...]:
    """The view of the (groups, width, columns) states that a dense map (W x W, the same for every group, or
    P x W x W, one per run of groups/P consecutive groups: a pool's members) applies to by broadcasting."""
    if matrix.dim() == 2:
        return (groups, width, columns)
    return (matrix.shape[0], groups // matrix.shape[0], width, columns)


def _table_views(cos_table: torch.Tensor, sin_table: torch.Tensor, lanes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables (groups or 1, 2^(lanes-1) or 1) as views broadcasting over (groups, 2 x (lanes-1), columns)."""
    other = (2,) * (lanes - 1) if cos_table.shape[1] > 1 else (1,) * (lanes - 1)
    shape = (cos_table.shape[0],) + other + (1,)
    return cos_table.view(shape), sin_table.view(shape)


def run_rotation_program(
    states: torch.Tensor,
    program: Sequence[tuple[str, int, int]],
    cos_tables: torch.Tensor,
    sin_tables: torch.Tensor,
    dense: torch.Tensor,
) -> torch.Tensor:
    """Apply a fixed program to column states (G x 2^n x R: G groups of R states on n lanes, lane 0 the top bit).

    Each step is ("rotate", k, lane): [[c, -s], [s, c]] on `lane` with c = cos_tables[k], s = sin_tables[k],
    tables of shape (G or 1) x (2^(n-1) or 1) over the other lanes' configuration (in lane order, top bit
    first), the same for every state of a group; or ("dense", k, -1): `dense[k]` (2^n x 2^n) times every state,
    or (P x 2^n x 2^n) one matrix per run of G/P consecutive groups (a pool's members).
    Unnormalised. Differentiable in the tables and the dense matrices (not in `states`).
    """
    return _RotationProgram.apply(cos_tables, sin_tables, dense, states.detach(), tuple(program))
