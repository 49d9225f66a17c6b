# cython: language_level=3
"""Thin Cython layer over the C engine in cext/ (nep.h).

Everything here is plumbing: arrays are allocated and shaped in Python
(:mod:`nepzbl_plugin.engine`), passed in as C-contiguous memoryviews, and filled by the C
engine with the GIL released. A nonzero engine status becomes :class:`EngineError` carrying
``nep_strerror``'s text.
"""
from libc.stdlib cimport calloc, free

from ._nep cimport (
    NEP_OK,
    nep_compute,
    nep_compute_batch,
    nep_max_threads,
    nep_model,
    nep_model_create,
    nep_model_dim,
    nep_model_free,
    nep_model_max_cutoff,
    nep_model_num_neurons,
    nep_model_set_parameters,
    nep_model_spec,
    nep_model_spec_num_parameters,
    nep_neighbor_counts,
    nep_openmp_enabled,
    nep_outputs,
    nep_strerror,
    nep_system,
)

import numpy as np

from .errors import EngineError


cdef extern from "nep_layout.h" nogil:
    ctypedef struct nep_layout:
        int num_blocks
        int dim
        int num_networks
        size_t block_size
        size_t shared_bias
        size_t offset_radial
        size_t offset_angular
        size_t num_parameters
    void nep_layout_compute(int version, int num_types, int n_max_radial, int n_max_angular,
                            int basis_radial, int basis_angular, int l_max, const int *flags,
                            int num_neurons, int temperature, int num_neurons_second,
                            nep_layout *layout)

include "_specs.pxi"


def openmp_enabled():
    """Whether the C engine was built with OpenMP."""
    return bool(nep_openmp_enabled())


def max_threads():
    """OpenMP's default number of threads (1 without OpenMP)."""
    return nep_max_threads()


def strerror(int status):
    """The engine's message for a status code."""
    return nep_strerror(status).decode()


def model_layout(int version, int num_types, int n_max_radial, int n_max_angular,
                 int basis_radial, int basis_angular, int l_max, flags, int num_neurons,
                 bint temperature=False, int num_neurons_second=0):
    """The parameter layout cext/nep_layout.h computes for a model header, as a dict (what
    tests/test_layout.py holds model.py's own layout against)."""
    cdef int c_flags[6]
    cdef nep_layout layout
    if len(flags) != 6:
        raise ValueError("flags must have 6 entries")
    for k in range(6):
        c_flags[k] = 1 if flags[k] else 0
    nep_layout_compute(version, num_types, n_max_radial, n_max_angular, basis_radial,
                       basis_angular, l_max, c_flags, num_neurons, temperature,
                       num_neurons_second, &layout)
    return {"num_blocks": layout.num_blocks, "dim": layout.dim,
            "num_networks": layout.num_networks, "block_size": layout.block_size,
            "shared_bias": layout.shared_bias, "offset_radial": layout.offset_radial,
            "offset_angular": layout.offset_angular, "num_parameters": layout.num_parameters}


cdef int _dummy_type = 0
cdef double _dummy_position[3]


cdef int _fill_system(nep_system *s, const int[::1] types, const double[:, ::1] positions,
                      const double[:, ::1] cell, object pbc, double temperature) except -1:
    if positions.shape[0] != types.shape[0] or positions.shape[1] != 3:
        raise ValueError("positions must have shape (N, 3) matching the types")
    if cell.shape[0] != 3 or cell.shape[1] != 3:
        raise ValueError("cell must have shape (3, 3)")
    if types.shape[0] > (1 << 30):  # the engine counts atoms (and 9 x atoms) in int
        raise ValueError(f"at most 2**30 atoms per structure, got {types.shape[0]}")
    if len(pbc) != 3:
        raise ValueError("pbc must have 3 entries")
    s.num_atoms = <int>types.shape[0]
    if types.shape[0] > 0:
        s.types = &types[0]
        s.positions = &positions[0, 0]
    else:
        s.types = &_dummy_type
        s.positions = &_dummy_position[0]
    s.cell = &cell[0, 0]
    for k in range(3):
        s.pbc[k] = 1 if pbc[k] else 0
    s.temperature = temperature
    return 0


cdef class CoreModel:
    """A model held by the C engine (``nep_model``), freed with this object.

    Parameters are plain numbers and C-contiguous arrays, resolved in Python
    (:class:`nepzbl_plugin.engine.Evaluator` builds them from a :class:`Model`).
    """

    cdef nep_model *ptr
    cdef readonly int dim
    cdef readonly int num_neurons
    cdef readonly int num_types
    cdef readonly Py_ssize_t num_parameters
    cdef readonly double max_cutoff

    def __cinit__(self):
        self.ptr = NULL

    def __init__(self, int version, int num_types, int n_max_radial, int n_max_angular,
                 int basis_radial, int basis_angular, int l_max, flags, int num_neurons,
                 const double[:, ::1] rc_radial, const double[:, ::1] rc_angular,
                 const int[::1] atomic_numbers, zbl, const double[::1] parameters,
                 const double[::1] q_scaler, bint temperature=False,
                 int num_neurons_second=0):
        cdef nep_model_spec spec
        cdef const double[:, :, ::1] zbl_view
        cdef const double *zbl_ptr
        cdef int status
        if rc_radial.shape[0] != num_types or rc_radial.shape[1] != num_types:
            raise ValueError("rc_radial must be (T, T)")
        if rc_angular.shape[0] != num_types or rc_angular.shape[1] != num_types:
            raise ValueError("rc_angular must be (T, T)")
        if atomic_numbers.shape[0] != num_types:
            raise ValueError("atomic_numbers must have T entries")
        zbl_ptr = NULL
        if zbl is not None:
            zbl_view = zbl
            if (zbl_view.shape[0] != num_types or zbl_view.shape[1] != num_types
                    or zbl_view.shape[2] != 10):
                raise ValueError("zbl table must be (T, T, 10)")
            zbl_ptr = &zbl_view[0, 0, 0]
        _fill_spec(&spec, version, num_types, n_max_radial, n_max_angular, basis_radial,
                   basis_angular, l_max, flags, num_neurons, &rc_radial[0, 0],
                   &rc_angular[0, 0], &atomic_numbers[0], zbl_ptr, &parameters[0],
                   <size_t>parameters.shape[0], &q_scaler[0], temperature,
                   num_neurons_second)
        if spec.num_parameters != nep_model_spec_num_parameters(&spec):
            raise ValueError(
                f"expected {nep_model_spec_num_parameters(&spec)} parameters, "
                f"got {parameters.shape[0]}"
            )
        if self.ptr != NULL:  # __init__ called again on a live object
            nep_model_free(self.ptr)
            self.ptr = NULL
        with nogil:
            status = nep_model_create(&spec, &self.ptr)
        if status != NEP_OK:
            raise EngineError(f"cannot create the model: {strerror(status)}")
        self.dim = nep_model_dim(self.ptr)
        self.num_neurons = nep_model_num_neurons(self.ptr)
        self.num_types = num_types
        self.num_parameters = parameters.shape[0]
        self.max_cutoff = nep_model_max_cutoff(self.ptr)
        if q_scaler.shape[0] != self.dim:
            raise ValueError(f"expected {self.dim} q_scaler values, got {q_scaler.shape[0]}")

    def __dealloc__(self):
        if self.ptr != NULL:
            nep_model_free(self.ptr)
            self.ptr = NULL

    def set_parameters(self, const double[::1] parameters):
        """Replace the flat parameter vector (same length as at creation)."""
        cdef int status
        if parameters.shape[0] != self.num_parameters:
            raise ValueError(
                f"expected {self.num_parameters} parameters, got {parameters.shape[0]}"
            )
        with nogil:
            status = nep_model_set_parameters(self.ptr, &parameters[0])
        if status != NEP_OK:
            raise EngineError(f"cannot set the parameters: {strerror(status)}")

    def evaluate(self, const int[::1] types, const double[:, ::1] positions,
                 const double[:, ::1] cell, pbc, dict outputs, int num_threads=0,
                 double temperature=0.0):
        """Evaluate one structure into the preallocated arrays of ``outputs``
        (keys from :data:`OUTPUT_NAMES`, C-contiguous float64); ``temperature`` (K) is read
        by temperature models only."""
        cdef nep_system system
        cdef nep_outputs out
        cdef int status
        _fill_system(&system, types, positions, cell, pbc, temperature)
        _fill_outputs(&out, outputs, system.num_atoms, self.dim, self.num_neurons)
        with nogil:
            status = nep_compute(self.ptr, &system, &out, num_threads)
        if status != NEP_OK:
            raise EngineError(strerror(status))

    def evaluate_batch(self, list systems, list outputs, int num_threads=0):
        """Evaluate many structures in one call, in parallel over structures.

        ``systems`` holds (types, positions, cell, pbc, temperature) tuples and ``outputs`` one dict of
        arrays per structure. Returns the list of per-structure status codes (0 = ok); the
        caller decides how to report failures.
        """
        cdef Py_ssize_t n = len(systems), k
        cdef nep_system *c_systems = NULL
        cdef nep_outputs *c_outputs = NULL
        cdef int *statuses = NULL
        cdef int status
        if len(outputs) != n:
            raise ValueError("one output dict per structure is needed")
        if n == 0:
            return []
        keep = []  # memoryviews that must stay alive during the call
        c_systems = <nep_system *>calloc(n, sizeof(nep_system))
        c_outputs = <nep_outputs *>calloc(n, sizeof(nep_outputs))
        statuses = <int *>calloc(n, sizeof(int))
        try:
            if c_systems == NULL or c_outputs == NULL or statuses == NULL:
                raise MemoryError()
            for k in range(n):
                types, positions, cell, pbc, temperature = systems[k]
                views = (_as_int_view(types), _as_double2_view(positions),
                         _as_double2_view(cell))
                keep.append(views)
                _fill_system(&c_systems[k], views[0], views[1], views[2], pbc, temperature)
                _fill_outputs(&c_outputs[k], outputs[k], c_systems[k].num_atoms, self.dim,
                              self.num_neurons)
            with nogil:
                status = nep_compute_batch(self.ptr, <int>n, c_systems, c_outputs, statuses,
                                           num_threads)
            return [statuses[k] for k in range(n)]
        finally:
            free(c_systems)
            free(c_outputs)
            free(statuses)


def neighbour_counts(const int[::1] types, const double[:, ::1] positions,
                     const double[:, ::1] cell, const double[:, ::1] rc_radial,
                     const double[:, ::1] rc_angular):
    """Every atom's radial and angular neighbour counts under the pair cutoffs ``rc_radial``
    and ``rc_angular`` ([T][T], Angstrom), periodic in all three directions, every periodic
    image a neighbour (``nep_neighbor_counts``): two int arrays of N."""
    cdef nep_system system
    cdef int status, num_types = <int>rc_radial.shape[0]
    if (rc_radial.shape[1] != num_types or rc_angular.shape[0] != num_types
            or rc_angular.shape[1] != num_types or num_types < 1):
        raise ValueError("rc_radial and rc_angular must be (T, T) with T >= 1")
    _fill_system(&system, types, positions, cell, (1, 1, 1), 0.0)
    radial = np.zeros(max(1, system.num_atoms), dtype=np.intc)
    angular = np.zeros(max(1, system.num_atoms), dtype=np.intc)
    cdef int[::1] r = radial
    cdef int[::1] a = angular
    with nogil:
        status = nep_neighbor_counts(&system, num_types, &rc_radial[0, 0], &rc_angular[0, 0],
                                     &r[0], &a[0])
    if status != NEP_OK:
        raise EngineError(strerror(status))
    return radial[:system.num_atoms], angular[:system.num_atoms]


def _as_int_view(object a):
    cdef const int[::1] v = a
    return v


def _as_double2_view(object a):
    cdef const double[:, ::1] v = a
    return v


# Training entry points (nep_train.h) live in their own include file.
include "_train.pxi"
