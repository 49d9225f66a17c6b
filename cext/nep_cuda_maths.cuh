/*
 * Extra per-atom helpers of the CUDA engine, in NEP_REAL, on top of nep_maths.h (which stays
 * the one source of the NEP and ZBL formulas for both engines).
 */
#ifndef NEPZBL_NEP_CUDA_MATHS_CUH
#define NEPZBL_NEP_CUDA_MATHS_CUH

#include "nep_maths.h"

/* dU/dq_d before q_scaler: sum_k a_k w0[k, d] with a_k = w1_k (1 - h_k^2) already formed;
 * w0 is neuron-major (input d of neuron k at k * D + d). */
NEP_HD NEP_REAL nepcu_dudq(const NEP_REAL *w0, const NEP_REAL *a, int num_neurons, int dim, int d)
{
    NEP_REAL sum = (NEP_REAL)0;
    for (int k = 0; k < num_neurons; ++k) sum += a[k] * w0[(size_t)k * dim + d];
    return sum;
}

#endif
