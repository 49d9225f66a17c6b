/*
 * nepzbl: the per-atom assembly shared by the C engine (nep_core.c), the training gradient
 * (nep_train.c) and the CUDA kernels (nep_cuda_kernels.cu): radial contraction, descriptor
 * packing and its gradient, and the network forward pass with dU/dq.
 *
 * Header-only, C99 and CUDA, in NEP_REAL like nep_maths.h. Arrays the engines lay out
 * differently are read through a stride: the CPU engines keep one atom's values contiguous
 * (stride 1), the CUDA kernels keep atoms innermost (q[d * N + i], stride N).
 */
#ifndef NEPZBL_NEP_NETWORK_H
#define NEPZBL_NEP_NETWORK_H

#include "nep_layout.h"
#include "nep_maths.h"

/* ------------------------------------------------------------------ radial contraction */
/* g = sum_k c[k * stride] f[k], k = 0..nb1-1: one channel of the radial (or angular) function
 * from its Chebyshev basis; with fp in place of f, the channel's derivative. */
NEP_HD NEP_REAL nep_channel(int nb1, const NEP_REAL *c, size_t stride, const NEP_REAL *f)
{
    NEP_REAL g = (NEP_REAL)0;
    for (int k = 0; k < nb1; ++k) g += NEP_LOAD(c + (size_t)k * stride) * f[k];
    return g;
}

/* The channel and its derivative in one pass over the coefficients. */
NEP_HD void nep_channel_deriv(int nb1, const NEP_REAL *c, size_t stride, const NEP_REAL *f,
                              const NEP_REAL *fp, NEP_REAL *g, NEP_REAL *gp)
{
    NEP_REAL a = (NEP_REAL)0, b = (NEP_REAL)0;
    for (int k = 0; k < nb1; ++k) {
        const NEP_REAL ck = NEP_LOAD(c + (size_t)k * stride);
        a += ck * f[k];
        b += ck * fp[k];
    }
    *g = a;
    *gp = b;
}

/* ------------------------------------------------------------------ descriptor packing */
/* The angular descriptors of channel n from its s-vector s: the L three-body invariants, then
 * every optional invariant that is on (flags, enum nep_flag order), each written to
 * q[nep_angular_descriptor_index(...) * stride]. */
NEP_HD void nep_pack_angular(int L, const int *flags, int n_max_radial, int n_max_angular, int n,
                             const NEP_REAL *s, NEP_REAL *q, size_t stride)
{
    NEP_REAL q3[NEP_MAX_L];
    nep_q3b(L, s, q3);
    for (int l = 0; l < L; ++l)
        q[(size_t)nep_angular_descriptor_index(n_max_radial, n_max_angular, l, n) * stride] = q3[l];
    int block = L;
    for (int which = 0; which < 6; ++which) {
        if (!flags[which]) continue;
        q[(size_t)nep_angular_descriptor_index(n_max_radial, n_max_angular, block, n) * stride] =
            nep_invariant(which, s);
        ++block;
    }
}

/* G[kappa] += sum_b dU/dq_b dq_b/ds_kappa over channel n's angular blocks, dU/dq (already
 * multiplied by q_scaler) read from dudq[index * stride]: the adjoint of nep_pack_angular. */
NEP_HD void nep_pack_angular_grad(int L, const int *flags, int n_max_radial, int n_max_angular,
                                  int n, const NEP_REAL *s, const NEP_REAL *dudq, size_t stride,
                                  NEP_REAL *G)
{
    NEP_REAL dEdq[NEP_MAX_L];
    for (int l = 0; l < L; ++l)
        dEdq[l] = dudq[(size_t)nep_angular_descriptor_index(n_max_radial, n_max_angular, l, n) * stride];
    nep_q3b_grad(L, s, dEdq, G);
    int block = L;
    for (int which = 0; which < 6; ++which) {
        if (!flags[which]) continue;
        nep_invariant_grad(
            which, s,
            dudq[(size_t)nep_angular_descriptor_index(n_max_radial, n_max_angular, block, n) * stride],
            G);
        ++block;
    }
}

/* ------------------------------------------------------------------ network */
/* sum_d w[d] x_d with x_d = q[d * stride], times scale[d] when scale is not NULL (the CPU
 * engine passes descriptors already scaled, the kernels and the trainer raw ones). */
NEP_HD NEP_REAL nep_network_dot(int D, const NEP_REAL *w, const NEP_REAL *q, size_t stride,
                                const NEP_REAL *scale)
{
    NEP_REAL x = (NEP_REAL)0;
    if (scale)
        for (int d = 0; d < D; ++d) x += NEP_LOAD(w + d) * (q[(size_t)d * stride] * scale[d]);
    else
        for (int d = 0; d < D; ++d) x += NEP_LOAD(w + d) * q[(size_t)d * stride];
    return x;
}

/* A first-layer neuron's activation h = tanh(w . x - b), x read as in nep_network_dot. */
NEP_HD NEP_REAL nep_neuron(int D, const NEP_REAL *w, NEP_REAL b, const NEP_REAL *q,
                           size_t stride, const NEP_REAL *scale)
{
    return tanh(nep_network_dot(D, w, q, stride, scale) - b);
}

/* One network block (w0 [N1][D] neuron-major, b0 [N1], w1 [N1]) on the descriptor x (read
 * as in nep_network_dot): returns U = -b1 - beta + sum_k w1_k h_k, h_k = tanh(w0_k . x - b0_k),
 * beta the nep5 per-type bias (NULL otherwise). Optional outputs (NULL = not wanted):
 *   latent[k] = w1_k h_k (calorine's latent space), hidden[k * out_stride] = h_k,
 *   dudx[d * out_stride] = dU/dx_d = sum_k w1_k (1 - h_k^2) w0[k][d] (before q_scaler).
 * out_stride is 1 for the engines' per-thread arrays and the training's atom-innermost work
 * arrays on the GPU have it larger (see nep_train_atom.h). */
NEP_HD NEP_REAL nep_network_forward(int D, int N1, const NEP_REAL *w0, const NEP_REAL *b0,
                                    const NEP_REAL *w1, NEP_REAL b1, const NEP_REAL *beta,
                                    const NEP_REAL *q, size_t stride, const NEP_REAL *scale,
                                    double *latent, NEP_REAL *hidden, NEP_REAL *dudx,
                                    size_t out_stride)
{
    if (dudx)
        for (int d = 0; d < D; ++d) dudx[(size_t)d * out_stride] = (NEP_REAL)0;
    /* the biases first, then the neurons: the order the CUDA engine has always summed in
     * (its float32 results stay as they were; float64 ones moved by one rounding at most) */
    NEP_REAL U = -b1;
    if (beta) U -= *beta;
    for (int k = 0; k < N1; ++k) {
        const NEP_REAL *w = w0 + (size_t)k * D;
        const NEP_REAL h = nep_neuron(D, w, b0[k], q, stride, scale);
        if (latent) latent[k] = (double)(w1[k] * h);
        if (hidden) hidden[(size_t)k * out_stride] = h;
        U += w1[k] * h;
        if (dudx) {
            const NEP_REAL y = w1[k] * ((NEP_REAL)1 - h * h);
            for (int d = 0; d < D; ++d) dudx[(size_t)d * out_stride] += y * NEP_LOAD(w + d);
        }
    }
    return U;
}

/* Two hidden layers (GPUMD's `ANN N1 N2`): block = w0 [N1][D], b0 [N1], w1 [N2][N1] (w1[j N1 + k]
 * couples h1_k to neuron j), b1 [N2], w2 [N2]. Returns U = w2 . h2 - b2 - beta with
 * h1 = tanh(w0 x - b0), h2 = tanh(w1 h1 - b1), x read as in nep_network_dot. h1 [N1] and h2
 * [N2] receive the activations (entries hs apart); dudx (NULL = not wanted) as in
 * nep_network_forward: dU/dx_d = sum_k e1_k w0[k][d], e1_k = (1 - h1_k^2) sum_j w1[j][k] e2_j,
 * e2_j = w2_j (1 - h2_j^2). */
NEP_HD NEP_REAL nep_network2_forward(int D, int N1, int N2, const NEP_REAL *block, NEP_REAL b2,
                                     const NEP_REAL *beta, const NEP_REAL *q, size_t stride,
                                     const NEP_REAL *scale, NEP_REAL *h1, NEP_REAL *h2,
                                     size_t hs, NEP_REAL *dudx, size_t out_stride)
{
    const NEP_REAL *w0 = block, *b0 = w0 + (size_t)N1 * D, *w1 = b0 + N1;
    const NEP_REAL *b1 = w1 + (size_t)N2 * N1, *w2 = b1 + N2;
    for (int k = 0; k < N1; ++k)
        h1[(size_t)k * hs] = nep_neuron(D, w0 + (size_t)k * D, b0[k], q, stride, scale);
    NEP_REAL U = -b2;
    if (beta) U -= *beta;
    for (int j = 0; j < N2; ++j) {
        const NEP_REAL *wj = w1 + (size_t)j * N1;
        NEP_REAL z = -b1[j];
        for (int k = 0; k < N1; ++k) z += NEP_LOAD(wj + k) * h1[(size_t)k * hs];
        const NEP_REAL h = tanh(z);
        h2[(size_t)j * hs] = h;
        U += w2[j] * h;
    }
    if (dudx) {
        for (int d = 0; d < D; ++d) dudx[(size_t)d * out_stride] = (NEP_REAL)0;
        for (int k = 0; k < N1; ++k) {
            NEP_REAL back = (NEP_REAL)0; /* dU/dh1_k */
            for (int j = 0; j < N2; ++j) {
                const NEP_REAL h = h2[(size_t)j * hs];
                back += w2[j] * ((NEP_REAL)1 - h * h) * NEP_LOAD(w1 + (size_t)j * N1 + k);
            }
            const NEP_REAL h = h1[(size_t)k * hs];
            const NEP_REAL e1 = back * ((NEP_REAL)1 - h * h);
            const NEP_REAL *w = w0 + (size_t)k * D;
            for (int d = 0; d < D; ++d) dudx[(size_t)d * out_stride] += e1 * NEP_LOAD(w + d);
        }
    }
    return U;
}

#endif /* NEPZBL_NEP_NETWORK_H */
