"""model.py's parameter layout against the one the C engines use (cext/nep_layout.h).

model.py keeps its own copy of the layout (it reads and writes nep.txt without the engine);
this test holds the two together, so that a layout change made on one side fails here.
"""
import itertools

import numpy as np
import pytest

from nepzbl_plugin import Model

_core = pytest.importorskip("nepzbl_plugin._core")

HEADERS = [
    dict(version=v, types=types, n_max_radial=nR, n_max_angular=nA, basis_size_radial=bR,
         basis_size_angular=bA, l_max=L, l_max_flags=flags, n_neurons=N1,
         radial_cutoffs=[5.0], angular_cutoffs=[4.0], temperature=temperature,
         n_neurons_second=N2)
    for v, types, (nR, nA, bR, bA), L, flags, N1, temperature, N2 in itertools.product(
        (3, 4, 5),
        (["Si"], ["Li", "La", "Zr", "O"]),
        ((4, 4, 8, 8), (2, 3, 5, 7)),
        (1, 4, 8),
        ((0, 0, 0, 0, 0, 0), (1, 1, 0, 0, 0, 0), (1, 1, 1, 1, 1, 1)),
        (1, 30),
        (False, True),
        (0, 7),
    )
]


@pytest.mark.parametrize("header", HEADERS[::7] + HEADERS[-1:])
def test_python_layout_matches_c_layout(header):
    model = Model.empty(**header)
    T = model.num_types
    c = _core.model_layout(model.version, T, model.n_max_radial, model.n_max_angular,
                           model.basis_size_radial, model.basis_size_angular, model.l_max,
                           model.flags_on, model.n_neurons, model.temperature,
                           model.n_neurons_second)
    assert c["dim"] == model.descriptor_dim
    assert c["num_blocks"] == model.num_angular_blocks
    assert c["num_networks"] == model.num_networks
    assert c["block_size"] == model.network_block_size
    assert c["shared_bias"] == model.num_network_parameters - 1
    assert c["num_parameters"] == model.num_parameters
    # the coefficient views start where the C offsets say
    marked = np.arange(model.num_parameters, dtype=float)
    model.parameters[:] = marked
    assert model.radial_coefficients.reshape(-1)[0] == c["offset_radial"]
    assert model.angular_coefficients.reshape(-1)[0] == c["offset_angular"]
    # and the [n, k, ti, tj] index convention: c[n][k][ti][tj] at offset + ((n*(b+1)+k)*T+ti)*T+tj
    n, k, ti, tj = 1, 2, T - 1, 0
    expected = c["offset_angular"] + ((n * (model.basis_size_angular + 1) + k) * T + ti) * T + tj
    assert model.angular_coefficients[n, k, ti, tj] == expected
