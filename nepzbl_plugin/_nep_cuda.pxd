# Declarations of cext/nep_cuda.h, and nothing else (the logic lives in _cuda.pyx).
from libc.stddef cimport size_t

from ._nep cimport nep_model_spec, nep_outputs, nep_system


cdef extern from "nep_cuda.h" nogil:
    ctypedef struct nep_cuda_model:
        pass

    int nep_cuda_device_count()
    int nep_cuda_model_create(const nep_model_spec *spec, int precision, int device_id,
                              nep_cuda_model **out)
    void nep_cuda_model_free(nep_cuda_model *model)
    int nep_cuda_model_set_parameters(nep_cuda_model *model, const double *parameters)
    int nep_cuda_model_dim(const nep_cuda_model *model)
    int nep_cuda_model_num_types(const nep_cuda_model *model)
    int nep_cuda_model_num_neurons(const nep_cuda_model *model)
    int nep_cuda_model_precision(const nep_cuda_model *model)
    int nep_cuda_model_set_skin(nep_cuda_model *model, double skin)
    size_t nep_cuda_model_device_bytes(const nep_cuda_model *model)
    long nep_cuda_model_num_builds(const nep_cuda_model *model)
    int nep_cuda_compute(nep_cuda_model *model, const nep_system *system, nep_outputs *outputs)
    int nep_cuda_compute_batch(nep_cuda_model *model, int num_systems,
                               const nep_system *systems, nep_outputs *outputs, int *statuses)
    const char *nep_cuda_strerror(int status)
    const char *nep_cuda_last_error()


cdef extern from "nep_cuda_md.h" nogil:
    ctypedef struct nep_cuda_md:
        pass

    ctypedef struct nep_cuda_md_settings:
        double dt
        int thermostat
        int barostat
        int anisotropic
        int dof
        double dt_over_tau_t
        double dt_over_tau_p
        double beta
        double target_pressure[3]
        double boltzmann
        unsigned long long seed
        double model_temperature

    int nep_cuda_md_create(nep_cuda_model *model, int num_atoms, const int *types,
                           const double *masses, const double *positions,
                           const double *velocities, const double *cell, const int *pbc,
                           const nep_cuda_md_settings *settings, nep_cuda_md **out)
    void nep_cuda_md_free(nep_cuda_md *md)
    int nep_cuda_md_run(nep_cuda_md *md, int steps, const double *targets, int *done)
    int nep_cuda_md_state(nep_cuda_md *md, double *positions, double *velocities, double *cell,
                          double *energy, double *virial, double *kinetic, long *step)
    int nep_cuda_md_min_distances(nep_cuda_md *md, double search, double *out)
    int nep_cuda_md_rdf_setup(nep_cuda_md *md, double r_max, int bins)
    int nep_cuda_md_rdf_sample(nep_cuda_md *md)
    int nep_cuda_md_rdf_counts(nep_cuda_md *md, double *counts, int *frames)
    int nep_cuda_md_msd_origin(nep_cuda_md *md)
    int nep_cuda_md_msd(nep_cuda_md *md, double *out)
