"""Draws docs/scaling.png, seconds per training step against simulated qubits, from the figures of the README's
"Large workspaces" table (measured with `qrnn bench --config wsN` and, for the original, one training step of its
code at commit 400a5eb on the same shapes: the times `qrnn bench` stores). Run: python docs/scaling.py"""

from pathlib import Path

import matplotlib

from qrnn.bench import CONFIGS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (qubits I+H, seconds per step); I=2, S=1, k=2, d=2, B=16, L=20 except ws20 (B=4, L=10).
QRNN = [(8, 0.0106), (10, 0.042), (12, 0.081), (14, 0.253), (18, 7.4), (22, 34.0)]
# The original's times: `qrnn bench`'s, the one place they are stored.
ORIGINAL = [
    (c.input_size + c.workspace_size, c.original_seconds)
    for c in CONFIGS.values()
    if c.name.startswith("ws") and c.original_seconds is not None
]


def main() -> None:
    """Write the figure next to this script."""
    figure, axes = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for label, points, marker in (("qrnn", QRNN, "o"), ("original (400a5eb)", ORIGINAL, "s")):
        axes.plot([q for q, _ in points], [s for _, s in points], marker=marker, label=label)
    axes.annotate("B=4, L=10", QRNN[-1], textcoords="offset points", xytext=(-62, -14), fontsize=8)
    axes.set_yscale("log")
    axes.set_xlabel("simulated qubits (I + H)")
    axes.set_ylabel("seconds per training step")
    axes.set_title("One training step, 1 thread, 2-core CPU")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(Path(__file__).with_name("scaling.png"))


if __name__ == "__main__":
    main()
