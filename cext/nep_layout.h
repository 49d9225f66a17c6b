/*
 * nepzbl: the layout of the flat parameter vector, in one place for the C engine
 * (nep_core.c), the training gradient (nep_train.c) and the CUDA engine (nep_cuda.cu and its
 * kernels). nepzbl_plugin/model.py mirrors it in Python; tests/test_layout.py checks the two
 * against each other through _core.model_layout.
 *
 * The vector is GPUMD's nep.txt order (../shared/docs/nep-reference.md section 4):
 *   network blocks, one per network (1 for nep3, T otherwise), each
 *       w0 [N1][D] (neuron-major), b0 [N1], w1 [N1] and, for nep5, the per-type bias beta;
 *   the shared output bias b1;
 *   the radial coefficients c^R, then the angular coefficients c^A, each [n][k][ti][tj].
 * That [n][k][ti][tj] order is the one coefficient index convention: nep_coefficient_index.
 *
 * Header-only, C99 and CUDA (NEP_HD functions compile for host and device); no checks here:
 * nep_spec_layout (nep_core.c) and the CUDA engine's fill_dims check the header fields first.
 */
#ifndef NEPZBL_NEP_LAYOUT_H
#define NEPZBL_NEP_LAYOUT_H

#include <stddef.h>

#include "nep_hd.h"

/* The sizes and offsets that follow from a model header (no pointers read). */
typedef struct {
    int num_blocks;          /* angular descriptor blocks: l_max plus the invariants that are on */
    int dim;                 /* descriptor length D (the temperature input included) */
    int num_networks;        /* 1 for nep3, num_types otherwise */
    size_t block_size;       /* values per network block: (D + 2) N1, or with a second layer
                              * (D + 1) N1 + (N1 + 2) N2; plus 1 for nep5 */
    size_t shared_bias;      /* index of b1 (after the network blocks) */
    size_t offset_radial;    /* first radial coefficient (after the networks and shared bias) */
    size_t offset_angular;   /* first angular coefficient */
    size_t num_parameters;   /* the whole flat vector */
} nep_layout;

/* Fills `layout` from the header fields (flags: nonzero = on; temperature nonzero: a
 * temperature model, whose descriptor ends with one more entry, the temperature;
 * num_neurons_second > 0: a second hidden layer of that many neurons). */
NEP_HD void nep_layout_compute(int version, int num_types, int n_max_radial, int n_max_angular,
                               int basis_radial, int basis_angular, int l_max, const int *flags,
                               int num_neurons, int temperature, int num_neurons_second,
                               nep_layout *layout)
{
    layout->num_blocks = l_max;
    for (int k = 0; k < 6; ++k) layout->num_blocks += flags[k] != 0;
    layout->dim = (n_max_radial + 1) + (n_max_angular + 1) * layout->num_blocks +
                  (temperature != 0 ? 1 : 0);
    layout->num_networks = version == 3 ? 1 : num_types;
    const size_t N1 = (size_t)num_neurons, N2 = (size_t)(num_neurons_second > 0 ? num_neurons_second : 0);
    layout->block_size = (N2 ? (size_t)(layout->dim + 1) * N1 + (N1 + 2) * N2
                             : (size_t)(layout->dim + 2) * N1) +
                         (version == 5 ? 1 : 0);
    const size_t TT = (size_t)num_types * (size_t)num_types;
    layout->shared_bias = layout->block_size * (size_t)layout->num_networks;
    layout->offset_radial = layout->shared_bias + 1;
    layout->offset_angular =
        layout->offset_radial + TT * (size_t)(n_max_radial + 1) * (size_t)(basis_radial + 1);
    layout->num_parameters =
        layout->offset_angular + TT * (size_t)(n_max_angular + 1) * (size_t)(basis_angular + 1);
}

/* The network block of centre type `type` (nep3 has one block for every type). */
NEP_HD int nep_network_of_type(int version, int type) { return version == 3 ? 0 : type; }

/* Index of coefficient c[n][k][ti][tj] relative to the first coefficient of its kind
 * (offset_radial or offset_angular); basis1 = basis size + 1. Consecutive k are T*T apart. */
NEP_HD size_t nep_coefficient_index(int n, int k, int basis1, int num_types, int ti, int tj)
{
    return (((size_t)n * (size_t)basis1 + (size_t)k) * (size_t)num_types + (size_t)ti) *
               (size_t)num_types + (size_t)tj;
}

/* Position of angular block `block` (0..L-1 the three-body invariants l = block+1, then the
 * enabled optional invariants in enum nep_flag order) of channel n in the descriptor vector:
 * radial q[0..nR], then the angular blocks, block outer and channel inner. */
NEP_HD int nep_angular_descriptor_index(int n_max_radial, int n_max_angular, int block, int n)
{
    return (n_max_radial + 1) + block * (n_max_angular + 1) + n;
}

#endif /* NEPZBL_NEP_LAYOUT_H */
