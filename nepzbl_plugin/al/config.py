"""The active-learning configuration: a small TOML file, validated with errors that name the file
and the key.

Example (``nepzbl al --example emt DIR`` writes a complete one)::

    state = "al-state"              # folder of the run (relative to this file)
    seed = 0
    device = "cpu"                  # MD engine: "cpu", "cuda" or "auto" (CUDA when present)

    [data]
    train = "train.xyz"             # the labelled start set (extended XYZ, energy and forces)
    nep_in = "nep.in"               # the model header and loss weights
    model = "nep.txt"               # optional: the first model; trained on `train` when absent

    [oracle]
    calculator = "ase.calculators.emt:EMT"   # module:callable, a nep.txt, or "external"

    [md]                            # defaults of every MD run
    steps = 200                     # steps per run
    timestep = 1.0                  # fs
    thermostat = "langevin"         # "langevin" or "bussi" (NVT, target ramped linearly)
    friction = 0.01                 # 1/fs: Langevin friction; 1/friction is the coupling time
    sample_interval = 10            # steps between candidate frames
    # knock_on_horizon = 24576      # optional: head-on collisions at the energy E* a run of
                                    # this many atom-ns meets (k_B T ln(nu N t), T the top of
                                    # the ramp), or knock_on_energy = 2.0 (eV); see docs/al.md
    # knock_on_rounds = 3           # rounds over the species pairs in contact, at the run's end
    # knock_on_interval = 200       # steps between collisions

    [[iteration]]                   # one table per iteration
    runs = 2                        # MD runs, each from a training structure
    temperature = [300, 900]        # K: a linear ramp from the first to the second value
    steps = 200                     # optional, overrides [md]

    [selection]
    method = "fps"                  # "fps" or "maxvol"
    min_distance = 0.01             # FPS: stop below this distance in descriptor space
    max_frames = 20                 # per iteration
    grade_threshold = 1.0           # maxvol: only frames graded above this

    [filter]
    fraction = 0.6                  # too short: below 0.6 x the data's shortest pair distance

    [training]
    min_new_frames = 20             # retrain only when this many new frames came in
    epochs = 200                    # or max_time (s); fine-tunes from the last model
    initial_epochs = 500            # or initial_max_time: the first model (default: as above)
    fine_tune = true

    [audit]
    enabled = true                  # audit each new model (dimer scans, data distances)
    hot_md = false                  # also the audit's hot-MD stress test
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import whole_number
from ..errors import NepzblError

__all__ = ["ConfigError", "ALConfig", "MDRunSpec", "IterationSpec", "load_config",
           "parse_config", "read_toml"]


class ConfigError(NepzblError, ValueError):
    """A bad active-learning configuration: names the file and the key."""

    def __init__(self, path, key: str | None, problem: str):
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.key, self.problem))


def _toml_module():
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError:
        raise NepzblError("reading the active-learning TOML config needs Python >= 3.11 or the "
                          "'tomli' package (pip install tomli)") from None
    return tomli


def read_toml(path) -> dict:
    """The parsed TOML file; a syntax error becomes a :class:`ConfigError` naming the file."""
    toml = _toml_module()
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return toml.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(path, None, f"not UTF-8 text ({error})") from None
    except toml.TOMLDecodeError as error:
        raise ConfigError(path, None, f"not valid TOML: {error}") from None


@dataclass
class MDRunSpec:
    """One MD run: NVT with the target ramped linearly from ``t_start`` to ``t_end`` K over
    ``steps`` steps; Langevin or Bussi (``thermostat``) with coupling time 1 / ``friction``."""

    t_start: float
    t_end: float
    steps: int
    timestep: float = 1.0  # fs
    friction: float = 0.01  # 1/fs
    sample_interval: int = 10  # steps between candidate frames
    thermostat: str = "langevin"  # or "bussi"
    # Knock-on collisions (off unless an energy or a horizon is given): the collisions a long
    # production run meets, delivered on purpose at the end of a short one (the audit's stress
    # test inside the loop). ``knock_on_energy`` in eV, or ``knock_on_horizon`` in atom ns: the
    # energy E* = k_B T ln(nu N t) that N t atom ns at the top of the ramp reach about once.
    knock_on_energy: float | None = None
    knock_on_horizon: float | None = None
    knock_on_rounds: int = 3  # rounds over the species pairs in contact
    knock_on_interval: int = 200  # steps between collisions

    @property
    def length_ps(self) -> float:
        return self.steps * self.timestep / 1000.0

    @property
    def knocks_on(self) -> bool:
        return self.knock_on_energy is not None or self.knock_on_horizon is not None

    def collision_energy(self) -> float | None:
        """The knock-on energy in eV (None when off): ``knock_on_energy``, else E* of
        ``knock_on_horizon`` at the top of the ramp."""
        if self.knock_on_energy is not None:
            return self.knock_on_energy
        if self.knock_on_horizon is None:
            return None
        from ..audit.stress_test import knock_on_energy

        return knock_on_energy(max(self.t_start, self.t_end), self.knock_on_horizon)

    def knock_on_steps(self, num_pairs: int) -> list[int]:
        """The steps at which the collisions come: ``knock_on_rounds`` x ``num_pairs`` of them,
        ``knock_on_interval`` apart, the last one ``knock_on_interval`` before the end (so
        the run ends at the top of its ramp, where the collisions are hardest, with time to
        see what each did). Empty when off."""
        if not self.knocks_on or num_pairs < 1:
            return []
        count = self.knock_on_rounds * num_pairs
        first = self.steps - count * self.knock_on_interval
        return [first + n * self.knock_on_interval for n in range(count)]

    def knock_on_shortfall(self, num_pairs: int) -> str | None:
        """Why the run is too short for its collisions over ``num_pairs`` species pairs (they
        must all come after ``knock_on_interval`` steps of plain MD), or None when they fit."""
        kicks = self.knock_on_steps(num_pairs)
        if not kicks or kicks[0] >= self.knock_on_interval:
            return None
        return (f"{self.steps} steps leave no room for {len(kicks)} knock-on collisions "
                f"({self.knock_on_rounds} round(s) over {num_pairs} species pair(s), "
                f"{self.knock_on_interval} steps apart) after some plain MD: give at least "
                f"{(len(kicks) + 1) * self.knock_on_interval} steps, or fewer rounds")

    def as_dict(self) -> dict:
        out = {"temperature_K": [self.t_start, self.t_end], "steps": self.steps,
               "timestep_fs": self.timestep, "friction_per_fs": self.friction,
               "sample_interval": self.sample_interval, "thermostat": self.thermostat}
        if self.knocks_on:
            out.update(knock_on_energy_eV=self.collision_energy(),
                       knock_on_horizon_atom_ns=self.knock_on_horizon,
                       knock_on_rounds=self.knock_on_rounds,
                       knock_on_interval=self.knock_on_interval)
        return out


@dataclass
class IterationSpec:
    runs: list[MDRunSpec]

    @property
    def temperature_range(self) -> tuple[float, float]:
        temps = [t for r in self.runs for t in (r.t_start, r.t_end)]
        return min(temps), max(temps)

    @property
    def length_ps(self) -> float:
        """MD length per run (the longest), ps."""
        return max(r.length_ps for r in self.runs)


@dataclass
class ALConfig:
    """A validated configuration; paths are absolute."""

    path: Path
    state: Path
    train: Path
    nep_in: Path
    model: Path | None
    oracle: str  # "module:callable", a nep.txt path, "emt" or "external"
    iterations: list[IterationSpec]
    seed: int = 0
    selection_method: str = "fps"
    min_distance: float = 0.01
    max_frames: int = 20
    grade_threshold: float = 1.0
    filter_fraction: float = 0.6
    min_new_frames: int = 20
    epochs: int | None = None
    max_time: float | None = None  # s
    fine_tune: bool = True
    initial_epochs: int | None = None  # the first model (trained when data.model is absent)
    initial_max_time: float | None = None  # s
    optimizer: str | None = None
    batch_size: int | None = None
    audit: bool = True
    audit_hot_md: bool = False
    num_threads: int | None = None
    device: str = "cpu"  # of the MD engine evaluator: "cpu", "cuda" or "auto"
    raw: dict = field(default_factory=dict)


THERMOSTATS = ("langevin", "bussi")


def _thermostat(reader, table, name, default) -> str:
    value = reader.string(table, name.rsplit(".", 1)[-1], name, default)
    if value not in THERMOSTATS:
        raise reader.error(name, f"must be one of {', '.join(THERMOSTATS)}, not {value!r}")
    return value


_KNOCK_KEYS = ("knock_on_energy", "knock_on_horizon", "knock_on_rounds", "knock_on_interval")
_TOP_KEYS = {"state", "seed", "threads", "device", "data", "oracle", "md", "iteration", "selection",
             "filter", "training", "audit"}
_SECTION_KEYS = {
    "data": {"train", "nep_in", "model"},
    "oracle": {"calculator"},
    "md": {"steps", "timestep", "friction", "sample_interval", "thermostat", *_KNOCK_KEYS},
    "iteration": {"runs", "temperature", "steps", "timestep", "friction", "sample_interval",
                  "thermostat", *_KNOCK_KEYS},
    "selection": {"method", "min_distance", "max_frames", "grade_threshold"},
    "filter": {"fraction"},
    "training": {"min_new_frames", "epochs", "max_time", "fine_tune", "optimizer",
                 "batch_size", "initial_epochs", "initial_max_time"},
    "audit": {"enabled", "hot_md"},
}


class _Reader:
    def __init__(self, path):
        self.path = Path(path)

    def error(self, key, problem):
        return ConfigError(self.path, key, problem)

    def table(self, data, key, required=False) -> dict:
        value = data.get(key)
        if value is None:
            if required:
                raise self.error(key, "missing (a [" + key + "] table is required)")
            return {}
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, not {type(value).__name__}")
        return value

    def unknown(self, table: dict, allowed: set, prefix: str) -> None:
        extra = sorted(set(table) - allowed)
        if extra:
            name = f"{prefix}.{extra[0]}" if prefix else extra[0]
            raise self.error(name, f"unknown key; allowed: {', '.join(sorted(allowed))}")

    def number(self, table, key, name, default=None, *, low=None, high=None, integer=False,
               positive=False, allow_none=False):
        value = table.get(key, default)
        if value is None:
            if allow_none:
                return None
            raise self.error(name, "missing")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number, not {value!r}")
        if integer and whole_number(value) is None:
            raise self.error(name, f"must be a whole number, not {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.error(name, f"must be finite, not {value!r}")
        if positive and not value > 0:
            raise self.error(name, f"must be positive, not {value!r}")
        if low is not None and value < low:
            raise self.error(name, f"must be at least {low}, not {value!r}")
        if high is not None and value > high:
            raise self.error(name, f"must be at most {high}, not {value!r}")
        return int(value) if integer else float(value)

    def boolean(self, table, key, name, default):
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, not {value!r}")
        return value

    def string(self, table, key, name, default=None, required=False):
        value = table.get(key, default)
        if value is None:
            if required:
                raise self.error(name, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"must be a non-empty string, not {value!r}")
        return value

    def file(self, table, key, name, required=True, must_exist=True):
        value = self.string(table, key, name, required=required)
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute():
            path = self.path.parent / path
        if must_exist and not path.is_file():
            raise self.error(name, f"file {value!r} not found (looked at {path})")
        return path.resolve()


def _temperatures(reader: _Reader, value, name) -> tuple[float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair = [value, value]
    elif isinstance(value, list) and len(value) in (1, 2):
        pair = value * 2 if len(value) == 1 else value
    else:
        raise reader.error(name, f"must be a temperature in K or [start, end], not {value!r}")
    out = []
    for t in pair:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0 or t != t:
            raise reader.error(name, f"temperatures must be positive numbers (K), not {value!r}")
        out.append(float(t))
    return out[0], out[1]


def _knock_on(reader: _Reader, table: dict, prefix: str, defaults: dict) -> dict:
    """The knock-on keys of ``table`` ([md] or an [[iteration]]), the [md] values by default.
    An iteration's ``knock_on_energy`` or ``knock_on_horizon`` replaces both of [md]'s; 0
    turns the collisions off for that iteration."""
    energy_key, horizon_key = f"{prefix}.knock_on_energy", f"{prefix}.knock_on_horizon"
    if "knock_on_energy" in table and "knock_on_horizon" in table:
        raise reader.error(energy_key, "give knock_on_energy or knock_on_horizon, not both")
    energy, horizon = defaults.get("knock_on_energy"), defaults.get("knock_on_horizon")
    if "knock_on_energy" in table or "knock_on_horizon" in table:
        energy = reader.number(table, "knock_on_energy", energy_key, None, low=0,
                               allow_none=True)
        horizon = reader.number(table, "knock_on_horizon", horizon_key, None, low=0,
                                allow_none=True)
        # E* = k_B T ln(nu N t) is positive only for nu N t > 1: N t > 1e-4 atom ns
        if horizon is not None and 0 < horizon <= 1e-4:
            raise reader.error(horizon_key, f"must be above 1e-4 atom ns (N atoms x t ns), "
                                            f"or 0 for none, not {horizon!r}")
        energy = energy or None
        horizon = horizon or None
    return {
        "knock_on_energy": energy, "knock_on_horizon": horizon,
        "knock_on_rounds": reader.number(table, "knock_on_rounds", f"{prefix}.knock_on_rounds",
                                         defaults.get("knock_on_rounds", 3), integer=True,
                                         low=1),
        "knock_on_interval": reader.number(table, "knock_on_interval",
                                           f"{prefix}.knock_on_interval",
                                           defaults.get("knock_on_interval", 200),
                                           integer=True, low=2),
    }


def parse_config(data: dict, path) -> ALConfig:
    """Validate a parsed TOML document; ``path`` names the file in errors and anchors paths."""
    reader = _Reader(path)
    reader.unknown(data, _TOP_KEYS, "")
    for section, allowed in _SECTION_KEYS.items():
        if section == "iteration":
            continue
        reader.unknown(reader.table(data, section), allowed, section)

    state_name = reader.string(data, "state", "state", required=True)
    state = Path(state_name)
    if not state.is_absolute():
        state = reader.path.parent / state
    if state.exists() and not state.is_dir():
        raise reader.error("state", f"{state} exists and is not a folder; the run keeps its "
                                    "data, models and logs in a folder: name another one")
    seed = reader.number(data, "seed", "seed", 0, integer=True, low=0)
    threads = reader.number(data, "threads", "threads", None, integer=True, low=1,
                            allow_none=True)

    device = reader.string(data, "device", "device", "cpu")
    if device not in ("cpu", "cuda", "auto"):
        raise reader.error("device", f"must be 'cpu', 'cuda' or 'auto', not {device!r}")

    section = reader.table(data, "data", required=True)
    train = reader.file(section, "train", "data.train")
    nep_in = reader.file(section, "nep_in", "data.nep_in")
    model = reader.file(section, "model", "data.model", required=False)

    section = reader.table(data, "oracle", required=True)
    oracle = reader.string(section, "calculator", "oracle.calculator", required=True)
    if oracle != "external" and oracle.lower() != "emt" and ":" not in oracle:
        candidate = Path(oracle)
        if not candidate.is_absolute():
            candidate = reader.path.parent / candidate
        if not candidate.is_file():
            raise reader.error("oracle.calculator",
                               f"{oracle!r} is neither 'module:callable', 'emt', 'external' "
                               f"nor an existing nep.txt (looked at {candidate})")
        oracle = str(candidate.resolve())

    md = reader.table(data, "md")
    defaults = {
        "steps": reader.number(md, "steps", "md.steps", 1000, integer=True, low=1),
        "timestep": reader.number(md, "timestep", "md.timestep", 1.0, positive=True),
        "friction": reader.number(md, "friction", "md.friction", 0.01, positive=True),
        "sample_interval": reader.number(md, "sample_interval", "md.sample_interval", 10,
                                         integer=True, low=1),
        "thermostat": _thermostat(reader, md, "md.thermostat", "langevin"),
        **_knock_on(reader, md, "md", {}),
    }
    entries = data.get("iteration")
    if entries is None:
        raise reader.error("iteration", "missing: give at least one [[iteration]] table")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict)
                                                                for e in entries):
        raise reader.error("iteration", "must be an array of tables ([[iteration]])")
    iterations = []
    for k, entry in enumerate(entries, start=1):
        prefix = f"iteration[{k}]"
        reader.unknown(entry, _SECTION_KEYS["iteration"], prefix)
        runs = reader.number(entry, "runs", f"{prefix}.runs", 1, integer=True, low=1)
        if "temperature" not in entry:
            raise reader.error(f"{prefix}.temperature", "missing")
        t_start, t_end = _temperatures(reader, entry["temperature"], f"{prefix}.temperature")
        settings = {
            "steps": reader.number(entry, "steps", f"{prefix}.steps", defaults["steps"],
                                   integer=True, low=1),
            "timestep": reader.number(entry, "timestep", f"{prefix}.timestep",
                                      defaults["timestep"], positive=True),
            "friction": reader.number(entry, "friction", f"{prefix}.friction",
                                      defaults["friction"], positive=True),
            "sample_interval": reader.number(entry, "sample_interval",
                                             f"{prefix}.sample_interval",
                                             defaults["sample_interval"], integer=True, low=1),
            "thermostat": _thermostat(reader, entry, f"{prefix}.thermostat",
                                      defaults["thermostat"]),
            **_knock_on(reader, entry, prefix, defaults),
        }
        # one species pair at least; the loop checks again for the start data's pairs
        problem = MDRunSpec(t_start, t_end, **settings).knock_on_shortfall(1)
        if problem:
            raise reader.error(f"{prefix}.steps", problem + " (each species pair the start "
                                                            "data bring into contact adds "
                                                            "rounds x interval)")
        iterations.append(IterationSpec([MDRunSpec(t_start, t_end, **settings)
                                         for _ in range(runs)]))

    section = reader.table(data, "selection")
    method = reader.string(section, "method", "selection.method", "fps")
    if method not in ("fps", "maxvol"):
        raise reader.error("selection.method", f"must be 'fps' or 'maxvol', not {method!r}")
    min_distance = reader.number(section, "min_distance", "selection.min_distance", 0.01, low=0)
    max_frames = reader.number(section, "max_frames", "selection.max_frames", 20, integer=True,
                               low=1)
    grade = reader.number(section, "grade_threshold", "selection.grade_threshold", 1.0, low=0)

    section = reader.table(data, "filter")
    fraction = reader.number(section, "fraction", "filter.fraction", 0.6, positive=True,
                             high=1.0)

    section = reader.table(data, "training")
    min_new = reader.number(section, "min_new_frames", "training.min_new_frames", 20,
                            integer=True, low=1)
    epochs = reader.number(section, "epochs", "training.epochs", None, integer=True, low=1,
                           allow_none=True)
    max_time = reader.number(section, "max_time", "training.max_time", None, positive=True,
                             allow_none=True)
    if epochs is None and max_time is None:
        raise reader.error("training", "give epochs or max_time (s) so that each training ends")
    fine_tune = reader.boolean(section, "fine_tune", "training.fine_tune", True)
    initial_epochs = reader.number(section, "initial_epochs", "training.initial_epochs", epochs,
                                   integer=True, low=1, allow_none=True)
    initial_max_time = reader.number(section, "initial_max_time", "training.initial_max_time",
                                     max_time, positive=True, allow_none=True)
    optimizer = reader.string(section, "optimizer", "training.optimizer")
    if optimizer is not None and optimizer not in ("adam", "adamw", "lbfgs", "snes"):
        raise reader.error("training.optimizer",
                           f"must be adam, adamw, lbfgs or snes, not {optimizer!r}")
    batch_size = reader.number(section, "batch_size", "training.batch_size", None,
                               integer=True, low=1, allow_none=True)

    section = reader.table(data, "audit")
    audit = reader.boolean(section, "enabled", "audit.enabled", True)
    hot_md = reader.boolean(section, "hot_md", "audit.hot_md", False)

    return ALConfig(
        path=reader.path.resolve(), state=state.resolve(), train=train, nep_in=nep_in,
        model=model, oracle=oracle, iterations=iterations, seed=seed,
        selection_method=method, min_distance=min_distance, max_frames=max_frames,
        grade_threshold=grade, filter_fraction=fraction, min_new_frames=min_new, epochs=epochs,
        max_time=max_time, fine_tune=fine_tune, initial_epochs=initial_epochs,
        initial_max_time=initial_max_time, optimizer=optimizer, batch_size=batch_size,
        audit=audit, audit_hot_md=hot_md, num_threads=threads, device=device, raw=data,
    )


def load_config(path) -> ALConfig:
    """Read and validate an active-learning TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, None, "no such file")
    return parse_config(read_toml(path), path)
