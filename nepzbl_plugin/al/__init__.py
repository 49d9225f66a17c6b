"""Active learning (the NEP-ZBL paper's loop): MD from the training structures, too-short frames
filtered and counted, farthest-point sampling or a MaxVol grade in descriptor space, labels from
any ASE calculator (or external DFT), fine-tuning and the audit of each new model, resumable from
a state folder. The command is ``nepzbl al CONFIG``."""

from .config import ALConfig, ConfigError, load_config, parse_config
from .loop import (
    ALResult,
    collapse_limits,
    contact_pairs,
    export_selected,
    format_table,
    import_labels,
    read_iterations,
    run_active_learning,
)
from .oracle import OracleError, label_frames, load_oracle
from .sampling import MDRunResult, run_md
from .selection import (
    extrapolation_grade,
    farthest_point_sampling,
    maxvol_active_set,
    structure_descriptors,
)

__all__ = [
    "ALConfig",
    "ALResult",
    "ConfigError",
    "MDRunResult",
    "OracleError",
    "collapse_limits",
    "contact_pairs",
    "export_selected",
    "extrapolation_grade",
    "farthest_point_sampling",
    "format_table",
    "import_labels",
    "label_frames",
    "load_config",
    "load_oracle",
    "maxvol_active_set",
    "parse_config",
    "read_iterations",
    "run_active_learning",
    "run_md",
    "structure_descriptors",
]
