# Declarations of cext/nep.h, and nothing else (the logic lives in _core.pyx).
from libc.stddef cimport size_t

cdef extern from "nep.h" nogil:
    enum: NEP_OK
    ctypedef struct nep_model_spec:
        int version
        int num_types
        int n_max_radial
        int n_max_angular
        int basis_radial
        int basis_angular
        int l_max
        int flags[6]
        int num_neurons
        const double *rc_radial
        const double *rc_angular
        const int *atomic_numbers
        int use_zbl
        const double *zbl
        const double *parameters
        size_t num_parameters
        const double *q_scaler
        int temperature
        int num_neurons_second

    ctypedef struct nep_model:
        pass

    ctypedef struct nep_system:
        int num_atoms
        const int *types
        const double *positions
        const double *cell
        int pbc[3]
        double temperature

    ctypedef struct nep_outputs:
        double *energy
        double *energies
        double *forces
        double *virial
        double *virials
        double *descriptors
        double *latent
        double *energy_zbl
        double *energies_zbl
        double *forces_zbl
        double *virial_zbl

    int nep_model_spec_dim(const nep_model_spec *spec)
    size_t nep_model_spec_num_parameters(const nep_model_spec *spec)
    int nep_model_create(const nep_model_spec *spec, nep_model **out)
    void nep_model_free(nep_model *model)
    int nep_model_set_parameters(nep_model *model, const double *parameters)
    int nep_model_dim(const nep_model *model)
    int nep_model_num_neurons(const nep_model *model)
    double nep_model_max_cutoff(const nep_model *model)
    int nep_compute(const nep_model *model, const nep_system *system, nep_outputs *outputs,
                    int num_threads)
    int nep_neighbor_counts(const nep_system *system, int num_types, const double *rc_radial,
                            const double *rc_angular, int *radial, int *angular)
    int nep_compute_batch(const nep_model *model, int num_systems, const nep_system *systems,
                          nep_outputs *outputs, int *statuses, int num_threads)
    const char *nep_strerror(int status)
    int nep_openmp_enabled()
    int nep_max_threads()
