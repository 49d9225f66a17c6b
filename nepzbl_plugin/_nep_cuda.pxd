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
