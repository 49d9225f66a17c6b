# Filling nep_model_spec and nep_outputs from Python values: one copy, included by both
# _core.pyx and _cuda.pyx (each cimports nep_model_spec and nep_outputs from _nep).

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
