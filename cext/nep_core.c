/* Placeholder until the engine lands: only the status strings and OpenMP queries. */
#include "nep.h"
#ifdef _OPENMP
#include <omp.h>
#endif

const char *nep_strerror(int status) {
    switch (status) {
    case NEP_OK: return "no error";
    case NEP_ERR_NOMEM: return "out of memory";
    case NEP_ERR_ARGUMENT: return "invalid argument";
    case NEP_ERR_MODEL: return "inconsistent model specification";
    case NEP_ERR_TYPE: return "atom type outside the model's species";
    case NEP_ERR_OVERLAP: return "two atoms at the same position";
    case NEP_ERR_CELL: return "singular or unusable cell";
    case NEP_ERR_NONFINITE: return "NaN or infinite position or cell";
    case NEP_ERR_UNSUPPORTED: return "model feature not supported by this engine";
    case NEP_ERR_CUDA: return "CUDA error";
    default: return "unknown error";
    }
}
int nep_openmp_enabled(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
int nep_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
