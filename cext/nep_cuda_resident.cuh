/*
 * Internal: the CUDA engine evaluated on positions that already live on the device, for the
 * device MD loop (nep_cuda_md.cu). Nothing is downloaded: the outputs are views of the model's
 * device buffers, valid until the next call on the same model.
 */
#ifndef NEPZBL_NEP_CUDA_RESIDENT_CUH
#define NEPZBL_NEP_CUDA_RESIDENT_CUH

#include "nep.h"
#include "nep_cuda.h"
#include "nep_cuda_internal.cuh"

struct nepcu_resident {
    int num_atoms, max_neighbors;
    double list_cutoff;         /* largest pair cutoff (the list holds pairs to it + skin) */
    const double *pos;          /* [N][3] the model's copy of the positions */
    const double *cell;         /* [9] */
    const int *types;           /* [N] */
    const int4 *nbr;            /* [slot * N + i] (j, shift a, b, c), sorted per atom */
    const int *nbr_count;       /* [N] */
    const double *forces;       /* [N][3] */
    const double *energies;     /* [N] */
    const double *totals;       /* [20]: energy, virial[9], then the ZBL parts */
    const int *flags;           /* [1] NEPCU_FLAG_* of the structure */
    cudaStream_t stream;
    long generation;            /* the model's use count when these views were made */
};

/* system->positions is a DEVICE pointer; types and pbc are host arrays (checked by the
 * caller). Returns a nep_status. */
int nepcu_compute_resident(nep_cuda_model *m, const nep_system *system, int want_virial,
                           nepcu_resident *out);
/* Whether the views of out are still the model's: false once any other call on the model
 * (an evaluation, new parameters) may have reused or reallocated the buffers they point to. */
bool nepcu_resident_current(const nep_cuda_model *m, const nepcu_resident *out);
/* Sets nep_cuda_last_error()'s text and returns code. */
int nepcu_resident_error(int code, const char *text);
/* Makes the model's device current (the MD loop's own buffers live there too) and gives the
 * model's stream, on which the loop queues its copies and kernels. Returns a nep_status. */
int nepcu_model_enter(nep_cuda_model *m, cudaStream_t *stream);

#endif
