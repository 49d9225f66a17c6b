# Training gradients (cext/nep_train.h). Included at the end of _core.pyx.
# The Python API is nepzbl_plugin/train/gradient.py; this layer only passes buffers through.
from libc.stdlib cimport malloc, free
from ._nep cimport nep_model_spec, nep_system

cdef extern from "nep_train.h" nogil:
    size_t nep_train_num_parameters(const nep_model_spec *spec)
    int nep_train_gradient(const nep_model_spec *spec, int num_systems,
                           const nep_system *systems, const double *alpha,
                           const double *force_adjoint, const double *virial_adjoint,
                           double *gradient, double *energy, double *forces, double *virials,
                           int *statuses, int num_threads)
    ctypedef struct nep_train_cache:
        pass
    nep_train_cache *nep_train_cache_create()
    void nep_train_cache_free(nep_train_cache *cache)
    int nep_train_gradient_cached(nep_train_cache *cache, const int *structure_ids,
                                  const nep_model_spec *spec, int num_systems,
                                  const nep_system *systems, const double *alpha,
                                  const double *force_adjoint, const double *virial_adjoint,
                                  double *gradient, double *energy, double *forces,
                                  double *virials, int *statuses, int num_threads)


cdef class TrainCache:
    """Neighbour lists and work arrays kept between training-gradient calls
    (nep_train_cache in cext/nep_train.h). Pass it with stable structure ids: an id must
    always denote the same structure (types, positions, cell, pbc)."""
    cdef nep_train_cache *ptr

    def __cinit__(self):
        self.ptr = nep_train_cache_create()
        if self.ptr == NULL:
            raise MemoryError()

    def __dealloc__(self):
        nep_train_cache_free(self.ptr)
        self.ptr = NULL


cdef const double *_train_ptr(double[::1] arr):
    return NULL if arr is None else &arr[0]


cdef _train_check_size(double[::1] arr, Py_ssize_t size):
    if arr is not None and arr.shape[0] != size:
        raise ValueError(f"an array has {arr.shape[0]} values where {size} are needed")


def train_gradient(dict spec, int[::1] types, double[:, ::1] positions, double[:, :, ::1] cells,
                   int[:, ::1] pbc, long long[::1] atom_offsets, double[::1] alpha,
                   double[::1] force_adjoint, double[::1] virial_adjoint, double[::1] gradient,
                   double[::1] energy, double[::1] forces, double[::1] virials,
                   int[::1] statuses, int num_threads, TrainCache cache=None,
                   int[::1] structure_ids=None):
    """Call nep_train_gradient (see cext/nep_train.h) on flattened structures.

    ``spec`` holds the nep_model_spec fields as Python ints and C-contiguous numpy arrays
    (float64, atomic numbers int32). Output arrays may be None (not wanted); they are
    allocated by the caller. With a :class:`TrainCache`, ``structure_ids`` (one stable id
    >= 0 per structure) name the structures whose neighbour lists it keeps. Returns the C
    status (0 = NEP_OK).
    """
    cdef nep_model_spec c_spec
    cdef double[::1] rc_radial = spec["rc_radial"]
    cdef double[::1] rc_angular = spec["rc_angular"]
    cdef int[::1] atomic_numbers = spec["atomic_numbers"]
    cdef double[::1] zbl = spec["zbl"]
    cdef double[::1] parameters = spec["parameters"]
    cdef double[::1] q_scaler = spec["q_scaler"]
    cdef int k, s, status
    cdef int num_systems = atom_offsets.shape[0] - 1
    if num_systems < 0 or cells.shape[0] != num_systems or pbc.shape[0] != num_systems:
        raise ValueError("atom_offsets, cells and pbc disagree on the number of structures")
    c_spec.version = spec["version"]
    c_spec.num_types = spec["num_types"]
    c_spec.n_max_radial = spec["n_max_radial"]
    c_spec.n_max_angular = spec["n_max_angular"]
    c_spec.basis_radial = spec["basis_radial"]
    c_spec.basis_angular = spec["basis_angular"]
    c_spec.l_max = spec["l_max"]
    for k in range(6):
        c_spec.flags[k] = spec["flags"][k]
    c_spec.num_neurons = spec["num_neurons"]
    c_spec.rc_radial = &rc_radial[0]
    c_spec.rc_angular = &rc_angular[0]
    c_spec.atomic_numbers = &atomic_numbers[0]
    c_spec.use_zbl = spec["use_zbl"]
    c_spec.zbl = _train_ptr(zbl)
    c_spec.parameters = &parameters[0]
    c_spec.num_parameters = parameters.shape[0]
    c_spec.q_scaler = &q_scaler[0]
    if nep_train_num_parameters(&c_spec) != <size_t>parameters.shape[0]:
        raise ValueError("the parameter vector does not match the model header")
    cdef Py_ssize_t num_atoms = atom_offsets[num_systems] if num_systems > 0 else 0
    if types.shape[0] != num_atoms or positions.shape[0] != num_atoms:
        raise ValueError("types/positions do not match atom_offsets")
    _train_check_size(alpha, num_systems)
    _train_check_size(force_adjoint, 3 * num_atoms)
    _train_check_size(virial_adjoint, 9 * num_systems)
    _train_check_size(gradient, parameters.shape[0])
    _train_check_size(energy, num_systems)
    _train_check_size(forces, 3 * num_atoms)
    _train_check_size(virials, 9 * num_systems)
    if statuses is not None and statuses.shape[0] != num_systems:
        raise ValueError("statuses must have one value per structure")
    if (cache is None) != (structure_ids is None):
        raise ValueError("a cache needs structure_ids and structure_ids need a cache")
    if structure_ids is not None and structure_ids.shape[0] != num_systems:
        raise ValueError("structure_ids must have one value per structure")
    cdef nep_train_cache *p_cache = NULL if cache is None else cache.ptr
    cdef const int *p_ids = NULL if (structure_ids is None or num_systems == 0) else &structure_ids[0]
    cdef nep_system *systems = <nep_system *>malloc(sizeof(nep_system) * max(num_systems, 1))
    if systems == NULL:
        raise MemoryError()
    for s in range(num_systems):
        systems[s].num_atoms = <int>(atom_offsets[s + 1] - atom_offsets[s])
        systems[s].types = &types[atom_offsets[s]] if systems[s].num_atoms > 0 else NULL
        systems[s].positions = &positions[atom_offsets[s], 0] if systems[s].num_atoms > 0 else NULL
        systems[s].cell = &cells[s, 0, 0]
        for k in range(3):
            systems[s].pbc[k] = pbc[s, k]
    cdef const double *p_alpha = _train_ptr(alpha)
    cdef const double *p_fadj = _train_ptr(force_adjoint)
    cdef const double *p_vadj = _train_ptr(virial_adjoint)
    cdef double *p_grad = <double *>_train_ptr(gradient)
    cdef double *p_energy = <double *>_train_ptr(energy)
    cdef double *p_forces = <double *>_train_ptr(forces)
    cdef double *p_virials = <double *>_train_ptr(virials)
    cdef int *p_status = NULL if statuses is None else &statuses[0]
    try:
        with nogil:
            status = nep_train_gradient_cached(p_cache, p_ids, &c_spec, num_systems, systems,
                                               p_alpha, p_fadj, p_vadj, p_grad, p_energy,
                                               p_forces, p_virials, p_status, num_threads)
    finally:
        free(systems)
    return status


def train_num_parameters(dict spec):
    """nep_train_num_parameters for the header fields of ``spec`` (0 = inconsistent)."""
    cdef nep_model_spec c_spec
    cdef int k
    c_spec.version = spec["version"]
    c_spec.num_types = spec["num_types"]
    c_spec.n_max_radial = spec["n_max_radial"]
    c_spec.n_max_angular = spec["n_max_angular"]
    c_spec.basis_radial = spec["basis_radial"]
    c_spec.basis_angular = spec["basis_angular"]
    c_spec.l_max = spec["l_max"]
    for k in range(6):
        c_spec.flags[k] = spec["flags"][k]
    c_spec.num_neurons = spec["num_neurons"]
    return nep_train_num_parameters(&c_spec)
