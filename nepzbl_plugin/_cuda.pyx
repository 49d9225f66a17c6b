# cython: language_level=3
"""Thin Cython layer over the CUDA engine (cext/nep_cuda.h).

Everything user-facing lives in :mod:`nepzbl_plugin.engine.cuda`; this module converts arrays,
owns the device model (freed in ``__dealloc__``) and turns status codes into exceptions:
``MemoryError`` for device or host allocation failures, :class:`EngineError` otherwise (its
message names the CUDA error, e.g. "no CUDA device is available").
"""
from libc.stdlib cimport calloc, free
from libc.string cimport memset

import threading

import numpy as np

from ._nep cimport NEP_OK, nep_model_spec, nep_outputs, nep_system
from ._nep_cuda cimport (
    nep_cuda_compute_batch,
    nep_cuda_device_count,
    nep_cuda_last_error,
    nep_cuda_model,
    nep_cuda_model_create,
    nep_cuda_model_device_bytes,
    nep_cuda_model_free,
    nep_cuda_model_num_builds,
    nep_cuda_model_set_parameters,
    nep_cuda_model_set_skin,
    nep_cuda_strerror,
    nep_cuda_md,
    nep_cuda_md_create,
    nep_cuda_md_free,
    nep_cuda_md_min_distances,
    nep_cuda_md_msd,
    nep_cuda_md_msd_origin,
    nep_cuda_md_rdf_counts,
    nep_cuda_md_rdf_sample,
    nep_cuda_md_rdf_setup,
    nep_cuda_md_run,
    nep_cuda_md_settings,
    nep_cuda_md_state,
)

from .errors import EngineError

include "_specs.pxi"

OUTPUTS = OUTPUT_NAMES  # the name this module has always exported

cdef int NOMEM = 1


def device_count():
    """Number of usable CUDA devices (0 without a device or driver; never raises)."""
    return nep_cuda_device_count()


def last_error():
    """The CUDA runtime's message for the last failure in this thread."""
    return nep_cuda_last_error().decode()


cdef _raise(int status, str what, str detail=""):
    message = f"{what}: {nep_cuda_strerror(status).decode()}"
    if detail:
        message += f" ({detail})"
    if status == NOMEM:
        raise MemoryError(message)
    raise EngineError(message)


def _size_of(str name, int n, int dim, int neurons):
    if name in ("energy", "energy_zbl"):
        return 1
    if name in ("energies", "energies_zbl"):
        return n
    if name in ("forces", "forces_zbl"):
        return 3 * n
    if name in ("virial", "virial_zbl"):
        return 9
    if name == "virials":
        return 9 * n
    if name == "descriptors":
        return n * dim
    return n * neurons


cdef class CudaModel:
    """A NEP model held on one GPU, in float64 (``precision=0``) or float32 (``1``).

    Parameters
    ----------
    spec
        The ``nep_model_spec`` fields of a supported model, as
        :func:`nepzbl_plugin.engine.base.model_spec` makes them (the one conversion and support
        check, shared with the CPU engine and the training gradient).
    precision
        0 for float64 throughout, 1 for float32 maths with float64 accumulation.
    device_id
        The CUDA device.
    """

    cdef nep_cuda_model *ptr
    cdef object _lock  # the device buffers belong to the model: one call at a time
    cdef readonly int dim, num_neurons, num_types, precision, device_id
    cdef readonly Py_ssize_t num_parameters

    def __cinit__(self):
        self.ptr = NULL
        self._lock = threading.Lock()

    def __init__(self, dict spec, int precision=0, int device_id=0):
        cdef nep_model_spec c_spec
        cdef int status
        _fill_spec_from(&c_spec, spec)
        with nogil:
            status = nep_cuda_model_create(&c_spec, precision, device_id, &self.ptr)
        if status != NEP_OK:
            self.ptr = NULL
            _raise(status, "creating the CUDA model")
        self.dim = len(spec["q_scaler"])
        self.num_neurons = spec["num_neurons"]
        self.num_types = spec["num_types"]
        self.precision = precision
        self.device_id = device_id
        self.num_parameters = c_spec.num_parameters

    def __dealloc__(self):
        if self.ptr != NULL:
            nep_cuda_model_free(self.ptr)
            self.ptr = NULL

    def set_parameters(self, parameters):
        """Replace the flat parameter vector (same length)."""
        cdef double[::1] p = np.ascontiguousarray(parameters, dtype=np.float64).ravel()
        if p.shape[0] != self.num_parameters:
            raise ValueError(f"expected {self.num_parameters} parameters, got {p.shape[0]}")
        cdef int status
        with self._lock, nogil:
            status = nep_cuda_model_set_parameters(self.ptr, &p[0])
        if status != NEP_OK:
            _raise(status, "updating parameters")

    def set_skin(self, double skin):
        """Verlet skin in Angstrom (default 1)."""
        cdef int status
        with self._lock:
            status = nep_cuda_model_set_skin(self.ptr, skin)
        if status != NEP_OK:
            _raise(status, "setting the skin")

    @property
    def device_bytes(self):
        """Bytes of device memory held by the model and its buffers."""
        return nep_cuda_model_device_bytes(self.ptr)

    @property
    def num_builds(self):
        """How many neighbour lists were built so far."""
        return nep_cuda_model_num_builds(self.ptr)

    def evaluate(self, types, positions, cell, pbc, dict outputs, double temperature=0.0):
        """Evaluate one structure into the preallocated arrays of ``outputs`` (keys from
        :data:`OUTPUTS`, C-contiguous float64 of the right sizes); raises on failure.
        ``temperature`` (K) is read by temperature models only."""
        status = self.evaluate_batch([(types, positions, cell, pbc, temperature)], [outputs])[0]
        if status != NEP_OK:
            _raise(status, "CUDA evaluation")

    def evaluate_batch(self, list systems, list outputs):
        """Evaluate many ``(types, positions, cell, pbc, temperature)`` structures (temperature
        in K, read by temperature models only) in one launch sequence,
        into one dict of preallocated arrays per structure (every dict with the same keys).

        Returns the per-structure status codes (0 = ok). Raises for failures that are not
        tied to one structure (no device, out of memory, CUDA errors).
        """
        cdef Py_ssize_t S = len(systems), s
        cdef int status, n
        cdef int[::1] t
        cdef double[:, ::1] x
        cdef double[:, ::1] h
        if len(outputs) != S:
            raise ValueError("one output dict per structure is needed")
        if S == 0:
            return []
        names = sorted(outputs[0])
        for name in names:
            if name not in OUTPUTS:
                raise ValueError(f"unknown output {name!r}; expected some of {OUTPUTS}")
        cdef nep_system *c_systems = <nep_system *>calloc(S, sizeof(nep_system))
        cdef nep_outputs *c_outputs = <nep_outputs *>calloc(S, sizeof(nep_outputs))
        cdef int *statuses = <int *>calloc(S, sizeof(int))
        keep = []  # views that must stay alive during the call
        try:
            if c_systems == NULL or c_outputs == NULL or statuses == NULL:
                raise MemoryError("host allocation failed")
            for s in range(S):
                types, positions, cell, pbc, temperature = systems[s]
                x = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
                n = x.shape[0]
                t = np.ascontiguousarray(types, dtype=np.intc).reshape(-1)
                if t.shape[0] != n:
                    raise ValueError(f"structure {s}: {t.shape[0]} types for {n} positions")
                h = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
                keep.append((t, x, h))
                c_systems[s].num_atoms = n
                c_systems[s].types = &t[0] if n > 0 else NULL
                c_systems[s].positions = &x[0, 0] if n > 0 else NULL
                c_systems[s].cell = &h[0, 0]
                flags = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
                for k in range(3):
                    c_systems[s].pbc[k] = 1 if flags[k] else 0
                c_systems[s].temperature = temperature
                if sorted(outputs[s]) != names:
                    raise ValueError("every structure must ask for the same outputs")
                for name in names:
                    arr = outputs[s][name]
                    expected = _size_of(name, n, self.dim, self.num_neurons)
                    if (not isinstance(arr, np.ndarray) or arr.dtype != np.float64
                            or not arr.flags.c_contiguous or arr.size != expected):
                        raise ValueError(f"output {name!r} of structure {s} must be a "
                                         f"C-contiguous float64 array of {expected} values")
                _fill_outputs(&c_outputs[s], outputs[s], n, self.dim, self.num_neurons)
            with self._lock, nogil:
                status = nep_cuda_compute_batch(self.ptr, <int>S, c_systems, c_outputs,
                                                statuses)
            result = [statuses[s] for s in range(S)]
            if status != NEP_OK and not any(result):
                _raise(status, "CUDA evaluation")
            return result
        finally:
            free(c_systems)
            free(c_outputs)
            free(statuses)


def strerror(int status):
    """The message of a status code (with the CUDA detail of the last failure)."""
    return nep_cuda_strerror(status).decode()


THERMOSTATS = {None: 0, "langevin": 1, "bussi": 2, "berendsen": 3}
BAROSTATS = {None: 0, "berendsen": 1, "scr": 2}


cdef class CudaMD:
    """A velocity-Verlet run held on the GPU (cext/nep_cuda_md.h): positions, velocities,
    forces and the neighbour list stay on the device between :meth:`run` calls; only what
    :meth:`state` and the observers ask for is downloaded.

    ``model`` is a :class:`CudaModel`; other calls on it between :meth:`run` calls reuse the
    device buffers the loop's forces and list live in, so the loop then evaluates its forces
    again at the same positions (the trajectory is unchanged; it costs one evaluation). Units are
    ASE's (Angstrom, eV, amu, ASE time units; pressures in eV/Angstrom^3). A temperature model
    reads ``model_temperature`` (K) at the start and every step's target after that.
    """

    cdef nep_cuda_md *ptr
    cdef readonly CudaModel model
    cdef readonly int num_atoms, num_types
    cdef int _rdf_bins

    def __cinit__(self):
        self.ptr = NULL
        self._rdf_bins = 0

    def __init__(self, CudaModel model, types, masses, positions, velocities, cell, pbc, *,
                 double dt, thermostat=None, barostat=None, bint anisotropic=False, int dof=1,
                 double dt_over_tau_t=0.0, double dt_over_tau_p=0.0, double beta=0.0,
                 target_pressure=(0.0, 0.0, 0.0), double boltzmann=8.617333262e-05,
                 unsigned long long seed=0, double model_temperature=0.0):
        cdef int[::1] t = np.ascontiguousarray(types, dtype=np.intc)
        cdef double[::1] m = np.ascontiguousarray(masses, dtype=np.float64)
        cdef double[:, ::1] x = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
        cdef double[:, ::1] v = np.ascontiguousarray(velocities, dtype=np.float64).reshape(-1, 3)
        cdef double[::1] h = np.ascontiguousarray(cell, dtype=np.float64).ravel()
        cdef int[::1] p = np.ascontiguousarray([bool(b) for b in pbc], dtype=np.intc)
        cdef nep_cuda_md_settings s
        cdef int status, n = t.shape[0]
        if not (m.shape[0] == n and x.shape[0] == n and v.shape[0] == n and h.shape[0] == 9
                and p.shape[0] == 3):
            raise ValueError("types, masses, positions and velocities must describe the same "
                             "atoms; cell has 9 numbers and pbc 3")
        if thermostat not in THERMOSTATS or barostat not in BAROSTATS:
            raise ValueError(f"unknown thermostat {thermostat!r} or barostat {barostat!r}")
        memset(&s, 0, sizeof(s))
        s.dt = dt
        s.thermostat = THERMOSTATS[thermostat]
        s.barostat = BAROSTATS[barostat]
        s.anisotropic = anisotropic
        s.dof = dof
        s.dt_over_tau_t = dt_over_tau_t
        s.dt_over_tau_p = dt_over_tau_p
        s.beta = beta
        for k in range(3):
            s.target_pressure[k] = float(np.broadcast_to(target_pressure, (3,))[k])
        s.boltzmann = boltzmann
        s.seed = seed
        s.model_temperature = model_temperature
        self.model = model
        with model._lock:
            status = nep_cuda_md_create(model.ptr, n, &t[0], &m[0], &x[0, 0], &v[0, 0], &h[0],
                                        &p[0], &s, &self.ptr)
        if status != NEP_OK:
            self.ptr = NULL
            _raise(status, "starting the device MD run")
        self.num_atoms = n
        self.num_types = model.num_types

    def __dealloc__(self):
        if self.ptr != NULL:
            nep_cuda_md_free(self.ptr)
            self.ptr = NULL

    def run(self, int steps, targets=None):
        """``steps`` steps; ``targets`` the target temperature (K) of each. Returns the steps
        done; raises :class:`EngineError` (with the steps done as ``.steps_done``) on overlap,
        non-finite energy or a CUDA failure."""
        cdef double[::1] tt
        cdef const double *tp = NULL
        cdef int status, done = 0
        if targets is not None:
            tt = np.ascontiguousarray(targets, dtype=np.float64).ravel()
            if tt.shape[0] < steps:
                raise ValueError(f"need {steps} target temperatures, got {tt.shape[0]}")
            if steps > 0:
                tp = &tt[0]
        with self.model._lock, nogil:
            status = nep_cuda_md_run(self.ptr, steps, tp, &done)
        if status != NEP_OK:
            error = EngineError(f"device MD: {nep_cuda_strerror(status).decode()}")
            error.steps_done = done
            raise error
        return done

    def state(self):
        """dict: positions (N, 3), velocities (N, 3) ASE units, cell (3, 3), energy (eV),
        virial (3, 3) eV, kinetic (3, 3) = sum m v v (eV), step."""
        positions = np.empty((self.num_atoms, 3))
        velocities = np.empty((self.num_atoms, 3))
        cell = np.empty((3, 3))
        virial = np.empty((3, 3))
        kinetic = np.empty((3, 3))
        cdef double[:, ::1] x = positions, v = velocities, h = cell, w = virial, k = kinetic
        cdef double energy = 0.0
        cdef long step = 0
        cdef int status
        with self.model._lock, nogil:
            status = nep_cuda_md_state(self.ptr, &x[0, 0], &v[0, 0], &h[0, 0], &energy,
                                       &w[0, 0], &k[0, 0], &step)
        if status != NEP_OK:
            _raise(status, "downloading the MD state")
        return dict(positions=positions, velocities=velocities, cell=cell, energy=energy,
                    virial=virial, kinetic=kinetic, step=step)

    def min_distances(self, double search):
        """(T, T) shortest distance per ordered type pair below ``search`` Angstrom (inf if
        none)."""
        out = np.empty((self.num_types, self.num_types))
        cdef double[:, ::1] o = out
        cdef int status
        with self.model._lock, nogil:
            status = nep_cuda_md_min_distances(self.ptr, search, &o[0, 0])
        if status != NEP_OK:
            _raise(status, "minimum distances")
        return out

    def rdf_setup(self, double r_max, int bins):
        """Clear the (T, T, bins) histogram of ordered pair distances below ``r_max``."""
        cdef int status = nep_cuda_md_rdf_setup(self.ptr, r_max, bins)
        if status != NEP_OK:
            _raise(status, "RDF setup")
        self._rdf_bins = bins

    def rdf_sample(self):
        cdef int status
        with self.model._lock, nogil:
            status = nep_cuda_md_rdf_sample(self.ptr)
        if status != NEP_OK:
            _raise(status, "RDF sample")

    def rdf_counts(self):
        """((T, T, bins) ordered pair counts, frames sampled)."""
        out = np.empty((self.num_types, self.num_types, max(self._rdf_bins, 1)))
        cdef double[:, :, ::1] o = out
        cdef int status, frames = 0
        with self.model._lock, nogil:
            status = nep_cuda_md_rdf_counts(self.ptr, &o[0, 0, 0], &frames)
        if status != NEP_OK:
            _raise(status, "RDF counts")
        return out, frames

    def msd_origin(self):
        cdef int status = nep_cuda_md_msd_origin(self.ptr)
        if status != NEP_OK:
            _raise(status, "MSD origin")

    def msd(self):
        """(T, 3) mean square displacement per type and axis from the origin, Angstrom^2."""
        out = np.empty((self.num_types, 3))
        cdef double[:, ::1] o = out
        cdef int status
        with self.model._lock, nogil:
            status = nep_cuda_md_msd(self.ptr, &o[0, 0])
        if status != NEP_OK:
            _raise(status, "MSD")
        return out


# The training objective on the GPU (CudaTrainingSet).
include "_train_cuda.pxi"
