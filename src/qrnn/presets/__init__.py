"""Presets: the paper's experiments as small TOML files of training options, shipped with the package.

A preset file `<name>.toml` holds
- `description = "..."`: one line for `qrnn presets`;
- `[train]`: training option values, keys are the flag names with underscores (`learning_rate = 0.01`);
- `[sweep]` (optional): option -> list of values; a sweep runs every combination;
- `seeds = [...]` (optional): the seeds a sweep runs each combination with (default: the `[train]` seed, or
  the training default);
- `[search]` (optional): option -> `{ low = ..., high = ..., log = true }` (a float range, or an int range for
  integer options; `log` optional) or `{ choices = [...] }`: the space `qrnn tune` searches.
- or, instead of `seeds`, `first_seed = S` with `repeats = N` (optional, default 1): the original's scripts that
  count a seed up per run: the grid is N repeats (outer loop) x the `[sweep]` combinations, and the points get
  the seeds S, S + 1, ... in that order, each point its own;
- `base = "NAME"` (optional): start from the shipped preset NAME; the file's `[train]` and `[sweep]` entries
  replace NAME's one by one, its seeds (`seeds`, or `first_seed` with `repeats`) replace NAME's, and its
  description is its own (e.g. a study run on a subset of a preset's seeds, under the file's own name).

`qrnn train --preset NAME` trains with the `[train]` options (explicit flags override them); `qrnn sweep NAME`
runs the grid seeds x `[sweep]` values, each point being the `[train]` options with one value of every swept
option and one seed. Anything wrong in a file (an unknown key, a value of the wrong type or out of range) is a
one-line `QRNNError` naming the file and the key. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from qrnn.errors import QRNNError
from qrnn.files import path_problem
from qrnn.training.config import TrainConfig, check_config, option_names

PRESET_DIRECTORY = Path(__file__).resolve().parent
SUFFIX = ".toml"
TOP_LEVEL_KEYS = ("description", "base", "seeds", "first_seed", "repeats", "train", "sweep", "search")
SEARCH_KEYS = ("low", "high", "log", "choices")
# Where a run writes is the caller's choice (--out, or the sweep's root), never a preset's.
FORBIDDEN_OPTIONS = {"out": "--out is chosen by the command (train --out, or the sweep's --root)"}


@dataclass(frozen=True)
class Preset:
    """A parsed, checked preset: its name, file, description, `[train]` options, `[sweep]` grid and seeds (a list,
    or a counter: `first_seed` and `repeats`)."""

    name: str
    path: Path
    description: str
    train: dict[str, Any]
    sweep: dict[str, list[Any]]
    seeds: list[int] | None
    # `[search]`: option -> {"low", "high", "log"} (numbers of the option's type) or {"choices": [...]}.
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_seed: int | None = None
    repeats: int = 1

    def train_options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The options of `qrnn train --preset`: the `[train]` table, overridden by the explicitly `given` ones."""
        return {**self.train, **dict(given or {})}

    def grid(self) -> list[dict[str, Any]]:
        """Every point of the sweep as its options: seeds (outer loop) x the combinations of the `[sweep]`
        values (in the file's key order); a preset without `[sweep]` and `seeds` is one point. With `first_seed`:
        `repeats` x the combinations, the points counting the seed up from `first_seed` in that order."""
        names = list(self.sweep)
        points = []
        if self.first_seed is not None:
            combinations = list(itertools.product(*(self.sweep[name] for name in names)))
            for _ in range(self.repeats):
                for values in combinations:
                    seed = self.first_seed + len(points)
                    points.append({**self.train, **dict(zip(names, values, strict=True)), "seed": seed})
            return points
        seeds = self.seeds if self.seeds is not None else [self.train.get("seed", _default("seed"))]
        for seed in seeds:
            for values in itertools.product(*(self.sweep[name] for name in names)):
                points.append({**self.train, **dict(zip(names, values, strict=True)), "seed": seed})
        return points

    def varying(self) -> list[str]:
        """The options that differ between the grid's points (swept options, and `seed` if several)."""
        names = [name for name, values in self.sweep.items() if len(values) > 1]
        if self.seeds is not None and len(self.seeds) > 1:
            names.append("seed")
        if self.first_seed is not None and len(self.grid()) > 1:
            names.append("seed")
        return names

    def summary(self) -> str:
        """A short account of the grid, e.g. `24 points: optimizer (4) x learning_rate (6) x 5 seeds`."""
        points = len(self.grid())
        parts = [f"{name} ({len(values)})" for name, values in self.sweep.items()]
        if self.first_seed is not None:
            last = self.first_seed + points - 1
            repeats = f"{self.repeats} repeat{'s' if self.repeats != 1 else ''}"
            parts.append(f"{repeats} (seeds {self.first_seed}..{last}, one per point)")
            return f"{points} point{'s' if points != 1 else ''}: {' x '.join(parts)}"
        seeds = len(self.seeds) if self.seeds is not None else 1
        parts.append(f"{seeds} seed{'s' if seeds != 1 else ''}")
        return f"{points} point{'s' if points != 1 else ''}: {' x '.join(parts)}"


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(TrainConfig) if f.name == name)


def preset_names() -> list[str]:
    """The names of the presets shipped with qrnn, sorted."""
    return sorted(path.stem for path in PRESET_DIRECTORY.glob(f"*{SUFFIX}"))


def preset_path(name: str | Path) -> Path:
    """The file of a preset given by name (a shipped one) or by path (any `.toml` file); one-line error if
    there is none."""
    candidate = Path(name)
    if str(name).endswith(SUFFIX) or candidate.parent != Path("."):
        problem = path_problem(candidate, "preset file")
        if problem is not None:
            raise QRNNError(problem)
        return candidate
    shipped = PRESET_DIRECTORY / f"{name}{SUFFIX}"
    if not shipped.is_file():
        close = difflib.get_close_matches(str(name), preset_names(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise QRNNError(
            f"unknown preset {str(name)!r}{hint}; valid: {', '.join(preset_names())}, or a path to a .toml file"
        )
    return shipped


def load_preset(name: str | Path) -> Preset:
    """Read and check a preset (by shipped name or path): raises `QRNNError` naming the file and the key of the
    first problem."""
    path = preset_path(name)
    table = _read_table(path)
    base = table.get("base")
    if base is not None:
        if not isinstance(base, str) or base not in preset_names():
            close = difflib.get_close_matches(str(base), preset_names(), n=1) if isinstance(base, str) else []
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise QRNNError(f"preset {path}: base: {base!r} is not a shipped preset{hint}; `qrnn presets` lists them")
        table = _on_base(_read_table(preset_path(base)), table, path)
    return parse_preset(table, path)


def _read_table(path: Path) -> dict[str, Any]:
    """The parsed TOML of a preset file; one-line errors."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise QRNNError(f"preset {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise QRNNError(
            f"preset {path} is not UTF-8 text (byte {error.start} is 0x{error.object[error.start]:02x}); presets "
            "are TOML files, which are UTF-8"
        ) from None
    except OSError as error:
        raise QRNNError(f"cannot read preset {path}: {error.strerror}") from None


def _on_base(base: dict[str, Any], table: dict[str, Any], path: Path) -> dict[str, Any]:
    """The table of a file with `base = NAME` laid over NAME's table (see the module docstring)."""
    if "base" in base:
        raise QRNNError(f"preset {path}: base: the shipped preset {table['base']!r} has a base of its own")
    merged = {key: value for key, value in base.items() if key not in ("description",)}
    for key in ("train", "sweep"):
        given = table.get(key, {})
        if not isinstance(given, dict):
            raise QRNNError(f"preset {path}: {key} must be a table ([{key}]), got {given!r}")
        merged[key] = {**base.get(key, {}), **given}
    if any(key in table for key in ("seeds", "first_seed", "repeats")):
        for key in ("seeds", "first_seed", "repeats"):
            merged.pop(key, None)
    merged.update({key: value for key, value in table.items() if key not in ("base", "train", "sweep")})
    return merged


def parse_preset(table: Mapping[str, Any], path: Path) -> Preset:
    """A checked `Preset` from the parsed TOML `table` of the file `path` (used in error messages)."""
    unknown = [key for key in table if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise QRNNError(
            f"preset {path}: unknown key {unknown[0]!r}{_suggestion(unknown[0], TOP_LEVEL_KEYS)}; "
            f"valid top-level keys: {', '.join(TOP_LEVEL_KEYS)}"
        )
    description = table.get("description")
    if not isinstance(description, str) or not description.strip() or "\n" in description.strip():
        raise QRNNError(f"preset {path}: description must be a one-line string, got {description!r}")
    train = table.get("train", {})
    if not isinstance(train, dict):
        raise QRNNError(f"preset {path}: train must be a table ([train]) of option values, got {train!r}")
    sweep = table.get("sweep", {})
    if not isinstance(sweep, dict):
        raise QRNNError(f"preset {path}: sweep must be a table ([sweep]) of option -> list of values, got {sweep!r}")
    seeds = table.get("seeds")
    checked_train = {key: _check_value(path, "train", key, value) for key, value in train.items()}
    checked_sweep: dict[str, list[Any]] = {}
    for key, values in sweep.items():
        if key == "seed":
            raise QRNNError(f"preset {path}: [sweep] seed: list the seeds as a top-level seeds = [...] instead")
        if not isinstance(values, list) or not values:
            raise QRNNError(f"preset {path}: [sweep] {key}: must be a non-empty list of values, got {values!r}")
        checked = [_check_value(path, "sweep", key, value) for value in values]
        if len(set(map(repr, checked))) != len(checked):
            raise QRNNError(f"preset {path}: [sweep] {key}: lists a value twice: {values!r}")
        checked_sweep[key] = checked
    checked_seeds: list[int] | None = None
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds:
            raise QRNNError(f"preset {path}: seeds must be a non-empty list of integers, got {seeds!r}")
        checked_seeds = [_check_value(path, "seeds", "seed", seed) for seed in seeds]
        if len(set(checked_seeds)) != len(checked_seeds):
            raise QRNNError(f"preset {path}: seeds lists a seed twice: {seeds!r}")
    first_seed, repeats = table.get("first_seed"), table.get("repeats")
    if first_seed is not None:
        if seeds is not None:
            raise QRNNError(f"preset {path}: first_seed: give either seeds = [...] or first_seed, not both")
        first_seed = _check_value(path, "first_seed", "seed", first_seed)
        _check_config(path, f"first_seed {first_seed!r}", {**checked_train, "seed": first_seed})
    if repeats is not None:
        if first_seed is None:
            raise QRNNError(f"preset {path}: repeats: needs first_seed (each repeat's points get their own seeds)")
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise QRNNError(f"preset {path}: repeats: must be an integer >= 1, got {repeats!r}")
    _check_ranges(path, checked_train, checked_sweep, checked_seeds)
    search = table.get("search", {})
    if not isinstance(search, dict):
        raise QRNNError(f"preset {path}: search must be a table ([search]) of option -> range or choices, "
                        f"got {search!r}")
    checked_search = {key: _check_search(path, checked_train, key, entry) for key, entry in search.items()}
    return Preset(
        name=path.stem,
        path=path,
        description=description.strip(),
        train=checked_train,
        sweep=checked_sweep,
        seeds=checked_seeds,
        search=checked_search,
        first_seed=first_seed,
        repeats=repeats if repeats is not None else 1,
    )


def _check_search(path: Path, train: dict[str, Any], key: str, entry: Any) -> dict[str, Any]:
    """One `[search]` entry checked: `{low, high, log}` of the option's number type or `{choices}`, every value
    valid for the option (on top of the `[train]` options)."""
    where = f"[search] {key}"
    if not isinstance(entry, dict):
        raise QRNNError(f"preset {path}: {where}: must be a table {{ low = ..., high = ... }} or "
                        f"{{ choices = [...] }}, got {entry!r}")
    unknown = [name for name in entry if name not in SEARCH_KEYS]
    if unknown:
        raise QRNNError(f"preset {path}: {where}: unknown key {unknown[0]!r}; valid: {', '.join(SEARCH_KEYS)}")
    if "choices" in entry:
        if set(entry) != {"choices"}:
            raise QRNNError(f"preset {path}: {where}: give either choices or low/high, not both")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise QRNNError(f"preset {path}: {where}: choices must be a non-empty list, got {choices!r}")
        checked = [_check_value(path, "search", key, value) for value in choices]
        if len(set(map(repr, checked))) != len(checked):
            raise QRNNError(f"preset {path}: {where}: choices list a value twice: {choices!r}")
        for value in checked:
            _check_config(path, f"{where} = {value!r}", {**train, key: value})
        return {"choices": checked}
    if "low" not in entry or "high" not in entry:
        raise QRNNError(f"preset {path}: {where}: needs low and high (or choices)")
    low = _check_value(path, "search", key, entry["low"])
    high = _check_value(path, "search", key, entry["high"])
    if isinstance(low, bool) or not isinstance(low, int | float):
        raise QRNNError(f"preset {path}: {where}: a range needs a number option; use choices for {key}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise QRNNError(f"preset {path}: {where}: log must be true or false, got {log!r}")
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise QRNNError(f"preset {path}: {where}: needs finite low < high, got low {low!r}, high {high!r}")
    if log and low <= 0:
        raise QRNNError(f"preset {path}: {where}: a log range needs low > 0, got {low!r}")
    for value in (low, high):
        _check_config(path, f"{where} = {value!r}", {**train, key: value})
    return {"low": low, "high": high, "log": log}


def _suggestion(key: str, valid: Any) -> str:
    close = difflib.get_close_matches(key.replace("-", "_"), list(valid), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _allowed_types(name: str) -> set[str]:
    """The type names a config field accepts, from its annotation (`float | None` -> {float, None})."""
    annotation = next(f.type for f in dataclasses.fields(TrainConfig) if f.name == name)
    return {part.strip() for part in str(annotation).split("|")}


def _check_value(path: Path, table: str, key: str, value: Any) -> Any:
    """`value` checked against the type of option `key` (ints accepted for floats, and made floats so that a
    point's options and id do not depend on how a number was written)."""
    if key in FORBIDDEN_OPTIONS:
        raise QRNNError(f"preset {path}: [{table}] {key}: not allowed in a preset; {FORBIDDEN_OPTIONS[key]}")
    if key not in option_names():
        raise QRNNError(
            f"preset {path}: [{table}] unknown option {key!r}{_suggestion(key, option_names())}; "
            f"options are the flag names with underscores: {', '.join(option_names())}"
        )
    allowed = _allowed_types(key)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if "float" in allowed and (is_int or isinstance(value, float)):
        return float(value)
    if "int" in allowed and is_int:
        return value
    if "str" in allowed and isinstance(value, str):
        return value
    if "bool" in allowed and isinstance(value, bool):
        return value
    wanted = " or ".join(sorted(kind for kind in allowed if kind != "None"))
    label = f"[{table}] {key}" if table not in ("seeds", "first_seed") else table
    raise QRNNError(f"preset {path}: {label}: must be {wanted}, got {value!r}")


def _check_ranges(
    path: Path, train: dict[str, Any], sweep: dict[str, list[Any]], seeds: list[int] | None
) -> None:
    """Check the option values with the training's own checks; the error names the key whose value broke them.

    The `[train]` keys are added one at a time onto the defaults, so the first key that makes the config invalid
    is the one named; then every swept value and seed is checked on top of the `[train]` options."""
    applied: dict[str, Any] = {}
    for key, value in train.items():
        applied[key] = value
        _check_config(path, f"[train] {key}", applied)
    for key, values in sweep.items():
        for value in values:
            _check_config(path, f"[sweep] {key} = {value!r}", {**train, key: value})
    for seed in seeds or []:
        _check_config(path, f"seeds {seed!r}", {**train, "seed": seed})


def _check_config(path: Path, where: str, options: dict[str, Any]) -> None:
    try:
        check_config(TrainConfig(**options))
        if "dataset" in options:
            _check_dataset_name(options["dataset"])
    except QRNNError as error:
        raise QRNNError(f"preset {path}: {where}: {error}") from None


def _check_dataset_name(name: str) -> None:
    # The registry imports the dataset modules (and torch): only for presets that name a dataset.
    from qrnn.datasets import dataset_names

    names = dataset_names()
    if ":" in name:  # your own data (text:PATH, npz:PATH): checked when a run starts, as the file may come later
        return
    if name not in names:
        raise QRNNError(f"unknown dataset {name!r}{_suggestion(name, names)}; `qrnn datasets` lists them")


def check_points(preset: Preset) -> None:
    """Check every point of the grid against its dataset too (batch size, sentence length, shards), as a
    training run would before starting; `QRNNError` naming the preset and the point's swept values."""
    from qrnn.training.config import make_config
    from qrnn.training.launch import resolve_batch_size

    for options in preset.grid():
        try:
            resolve_batch_size(make_config(options))
        except QRNNError as error:
            values = ", ".join(f"{name}={options[name]!r}" for name in preset.varying())
            raise QRNNError(f"preset {preset.path}: point {values or '(the only one)'}: {error}") from None


def list_presets() -> list[Preset]:
    """Every shipped preset, loaded and checked (sorted by name)."""
    return [load_preset(name) for name in preset_names()]
