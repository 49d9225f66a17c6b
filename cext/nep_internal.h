/*
 * Helpers shared by the C engine's translation units (nep_core.c, nep_neighbors.c,
 * nep_train.c); not part of the public API in nep.h.
 */
#ifndef NEP_INTERNAL_H
#define NEP_INTERNAL_H

#include <stddef.h>

#include "nep.h"
#include "nep_layout.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Limits of the fixed-size per-atom scratch arrays, checked by nep_model_spec_check. */
#define NEP_MAX_CHANNELS 32 /* n_max + 1 */
#define NEP_MAX_BASIS 32    /* basis_size + 1 */
#define NEP_MAX_DIM (NEP_MAX_CHANNELS + NEP_MAX_CHANNELS * (NEP_MAX_LMAX + 6))

/* The calling thread's number in the enclosing OpenMP team (0 outside one, or without OpenMP). */
static inline int nep_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The thread count for `work_items` independent items: `requested` when positive, else
 * OpenMP's default; 1 without OpenMP; never more than the items (nor below 1). */
static inline int nep_resolve_threads(int requested, int work_items)
{
    int n = 1;
#ifdef _OPENMP
    n = requested > 0 ? requested : omp_get_max_threads();
#else
    (void)requested;
#endif
    if (n > work_items) n = work_items;
    return n < 1 ? 1 : n;
}


/* Checks the header fields of `spec` (version, sizes, limits) and fills `layout`:
 * NEP_OK, NEP_ERR_ARGUMENT, NEP_ERR_MODEL or NEP_ERR_UNSUPPORTED. */
int nep_spec_layout(const nep_model_spec *spec, nep_layout *layout);

#endif
