"""nep.in reader and writer: defaults, every keyword's range check, zbl.in, trainer keywords."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.errors import NepFormatError, UnsupportedModelError
from nepzbl_plugin.io.nep_in import (
    NepIn,
    format_nep_in,
    parse_nep_in,
    read_nep_in,
    read_zbl_in,
    write_nep_in,
)
from nepzbl_plugin.model import Model
from nepzbl_plugin.testing import random_flexible_zbl_table


def test_defaults_are_gpumd_defaults():
    nep = parse_nep_in("type 2 Te Pb\n")
    assert nep.types == ["Te", "Pb"] and nep.version == 4 and nep.model_type == 0
    assert nep.radial_cutoffs == [8.0] and nep.angular_cutoffs == [4.0]
    assert nep.n_max == (6, 6) and nep.basis_size == (6, 6)
    assert nep.l_max == 4 and nep.l_max_flags == (1, 0, 0, 0, 0, 0)
    assert (nep.neuron, nep.neuron_second) == (30, 0)
    assert (nep.lambda_1, nep.lambda_2) == (None, None)
    assert (nep.lambda_e, nep.lambda_f, nep.lambda_v, nep.lambda_shear) == (1.0, 1.0, 0.1, 1.0)
    assert (nep.lambda_q, nep.lambda_z, nep.force_delta) == (0.1, 0.5, 0.0)
    assert (nep.batch, nep.use_full_batch, nep.population, nep.generation) == (1000, 0, 50,
                                                                              100000)
    assert nep.save_potential == (100000, 1, 0) and nep.output_interval == 100
    assert (nep.initial_para, nep.sigma0) == (1.0, 0.1)
    assert nep.zbl is None and nep.zbl_settings() is None
    assert nep.optimizer is None and nep.seed is None and nep.max_time is None
    np.testing.assert_array_equal(nep.type_weights(), [1.0, 1.0])


def test_pbte_input_and_default_lambdas():
    nep = read_nep_in(shared_file("pbte", "nep.in"))
    assert nep.generation == 20000 and nep.explicit == {"type", "generation"}
    model = Model.from_nep_in(nep)
    # defaults n_max 6 6, basis 6 6, l_max 4 (q222): the header of GPUMD's PbTe model
    assert model.num_parameters == 3033 and model.descriptor_dim == 42
    l1, l2 = nep.resolved_lambdas()
    assert l1 == l2 == pytest.approx(math.sqrt(3033 * 1e-6 / 2))
    assert parse_nep_in("type 1 Si\nlambda_1 0.5\n").resolved_lambdas(100) == (
        0.5, pytest.approx(0.01))


def test_llzo_input_model_header():
    nep = read_nep_in(shared_file("llzo", "NEP25-ZBL", "nep.in"))
    kwargs = nep.model_header_kwargs()
    assert kwargs["types"] == ["Li", "La", "Zr", "O"]
    assert kwargs["zbl"].mode == "universal"
    assert (kwargs["zbl"].inner, kwargs["zbl"].outer) == (0.9, 1.8)
    np.testing.assert_array_equal(kwargs["radial_cutoffs"], [6.0] * 4)
    np.testing.assert_array_equal(kwargs["angular_cutoffs"], [4.0] * 4)
    assert kwargs["l_max_flags"] == (2, 0, 0, 0, 0, 0) and kwargs["n_neurons"] == 30
    assert nep.batch == 200 and nep.population == 50
    model = Model.empty(**kwargs)
    assert model.model_token == "nep4_zbl"


def test_full_input_round_trip(tmp_path):
    text = """# a comment line
type 3 Li La O   # trailing comment
version 4
model_type 3
zbl 2.5
use_typewise_cutoff_zbl 0.8
cutoff 6 4 5.5 3.5 7 4.5
n_max 8 6
basis_size 10 8
l_max 6 2 1 0 1
neuron 40 8
lambda_1 0.01
lambda_2 0
lambda_e 2
lambda_f 3
lambda_v 0.2
lambda_shear 0.5
force_delta 0.1
type_weight 1 2 0.5
batch 50 1
population 80
generation 1234
save_potential 100 0 1
output_interval 10
initial_para 0.5
sigma0 0.05
optimizer adam
max_time 12.5
learning_rate 0.001
epochs 30
batch_size 4
seed 42
target_force_rmse 0.05
"""
    nep = parse_nep_in(text, "nep.in")
    assert nep.lines["type"] == 2 and nep.types == ["Li", "La", "O"]
    assert nep.radial_cutoffs == [6.0, 5.5, 7.0] and nep.angular_cutoffs == [4.0, 3.5, 4.5]
    assert nep.l_max_flags == (2, 1, 0, 1, 0, 0) and nep.neuron_second == 8
    assert nep.type_weight == [1.0, 2.0, 0.5] and nep.use_full_batch == 1
    assert nep.optimizer == "adam" and nep.max_time == 12.5 and nep.seed == 42
    assert nep.epochs == 30 and nep.batch_size == 4 and nep.target_force_rmse == 0.05
    kwargs = nep.model_header_kwargs()
    assert kwargs["temperature"] and kwargs["zbl"].mode == "typewise"
    assert kwargs["zbl"].factor == 0.8 and kwargs["l_max_flags"] == (2, 1, 0, 1, 0, 0)
    write_nep_in(nep, tmp_path / "nep.in")
    again = read_nep_in(tmp_path / "nep.in")
    for name in NepIn.__dataclass_fields__:
        if name not in ("explicit", "lines", "path", "flexible_zbl"):
            assert getattr(again, name) == getattr(nep, name), name
    assert format_nep_in(again) == format_nep_in(nep)


def test_flexible_zbl_from_zbl_in(tmp_path):
    table = random_flexible_zbl_table(3, np.random.default_rng(0))
    (tmp_path / "nep.in").write_text("type 3 Li La O\nzbl 2\n")
    (tmp_path / "zbl.in").write_text("\n".join(" ".join(repr(float(v)) for v in r) for r in table))
    nep = read_nep_in(tmp_path / "nep.in")
    np.testing.assert_array_equal(nep.flexible_zbl, table)
    model = Model.from_nep_in(nep)
    assert model.zbl.mode == "flexible"
    np.testing.assert_array_equal(model.zbl_table()[0, 2], table[2])
    out = tmp_path / "out"
    out.mkdir()
    write_nep_in(nep, out / "nep.in")
    np.testing.assert_array_equal(read_nep_in(out / "nep.in").flexible_zbl, table)
    # without a zbl keyword, zbl.in is not read
    (tmp_path / "nep.in").write_text("type 3 Li La O\n")
    assert read_nep_in(tmp_path / "nep.in").flexible_zbl is None


@pytest.mark.parametrize("content,line,text", [
    ("1 2 3\n", 1, "expected 10 numbers"),
    ("0.5 1 .2 3 .5 .9 .3 .4 .02 .2\n", None, "expected 3 lines"),
    ("0.5 1 .2 3 .5 .9 .3 .4 .02 x\n", 1, "finite number"),
    ("1.5 1 .2 3 .5 .9 .3 .4 .02 .2\n", 1, "r_inner < r_outer"),
    ("0.5 1 .2 3 .5 .9 .3 .4 .02 .2\n" * 4, 4, "extra line"),
])
def test_bad_zbl_in(content, line, text, tmp_path):
    (tmp_path / "zbl.in").write_text(content)
    with pytest.raises(NepFormatError) as info:
        read_zbl_in(tmp_path / "zbl.in", 2)
    assert info.value.line == line and text in info.value.problem
    assert "zbl.in" in str(info.value)


BAD = [
    ("unknown", "type 1 Si\nfoo 1\n", 2, "unknown keyword 'foo'"),
    ("missing type", "generation 10\n", None, "'type' keyword is missing"),
    ("cutoff first", "cutoff 5 4\ntype 1 Si\n", 1, "'type' must come before"),
    ("weight first", "type_weight 1\ntype 1 Si\n", 1, "'type' must come before"),
    ("twice", "type 1 Si\ngeneration 1\ngeneration 2\n", 3, "given twice (first on line 2)"),
    ("type count", "type 2 Si\n", 1, "expected 2 element symbols"),
    ("type element", "type 1 Xy\n", 1, "unknown element"),
    ("type dup", "type 2 Si Si\n", 1, "twice"),
    ("version", "type 1 Si\nversion 2\n", 2, "version must be 3, 4 or 5"),
    ("model_type", "type 1 Si\nmodel_type 4\n", 2, "out of range 0..3"),
    ("mode alias", "type 1 Si\nmode 7\n", 2, "mode: 7 is out of range"),
    ("prediction", "type 1 Si\nprediction 2\n", 2, "out of range"),
    ("zbl small", "type 1 Si\nzbl 0.5\n", 2, "out of range 1..4"),
    ("zbl big", "type 1 Si\nzbl 4.5\n", 2, "out of range 1..4"),
    ("zbl count", "type 1 Si\nzbl\n", 2, "expected 1 value"),
    ("typewise factor", "type 1 Si\nuse_typewise_cutoff_zbl 0.4\n", 2, ">= 0.5"),
    ("cutoff count", "type 2 Si O\ncutoff 5 4 3\n", 2, "expected 2 or 4 value"),
    ("cutoff angular", "type 1 Si\ncutoff 5 2.5\n", 2, "below 3 A"),
    ("cutoff order", "type 1 Si\ncutoff 4 5\n", 2, "exceeds radial"),
    ("cutoff big", "type 1 Si\ncutoff 101 5\n", 2, "exceeds 100"),
    ("cutoff nan", "type 1 Si\ncutoff nan 4\n", 2, "expected a number"),
    ("n_max", "type 1 Si\nn_max 13 4\n", 2, "out of range 0..12"),
    ("n_max ang", "type 1 Si\nn_max 4 9\n", 2, "out of range 0..8"),
    ("basis", "type 1 Si\nbasis_size 17 4\n", 2, "0..16"),
    ("basis ang", "type 1 Si\nbasis_size 4 13\n", 2, "0..12"),
    ("l_max low", "type 1 Si\nl_max 1\n", 2, "2..8"),
    ("l_max flag", "type 1 Si\nl_max 4 -1\n", 2, ">= 0"),
    ("l_max many", "type 1 Si\nl_max 4 1 1 1 1 1 1 1\n", 2, "expected 1 or 2"),
    ("neuron", "type 1 Si\nneuron 121\n", 2, "1..120"),
    ("neuron 2", "type 1 Si\nneuron 10 -1\n", 2, "0..120"),
    ("neuron float", "type 1 Si\nneuron 10.5\n", 2, "integer"),
    ("lambda", "type 1 Si\nlambda_1 -0.1\n", 2, ">= 0"),
    ("lambda_v", "type 1 Si\nlambda_v inf\n", 2, "expected a number"),
    ("lambda_e huge", "type 1 Si\nlambda_e 1e999\n", 2, "finite"),
    ("type_weight", "type 2 Si O\ntype_weight 1\n", 2, "expected 2 value"),
    ("batch", "type 1 Si\nbatch 0\n", 2, ">= 1"),
    ("full batch", "type 1 Si\nbatch 10 2\n", 2, "0..1"),
    ("population", "type 1 Si\npopulation 5\n", 2, "10..200"),
    ("generation", "type 1 Si\ngeneration 20000000\n", 2, "0..1e+07"),
    ("save_potential", "type 1 Si\nsave_potential 100 1\n", 2, "expected 3"),
    ("save zero", "type 1 Si\nsave_potential 0 1 0\n", 2, "divide by zero"),
    ("output_interval", "type 1 Si\noutput_interval 0\n", 2, ">= 1"),
    ("initial_para", "type 1 Si\ninitial_para 2\n", 2, "0.1..1"),
    ("sigma0", "type 1 Si\nsigma0 0.5\n", 2, "0.01..0.1"),
    ("optimizer", "type 1 Si\noptimizer sgd\n", 2, "adam, lbfgs, snes"),
    ("max_time", "type 1 Si\nmax_time 0\n", 2, "positive"),
    ("learning_rate", "type 1 Si\nlearning_rate -1\n", 2, "positive"),
    ("epochs", "type 1 Si\nepochs 0\n", 2, ">= 1"),
    ("batch_size", "type 1 Si\nbatch_size 0\n", 2, ">= 1"),
    ("seed", "type 1 Si\nseed -3\n", 2, ">= 0"),
    ("target", "type 1 Si\ntarget_force_rmse 0\n", 2, "positive"),
    ("charge cutoff", "type 2 Si O\ncutoff 5 4 6 4\ncharge_mode 1\n", 2, "per-type"),
    ("exclusive", "type 1 Si\nvdw 1\ncharge_mode 1\n", 3, "cannot be combined"),
]


@pytest.mark.parametrize("name,text,line,problem", BAD, ids=[b[0] for b in BAD])
def test_bad_nep_in(name, text, line, problem, tmp_path):
    path = tmp_path / "nep.in"
    path.write_text(text)
    with pytest.raises(NepFormatError) as info:
        read_nep_in(path)
    assert info.value.line == line and problem in info.value.problem
    assert str(path) in str(info.value)


def test_keyword_named_in_message():
    with pytest.raises(NepFormatError, match="line 2: population: 5 is out of range"):
        parse_nep_in("type 1 Si\npopulation 5\n", "nep.in")


def test_comment_tokens_and_inline_hash():
    nep = parse_nep_in("type 1 Si #C\n#generation 5\ngeneration 7 # 8\n")
    assert nep.generation == 7 and nep.lines == {"type": 1, "generation": 3}


def test_unsupported_model_types_in_header():
    with pytest.raises(UnsupportedModelError, match="dipole"):
        parse_nep_in("type 1 Si\nmodel_type 1\n").model_header_kwargs()
    with pytest.raises(UnsupportedModelError, match="charge_mode"):
        parse_nep_in("type 1 Si\ncharge_mode 1\n").model_header_kwargs()
