# Training gradients (cext/nep_train.h). Included at the end of _core.pyx.
# The Python API is nepzbl_plugin/train/gradient.py; this layer only passes buffers through.
from libc.stdlib cimport free
from libc.string cimport memset
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


cdef extern from "nep_train_loss.h" nogil:
    ctypedef struct nep_loss_set:
        int T
        int num_selected
        const int *selected
        const long long *structure_offset
        const double *ref_energy
        const double *ref_virial
        const int *has_virial
        const double *weight
        const double *energy_weight
        const unsigned char *contains
        const double *ref_forces
        const double *force_weight
        double lambda_e, lambda_f, lambda_v, lambda_shear, lambda_1, lambda_2
        size_t num_parameters
        const int *parameter_types
        const unsigned char *global_mask
    int NEP_LOSS_STRUCTURE_LENGTH
    size_t NEP_LOSS_LENGTH(int T)
    long long nep_loss_set_tables(int T, int S, const long long *structure_offset,
                                  const int *types, const double *weight,
                                  const double *type_weight, const double *forces,
                                  double force_delta, unsigned char *contains,
                                  double *force_weight)


cdef extern from "nep_train.h" nogil:
    int nep_train_loss(const nep_loss_set *L, const double *energy, const double *virials,
                       const double *forces, const double *z, double *work, double *record,
                       double *alpha, double *force_adjoint, double *virial_adjoint,
                       double *regularisation_gradient)


cdef class LossSet:
    """A training set's labels and GPUMD's loss weights for the C loss (cext/nep_train_loss.h,
    the pieces the GPU sums too): :meth:`evaluate` gives a batch's loss record and adjoints
    from its predictions. Arrays by structure (S) and atom (A) of the whole set."""
    cdef nep_loss_set c
    cdef list _keep
    cdef readonly int num_types
    cdef readonly Py_ssize_t num_structures, num_atoms, num_parameters, loss_length

    def __init__(self, long long[::1] structure_offset, double[::1] energy,
                 double[:, ::1] virial, int[::1] has_virial, double[::1] weight,
                 double[::1] energy_weight, double[:, ::1] forces, int[::1] types,
                 double[::1] type_weight, double force_delta, double lambda_e, double lambda_f,
                 double lambda_v, double lambda_shear, double lambda_1, double lambda_2,
                 int[::1] parameter_types, unsigned char[::1] global_mask):
        cdef Py_ssize_t S = energy.shape[0], A = forces.shape[0], P = parameter_types.shape[0]
        cdef int T = type_weight.shape[0]
        cdef long long bad
        if (structure_offset.shape[0] != S + 1 or virial.shape[0] != S or virial.shape[1] != 6
                or has_virial.shape[0] != S or weight.shape[0] != S
                or energy_weight.shape[0] != S or forces.shape[1] != 3
                or types.shape[0] != A or structure_offset[S] != A
                or global_mask.shape[0] != P):
            raise ValueError("the labels' arrays disagree on the structures, atoms or parameters")
        c_weight = np.empty(max(A, 1))
        contains = np.zeros((max(S, 1), T + 1), dtype=np.uint8)
        cdef double[::1] cw = c_weight
        cdef unsigned char[:, ::1] cont = contains
        bad = nep_loss_set_tables(T, <int>S, &structure_offset[0], &types[0] if A else NULL,
                                  &weight[0] if S else NULL, &type_weight[0],
                                  &forces[0, 0] if A else NULL, force_delta, &cont[0, 0],
                                  &cw[0])
        if bad >= 0:
            raise ValueError(f"atom {bad}: type {types[bad]} outside 0..{T - 1}")
        self._keep = [structure_offset, energy, virial, has_virial, weight, energy_weight,
                      forces, c_weight, contains, parameter_types, global_mask]
        memset(&self.c, 0, sizeof(self.c))
        self.c.T = T
        self.c.structure_offset = &structure_offset[0]
        self.c.ref_energy = &energy[0] if S else NULL
        self.c.ref_virial = &virial[0, 0] if S else NULL
        self.c.has_virial = &has_virial[0] if S else NULL
        self.c.weight = &weight[0] if S else NULL
        self.c.energy_weight = &energy_weight[0] if S else NULL
        self.c.contains = &cont[0, 0] if S else NULL
        self.c.ref_forces = &forces[0, 0] if A else NULL
        self.c.force_weight = &cw[0] if A else NULL
        self.c.lambda_e, self.c.lambda_f, self.c.lambda_v = lambda_e, lambda_f, lambda_v
        self.c.lambda_shear, self.c.lambda_1, self.c.lambda_2 = lambda_shear, lambda_1, lambda_2
        self.c.num_parameters = P
        self.c.parameter_types = &parameter_types[0] if P else NULL
        self.c.global_mask = &global_mask[0] if P else NULL
        self.num_types, self.num_structures, self.num_atoms, self.num_parameters = T, S, A, P
        self.loss_length = NEP_LOSS_LENGTH(T)

    def evaluate(self, int[::1] selected, double[::1] energy, double[:, ::1] forces,
                 double[:, :, ::1] virials, double[::1] z, bint adjoints=True):
        """(record, alpha (n,), force adjoint (sum N, 3), virial adjoint (n, 3, 3),
        regularisation gradient (P,)) of structures ``selected`` from their predictions
        (selection order); the adjoints are None unless wanted."""
        cdef int n = selected.shape[0], status
        cdef Py_ssize_t j, atoms = 0
        for j in range(n):
            if selected[j] < 0 or selected[j] >= self.num_structures:
                raise ValueError("a selected structure is out of range")
            atoms += self.c.structure_offset[selected[j] + 1] - self.c.structure_offset[selected[j]]
        if (energy.shape[0] != n or virials.shape[0] != n or virials.shape[1] != 3
                or virials.shape[2] != 3 or forces.shape[0] != atoms or forces.shape[1] != 3
                or z.shape[0] != self.num_parameters):
            raise ValueError("the predictions or parameters do not match the selection")
        record = np.zeros(self.loss_length)
        work = np.zeros(max(1, n * NEP_LOSS_STRUCTURE_LENGTH))
        cdef double[::1] r = record
        cdef double[::1] w = work
        alpha = fadj = vadj = reg = None
        cdef double *pa = NULL
        cdef double *pf = NULL
        cdef double *pv = NULL
        cdef double *pr = NULL
        cdef double[::1] ma, mf, mv, mr
        if adjoints:
            alpha, fadj, vadj = np.zeros(max(n, 1)), np.zeros(max(atoms, 1) * 3), np.zeros(max(n, 1) * 9)
            reg = np.zeros(max(self.num_parameters, 1))
            ma, mf, mv, mr = alpha, fadj, vadj, reg
            pa, pf, pv, pr = &ma[0], &mf[0], &mv[0], &mr[0]
        cdef nep_loss_set L = self.c
        L.num_selected = n
        L.selected = &selected[0] if n else NULL
        with nogil:
            status = nep_train_loss(&L, &energy[0] if n else NULL, &virials[0, 0, 0] if n else NULL,
                                    &forces[0, 0] if atoms else NULL,
                                    &z[0] if self.num_parameters else NULL, &w[0], &r[0], pa, pf,
                                    pv, pr)
        if status != NEP_OK:
            raise ValueError("the loss's arguments are inconsistent")
        if not adjoints:
            return record, None, None, None, None
        return (record, alpha[:n], fadj[:3 * atoms].reshape(atoms, 3),
                vadj[:9 * n].reshape(n, 3, 3), reg[:self.num_parameters])


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
                   int[::1] structure_ids=None, const double[::1] temperatures=None):
    """Call nep_train_gradient (see cext/nep_train.h) on flattened structures.

    ``spec`` holds the nep_model_spec fields as Python ints and C-contiguous numpy arrays
    (float64, atomic numbers int32). Output arrays may be None (not wanted); they are
    allocated by the caller. With a :class:`TrainCache`, ``structure_ids`` (one stable id
    >= 0 per structure) name the structures whose neighbour lists it keeps. ``temperatures``
    (one per structure, K; None: 0) are the temperature models' input. Returns the C
    status (0 = NEP_OK).
    """
    cdef nep_model_spec c_spec
    cdef int status
    cdef int num_systems = atom_offsets.shape[0] - 1
    cdef Py_ssize_t num_atoms
    cdef nep_train_cache *p_cache = NULL if cache is None else cache.ptr
    cdef const int *p_ids = NULL
    cdef const double *p_alpha = _train_ptr(alpha)
    cdef const double *p_fadj = _train_ptr(force_adjoint)
    cdef const double *p_vadj = _train_ptr(virial_adjoint)
    cdef double *p_grad = <double *>_train_ptr(gradient)
    cdef double *p_energy = <double *>_train_ptr(energy)
    cdef double *p_forces = <double *>_train_ptr(forces)
    cdef double *p_virials = <double *>_train_ptr(virials)
    cdef int *p_status = NULL if statuses is None else &statuses[0]
    # checks the set's arrays against each other first
    cdef nep_system *systems = _flat_systems(types, positions, cells, pbc, atom_offsets,
                                             temperatures)
    try:
        _fill_spec_from(&c_spec, spec)
        if nep_train_num_parameters(&c_spec) != c_spec.num_parameters:
            raise ValueError("the parameter vector does not match the model header")
        num_atoms = atom_offsets[num_systems] if num_systems > 0 else 0
        _train_check_size(alpha, num_systems)
        _train_check_size(force_adjoint, 3 * num_atoms)
        _train_check_size(virial_adjoint, 9 * num_systems)
        _train_check_size(gradient, c_spec.num_parameters)
        _train_check_size(energy, num_systems)
        _train_check_size(forces, 3 * num_atoms)
        _train_check_size(virials, 9 * num_systems)
        if statuses is not None and statuses.shape[0] != num_systems:
            raise ValueError("statuses must have one value per structure")
        if (cache is None) != (structure_ids is None):
            raise ValueError("a cache needs structure_ids and structure_ids need a cache")
        if structure_ids is not None and structure_ids.shape[0] != num_systems:
            raise ValueError("structure_ids must have one value per structure")
        if structure_ids is not None and num_systems > 0:
            p_ids = &structure_ids[0]
        with nogil:
            status = nep_train_gradient_cached(p_cache, p_ids, &c_spec, num_systems, systems,
                                               p_alpha, p_fadj, p_vadj, p_grad, p_energy,
                                               p_forces, p_virials, p_status, num_threads)
    finally:
        free(systems)
    return status
