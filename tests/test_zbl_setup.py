"""ZBL set-up as a user moving to a new material meets it: `zbl suggest` says its flexible line
needs zbl.in and takes extra structure files, `train` states the ZBL it uses and warns when it
switches inside the data, and `residual` reports spreads per pair instead of negative fractions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin.audit.distances import min_pair_distances
from nepzbl_plugin.cli import main
from nepzbl_plugin.io.nep_in import parse_nep_in, read_nep_in
from nepzbl_plugin.io.xyz import read_train_xyz
from nepzbl_plugin.model import Model
from nepzbl_plugin.train.residual import zbl_predictions, zbl_residual, zbl_setup
from nepzbl_plugin.zbl import suggest_zbl

LLZO_IN = """type 4 Li La Zr O
cutoff 6 4
n_max 2 2
basis_size 2 2
l_max 2 0 0
neuron 5
zbl 2.5566
"""


@pytest.fixture(scope="module")
def llzo():
    return read_train_xyz(shared_file("llzo", "NEP25-ZBL", "train.xyz"),
                          species=["Li", "La", "Zr", "O"])


# ------------------------------------------------------------------ zbl suggest
def test_suggest_flexible_says_the_line_needs_zbl_in(tmp_path, capsys):
    data = shared_file("llzo", "NEP25-ZBL", "train.xyz")
    assert main(["zbl", "suggest", str(data), "--types", "Li", "La", "Zr", "O",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "only together with zbl.in" in out and "IMPORTANT" in out
    assert str(tmp_path / "zbl.in") in out and "universal ZBL" in out
    assert main(["zbl", "suggest", str(data), "--types", "Li", "La", "Zr", "O",
                 "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["form"] == "flexible" and "zbl.in" in result["needs_zbl_in"]
    typewise = suggest_zbl(shared_file("llzo", "NEP25-ZBL", "train.xyz"), form="flexible",
                           margin=0.5)
    assert typewise.needs_zbl_in() is not None
    from ase.build import bulk

    assert suggest_zbl([bulk("Cu", "fcc", a=3.6, cubic=True)]).needs_zbl_in() is None


def test_suggest_help_documents_margin_and_extra_files(capsys):
    with pytest.raises(SystemExit):
        main(["zbl", "suggest", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0.9" in out and "shortest distance" in out and "test.xyz" in out
    assert "zbl.in" in out and "same folder" in out


def test_suggest_takes_extra_structure_files(tmp_path, capsys):
    """Held-out frames with a closer Li-O contact pull the radius below it."""
    train = shared_file("llzo", "NEP25-ZBL", "train.xyz")
    held_out = shared_file("llzo", "validation", "val_1200.xyz")
    species = ["Li", "La", "Zr", "O"]
    alone = suggest_zbl(train, species)
    both = suggest_zbl(train, species, extra=[held_out])
    d_train = min_pair_distances(train, species)["Li-O"]
    d_held = min_pair_distances(held_out, species)["Li-O"]
    assert d_held < d_train and both.outer["Li-O"] < alone.outer["Li-O"]
    assert both.outer["Li-O"] == pytest.approx(np.floor(1e4 * 0.9 * d_held) / 1e4)
    assert both.distance_sources["Li-O"] == str(held_out)
    assert both.distance_sources["Li-Li"] == str(train)
    for pair, outer in both.outer.items():
        d = both.data_min_distances[pair]
        assert d is None or outer < d
    assert main(["zbl", "suggest", str(train), str(held_out), "--types", *species,
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "shortest in" in out and "val_1200.xyz" in out


# ------------------------------------------------------------------ train start-up
def test_zbl_setup_universal_inside_the_data(llzo):
    """The suggested flexible line without its zbl.in: universal 1.28-2.56 Å, inside the data."""
    nep_in = parse_nep_in(LLZO_IN, "nep.in")
    setup = zbl_setup(nep_in, llzo)
    assert setup.form == "universal" and "line 7 'zbl 2.5566'" in setup.source
    assert "no zbl.in" in setup.source
    dmin = min_pair_distances(llzo, nep_in.types)
    assert sorted(setup.inside) == sorted(p for p, d in dmin.items()
                                          if d is not None and d < 2.5566)
    assert setup.pairs["Li-O"] == (pytest.approx(1.2783), pytest.approx(2.5566),
                                   pytest.approx(dmin["Li-O"]))
    labels = np.concatenate([s.forces.ravel() for s in llzo])
    zbl = zbl_predictions(Model.from_nep_in(nep_in), llzo).forces.ravel()
    assert setup.force_variance_fraction == pytest.approx(zbl.var() / labels.var())
    assert setup.force_variance_fraction > 1.0  # ZBL forces outweigh the labels


def test_zbl_setup_flexible_from_zbl_in(tmp_path, llzo):
    suggestion = suggest_zbl(shared_file("llzo", "NEP25-ZBL", "train.xyz"),
                             ["Li", "La", "Zr", "O"])
    suggestion.write(tmp_path)
    (tmp_path / "nep.in").write_text(LLZO_IN.replace("zbl 2.5566\n", "")
                                     + (tmp_path / "nep.in.zbl").read_text())
    setup = zbl_setup(read_nep_in(tmp_path / "nep.in"), llzo)
    assert setup.form == "flexible" and str(tmp_path / "zbl.in") in setup.source
    assert setup.inside == [] and setup.force_variance_fraction == 0.0
    assert setup.pairs["Li-O"][1] == pytest.approx(suggestion.outer["Li-O"])
    assert zbl_setup(parse_nep_in(LLZO_IN.replace("zbl 2.5566\n", "")), llzo) is None


def test_train_states_zbl_and_warns(tmp_path, capsys):
    import shutil

    shutil.copy(shared_file("llzo", "NEP25-ZBL", "train.xyz"), tmp_path / "train.xyz")
    (tmp_path / "nep.in").write_text(LLZO_IN)
    assert main(["train", str(tmp_path), "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ZBL: universal, from nep.in line 7 'zbl 2.5566'")
    assert "Li-O     switch 1.278 to 2.557 Å, data from 1.537 Å  INSIDE THE DATA" in out
    assert "WARNING: ZBL switches inside distances the training data contain" in out
    assert "% of the label force variance" in out


# ------------------------------------------------------------------ residual
def test_residual_spreads_per_pair(llzo):
    model = Model.from_nep_in(parse_nep_in(LLZO_IN))
    _, report = zbl_residual(model, llzo)
    labels = np.concatenate([s.forces.ravel() for s in llzo])
    zbl = zbl_predictions(model, llzo).forces.ravel()
    adds, removes, left = report.spreads["force"]
    assert adds == pytest.approx(zbl.std()) and left == pytest.approx((labels - zbl).std())
    # var(label - ZBL) = var(label) + adds² - removes² (covariance positive here)
    assert left**2 == pytest.approx(labels.var() + adds**2 - removes**2)
    assert report.explained["force"] < 0  # the old "ZBL fraction" was negative here
    assert set(report.overlapping_pairs) == set(zbl_setup(parse_nep_in(LLZO_IN), llzo).inside)
    for pair in report.pairs.values():
        assert pair.adds >= 0 and pair.removes >= 0
    assert report.pairs["La-La"].max_force == 0.0 and not report.pairs["La-La"].acts_on_data
    text = report.table()
    assert "force (eV/Å)" in text and "OVERLAP" in text and "WARNING" in text
    assert "fraction" not in text
