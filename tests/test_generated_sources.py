"""The generated C headers are their generators' output: edit the generator, not the header."""
import subprocess
import sys
from pathlib import Path

import pytest

CEXT = Path(__file__).resolve().parents[1] / "cext"


@pytest.mark.parametrize("generator, header", [
    ("gen_spherical_harmonics.py", "nep_sph.h"),
    ("gen_invariant_derivatives.py", "nep_train_maths.h"),
])
def test_generated_header_is_up_to_date(generator, header, tmp_path):
    if generator == "gen_invariant_derivatives.py":
        pytest.importorskip("sympy")
    out = tmp_path / header
    with open(out, "w") as handle:
        subprocess.run([sys.executable, str(CEXT / "tools" / generator)], stdout=handle,
                       check=True, timeout=120)
    assert out.read_text() == (CEXT / header).read_text(), (
        f"cext/{header} differs from what cext/tools/{generator} writes; regenerate it "
        f"(python cext/tools/{generator} > cext/{header})")
    assert "do not edit" in out.read_text().splitlines()[1]
