"""Readers and writers of GPUMD's file formats (nep.txt, nep.in, ...), as plain data.

Nothing here builds a :class:`~nepzbl_plugin.model.Model`: ``nep.txt`` is read into and written
from the Model's fields as a dict; :mod:`nepzbl_plugin.model` turns them into the object.
"""

from .gpumd_outputs import (
    LossTable,
    PredictionTable,
    read_energy_out,
    read_force_out,
    read_loss_out,
    read_stress_out,
    read_virial_out,
    write_energy_out,
    write_force_out,
    write_loss_out,
    write_stress_out,
    write_virial_out,
)
from .nep_in import NepIn, format_nep_in, parse_nep_in, read_nep_in, read_zbl_in, write_nep_in
from .nep_txt import (
    format_nep_txt_fields,
    parse_nep_txt_fields,
    read_nep_txt_fields,
    write_nep_txt_fields,
)
from .xyz import TrainingStructure, parse_train_xyz, read_train_xyz, write_train_xyz

__all__ = [
    "NepIn",
    "format_nep_in",
    "format_nep_txt_fields",
    "parse_nep_in",
    "parse_nep_txt_fields",
    "read_nep_in",
    "read_nep_txt_fields",
    "read_zbl_in",
    "write_nep_in",
    "write_nep_txt_fields",
    "TrainingStructure",
    "parse_train_xyz",
    "read_train_xyz",
    "write_train_xyz",
    "LossTable",
    "PredictionTable",
    "read_energy_out",
    "read_force_out",
    "read_loss_out",
    "read_stress_out",
    "read_virial_out",
    "write_energy_out",
    "write_force_out",
    "write_loss_out",
    "write_stress_out",
    "write_virial_out",
]
