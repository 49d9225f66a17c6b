# Filling nep_model_spec and nep_outputs from Python values: one copy, included by both
# _core.pyx and _cuda.pyx (each cimports nep_model_spec and nep_outputs from _nep).

# The output names of nep_outputs, in struct order, with their per-structure shapes
# ("N" = number of atoms, "D" = descriptor length, "H" = hidden neurons).
OUTPUT_NAMES = (
    "energy", "energies", "forces", "virial", "virials", "descriptors", "latent",
    "energy_zbl", "energies_zbl", "forces_zbl", "virial_zbl",
)

cdef double _dummy_output[9]


cdef double *_out_ptr(object arr) except? NULL:
    """Data pointer of a C-contiguous float64 array, or NULL for None (output not wanted)."""
    cdef double[::1] view
    if arr is None:
        return NULL
    if not arr.flags.c_contiguous or arr.dtype.char != "d" or not arr.flags.writeable:
        raise ValueError("outputs must be writable C-contiguous float64 arrays")
    view = arr.reshape(-1)
    if view.shape[0] == 0:
        return &_dummy_output[0]
    return &view[0]


cdef int _fill_outputs(nep_outputs *o, dict arrays) except -1:
    """Point every field of ``o`` at the array of the same name in ``arrays`` (NULL if absent)."""
    o.energy = _out_ptr(arrays.get("energy"))
    o.energies = _out_ptr(arrays.get("energies"))
    o.forces = _out_ptr(arrays.get("forces"))
    o.virial = _out_ptr(arrays.get("virial"))
    o.virials = _out_ptr(arrays.get("virials"))
    o.descriptors = _out_ptr(arrays.get("descriptors"))
    o.latent = _out_ptr(arrays.get("latent"))
    o.energy_zbl = _out_ptr(arrays.get("energy_zbl"))
    o.energies_zbl = _out_ptr(arrays.get("energies_zbl"))
    o.forces_zbl = _out_ptr(arrays.get("forces_zbl"))
    o.virial_zbl = _out_ptr(arrays.get("virial_zbl"))
    return 0


cdef int _fill_spec(nep_model_spec *spec, int version, int num_types, int n_max_radial,
                    int n_max_angular, int basis_radial, int basis_angular, int l_max,
                    object flags, int num_neurons, const double *rc_radial,
                    const double *rc_angular, const int *atomic_numbers, const double *zbl,
                    const double *parameters, size_t num_parameters,
                    const double *q_scaler) except -1:
    """Fill ``spec`` (the arrays stay owned by the caller; ``zbl`` NULL = no ZBL)."""
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
    return 0
