# Filling nep_model_spec, nep_system and nep_outputs from Python values: one copy, included
# by both _core.pyx and _cuda.pyx (each cimports nep_model_spec, nep_system and nep_outputs
# from _nep).
from libc.string cimport memset

# The output names of nep_outputs, in struct order, with their per-structure shapes
# ("N" = number of atoms, "D" = descriptor length, "H" = hidden neurons).
OUTPUT_NAMES = (
    "energy", "energies", "forces", "virial", "virials", "descriptors", "latent",
    "energy_zbl", "energies_zbl", "forces_zbl", "virial_zbl",
)

cdef double _dummy_output[9]


cdef double *_out_ptr(object arr, str name, Py_ssize_t size) except? NULL:
    """Data pointer of a C-contiguous float64 array of exactly ``size`` values, or NULL for None
    (output not wanted). The size is checked here: the engine writes all ``size`` values."""
    cdef double[::1] view
    if arr is None:
        return NULL
    if (not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or arr.dtype.char != "d"
            or not arr.flags.writeable):
        raise ValueError("outputs must be writable C-contiguous float64 arrays")
    if arr.size != size:
        raise ValueError(f"output {name!r} needs {size} values, got an array of {arr.size}")
    view = arr.reshape(-1)
    if view.shape[0] == 0:
        return &_dummy_output[0]
    return &view[0]


cdef int _fill_outputs(nep_outputs *o, dict arrays, Py_ssize_t n, Py_ssize_t dim,
                       Py_ssize_t neurons) except -1:
    """Point every field of ``o`` at the array of the same name in ``arrays`` (NULL if absent),
    after checking that each array holds what the engine will write for ``n`` atoms."""
    o.energy = _out_ptr(arrays.get("energy"), "energy", 1)
    o.energies = _out_ptr(arrays.get("energies"), "energies", n)
    o.forces = _out_ptr(arrays.get("forces"), "forces", 3 * n)
    o.virial = _out_ptr(arrays.get("virial"), "virial", 9)
    o.virials = _out_ptr(arrays.get("virials"), "virials", 9 * n)
    o.descriptors = _out_ptr(arrays.get("descriptors"), "descriptors", n * dim)
    o.latent = _out_ptr(arrays.get("latent"), "latent", n * neurons)
    o.energy_zbl = _out_ptr(arrays.get("energy_zbl"), "energy_zbl", 1)
    o.energies_zbl = _out_ptr(arrays.get("energies_zbl"), "energies_zbl", n)
    o.forces_zbl = _out_ptr(arrays.get("forces_zbl"), "forces_zbl", 3 * n)
    o.virial_zbl = _out_ptr(arrays.get("virial_zbl"), "virial_zbl", 9)
    return 0


cdef int _fill_spec(nep_model_spec *spec, int version, int num_types, int n_max_radial,
                    int n_max_angular, int basis_radial, int basis_angular, int l_max,
                    object flags, int num_neurons, const double *rc_radial,
                    const double *rc_angular, const int *atomic_numbers, const double *zbl,
                    const double *parameters, size_t num_parameters,
                    const double *q_scaler, int temperature,
                    int num_neurons_second) except -1:
    """Fill ``spec`` (the arrays stay owned by the caller; ``zbl`` NULL = no ZBL;
    ``temperature`` nonzero: a temperature model, whose last descriptor entry is the
    structure's temperature; ``num_neurons_second`` > 0: a second hidden layer)."""
    if len(flags) != 6:
        raise ValueError("flags must have 6 entries")
    spec.version = version
    spec.num_types = num_types
    spec.n_max_radial = n_max_radial
    spec.n_max_angular = n_max_angular
    spec.basis_radial = basis_radial
    spec.basis_angular = basis_angular
    spec.l_max = l_max
    for k in range(6):
        spec.flags[k] = 1 if flags[k] else 0
    spec.num_neurons = num_neurons
    spec.rc_radial = rc_radial
    spec.rc_angular = rc_angular
    spec.atomic_numbers = atomic_numbers
    spec.use_zbl = 0 if zbl == NULL else 1
    spec.zbl = zbl
    spec.parameters = parameters
    spec.num_parameters = num_parameters
    spec.q_scaler = q_scaler
    spec.temperature = 1 if temperature else 0
    spec.num_neurons_second = num_neurons_second
    return 0


cdef int _fill_spec_from(nep_model_spec *spec, dict fields) except -1:
    """``spec`` from the fields :func:`nepzbl_plugin.engine.base.model_spec` returns (the
    pointers go into its arrays: ``fields`` must outlive every use of ``spec``)."""
    cdef const double[::1] rc_radial = fields["rc_radial"]
    cdef const double[::1] rc_angular = fields["rc_angular"]
    cdef const int[::1] atomic_numbers = fields["atomic_numbers"]
    cdef const double[::1] parameters = fields["parameters"]
    cdef const double[::1] q_scaler = fields["q_scaler"]
    cdef const double[::1] zbl
    cdef const double *zbl_ptr = NULL
    if fields["zbl"] is not None:
        zbl = fields["zbl"]
        zbl_ptr = &zbl[0]
    memset(spec, 0, sizeof(nep_model_spec))
    return _fill_spec(spec, fields["version"], fields["num_types"], fields["n_max_radial"],
                      fields["n_max_angular"], fields["basis_radial"], fields["basis_angular"],
                      fields["l_max"], fields["flags"], fields["num_neurons"], &rc_radial[0],
                      &rc_angular[0], &atomic_numbers[0], zbl_ptr, &parameters[0],
                      <size_t>parameters.shape[0], &q_scaler[0], fields.get("temperature", 0),
                      fields.get("num_neurons_second", 0))


cdef nep_system *_flat_systems(const int[::1] types, const double[:, ::1] positions,
                               const double[:, :, ::1] cells, const int[:, ::1] pbc,
                               const long long[::1] atom_offsets,
                               const double[::1] temperatures) except NULL:
    """One nep_system per structure of a flattened set (the arrays of
    :class:`nepzbl_plugin.train.gradient.TrainingBatch`; temperatures None: 0), pointing into
    the arrays, which must outlive it; the caller frees the array."""
    cdef Py_ssize_t num_systems = atom_offsets.shape[0] - 1, s
    cdef int k
    if num_systems < 0 or cells.shape[0] != num_systems or pbc.shape[0] != num_systems:
        raise ValueError("atom_offsets, cells and pbc disagree on the number of structures")
    cdef long long num_atoms = atom_offsets[num_systems] if num_systems > 0 else 0
    if types.shape[0] != num_atoms or positions.shape[0] != num_atoms:
        raise ValueError("types/positions do not match atom_offsets")
    if temperatures is not None and temperatures.shape[0] != num_systems:
        raise ValueError("temperatures must have one value per structure")
    cdef nep_system *systems = <nep_system *>calloc(max(num_systems, 1), sizeof(nep_system))
    if systems == NULL:
        raise MemoryError()
    for s in range(num_systems):
        systems[s].num_atoms = <int>(atom_offsets[s + 1] - atom_offsets[s])
        systems[s].types = &types[atom_offsets[s]] if systems[s].num_atoms > 0 else NULL
        systems[s].positions = (&positions[atom_offsets[s], 0] if systems[s].num_atoms > 0
                                else NULL)
        systems[s].cell = &cells[s, 0, 0]
        for k in range(3):
            systems[s].pbc[k] = pbc[s, k]
        systems[s].temperature = temperatures[s] if temperatures is not None else 0.0
    return systems
