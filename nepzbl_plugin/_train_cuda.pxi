# Training objective on the GPU (cext/nep_train_cuda.h). Included at the end of _cuda.pyx.
# The Python API is nepzbl_plugin/train/cuda_backend.py; this layer only passes buffers through.
from libc.stdlib cimport free

cdef extern from "nep_train_cuda.h" nogil:
    ctypedef struct nep_train_cuda:
        pass

    int nep_train_cuda_create(const nep_model_spec *spec, int num_systems,
                              const nep_system *systems, int use_float64, int pair_order,
                              nep_train_cuda **out, int *bad_system)
    int nep_train_cuda_run(nep_train_cuda *handle, const double *parameters, int num_selected,
                           const int *selected, const double *alpha, const double *force_adjoint,
                           const double *virial_adjoint, double *gradient, double *energy,
                           double *forces, double *virials)
    int nep_train_cuda_predict_population(nep_train_cuda *handle, int population,
                                          const double *parameters, int num_selected,
                                          const int *selected, double *energy, double *forces,
                                          double *virials)
    ctypedef struct nep_train_cuda_labels:
        const double *energy
        const double *virial
        const int *has_virial
        const double *weight
        const double *energy_weight
        const double *forces
        double lambda_e, lambda_f, lambda_v, lambda_shear, lambda_1, lambda_2, force_delta
        const double *type_weight
        const int *parameter_types
        const unsigned char *global_mask

    ctypedef struct nep_train_cuda_adam:
        double learning_rate, beta1, beta2, eps, weight_decay, bias1, bias2

    int nep_train_cuda_set_loss(nep_train_cuda *handle, const nep_train_cuda_labels *labels)
    size_t nep_train_cuda_loss_length(const nep_train_cuda *handle)
    int nep_train_cuda_loss_gradient(nep_train_cuda *handle, const double *parameters,
                                     int num_selected, const int *selected, double *record,
                                     double *gradient)
    int nep_train_cuda_population_loss(nep_train_cuda *handle, int population,
                                       const double *parameters, int num_selected,
                                       const int *selected, double *records)
    int nep_train_cuda_adam_start(nep_train_cuda *handle, const double *parameters,
                                  const double *m, const double *v,
                                  const unsigned char *decay_mask)
    int nep_train_cuda_adam_step(nep_train_cuda *handle, int num_selected, const int *selected,
                                 const nep_train_cuda_adam *adam, double *record, int *updated)
    int nep_train_cuda_adam_state(nep_train_cuda *handle, double *parameters, double *m,
                                  double *v)
    void nep_train_cuda_set_population_budget(nep_train_cuda *handle, size_t bytes)
    void nep_train_cuda_set_tile(nep_train_cuda *handle, int atoms)
    void nep_train_cuda_set_interleaved(nep_train_cuda *handle, int interleaved)
    void nep_train_cuda_set_kernels(nep_train_cuda *handle, int predict_kernel,
                                    int gradient_kernel)
    size_t nep_train_cuda_device_bytes(const nep_train_cuda *handle)
    size_t nep_train_cuda_num_parameters(const nep_train_cuda *handle)
    size_t nep_train_cuda_num_pairs(const nep_train_cuda *handle)
    const char *nep_train_cuda_last_error()
    void nep_train_cuda_free(nep_train_cuda *handle)


cdef const double *_tc_ptr(double[::1] arr):
    return NULL if arr is None else &arr[0]


cdef _tc_check(int status, str what):
    """Raises the error of a failed nep_train_cuda call (MemoryError for allocations)."""
    if status != NEP_OK:
        _raise(status, what, nep_train_cuda_last_error().decode())


# pair_order's names, in nep_train_cuda.h's order (NEP_TRAIN_CUDA_PAIRS_BY_TYPE, _AS_LISTED)
_PAIR_ORDERS = ("type", "list")


cdef class CudaTrainingSet:
    """A training set and a model header on the GPU: predictions and exact gradients of a
    linear functional of them (see cext/nep_train_cuda.h).

    Parameters
    ----------
    spec
        The model's ``nep_model_spec`` fields (:func:`nepzbl_plugin.engine.base.model_spec`:
        header, q_scaler and ZBL; the parameters are passed per call).
    types, positions, cells, pbc, atom_offsets, temperatures
        The flattened structures (as :class:`nepzbl_plugin.train.gradient.TrainingBatch`;
        temperatures in K, None: 0, read by temperature models only).
    float64
        float64 arithmetic (for checks) instead of float32 products with float64 sums.
    pair_order
        Each atom's pairs on the device, angular ones first: ``"type"`` (the default) each
        part in the neighbours' type order (the kernels' coefficient-gradient accesses then
        coalesce), ``"list"`` in the neighbour list's own order, for timing the two. The same
        numbers up to the order of the sums over an atom's pairs.
    """

    cdef nep_train_cuda *ptr
    cdef readonly Py_ssize_t num_parameters, num_structures, num_atoms
    cdef object _atom_offsets

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self, dict spec, int[::1] types, double[:, ::1] positions,
                 double[:, :, ::1] cells, int[:, ::1] pbc, long long[::1] atom_offsets,
                 bint float64=False, const double[::1] temperatures=None,
                 str pair_order="type"):
        cdef nep_model_spec c_spec
        cdef int status, bad = -1, order
        if pair_order not in _PAIR_ORDERS:
            raise ValueError(f"pair_order must be one of {', '.join(_PAIR_ORDERS)}, "
                             f"not {pair_order!r}")
        order = _PAIR_ORDERS.index(pair_order)
        cdef int num_systems = atom_offsets.shape[0] - 1
        _fill_spec_from(&c_spec, spec)
        cdef nep_system *systems = _flat_systems(types, positions, cells, pbc, atom_offsets,
                                                 temperatures)
        try:
            with nogil:
                status = nep_train_cuda_create(&c_spec, num_systems, systems, 1 if float64 else 0,
                                               order, &self.ptr, &bad)
        finally:
            free(systems)
        if status != NEP_OK:
            self.ptr = NULL
            where = f" (structure {bad})" if bad >= 0 else ""
            try:
                _tc_check(status, f"uploading the training set{where}")
            except EngineError as error:
                error.structure = bad if bad >= 0 else None  # the trainer names its file/line
                raise
        self.num_parameters = c_spec.num_parameters
        self.num_structures = num_systems
        self.num_atoms = atom_offsets[num_systems] if num_systems > 0 else 0
        self._atom_offsets = np.asarray(atom_offsets).copy()

    def __dealloc__(self):
        if self.ptr != NULL:
            nep_train_cuda_free(self.ptr)
            self.ptr = NULL

    def set_tile(self, int atoms):
        """At most ``atoms`` atoms a kernel launch (within what the buffers hold): for tests,
        so that a small set runs as several tiles, as a large one does."""
        nep_train_cuda_set_tile(self.ptr, atoms)

    def set_population_budget(self, size_t bytes):
        """Device memory (bytes) a population may hold for the candidates it evaluates in
        one launch (default 1 GiB; at least one candidate a launch)."""
        nep_train_cuda_set_population_budget(self.ptr, bytes)

    def set_interleaved(self, bint interleaved):
        """Work arrays and gradient rows interleaved across a launch's threads (True, the
        default: coalesced) or contiguous per thread (False, the earlier layout); the same
        numbers up to the order of the gradient's sums."""
        nep_train_cuda_set_interleaved(self.ptr, 1 if interleaved else 0)

    def set_kernels(self, bint predict_kernel=True, int gradient_kernel=0):
        """Which kernel runs which pass: prediction passes in their own specialised kernel
        (True, the default) or the gradient kernel; the gradient in the default kernel (0:
        bounded to 12 warps per SM in float32), the 16-warp one (1), the unbounded one (2)
        or the warp kernel (3). The same numbers up to round-off."""
        if gradient_kernel not in (0, 1, 2, 3):
            raise ValueError(f"gradient_kernel must be 0, 1, 2 or 3, not {gradient_kernel}")
        nep_train_cuda_set_kernels(self.ptr, 1 if predict_kernel else 0, gradient_kernel)

    @property
    def device_bytes(self):
        """Device memory held, in bytes."""
        return nep_train_cuda_device_bytes(self.ptr)

    def run(self, double[::1] parameters, int[::1] selected, double[::1] alpha=None,
            double[::1] force_adjoint=None, double[::1] virial_adjoint=None,
            bint want_gradient=True, bint want_predictions=True):
        """(gradient or None, energy (S,), forces (A, 3), virials (S, 9)) for structures
        ``selected``; the adjoints are in selection order (None: zero). A gradient without
        predictions (``want_predictions=False``: the three are None) skips the forces'
        terms."""
        cdef int status
        cdef int n = selected.shape[0]
        if parameters.shape[0] != self.num_parameters:
            raise ValueError(f"expected {self.num_parameters} parameters, "
                             f"got {parameters.shape[0]}")
        sel = np.asarray(selected)
        if n and (sel.min() < 0 or sel.max() >= self.num_structures):
            raise ValueError("a selected structure is out of range")
        atoms = int(np.sum(self._atom_offsets[sel + 1] - self._atom_offsets[sel])) if n else 0
        if alpha is not None and alpha.shape[0] != n:
            raise ValueError("alpha needs one value per selected structure")
        if force_adjoint is not None and force_adjoint.shape[0] != 3 * atoms:
            raise ValueError("force_adjoint needs 3 values per selected atom")
        if virial_adjoint is not None and virial_adjoint.shape[0] != 9 * n:
            raise ValueError("virial_adjoint needs 9 values per selected structure")
        gradient = np.zeros(self.num_parameters) if want_gradient else None
        energy, forces, virials = np.zeros(n), np.zeros(3 * atoms), np.zeros(9 * n)
        cdef double[::1] g = gradient
        cdef double[::1] e = energy
        cdef double[::1] f = forces
        cdef double[::1] w = virials
        cdef const double *pa = _tc_ptr(alpha)
        cdef const double *pf = _tc_ptr(force_adjoint)
        cdef const double *pv = _tc_ptr(virial_adjoint)
        cdef double *pg = <double *>_tc_ptr(g)
        cdef bint predictions = want_predictions or not want_gradient
        cdef double *pe = <double *>_tc_ptr(e) if n and predictions else NULL
        cdef double *pff = <double *>_tc_ptr(f) if atoms and predictions else NULL
        cdef double *pw = <double *>_tc_ptr(w) if n and predictions else NULL
        cdef const int *ps = &selected[0] if n else NULL
        with nogil:
            status = nep_train_cuda_run(self.ptr, &parameters[0], n, ps, pa, pf, pv, pg, pe,
                                        pff, pw)
        _tc_check(status, "training on the GPU")
        if not predictions:
            return gradient, None, None, None
        return gradient, energy, forces.reshape(atoms, 3), virials.reshape(n, 3, 3)

    def predict_population(self, double[:, ::1] parameters, int[::1] selected):
        """(energy (K, S), forces (K, A, 3), virials (K, S, 3, 3)) of K parameter vectors
        (rows of ``parameters``) for structures ``selected``, in one launch sequence."""
        cdef int status
        cdef int population = parameters.shape[0]
        cdef int n = selected.shape[0]
        if parameters.shape[1] != self.num_parameters:
            raise ValueError(f"expected {self.num_parameters} parameters per row, "
                             f"got {parameters.shape[1]}")
        sel = np.asarray(selected)
        if n and (sel.min() < 0 or sel.max() >= self.num_structures):
            raise ValueError("a selected structure is out of range")
        atoms = int(np.sum(self._atom_offsets[sel + 1] - self._atom_offsets[sel])) if n else 0
        energy = np.zeros(max(population * n, 1))
        forces = np.zeros(max(population * 3 * atoms, 1))
        virials = np.zeros(max(population * 9 * n, 1))
        cdef double[::1] e = energy
        cdef double[::1] f = forces
        cdef double[::1] w = virials
        cdef const double *pp = &parameters[0, 0] if population else NULL
        cdef const int *ps = &selected[0] if n else NULL
        with nogil:
            status = nep_train_cuda_predict_population(self.ptr, population, pp, n, ps, &e[0],
                                                       &f[0], &w[0])
        _tc_check(status, "training on the GPU")
        return (energy[:population * n].reshape(population, n),
                forces[:population * 3 * atoms].reshape(population, atoms, 3),
                virials[:population * 9 * n].reshape(population, n, 3, 3))

    # ------------------------------------------------------------ the loss on the device
    @property
    def loss_length(self):
        """Doubles in one loss record (cext/nep_train_loss.h)."""
        return nep_train_cuda_loss_length(self.ptr)

    def _check_selection(self, int[::1] selected):
        sel = np.asarray(selected)
        if selected.shape[0] and (sel.min() < 0 or sel.max() >= self.num_structures):
            raise ValueError("a selected structure is out of range")

    def set_loss(self, double[::1] energy, double[:, ::1] virial, int[::1] has_virial,
                 double[::1] weight, double[::1] energy_weight, double[:, ::1] forces,
                 double lambda_e, double lambda_f, double lambda_v, double lambda_shear,
                 double lambda_1, double lambda_2, double force_delta, double[::1] type_weight,
                 int[::1] parameter_types, unsigned char[::1] global_mask):
        """Uploads the labels of every structure (in the order given to the constructor) and
        GPUMD's loss weights, once."""
        cdef nep_train_cuda_labels labels
        cdef Py_ssize_t S = self.num_structures, A = self.num_atoms, P = self.num_parameters
        if (energy.shape[0] != S or virial.shape[0] != S or virial.shape[1] != 6
                or has_virial.shape[0] != S or weight.shape[0] != S
                or energy_weight.shape[0] != S):
            raise ValueError(f"the labels need one value (six for the virial) per structure ({S})")
        if forces.shape[0] != A or forces.shape[1] != 3:
            raise ValueError(f"the labels need forces of shape ({A}, 3)")
        if parameter_types.shape[0] != P or global_mask.shape[0] != P:
            raise ValueError(f"parameter_types and global_mask need {P} values")
        labels.energy = &energy[0] if S else NULL
        labels.virial = &virial[0, 0] if S else NULL
        labels.has_virial = &has_virial[0] if S else NULL
        labels.weight = &weight[0] if S else NULL
        labels.energy_weight = &energy_weight[0] if S else NULL
        labels.forces = &forces[0, 0] if A else NULL
        labels.lambda_e, labels.lambda_f, labels.lambda_v = lambda_e, lambda_f, lambda_v
        labels.lambda_shear, labels.lambda_1, labels.lambda_2 = lambda_shear, lambda_1, lambda_2
        labels.force_delta = force_delta
        labels.type_weight = &type_weight[0]
        labels.parameter_types = &parameter_types[0] if P else NULL
        labels.global_mask = &global_mask[0] if P else NULL
        _tc_check(nep_train_cuda_set_loss(self.ptr, &labels), "uploading the training labels")

    def loss_gradient(self, double[::1] parameters, int[::1] selected, bint want_gradient=True):
        """(loss record, dL(T)/dz or None) of ``parameters`` on structures ``selected``."""
        cdef int status
        cdef int n = selected.shape[0]
        if parameters.shape[0] != self.num_parameters:
            raise ValueError(f"expected {self.num_parameters} parameters, "
                             f"got {parameters.shape[0]}")
        self._check_selection(selected)
        record = np.zeros(self.loss_length)
        gradient = np.zeros(self.num_parameters) if want_gradient else None
        cdef double[::1] r = record
        cdef double[::1] g = gradient
        cdef double *pg = <double *>_tc_ptr(g)
        cdef const int *ps = &selected[0] if n else NULL
        with nogil:
            status = nep_train_cuda_loss_gradient(self.ptr, &parameters[0], n, ps, &r[0], pg)
        _tc_check(status, "training on the GPU")
        return record, gradient

    def population_loss(self, double[:, ::1] parameters, int[::1] selected):
        """(K, loss_length) loss records of the K rows of ``parameters``."""
        cdef int status
        cdef int population = parameters.shape[0]
        cdef int n = selected.shape[0]
        if parameters.shape[1] != self.num_parameters:
            raise ValueError(f"expected {self.num_parameters} parameters per row, "
                             f"got {parameters.shape[1]}")
        self._check_selection(selected)
        records = np.zeros((max(population, 1), self.loss_length))
        cdef double[:, ::1] r = records
        cdef const double *pp = &parameters[0, 0] if population else NULL
        cdef const int *ps = &selected[0] if n else NULL
        with nogil:
            status = nep_train_cuda_population_loss(self.ptr, population, pp, n, ps, &r[0, 0])
        _tc_check(status, "training on the GPU")
        return records[:population]

    def adam_start(self, double[::1] parameters, double[::1] m, double[::1] v,
                   unsigned char[::1] decay_mask):
        """Puts the parameters and Adam's moments on the device."""
        cdef Py_ssize_t P = self.num_parameters
        if (parameters.shape[0] != P or m.shape[0] != P or v.shape[0] != P
                or decay_mask.shape[0] != P):
            raise ValueError(f"Adam's state needs {P} values per array")
        _tc_check(nep_train_cuda_adam_start(self.ptr, &parameters[0], &m[0], &v[0],
                                            &decay_mask[0]), "training on the GPU")

    def adam_step(self, int[::1] selected, double learning_rate, double beta1, double beta2,
                  double eps, double weight_decay, double bias1, double bias2):
        """One Adam step on the device: (loss record before the update, updated)."""
        cdef int status, updated = 0
        cdef int n = selected.shape[0]
        cdef nep_train_cuda_adam adam
        self._check_selection(selected)
        adam.learning_rate, adam.beta1, adam.beta2 = learning_rate, beta1, beta2
        adam.eps, adam.weight_decay, adam.bias1, adam.bias2 = eps, weight_decay, bias1, bias2
        record = np.zeros(self.loss_length)
        cdef double[::1] r = record
        cdef const int *ps = &selected[0] if n else NULL
        with nogil:
            status = nep_train_cuda_adam_step(self.ptr, n, ps, &adam, &r[0], &updated)
        _tc_check(status, "training on the GPU")
        return record, bool(updated)

    def adam_state(self):
        """(parameters, m, v) from the device."""
        z, m, v = (np.zeros(self.num_parameters) for _ in range(3))
        cdef double[::1] pz = z
        cdef double[::1] pm = m
        cdef double[::1] pv = v
        _tc_check(nep_train_cuda_adam_state(self.ptr, &pz[0] if self.num_parameters else NULL,
                                            &pm[0] if self.num_parameters else NULL,
                                            &pv[0] if self.num_parameters else NULL),
                  "training on the GPU")
        return z, m, v
