"""The text handling of benchmarks/peer_training.py: GPUMD's nep.in rewritten for neppo and
TorchNEP, and what the parent reads back from a run's log. The checks against the peers' own
nep.in readers skip where neppo or TorchNEP (and torch) are not installed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import peer_training as P  # noqa: E402

LLZO_NEP_IN = """type          4 Li La Zr O
version       4
cutoff        6 4
zbl           1.8
neuron        30
batch         200
population    50
generation    100000
"""


def test_neppo_nep_in_sets_the_run_length_and_keeps_the_rest():
    text = P.neppo_nep_in(LLZO_NEP_IN + "seed 7\noutput_interval 1000\n", 400)
    lines = text.splitlines()
    assert "generation 400" in lines and "output_interval 100" in lines and "seed 42" in lines
    assert sum(ln.split()[0] == "generation" for ln in lines) == 1
    assert not any(ln.startswith(("seed 7", "output_interval 1000")) for ln in lines)
    for kept in ("zbl           1.8", "batch         200", "cutoff        6 4"):
        assert kept in lines
    assert "output_interval 1" in P.neppo_nep_in(LLZO_NEP_IN, 3).splitlines()
    with pytest.raises(ValueError):
        P.neppo_nep_in(LLZO_NEP_IN, 0)


def test_torchnep_nep_in_drops_what_torchnep_refuses():
    keywords = ("type", "version", "zbl", "cutoff", "neuron", "batch", "epoch")
    text, dropped = P.torchnep_nep_in(LLZO_NEP_IN + "epoch 5  # comment\n", 250, keywords)
    lines = text.splitlines()
    assert dropped == ["population", "generation", "epoch"]
    assert lines[-1] == "epoch 250" and sum(ln.startswith("epoch") for ln in lines) == 1
    assert "zbl           1.8" in lines and "batch         200" in lines
    with pytest.raises(ValueError):
        P.torchnep_nep_in(LLZO_NEP_IN, 0, keywords)


def test_timing_and_progress_from_the_logs():
    neppo_log = ("    step      epoch      time        lr      loss |   E train\n"
                 "       5        5.0   0:00:26  8.96e-03     14.98 |     37.24\n"
                 "      10       10.0   0:00:34  5.46e-03     12.07 |     30.91\n"
                 "peer-timing import 2.761 train 48.320\n")
    torchnep_log = ("Epoch    1 | loss 9.6e-01 | E 0.08 eV/atom\n"
                    "Epoch   12 | loss 1.8e-01 | E 0.01 eV/atom\n")
    assert P.parse_timing(neppo_log) == (2.761, 48.32)
    assert P.parse_timing(torchnep_log) is None  # stopped before the end: no timing line
    assert P.last_step("neppo", neppo_log) == 10
    assert P.last_step("torchnep", torchnep_log) == 12
    assert P.last_step("torchnep", "read 25 structures\n") is None


def test_the_peers_read_the_rewritten_nep_in(tmp_path):
    neppo_nep_in = pytest.importorskip("neppo.nep_in")
    torchnep_data = pytest.importorskip("torchnep.data")
    (tmp_path / "neppo.in").write_text(P.neppo_nep_in(LLZO_NEP_IN, 400))
    settings = neppo_nep_in.read_nep_in(tmp_path / "neppo.in")
    assert settings["generation"] == ["400"] and settings["zbl"] == ["1.8"]
    text, _ = P.torchnep_nep_in(LLZO_NEP_IN, 250, torchnep_data.NEP_IN_KEYWORDS)
    (tmp_path / "torchnep.in").write_text(text)
    config = torchnep_data.parse_nep_in(str(tmp_path / "torchnep.in"))
    assert config["num_epochs"] == 250 and config["zbl"] == 1.8 and config["batch_size"] == 200
