/*
 * nepzbl: neighbour lists for the C engine (internal; not part of the public API in nep.h).
 *
 * One list per structure in CSR form, built with a cell list in O(N) for any triclinic cell
 * and per-direction periodicity. Every periodic image within the cutoff is a separate entry,
 * including images of atom i itself (only the zero-shift self term is left out), so cells
 * thinner than the cutoff work without replication.
 *
 * Pair (i, j-image) is kept when d < rc_list[t_i][t_j]; within atom i's entries the pairs with
 * d < rc_angular[t_i][t_j] come first (num_angular[i] of them), so the angular sub-list of
 * atom i is entries offset[i] .. offset[i] + num_angular[i] - 1 and its angular-only storage
 * can be indexed by angular_offset[i] + k.
 */
#ifndef NEPZBL_NEP_NEIGHBORS_H
#define NEPZBL_NEP_NEIGHBORS_H

#include <stddef.h>

#include "nep.h"

typedef struct {
    int num_atoms;
    size_t num_pairs;         /* total entries */
    size_t num_angular_pairs; /* total angular entries */
    size_t *offset;           /* [N+1] start of atom i's entries */
    size_t *angular_offset;   /* [N+1] prefix sums of num_angular */
    int *num_angular;         /* [N] angular entries of atom i (at the start of its list) */
    int *neighbor;            /* [P] j */
    double *r;                /* [P][3] r_ij = r_j (image) - r_i, Angstrom */
} nep_neighbor_list;

/*
 * Build the list for `system`. rc_list and rc_angular are [T][T] pair cutoffs (rc_list is the
 * larger of the radial and angular one), rc_max their largest value. Types are assumed valid
 * (0..T-1). num_threads <= 0: OpenMP default; 1: no parallel region.
 * Returns NEP_OK, NEP_ERR_NONFINITE, NEP_ERR_CELL, NEP_ERR_OVERLAP (a pair closer than
 * NEP_OVERLAP_DISTANCE) or NEP_ERR_NOMEM. On error `out` holds nothing to free.
 */
int nep_neighbor_build(const nep_system *system, int num_types, const double *rc_list,
                       const double *rc_angular, double rc_max, int num_threads,
                       nep_neighbor_list *out);
void nep_neighbor_free(nep_neighbor_list *list);

/* Pairs closer than this (Angstrom) are reported as NEP_ERR_OVERLAP. */
#define NEP_OVERLAP_DISTANCE 1e-6

#endif
