"""nep.txt reader and writer: GPUMD files byte for byte, every variant, historic headers,
agreement with calorine, and a NepFormatError with the right line for every kind of bad input."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.errors import NepFormatError, UnsupportedModelError
from nepzbl_plugin.interop.calorine import from_calorine, to_calorine
from nepzbl_plugin.model import (
    Model,
    format_nep_txt,
    parse_nep_txt,
    read_model,
    read_nep_txt,
    write_nep_txt,
)
from nepzbl_plugin.testing import random_model

SHARED_MODELS = [
    ("models", "C_2022_NEP4.txt"),
    ("models", "PbTe_NEP4.txt"),
    ("models", "Si_2022_NEP4_3body.txt"),
    ("models", "Si_2022_NEP4_4body.txt"),
    ("models", "Si_2022_NEP4_5body.txt"),
    ("llzo", "NEPstd.txt"),
    ("llzo", "NEP802.txt"),
    ("llzo", "NEP802-ZBL.txt"),
]

VARIANTS = [
    dict(version=v, zbl=z) for v, z in itertools.product(
        (3, 4, 5), (None, "universal", "typewise", "flexible"))
] + [
    dict(cutoffs=([5.0, 4.5], [4.0, 3.5])),
    dict(cutoffs=([5.0, 4.5, 6.0], [4.0, 3.5, 3.0]), types=("Li", "La", "O"), zbl="typewise"),
    dict(flags=(0, 0, 1, 1, 1, 1)),
    dict(flags=(0, 1, 1, 0, 0, 0), l_max=6),
    dict(flags=(0, 0, 0, 0, 0, 0), l_max=2),
    dict(temperature=True),
    dict(temperature=True, zbl="universal"),
    dict(neurons_second=4),
    dict(types=("Li", "La", "Zr", "O"), zbl="flexible"),
    dict(types=("Si",), n_max=(2, 1), basis=(3, 2)),
]


def _ids(kw):
    return "-".join(f"{k}={v}" for k, v in kw.items()).replace(" ", "")


def _assert_same_model(a: Model, b: Model) -> None:
    assert a.version == b.version and a.types == b.types
    np.testing.assert_array_equal(a.radial_cutoffs, b.radial_cutoffs)
    np.testing.assert_array_equal(a.angular_cutoffs, b.angular_cutoffs)
    assert (a.n_max_radial, a.n_max_angular, a.basis_size_radial, a.basis_size_angular) == (
        b.n_max_radial, b.n_max_angular, b.basis_size_radial, b.basis_size_angular)
    assert a.l_max == b.l_max and a.flags_on == b.flags_on
    assert (a.n_neurons, a.n_neurons_second, a.temperature) == (
        b.n_neurons, b.n_neurons_second, b.temperature)
    assert (a.max_neighbors_radial, a.max_neighbors_angular) == (
        b.max_neighbors_radial, b.max_neighbors_angular)
    np.testing.assert_array_equal(a.parameters, b.parameters)
    np.testing.assert_array_equal(a.q_scaler, b.q_scaler)
    assert (a.zbl is None) == (b.zbl is None)
    if a.zbl is not None:
        assert a.zbl.mode == b.zbl.mode
        np.testing.assert_array_equal(a.zbl_table(), b.zbl_table())
    assert a.typewise_cutoff_factors == b.typewise_cutoff_factors


# ------------------------------------------------------------------ shared GPUMD files
@pytest.mark.parametrize("parts", SHARED_MODELS, ids=lambda p: p[1])
def test_gpumd_file_is_reproduced_byte_for_byte(parts, tmp_path):
    path = shared_file(*parts)
    model = read_model(path)
    out = tmp_path / "nep.txt"
    model.write(out)
    assert out.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("parts", SHARED_MODELS, ids=lambda p: p[1])
def test_shared_model_full_round_trip(parts, tmp_path):
    model = read_model(shared_file(*parts))
    model.write(tmp_path / "full.txt", precision="full")
    _assert_same_model(model, read_model(tmp_path / "full.txt"))


def test_llzo_zbl_header_values():
    model = read_model(shared_file("llzo", "NEP802-ZBL.txt"))
    assert model.types == ["Li", "La", "Zr", "O"]
    assert model.zbl.mode == "universal"
    assert (model.zbl.inner, model.zbl.outer) == (0.9, 1.8)
    np.testing.assert_array_equal(model.radial_cutoffs, [6.0] * 4)
    assert (model.max_neighbors_radial, model.max_neighbors_angular) == (95, 30)
    assert model.l_max_flags == (2, 0, 0, 0, 0, 0)
    assert model.descriptor_dim == 30 and model.num_parameters == 5281
    # first and last stored values, straight from the file
    assert model.parameters[0] == 4.4139600e-04
    lines = shared_file("llzo", "NEP802-ZBL.txt").read_text().split("\n")
    assert model.q_scaler[-1] == float(lines[7 + 5281 + 29])


@pytest.mark.parametrize("parts", SHARED_MODELS, ids=lambda p: p[1])
def test_agrees_with_calorine_value_by_value(parts, tmp_path):
    from calorine.nep import read_model as calorine_read

    path = shared_file(*parts)
    ours = read_model(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = calorine_read(str(path))
        ours_in_calorine = to_calorine(ours)
    back = from_calorine(theirs)
    np.testing.assert_array_equal(back.parameters, ours.parameters)
    np.testing.assert_array_equal(back.q_scaler, ours.q_scaler)
    for s in ours.types:
        for key, value in theirs.ann_parameters[s].items():
            np.testing.assert_array_equal(ours_in_calorine.ann_parameters[s][key], value)
    assert ours_in_calorine.ann_parameters["b1"] == theirs.ann_parameters["b1"]
    for key, value in theirs.radial_descriptor_weights.items():
        np.testing.assert_array_equal(ours_in_calorine.radial_descriptor_weights[key], value)
        np.testing.assert_array_equal(ours_in_calorine.angular_descriptor_weights[key],
                                      theirs.angular_descriptor_weights[key])
    assert ours_in_calorine.zbl == theirs.zbl


# ------------------------------------------------------------------ generated variants
@pytest.mark.parametrize("kwargs", VARIANTS, ids=_ids)
def test_variant_round_trips(kwargs, tmp_path):
    model = random_model(**kwargs, seed=7)
    write_nep_txt(model, tmp_path / "full.txt", precision="full")
    _assert_same_model(model, read_nep_txt(tmp_path / "full.txt"))
    # gpumd precision: 8 significant digits, and its own text is a fixed point
    write_nep_txt(model, tmp_path / "g.txt")
    again = read_nep_txt(tmp_path / "g.txt")
    np.testing.assert_allclose(again.parameters, model.parameters, rtol=1e-7, atol=0)
    assert format_nep_txt(again) == (tmp_path / "g.txt").read_text()


@pytest.mark.parametrize("kwargs", [k for k in VARIANTS if k.get("version", 4) == 4],
                         ids=_ids)
def test_calorine_reads_generated_variants(kwargs, tmp_path):
    from calorine.nep import read_model as calorine_read

    model = random_model(**kwargs, seed=3)
    model.write(tmp_path / "m.txt", precision="full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmodel = calorine_read(str(tmp_path / "m.txt"))
    _assert_same_model(model, from_calorine(cmodel))
    if model.zbl is not None and model.zbl.mode == "flexible":
        for (a, b) in itertools.combinations_with_replacement(range(model.num_types), 2):
            key = (model.types[a], model.types[b])
            np.testing.assert_array_equal(cmodel.zbl_parameters[key], model.zbl_table()[a, b])


def test_header_lines_written_as_gpumd_does():
    model = random_model(types=("Li", "La", "O"), zbl="typewise",
                         cutoffs=([5.0, 4.5, 6.0], [4.0, 3.5, 3.0]), flags=(0, 1, 0, 1, 0, 0))
    head = format_nep_txt(model).split("\n")[:8]
    assert head[0] == "nep4_zbl 3 Li La O "
    assert head[1] == "zbl 0.75 1.5 0.7"  # default outer: half the smallest rcA
    assert head[2] == "cutoff 5 4 4.5 3.5 6 3 100 50"
    assert head[5] == "l_max 4 0 1 0 1"
    assert head[6] == "ANN 10 0"
    assert len(head[7]) == 15 and "e" in head[7]
    flexible = random_model(zbl="flexible", version=5)
    lines = format_nep_txt(flexible).split("\n")
    assert lines[:2] == ["nep5_zbl 2 Li O ", "zbl 0 0"]
    assert len(lines) == 7 + flexible.num_parameters + flexible.descriptor_dim + 30 + 1


def test_full_precision_header_is_lossless():
    model = random_model(cutoffs=(5.123456789, 4.1), zbl="universal", zbl_outer=1.23456789)
    again = parse_nep_txt(format_nep_txt(model, precision="full"))
    assert again.radial_cutoffs[0] == 5.123456789 and again.zbl.outer == 1.23456789
    gpumd = parse_nep_txt(format_nep_txt(model))
    assert gpumd.radial_cutoffs[0] == 5.12346


# ------------------------------------------------------------------ historic headers
def _text_with(model: Model, **replace_lines) -> str:
    lines = format_nep_txt(model, precision="full").split("\n")
    for i, line in enumerate(lines[:8]):
        key = line.split()[0] if line.split() else ""
        if key in replace_lines:
            lines[i] = replace_lines[key]
    return "\n".join(lines)


def test_legacy_two_token_cutoff():
    m = parse_nep_txt(_text_with(random_model(), cutoff="cutoff 5 4"))
    assert m.metadata["cutoff_form"] == "legacy2"
    assert (m.max_neighbors_radial, m.max_neighbors_angular) == (0, 0)
    assert format_nep_txt(m).split("\n")[1] == "cutoff 5 4 0 0"


def test_legacy_six_token_cutoff():
    m = parse_nep_txt(_text_with(random_model(), cutoff="cutoff 5 4 80 40 1"))
    assert m.metadata["cutoff_form"] == "legacy6"
    assert m.typewise_cutoff_factors == (2.5, 2.0)


@pytest.mark.parametrize("types", [("Li", "O"), ("Li", "La", "O")])
def test_legacy_seven_token_cutoff(types):
    base = random_model(types=types, zbl="universal")
    m = parse_nep_txt(_text_with(base, cutoff="cutoff 5 4 80 40 1 1", zbl="zbl 1 2"))
    assert m.metadata["cutoff_form"] == "legacy7"
    assert m.typewise_cutoff_factors == (2.5, 2.0)
    assert m.zbl.mode == "typewise" and m.zbl.factor == 0.6
    assert (m.max_neighbors_radial, m.max_neighbors_angular) == (80, 40)


def test_seven_token_per_type_for_two_species_is_not_legacy():
    m = parse_nep_txt(_text_with(random_model(), cutoff="cutoff 5 4 4.5 3.5 100 50"))
    assert m.metadata["cutoff_form"] == "per_type"
    np.testing.assert_array_equal(m.radial_cutoffs, [5.0, 4.5])
    np.testing.assert_array_equal(m.angular_cutoffs, [4.0, 3.5])


def test_legacy_eight_token_cutoff_upgraded_and_written_back(tmp_path):
    base = random_model(zbl="universal")
    # typewise ZBL only: upgraded to the current 4-token zbl line
    m = parse_nep_txt(_text_with(base, cutoff="cutoff 5 4 80 40 -1 -1 0.65", zbl="zbl 1 2"))
    assert m.metadata["cutoff_form"] == "legacy8" and m.typewise_cutoff_factors is None
    assert m.zbl.mode == "typewise" and m.zbl.factor == 0.65
    head = format_nep_txt(m).split("\n")
    assert head[1:3] == ["zbl 1 2 0.65", "cutoff 5 4 80 40"]
    # typewise NEP cutoffs: not expressible in the current format
    m = parse_nep_txt(_text_with(base, cutoff="cutoff 5 4 80 40 2.5 2 0.6", zbl="zbl 1 2"))
    assert m.typewise_cutoff_factors == (2.5, 2.0)
    rr, ra = m.pair_cutoffs()
    assert ra[1, 1] == pytest.approx(2.0 * 2 * 0.84)  # O-O angular: R_cov(O) = 0.84
    assert rr[0, 1] == pytest.approx(min(2.5 * (1.6 + 0.84), 5.0))  # Li-O radial
    with pytest.raises(NepFormatError, match="allow_legacy"):
        write_nep_txt(m, tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()
    write_nep_txt(m, tmp_path / "x.txt", precision="full", allow_legacy=True)
    lines = (tmp_path / "x.txt").read_text().split("\n")
    assert lines[1:3] == ["zbl 1 2", "cutoff 5 4 80 40 2.5 2 0.6"]
    _assert_same_model(m, read_nep_txt(tmp_path / "x.txt"))


@pytest.mark.parametrize("line,flags", [
    ("l_max 4 1 0", (1, 0, 0, 0, 0, 0)),
    ("l_max 4 2 1 1", (2, 1, 1, 0, 0, 0)),
    ("l_max 4 0 0 0 1", (0, 0, 0, 1, 0, 0)),
    ("l_max 4 2 0 0 0 1", (2, 0, 0, 0, 1, 0)),
    ("l_max 4 0 1 1 1 1 1", (0, 1, 1, 1, 1, 1)),
])
def test_l_max_three_to_seven_values(line, flags):
    base = random_model(flags=flags)
    m = parse_nep_txt(_text_with(base, l_max=line))
    assert m.flags_on == tuple(bool(f) for f in flags)
    assert m.descriptor_dim == base.descriptor_dim


def test_q222_written_as_two():
    m = parse_nep_txt(_text_with(random_model(flags=(1, 0)), l_max="l_max 4 1 0"))
    assert format_nep_txt(m).split("\n")[4] == "l_max 4 2 0"


def test_second_hidden_layer_is_stored():
    model = random_model(neurons_second=3)
    m = parse_nep_txt(format_nep_txt(model, precision="full"))
    assert m.n_neurons_second == 3
    assert m.network_block_size == (m.descriptor_dim + 1) * 10 + (10 + 2) * 3


# ------------------------------------------------------------------ unsupported kinds
@pytest.mark.parametrize("token,kind", [
    ("nep4_dipole", "dipole"),
    ("nep4_polarizability", "polarizability"),
    ("nep4_charge1", "charge"),
    ("nep4_zbl_charge2", "charge"),
    ("nep4_vdw", "van der Waals"),
    ("nep4_zbl_charge_vdw", "charge + van der Waals"),
])
def test_unsupported_model_kinds(token, kind, tmp_path):
    path = tmp_path / "nep.txt"
    path.write_text(f"{token} 1 Si\ncutoff 5 4 10 10\n")
    with pytest.raises(UnsupportedModelError) as info:
        read_nep_txt(path)
    assert info.value.line == 1 and kind in info.value.problem and str(path) in str(info.value)


def test_temperature_model_is_read():
    m = parse_nep_txt(format_nep_txt(random_model(temperature=True, zbl="universal")))
    assert m.temperature and m.model_token == "nep4_zbl_temperature"
    assert m.q_scaler[-1] == 0.001


# ------------------------------------------------------------------ bad input
def _bad(edit):
    """Apply ``edit`` (lines -> lines) to a small valid file with universal ZBL."""
    lines = format_nep_txt(random_model(zbl="universal", n_max=(1, 1), basis=(2, 2),
                                        neurons=2, flags=(0, 0))).split("\n")
    return "\n".join(edit(lines))


def _set(index, text):
    def edit(lines):
        lines[index] = text
        return lines
    return edit


BAD = [
    ("empty", lambda ls: [""], 1, "empty"),
    ("token", _set(0, "nepx 2 Li O"), 1, "model token"),
    ("version", _set(0, "nep2_zbl 2 Li O"), 1, "version"),
    ("suffix", _set(0, "nep4_zbl_foo 2 Li O"), 1, "unknown model token"),
    ("num types", _set(0, "nep4_zbl two Li O"), 1, "integer"),
    ("too few species", _set(0, "nep4_zbl 3 Li O"), 1, "3 element symbols"),
    ("element", _set(0, "nep4_zbl 2 Li Xx"), 1, "unknown element"),
    ("lowercase", _set(0, "nep4_zbl 2 li O"), 1, "unknown element"),
    ("duplicate", _set(0, "nep4_zbl 2 O O"), 1, "twice"),
    ("missing zbl", lambda ls: ls[:1] + ls[2:], 2, "'zbl'"),
    ("zbl count", _set(1, "zbl 1"), 2, "2 or 3 values"),
    ("zbl nan", _set(1, "zbl nan 2"), 2, "number"),
    ("zbl order", _set(1, "zbl 2 1"), 2, "inner"),
    ("zbl factor", _set(1, "zbl 1 2 -0.5"), 2, "factor"),
    ("cutoff count", _set(2, "cutoff 5 4 100"), 3, "cutoff line needs 4 values"),
    ("cutoff word", _set(2, "cutoff 5 x 100 50"), 3, "expected a number"),
    ("cutoff inf", _set(2, "cutoff 1e400 4 100 50"), 3, "finite"),
    ("cutoff negative", _set(2, "cutoff -5 4 100 50"), 3, "positive"),
    ("neighbours float", _set(2, "cutoff 5 4 100.5 50"), 3, "integer"),
    ("keyword", _set(3, "nmax 1 1"), 4, "'n_max'"),
    ("n_max count", _set(3, "n_max 1"), 4, "2 values"),
    ("basis negative", _set(4, "basis_size -1 2"), 5, ">= 0"),
    ("l_max short", _set(5, "l_max 4 0"), 6, "3 to 7"),
    ("l_max long", _set(5, "l_max 4 0 0 0 0 0 0 0"), 6, "3 to 7"),
    ("l_max big", _set(5, "l_max 9 0 0"), 6, "0..8"),
    ("ANN", _set(6, "ANN 0 0"), 7, "N1 >= 1"),
    ("ANN count", _set(6, "ANN 2"), 7, "2 values"),
    ("value word", _set(9, "abc"), 10, "expected a number"),
    ("value nan", _set(9, "nan"), 10, "number"),
    ("value huge", _set(9, "1e999"), 10, "finite"),
    ("value two", _set(9, "1.0 2.0"), 10, "one number per line"),
    ("blank inside", _set(9, ""), 10, "empty line"),
    ("truncated", lambda ls: ls[:20], 21, "truncated"),
    ("extra", lambda ls: ls[:-1] + ["1.0", ""], None, "extra values"),
    ("header only", lambda ls: ls[:7], 8, "truncated"),
]


@pytest.mark.parametrize("name,edit,line,text", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_with_line(name, edit, line, text, tmp_path):
    path = tmp_path / "nep.txt"
    path.write_text(_bad(edit))
    with pytest.raises(NepFormatError) as info:
        read_nep_txt(path)
    err = info.value
    assert not isinstance(err, UnsupportedModelError)
    assert str(path) in str(err) and text in err.problem
    if line is not None:
        assert err.line == line
    else:
        total = len(path.read_text().rstrip("\n").split("\n"))
        assert err.line == total


def test_truncation_message_counts_values(tmp_path):
    model = random_model(zbl="flexible", n_max=(1, 1), basis=(1, 1), neurons=2)
    text = format_nep_txt(model).split("\n")[:-6]
    with pytest.raises(NepFormatError) as info:
        parse_nep_txt("\n".join(text), path="m.txt")
    n = model.num_parameters + model.descriptor_dim + 30
    assert f"expected {n} values" in info.value.problem
    assert f"found {n - 5}" in info.value.problem
    assert "30 flexible ZBL values" in info.value.problem


def test_flexible_zbl_limits():
    model = random_model(zbl="flexible", n_max=(1, 1), basis=(1, 1), neurons=2)
    lines = format_nep_txt(model).split("\n")
    first_zbl = 7 + model.num_parameters + model.descriptor_dim  # 0-based index
    lines[first_zbl + 10] = "3.0"  # pair 1 r_inner > r_outer
    with pytest.raises(NepFormatError) as info:
        parse_nep_txt("\n".join(lines))
    assert info.value.line == first_zbl + 11 and "r_inner < r_outer" in info.value.problem
    eleven = " ".join(["H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na"])
    with pytest.raises(NepFormatError, match="at most 10 species") as info:
        parse_nep_txt(f"nep4_zbl 11 {eleven}\nzbl 0 0\ncutoff 5 4 1 1\nn_max 1 1\n"
                      "basis_size 1 1\nl_max 2 0 0\nANN 1 0\n")
    assert info.value.line == 2


def test_binary_file_and_missing_file(tmp_path):
    path = tmp_path / "nep.txt"
    path.write_bytes(b"nep4 1 Si\ncutoff 5 4 1 1\n\xff\xfe\n")
    with pytest.raises(NepFormatError) as info:
        read_nep_txt(path)
    assert info.value.line == 3
    with pytest.raises(NepFormatError, match="cannot read"):
        read_nep_txt(tmp_path / "missing.txt")


def test_writer_refuses_non_finite(tmp_path):
    model = random_model()
    model.parameters[5] = np.nan
    with pytest.raises(NepFormatError, match="non-finite"):
        write_nep_txt(model, tmp_path / "m.txt")
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_replacement(tmp_path):
    path = tmp_path / "nep.txt"
    path.write_text("old")
    random_model().write(path)
    assert read_nep_txt(path).num_types == 2
    assert [p.name for p in tmp_path.iterdir()] == ["nep.txt"]
