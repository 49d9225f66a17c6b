"""The ``nepzbl`` command line: skeleton, info, convert, model, write-example-model."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from conftest import shared_file

from nepzbl_plugin import __version__, cli
from nepzbl_plugin.cli import main
from nepzbl_plugin.io.xyz import read_train_xyz
from nepzbl_plugin.model import read_model


def _run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# ------------------------------------------------------------------------------ skeleton
def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"nepzbl {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("info", "convert", "model", "write-example-model"):
        assert command in out


@pytest.mark.parametrize("command", ["info", "convert", "model", "write-example-model"])
def test_every_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: nepzbl " + command in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    status, _, err = _run(capsys)
    assert status == 2 and "usage: nepzbl" in err


def test_user_errors_are_one_clean_line(capsys, tmp_path):
    status, out, err = _run(capsys, "info", str(tmp_path / "missing.txt"))
    assert status == 2
    assert err.startswith("nepzbl: error: ") and err.count("\n") == 1
    assert "missing.txt" in err and "Traceback" not in err
    bad = tmp_path / "bad.txt"
    bad.write_text("nep4 1 Si\ncutoff 5 x\n")
    status, _, err = _run(capsys, "info", str(bad))
    assert status == 2 and err.startswith("nepzbl: error: ") and "bad.txt" in err


def test_missing_command_modules_are_skipped(monkeypatch):
    monkeypatch.setattr(
        cli, "_COMMAND_MODULES",
        ("nepzbl_plugin.cli.info", "nepzbl_plugin.no_such_module",
         "nepzbl_plugin.no_such_package.cli"),
    )
    parser = cli.build_parser()
    assert parser.parse_args(["info", "m.txt"]).model == "m.txt"


def test_broken_command_module_propagates(monkeypatch):
    broken = "nepzbl_test_broken_command_module"

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == broken:
                raise ModuleNotFoundError("No module named 'some_dependency'",
                                          name="some_dependency")
            return None

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("nepzbl_plugin.cli.info", broken))
    with pytest.raises(ModuleNotFoundError, match="some_dependency"):
        cli.build_parser()


def test_command_modules_can_register(monkeypatch, capsys):
    module = types.ModuleType("nepzbl_test_extra_commands")

    def register(subparsers):
        p = subparsers.add_parser("hello", help="say hello")
        p.set_defaults(func=lambda args: print("hello") or 3)

    module.register = register
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ("nepzbl_plugin.cli.info", module.__name__))
    status, out, _ = _run(capsys, "hello")
    assert (status, out) == (3, "hello\n")


# ------------------------------------------------------------------------------ info
def test_info_on_shared_model(capsys):
    path = shared_file("llzo", "NEP802-ZBL.txt")
    status, out, _ = _run(capsys, "info", str(path))
    assert status == 0
    assert "nep4_zbl" in out and "Li La Zr O" in out
    assert "radial 6 A" in out and "angular 4 A" in out
    assert "Li-O: inner 0.9 A, outer 1.8 A" in out
    model = read_model(path)
    assert str(model.num_parameters) in out

    status, out, _ = _run(capsys, "info", "--json", str(path))
    info = json.loads(out)
    assert info["species"] == ["Li", "La", "Zr", "O"]
    assert info["zbl"]["mode"] == "universal"
    assert (info["zbl"]["inner_A"], info["zbl"]["outer_A"]) == (0.9, 1.8)
    assert len(info["zbl"]["pairs"]) == 10
    assert info["radial_cutoffs_A"] == [6.0] * 4 and info["angular_cutoffs_A"] == [4.0] * 4
    assert info["neurons"] == [30, 0]
    assert info["max_neighbors"] == [95, 30]  # nep.txt's `cutoff 6 4 95 30`
    assert info["descriptor_dim"] == model.descriptor_dim == 5 + 5 * 5
    assert info["num_parameters"] == model.num_parameters


def test_write_example_model_then_info(capsys, tmp_path):
    path = tmp_path / "m.txt"
    status, out, _ = _run(capsys, "write-example-model", str(path))
    assert status == 0 and "nep4_zbl" in out
    model = read_model(path)
    assert model.types == ["Li", "La", "Zr", "O"] and model.zbl.mode == "universal"
    status, out, _ = _run(capsys, "info", str(path))
    assert status == 0 and "ZBL            : universal" in out
    status, _, err = _run(capsys, "write-example-model", str(path), "--types", "Li", "Qq")
    assert status == 2 and "Qq" in err


# ------------------------------------------------------------------------------ convert
def test_convert_extxyz_written_by_ase(capsys, tmp_path):
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(5)
    frames = []
    for k in range(3):
        atoms = Atoms("Li2O", positions=rng.uniform(0, 4, (3, 3)),
                      cell=np.diag([4.0, 4.5, 5.0]) + 0.1 * k, pbc=True)
        atoms.calc = SinglePointCalculator(
            atoms, energy=-10.0 - k, forces=rng.normal(size=(3, 3)),
            stress=rng.normal(size=6) * 0.01,
        )
        frames.append(atoms)
    source = tmp_path / "dft.extxyz"
    ase.io.write(source, frames, format="extxyz")
    out_path = tmp_path / "train.xyz"
    status, out, _ = _run(capsys, "convert", str(source), "-o", str(out_path),
                          "--config-type", "dft md", "--weight", "2")
    assert status == 0
    assert "wrote 3 structures (9 atoms, 3 with virial)" in out
    back = read_train_xyz(out_path, species=["Li", "O"])
    # compare with what ASE itself reads back (extxyz stores 8 decimals)
    for atoms, s in zip(ase.io.read(source, ":"), back, strict=True):
        assert s.energy == atoms.get_potential_energy()
        np.testing.assert_array_equal(s.forces, atoms.get_forces())
        np.testing.assert_array_equal(s.positions, atoms.get_positions())
        volume = atoms.get_volume()
        np.testing.assert_allclose(s.virial, -atoms.get_stress(voigt=False) * volume,
                                   rtol=1e-12, atol=1e-14)
        assert (s.weight, s.config_type) == (2.0, "dft md")

    status, _, _ = _run(capsys, "convert", str(source), "-o", str(tmp_path / "last.xyz"),
                        "--index", "-1")
    assert status == 0 and len(read_train_xyz(tmp_path / "last.xyz")) == 1


def test_convert_errors(capsys, tmp_path):
    status, _, err = _run(capsys, "convert", str(tmp_path / "none.xyz"), "-o",
                          str(tmp_path / "t.xyz"))
    assert status == 2 and err.startswith("nepzbl: error:") and "none.xyz" in err
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("this is not a structure\n")
    status, _, err = _run(capsys, "convert", str(garbage), "-o", str(tmp_path / "t.xyz"))
    assert status == 2 and "garbage.extxyz" in err
    assert not (tmp_path / "t.xyz").exists()


# ------------------------------------------------------------------------------ model
def test_model_add_and_strip_zbl_round_trip(capsys, tmp_path):
    source = shared_file("llzo", "NEP802.txt")
    original = read_model(source)
    assert original.zbl is None
    with_zbl = tmp_path / "zbl.txt"
    status, out, err = _run(capsys, "model", str(source), "-o", str(with_zbl), "--add-zbl",
                            "1.8", "--typewise", "0.7", "--full-precision")
    assert status == 0 and "nep4 -> nep4_zbl" in out
    assert "retrain or fine-tune" in err
    model = read_model(with_zbl)
    assert model.zbl.mode == "typewise"
    assert (model.zbl.outer, model.zbl.factor) == (1.8, 0.7)
    table = model.zbl_table()
    # Li-Li: min(0.7 * 2 * R_cov(Li) = 0.7 * 2 * 1.6, 1.8) = 1.8; O-O: 0.7 * 2 * 0.84 = 1.176
    assert table[0, 0, 1] == 1.8 and table[3, 3, 1] == pytest.approx(1.176, abs=1e-12)
    np.testing.assert_array_equal(model.parameters, original.parameters)
    np.testing.assert_array_equal(model.q_scaler, original.q_scaler)

    stripped = tmp_path / "plain.txt"
    status, out, _ = _run(capsys, "model", str(with_zbl), "-o", str(stripped), "--strip-zbl")
    assert status == 0 and "nep4_zbl -> nep4" in out
    # Written with GPUMD's %15.7e, which is how the original was written: same file content
    assert stripped.read_text().split() == source.read_text().split()

    status, _, err = _run(capsys, "model", str(source), "-o", str(stripped), "--typewise", "0.7")
    assert status == 2 and "--add-zbl" in err
    with pytest.raises(SystemExit):
        main(["model", str(source), "-o", str(stripped), "--add-zbl", "2", "--strip-zbl"])


def test_model_upgrades_an_old_header(capsys, tmp_path):
    # the pre-2022 cutoff line "cutoff rcR rcA" has no neighbour counts
    lines = shared_file("llzo", "NEP802.txt").read_text().split("\n")
    assert lines[1].split()[0] == "cutoff"
    lines[1] = "cutoff 6 4"
    old = tmp_path / "old.txt"
    old.write_text("\n".join(lines))
    new = tmp_path / "new.txt"
    status, out, err = _run(capsys, "model", str(old), "-o", str(new))
    assert status == 0 and "old header form upgraded" in out
    # 4/3 pi r^3 * 0.15 / A^3: 136 within 6 A, 41 within 4 A
    assert new.read_text().split("\n")[1] == "cutoff 6 4 136 41"
    assert "estimates 136 41" in err
    status, _, _ = _run(capsys, "model", str(old), "-o", str(new), "--max-neighbors", "90", "30")
    assert new.read_text().split("\n")[1] == "cutoff 6 4 90 30"
    np.testing.assert_array_equal(read_model(new).parameters, read_model(old).parameters)


def test_info_without_model_summary(capsys, monkeypatch):
    from nepzbl_plugin.model import Model

    monkeypatch.delattr(Model, "summary")
    status, out, _ = _run(capsys, "info", str(shared_file("llzo", "NEP802-ZBL.txt")))
    assert status == 0
    assert "nep4_zbl" in out and "cutoff Li" in out and "radial 6 A, angular 4 A" in out
    assert "Zr-O: inner 0.9 A, outer 1.8 A" in out


def test_readme_command_table_lists_every_command():
    """README's command table names every `nepzbl` command and `zbl` subcommand."""
    import re
    from pathlib import Path

    from nepzbl_plugin.cli import build_parser

    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md not next to the tests")
    table = [line for line in readme.read_text().splitlines() if line.startswith("| `nepzbl ")]
    listed = {" ".join(re.match(r"\| `nepzbl ([^`]*)`", line).group(1).split()[:2])
              for line in table}
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        subs = [a for a in sub._actions if getattr(a, "dest", "") == f"{name}_command"]
        names = [f"{name} {s}" for s in subs[0].choices] if subs else [name]
        for full in names:
            assert any(entry == full or entry.startswith(full + " ") or
                       entry.split()[0] == full for entry in listed), f"README lacks {full}"
