"""Fuzzing the nep.txt and nep.in parsers: any mutation of a valid file either parses or raises
NepFormatError; nothing else (IndexError, ValueError from numpy, ...) may escape."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nepzbl_plugin.errors import NepFormatError
from nepzbl_plugin.io.nep_in import format_nep_in, parse_nep_in
from nepzbl_plugin.model import Model, format_nep_txt, parse_nep_txt
from nepzbl_plugin.testing import random_model

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

_MODELS = [
    format_nep_txt(random_model(zbl=zbl, n_max=(1, 1), basis=(1, 2), neurons=2, l_max=2,
                                flags=flags, version=version, seed=1))
    for zbl, flags, version in [
        ("flexible", (2, 0), 4),
        ("typewise", (0, 1, 1), 5),
        (None, (0, 0), 3),
    ]
]
_NEP_IN = """type 2 Li O   # comment
version 4
zbl 2
use_typewise_cutoff_zbl 0.7
cutoff 5 4 6 3.5
n_max 4 4
basis_size 8 8
l_max 4 2 1
neuron 10
lambda_v 0.2
type_weight 1 2
batch 100 1
population 20
save_potential 10 0 1
optimizer adam
seed 3
"""
_GARBAGE = st.sampled_from(
    ["nan", "-inf", "inf", "1e999", "x", "", " ", "0", "-1", "1.5", "99999999999999999999",
     "#", "zbl", "cutoff", "nep4", "1e-999", "\t", "\x00", "é", "0x10", "1_0", "--1", "2 3",
     "NaN", "+.5", "5.", "1e5e5"]
)


def _mutate(text: str, data) -> str:
    lines = text.split("\n")
    kind = data.draw(st.sampled_from(
        ["truncate", "insert", "replace_token", "swap", "delete", "duplicate", "nan", "cut"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if kind == "truncate":
        return "\n".join(lines[:i])
    if kind == "cut":
        pos = data.draw(st.integers(0, len(text)))
        return text[:pos]
    if kind == "insert":
        lines.insert(i, data.draw(_GARBAGE))
    elif kind == "replace_token":
        tokens = lines[i].split() or [""]
        k = data.draw(st.integers(0, len(tokens) - 1))
        tokens[k] = data.draw(_GARBAGE | st.text(max_size=6))
        lines[i] = " ".join(tokens)
    elif kind == "swap":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    else:
        lines[i] = lines[i].replace(lines[i].split()[-1], "nan") if lines[i].split() else "nan"
    return "\n".join(lines)


@FUZZ
@given(st.integers(0, len(_MODELS) - 1), st.integers(1, 3), st.data())
def test_nep_txt_mutations(which, rounds, data):
    text = _MODELS[which]
    for _ in range(rounds):
        text = _mutate(text, data)
    try:
        model = parse_nep_txt(text, path="fuzz.txt")
    except NepFormatError as err:
        assert err.path == "fuzz.txt"
        assert err.line is None or 1 <= err.line <= text.count("\n") + 2
        return
    assert isinstance(model, Model)
    assert np.all(np.isfinite(model.parameters)) and np.all(np.isfinite(model.q_scaler))
    assert model.parameters.size == model.num_parameters
    # whatever parses must write and read back to the same values
    again = parse_nep_txt(format_nep_txt(model, precision="full", allow_legacy=True))
    np.testing.assert_array_equal(again.parameters, model.parameters)


@FUZZ
@given(st.data())
def test_nep_in_mutations(data):
    text = _NEP_IN
    for _ in range(data.draw(st.integers(1, 3))):
        text = _mutate(text, data)
    try:
        nep = parse_nep_in(text, path="nep.in")
        nep.model_header_kwargs()
        model = Model.from_nep_in(nep)
        l1, l2 = nep.resolved_lambdas(model.num_parameters)
    except NepFormatError as err:
        assert err.path == "nep.in"
        return
    assert math.isfinite(l1) and math.isfinite(l2)
    again = parse_nep_in(format_nep_in(nep))
    assert again.model_header_kwargs().keys() == nep.model_header_kwargs().keys()
    assert format_nep_in(again) == format_nep_in(nep)


@FUZZ
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    for parse in (parse_nep_txt, parse_nep_in):
        try:
            parse(text)
        except NepFormatError:
            pass
