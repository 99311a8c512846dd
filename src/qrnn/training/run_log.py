"""TensorBoard logging of a run, written by shard 0 into `<out>/runs/<run name>`.

Scalars: loss/train, loss/validate, loss/validate_best, min_postsel_prob/train, min_postsel_prob/validate,
accuracy/character_error_rate_current, accuracy/character_error_rate_best, time/seconds_per_epoch. Text: the
arguments, validation samples, checkpoint names. Hyperparameters with the final metrics at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qrnn.errors import RunFault
from qrnn.files import describe_error


class RunLog:
    """A TensorBoard writer for one run; a resumed run reopens its directory and drops the events logged after
    the checkpoint it resumes from (`purge_step`), so the curves continue without a fork."""

    def __init__(self, log_dir: Path, purge_step: int | None = None, write_through: bool = False) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        # A sweep's run may be taken over by another worker at any moment, and must then write nothing more: its
        # events go to the file as they are logged, so that none are left in a buffer to be written later.
        self.write_through = write_through
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(log_dir), purge_step=purge_step, flush_secs=30)
        except OSError as error:
            raise self._fault(error) from None

    def _fault(self, error: OSError) -> RunFault:
        """The one line for a log that cannot be written (a full disk): a fault at run time, exit code 1."""
        return RunFault(f"cannot write TensorBoard logs in {self.log_dir}: {describe_error(error)}")

    def scalars(self, epoch: int, values: dict[str, float | None]) -> None:
        """Log each named value (None is skipped) at `epoch`."""
        for name, value in values.items():
            if value is not None:
                self.writer.add_scalar(name, value, epoch)
        self._written()

    def _written(self) -> None:
        if self.write_through:
            self.writer.flush()

    def text(self, tag: str, text: str, epoch: int) -> None:
        """Log preformatted text (shown as a code block in TensorBoard)."""
        indented = "\n".join("    " + line for line in text.splitlines())
        self.writer.add_text(tag, indented, epoch)
        self._written()

    def arguments(self, config: dict[str, Any], epoch: int, note: str = "") -> None:
        """The run's options as a table."""
        rows = ["| option | value |", "|---|---|"] + [f"| {name} | {value!r} |" for name, value in config.items()]
        self.writer.add_text("arguments", (note + "\n\n" if note else "") + "\n".join(rows), epoch)
        self._written()

    def hyperparameters(self, config: dict[str, Any], metrics: dict[str, float | None]) -> None:
        """The options (None written as "none") with the final metrics, for TensorBoard's HParams tab."""
        hparams = {name: ("none" if value is None else value) for name, value in config.items()}
        finite = {f"hparam/{name}": value for name, value in metrics.items() if value is not None}
        try:
            self.writer.add_hparams(hparams, finite, run_name=".")
        except OSError as error:
            raise self._fault(error) from None

    def close(self) -> None:
        """Flush and close the event files."""
        try:
            self.writer.flush()
            self.writer.close()
        except OSError as error:
            raise self._fault(error) from None
