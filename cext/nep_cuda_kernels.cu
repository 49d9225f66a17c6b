/*
 * The CUDA engine's evaluation kernels, in one precision. meson compiles this file twice:
 * -DNEP_REAL=double -DNEP_CUDA_NS=nepcu_f64 and -DNEP_REAL=float -DNEP_CUDA_NS=nepcu_f32.
 * All per-pair and per-atom maths comes from nep_maths.h, the header the CPU engine uses, so
 * both engines evaluate the same formulas. Pair geometry (r_ij) is formed in double from the
 * double positions and then rounded to NEP_REAL; per-atom outputs are accumulated in double.
 *
 * One thread per atom in every kernel; each thread writes only its own atom's outputs, so no
 * atomics are used on results and the summation order is fixed by the (sorted) lists.
 */
#include <stdlib.h>

#include "nep.h"
#include "nep_layout.h"
#include "nep_maths.h"
#include "nep_cuda_internal.cuh"
#include "nep_network.h"

#ifndef NEP_CUDA_NS
#error "compile with -DNEP_CUDA_NS=<namespace> and -DNEP_REAL=<float|double>"
#endif

NEPCU_DECLARE(NEP_CUDA_NS)

namespace NEP_CUDA_NS {

typedef NEP_REAL real;

/* Loops over the s-vector in a KMAX template: fully unrolled in the small instantiation (its
 * arrays then live in registers), not unrolled in the generic one (unrolling 80-long arrays
 * would take every register and spill). Ignored by the host emulation's compiler. */
#ifdef __CUDACC__
#define NEPCU_UNROLL _Pragma("unroll (KMAX <= 24 ? KMAX : 1)")
#else
#define NEPCU_UNROLL
#endif

struct model_ptrs {
    const real *p, *q_scaler, *rc_radial, *rc_angular, *zbl_rows, *zbl_zizj, *zbl_ainv;
};

static model_ptrs ptrs_of(const nepcu_model_dev *dev)
{
    model_ptrs m;
    m.p = (const real *)dev->parameters;
    m.q_scaler = (const real *)dev->q_scaler;
    m.rc_radial = (const real *)dev->rc_radial;
    m.rc_angular = (const real *)dev->rc_angular;
    m.zbl_rows = (const real *)dev->zbl_rows;
    m.zbl_zizj = (const real *)dev->zbl_zizj;
    m.zbl_ainv = (const real *)dev->zbl_ainv;
    return m;
}

/* r_ij = pos[j] - pos[i] + shift . cell, in double. */
__device__ __forceinline__ void pair_vector(const double *__restrict__ pos, const double *cell,
                                            int i, int4 e, double r[3])
{
    for (int c = 0; c < 3; ++c)
        r[c] = pos[3 * e.x + c] - pos[3 * i + c] + (double)e.y * cell[c] +
               (double)e.z * cell[3 + c] + (double)e.w * cell[6 + c];
}

/* Slot `slot` of atom i's list: r_ij, the neighbour's type, and |r_ij|^2 returned. */
__device__ __forceinline__ double slot_pair(const nepcu_work &w, const double *cell, int i,
                                            int slot, double r[3], int *tj)
{
    const int4 e = w.nbr[(size_t)slot * w.num_atoms + i];
    pair_vector(w.pos, cell, i, e, r);
    *tj = w.types[e.x];
    return r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
}

/* Angular pair a of atom i: its slot, the neighbour's type and (d, u) in NEP_REAL, stored
 * by k_descriptors as [c * MN + a][N] (coalesced across the atoms of a warp). */
__device__ __forceinline__ void store_angular_pair(const nepcu_work &w, int i, int a, int slot,
                                                   int tj, real d, real ux, real uy, real uz)
{
    const size_t N = (size_t)w.num_atoms, MN = (size_t)w.max_neighbors;
    real *g = (real *)w.ang_geom;
    w.ang_slots[a * N + i] = slot;
    w.ang_types[a * N + i] = tj;
    g[(0 * MN + a) * N + i] = d;
    g[(1 * MN + a) * N + i] = ux;
    g[(2 * MN + a) * N + i] = uy;
    g[(3 * MN + a) * N + i] = uz;
}

__device__ __forceinline__ void load_angular_pair(const nepcu_work &w, int i, int a, int *tj,
                                                  real *d, real u[3])
{
    const size_t N = (size_t)w.num_atoms, MN = (size_t)w.max_neighbors;
    const real *__restrict__ g = (const real *)w.ang_geom;
    *tj = w.ang_types[a * N + i];
    *d = g[(0 * MN + a) * N + i];
    u[0] = g[(1 * MN + a) * N + i];
    u[1] = g[(2 * MN + a) * N + i];
    u[2] = g[(3 * MN + a) * N + i];
}

/* ------------------------------------------------------------------ descriptors */
/* KMAX: the length of the per-thread s-vector arrays. Models with l_max <= 4 (num_abc <= 24 =
 * NEP_MIN_S_LEN) run the KMAX = NEP_MIN_S_LEN instantiation, whose fully unrolled loops over k
 * keep s, Y, H and K in registers; larger l_max runs KMAX = NEP_NUM_ABC (local memory). Both are
 * the same source; see evaluate() for the choice. */
template <int KMAX>
__global__ void k_descriptors(nepcu_dims dm, model_ptrs m, nepcu_work w)
{
    const int N = w.num_atoms;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int T = dm.num_types, ti = w.types[i];
    const double *cell = w.cells + 9 * w.struct_of_atom[i];
    const int count = w.nbr_count[i];
    real *q = (real *)w.q;
    real *sg = (real *)w.sg;
    const real *cR = m.p + dm.c_radial_offset;
    const real *cA = m.p + dm.c_angular_offset;
    const int bR = dm.basis_radial, bA = dm.basis_angular;
    real f[NEPCU_MAX_BASIS];
    int overlap = 0;

    /* radial channels */
    real qr[NEPCU_MAX_CHANNELS];
    int num_ang = 0;
    for (int n = 0; n <= dm.n_max_radial; ++n) qr[n] = (real)0;
    for (int slot = 0; slot < count; ++slot) {
        double r[3];
        int tj;
        const double d2 = slot_pair(w, cell, i, slot, r, &tj);
        const real rcA = m.rc_angular[ti * T + tj];
        if (d2 < (double)rcA * (double)rcA) {
            /* remember the angular pairs and their geometry (|r_ij| and r_ij/|r_ij| as the
             * angular maths uses them): the channel loops below and k_pairs' angular pass
             * visit only these and read them back instead of re-forming r_ij */
            if (d2 < NEPCU_OVERLAP2) {
                overlap = 1;
            } else {
                const double dd = sqrt(d2);
                store_angular_pair(w, i, num_ang++, slot, tj, (real)dd, (real)(r[0] / dd),
                                   (real)(r[1] / dd), (real)(r[2] / dd));
            }
        }
        const real rc = m.rc_radial[ti * T + tj];
        if (!(d2 < (double)rc * (double)rc)) continue;
        if (d2 < NEPCU_OVERLAP2) { overlap = 1; continue; }
        const real d = (real)sqrt(d2), rcinv = (real)1 / rc;
        real fc, fcp;
        nep_cutoff(d, rc, rcinv, &fc, &fcp);
        nep_chebyshev_value(bR, d, rcinv, fc, f);
        for (int n = 0; n <= dm.n_max_radial; ++n)
            qr[n] += nep_channel(bR + 1, cR + nep_coefficient_index(n, 0, bR + 1, T, ti, tj),
                                 (size_t)T * T, f);
    }
    for (int n = 0; n <= dm.n_max_radial; ++n) q[(size_t)n * N + i] = qr[n];

    /* angular channels, one at a time (GPUMD's order): s-vector, then its invariants */
    const int nA1 = dm.n_max_angular + 1, L = dm.l_max, K = dm.num_abc;
    for (int n = 0; n < nA1; ++n) {
        real s[KMAX], Y[KMAX];
        const int SL = KMAX == NEP_MIN_S_LEN ? KMAX : dm.s_len;
NEPCU_UNROLL
        for (int k = 0; k < KMAX; ++k)
            if (k < SL) s[k] = (real)0;
        for (int a = 0; a < num_ang; ++a) {
            int tj;
            real d, u[3];
            load_angular_pair(w, i, a, &tj, &d, u);
            const real rc = m.rc_angular[ti * T + tj];
            const real rcinv = (real)1 / rc;
            real fc, fcp;
            nep_cutoff(d, rc, rcinv, &fc, &fcp);
            nep_chebyshev_value(bA, d, rcinv, fc, f);
            const real g = nep_channel(bA + 1, cA + nep_coefficient_index(n, 0, bA + 1, T, ti, tj),
                                       (size_t)T * T, f);
            nep_sph(L, u[0], u[1], u[2], Y);
NEPCU_UNROLL
            for (int k = 0; k < KMAX; ++k)
                if (k < K) s[k] += g * Y[k];
        }
NEPCU_UNROLL
        for (int k = 0; k < KMAX; ++k)
            if (k < SL) sg[((size_t)n * SL + k) * N + i] = s[k];
        nep_pack_angular(L, dm.flags, dm.n_max_radial, dm.n_max_angular, n, s, q + i, (size_t)N);
    }
    if (dm.temperature) q[(size_t)(dm.dim - 1) * N + i] = (real)w.temperatures[w.struct_of_atom[i]];
    if (overlap) atomicOr(&w.struct_flags[w.struct_of_atom[i]], NEPCU_FLAG_OVERLAP);
}

/* ------------------------------------------------------------------ network */
/* What both network kernels do after the network: the descriptor output and, with
 * need_forces, dU/dq (dudq before q_scaler; the radial part into fpr) and dU/ds
 * (overwriting the s-vectors in sg). */
__device__ static void network_outputs(const nepcu_dims &dm, const model_ptrs &m,
                                       const nepcu_work &w, int i, real *dudq)
{
    const int N = w.num_atoms, D = dm.dim;
    const real *q = (const real *)w.q;
    if (w.descriptors)
        for (int d = 0; d < D; ++d)
            w.descriptors[(size_t)i * D + d] = (double)(q[(size_t)d * N + i] * m.q_scaler[d]);
    if (!w.need_forces) return;

    for (int d = 0; d < D; ++d) dudq[d] *= m.q_scaler[d];
    real *fpr = (real *)w.fpr;
    for (int d = 0; d <= dm.n_max_radial; ++d) fpr[(size_t)d * N + i] = dudq[d];

    real *sg = (real *)w.sg;
    const int nA1 = dm.n_max_angular + 1, L = dm.l_max;
    for (int n = 0; n < nA1; ++n) {
        real s[NEP_NUM_ABC], G[NEP_NUM_ABC];
        for (int k = 0; k < dm.s_len; ++k) {
            s[k] = sg[((size_t)n * dm.s_len + k) * N + i];
            G[k] = (real)0;
        }
        nep_pack_angular_grad(L, dm.flags, dm.n_max_radial, dm.n_max_angular, n, s, dudq, 1, G);
        for (int k = 0; k < dm.s_len; ++k) sg[((size_t)n * dm.s_len + k) * N + i] = G[k];
    }
}

/* Energy and latent outputs of one hidden layer, then network_outputs. */
__global__ void k_network(nepcu_dims dm, model_ptrs m, nepcu_work w)
{
    const int N = w.num_atoms;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int D = dm.dim, N1 = dm.num_neurons, ti = w.types[i];
    const real *q = (const real *)w.q;
    const real *w0 = m.p + (size_t)nep_network_of_type(dm.version, ti) * dm.block_size;
    const real *b0 = w0 + (size_t)N1 * D;
    const real *w1 = b0 + N1;
    /* dU/dq before q_scaler, only when forces are wanted */
    real dudq[NEPCU_MAX_DIM];
    w.energy[i] = (double)nep_network_forward(
        D, N1, w0, b0, w1, m.p[dm.shared_bias_index], dm.version == 5 ? w1 + N1 : NULL, q + i,
        (size_t)N, m.q_scaler, w.latent ? w.latent + (size_t)i * N1 : NULL, NULL,
        w.need_forces ? dudq : NULL, 1);
    network_outputs(dm, m, w, i, dudq);
}

/* The same with a second hidden layer (its own kernel, so that the one-layer kernel keeps
 * its registers and stack); no latent output. */
__global__ void k_network2(nepcu_dims dm, model_ptrs m, nepcu_work w)
{
    const int N = w.num_atoms;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int D = dm.dim, N1 = dm.num_neurons, N2 = dm.num_neurons2, ti = w.types[i];
    const real *block = m.p + (size_t)nep_network_of_type(dm.version, ti) * dm.block_size;
    const size_t beta = (size_t)(D + 1) * N1 + (size_t)(N1 + 2) * N2;
    real dudq[NEPCU_MAX_DIM], h1[NEPCU_MAX_NEURONS], h2[NEPCU_MAX_NEURONS];
    w.energy[i] = (double)nep_network2_forward(
        D, N1, N2, block, m.p[dm.shared_bias_index], dm.version == 5 ? block + beta : NULL,
        (const real *)w.q + i, (size_t)N, m.q_scaler, h1, h2, 1, w.need_forces ? dudq : NULL, 1);
    network_outputs(dm, m, w, i, dudq);
}

/* ------------------------------------------------------------------ pair derivatives */
/* v_ij = dU_i/dr_ij for every slot (radial + ZBL + angular), and the ZBL site energies.
 * With need_forces == 0 only the ZBL energies are computed.
 *
 * Two passes, each thread writing only its own slots: the radial pass visits every slot of
 * the Verlet list (radial cutoff + skin) and writes radial + ZBL; the angular pass visits only
 * the slots k_descriptors found inside the angular cutoff (w.ang_slots, in list order) and adds
 * the angular part. With a 4 A angular and a 6 A + 1 A-skin list that is about a fifth of the
 * slots, and the angular work (Chebyshev derivatives, n_max_angular channels, the spherical
 * harmonics contraction) dominated the old single pass. */
template <int KMAX>
__device__ __forceinline__ void angular_pair_derivative(const nepcu_dims &dm, const model_ptrs &m,
                                                        const nepcu_work &w, int i, int ti,
                                                        int tj, real d, const real u[3],
                                                        real out[3])
{
    const int N = w.num_atoms, T = dm.num_types;
    const int bA = dm.basis_angular, nA1 = dm.n_max_angular + 1, K = dm.num_abc;
    const real *cA = m.p + dm.c_angular_offset;
    const real *sg = (const real *)w.sg;
    const real rcA = m.rc_angular[ti * T + tj];
    real f[NEPCU_MAX_BASIS], fp[NEPCU_MAX_BASIS];
    const real rcinv = (real)1 / rcA;
    real fc, fcp;
    nep_cutoff(d, rcA, rcinv, &fc, &fcp);
    nep_chebyshev(bA, d, rcinv, fc, fcp, f, fp);
    /* H_k = sum_n g_n' dU/ds_nk and K_k = sum_n g_n dU/ds_nk, so that one contraction gives
     * sum_nk dU/ds_nk d(g_n Y_k)/dr_ij. */
    real Hk[KMAX], Kk[KMAX];
NEPCU_UNROLL
    for (int k = 0; k < KMAX; ++k) Hk[k] = Kk[k] = (real)0;
    for (int n = 0; n < nA1; ++n) {
        real g, gp;
        nep_channel_deriv(bA + 1, cA + nep_coefficient_index(n, 0, bA + 1, T, ti, tj),
                          (size_t)T * T, f, fp, &g, &gp);
NEPCU_UNROLL
        for (int k = 0; k < KMAX; ++k) {
            if (k >= K) continue;
            const real G = sg[((size_t)n * dm.s_len + k) * N + i];
            Hk[k] += gp * G;
            Kk[k] += g * G;
        }
    }
    real hy, grad[3];
    nep_sph_contract(dm.l_max, u[0], u[1], u[2], Hk, Kk, &hy, grad);
    const real ug = u[0] * grad[0] + u[1] * grad[1] + u[2] * grad[2];
    const real dinv = (real)1 / d;
    for (int c = 0; c < 3; ++c) out[c] = hy * u[c] + (grad[c] - ug * u[c]) * dinv;
}

template <int KMAX>
__global__ void k_pairs(nepcu_dims dm, model_ptrs m, nepcu_work w)
{
    const int N = w.num_atoms, MN = w.max_neighbors;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int T = dm.num_types, ti = w.types[i];
    const double *cell = w.cells + 9 * w.struct_of_atom[i];
    const int count = w.nbr_count[i];
    const real *cR = m.p + dm.c_radial_offset;
    const real *fpr = (const real *)w.fpr;
    real *v = (real *)w.v;
    real *vz = (real *)w.vz;
    const int bR = dm.basis_radial;
    double ezbl = 0.0;
    int num_ang = 0; /* angular slots met so far, in list order (as k_descriptors stored them) */

    for (int slot = 0; slot < count; ++slot) {
        double r[3];
        int tj;
        const double d2 = slot_pair(w, cell, i, slot, r, &tj);
        const int pair = ti * T + tj;
        const real rcR = m.rc_radial[pair], rcA = m.rc_angular[pair];
        const bool in_radial = d2 < (double)rcR * (double)rcR && d2 >= NEPCU_OVERLAP2;
        const bool in_angular = d2 < (double)rcA * (double)rcA && d2 >= NEPCU_OVERLAP2;
        real vx = (real)0, vy = (real)0, vzz = (real)0;
        real zx = (real)0, zy = (real)0, zz = (real)0;
        if (in_radial || in_angular) {
            const double dd = sqrt(d2);
            const real d = (real)dd;
            const real u[3] = {(real)(r[0] / dd), (real)(r[1] / dd), (real)(r[2] / dd)};
            if (in_angular && dm.use_zbl) {
                real phi, dphi;
                nep_zbl(d, m.zbl_zizj[pair], m.zbl_ainv[pair], m.zbl_rows + 10 * pair, &phi,
                        &dphi);
                ezbl += 0.5 * (double)phi;
                const real half = (real)0.5 * dphi;
                zx = half * u[0];
                zy = half * u[1];
                zz = half * u[2];
            }
            if (w.need_forces && in_radial) {
                const real rcinv = (real)1 / rcR;
                real fc, fcp, f[NEPCU_MAX_BASIS], fp[NEPCU_MAX_BASIS];
                nep_cutoff(d, rcR, rcinv, &fc, &fcp);
                nep_chebyshev(bR, d, rcinv, fc, fcp, f, fp);
                real acc = (real)0;
                for (int n = 0; n <= dm.n_max_radial; ++n)
                    acc += fpr[(size_t)n * N + i] *
                           nep_channel(bR + 1, cR + nep_coefficient_index(n, 0, bR + 1, T, ti, tj),
                                       (size_t)T * T, fp);
                vx = acc * u[0];
                vy = acc * u[1];
                vzz = acc * u[2];
            }
        }
        if (in_angular) num_ang += 1;
        if (w.need_forces) {
            v[(size_t)(0 * MN + slot) * N + i] = vx + zx;
            v[(size_t)(1 * MN + slot) * N + i] = vy + zy;
            v[(size_t)(2 * MN + slot) * N + i] = vzz + zz;
            if (vz) {
                vz[(size_t)(0 * MN + slot) * N + i] = zx;
                vz[(size_t)(1 * MN + slot) * N + i] = zy;
                vz[(size_t)(2 * MN + slot) * N + i] = zz;
            }
        }
    }
    if (dm.use_zbl) {
        w.energy[i] += ezbl;
        if (w.energy_zbl) w.energy_zbl[i] = ezbl;
    } else if (w.energy_zbl) {
        w.energy_zbl[i] = 0.0;
    }
    if (!w.need_forces) return;

    /* angular pass: only the pairs inside the angular cutoff */
    for (int a = 0; a < num_ang; ++a) {
        const int slot = w.ang_slots[(size_t)a * N + i];
        int tj;
        real d, u[3], va[3];
        load_angular_pair(w, i, a, &tj, &d, u);
        angular_pair_derivative<KMAX>(dm, m, w, i, ti, tj, d, u, va);
        for (int c = 0; c < 3; ++c) v[(size_t)(c * MN + slot) * N + i] += va[c];
    }
}

/* ------------------------------------------------------------------ gather */
/* F_i = sum_j v_ij - v_ji; W_i^{ab} = sum_j r_ij^a v_ji^b (the neighbour's partition). */
__global__ void k_gather(nepcu_work w, const real *__restrict__ v, double *forces,
                         double *virials)
{
    const int N = w.num_atoms, MN = w.max_neighbors;
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const double *cell = w.cells + 9 * w.struct_of_atom[i];
    const int count = w.nbr_count[i];
    double F[3] = {0.0, 0.0, 0.0};
    double W[9] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    for (int slot = 0; slot < count; ++slot) {
        const int4 e = w.nbr[(size_t)slot * N + i];
        const int j = e.x;
        const int back = w.rev[(size_t)slot * N + i];
        double vij[3], vji[3];
        for (int c = 0; c < 3; ++c) {
            vij[c] = (double)v[(size_t)(c * MN + slot) * N + i];
            vji[c] = (double)v[(size_t)(c * MN + back) * N + j];
            F[c] += vij[c] - vji[c];
        }
        if (virials) {
            double r[3];
            pair_vector(w.pos, cell, i, e, r);
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) W[3 * a + b] += r[a] * vji[b];
        }
    }
    if (forces)
        for (int c = 0; c < 3; ++c) forces[3 * (size_t)i + c] = F[c];
    if (virials)
        for (int c = 0; c < 9; ++c) virials[9 * (size_t)i + c] = W[c];
}

/* ------------------------------------------------------------------ host side */
size_t real_size() { return sizeof(real); }

/* src converted to NEP_REAL and copied to *dst (allocated when NULL) on the model's stream, which
 * is then synchronised: a plain cudaMemcpy from pageable memory may return before its DMA has
 * landed, and the legacy stream it runs on does not order the model's non-blocking stream, so
 * the next kernels could read the old values. */
static cudaError_t upload_array(void **dst, const double *src, size_t count, size_t *bytes,
                                cudaStream_t stream)
{
    real *host = (real *)malloc(count * sizeof(real) + 1);
    if (!host) return cudaErrorMemoryAllocation;
    for (size_t k = 0; k < count; ++k) host[k] = (real)src[k];
    cudaError_t err = cudaSuccess;
    if (*dst == NULL) {
        err = cudaMalloc(dst, count * sizeof(real) + 1);
        if (err == cudaSuccess && bytes) *bytes += count * sizeof(real) + 1;
    }
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(*dst, host, count * sizeof(real), cudaMemcpyHostToDevice, stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
    free(host);
    return err;
}

cudaError_t upload_model(const nepcu_dims *dm, const nep_model_spec *spec, nepcu_model_dev *dev,
                         size_t *bytes, cudaStream_t stream)
{
    const int T = dm->num_types;
    cudaError_t err;
    double *zizj = (double *)malloc(sizeof(double) * T * T);
    double *ainv = (double *)malloc(sizeof(double) * T * T);
    double *rows = (double *)calloc((size_t)T * T * 10, sizeof(double));
    if (!zizj || !ainv || !rows) {
        free(zizj);
        free(ainv);
        free(rows);
        return cudaErrorMemoryAllocation;
    }
    for (int a = 0; a < T; ++a)
        for (int b = 0; b < T; ++b) {
            const int za = spec->atomic_numbers[a], zb = spec->atomic_numbers[b];
            /* the same expressions as nep_zbl_pair, evaluated in the kernels' precision */
            zizj[a * T + b] = (double)((real)NEP_K_C_SP * (real)za * (real)zb);
            ainv[a * T + b] = (double)nep_zbl_ainv((real)za, (real)zb);
            if (spec->use_zbl && spec->zbl)
                for (int c = 0; c < 10; ++c) rows[(a * T + b) * 10 + c] = spec->zbl[(a * T + b) * 10 + c];
        }
    err = upload_array(&dev->parameters, spec->parameters, spec->num_parameters, bytes, stream);
    if (err == cudaSuccess) err = upload_array(&dev->q_scaler, spec->q_scaler, dm->dim, bytes, stream);
    if (err == cudaSuccess) err = upload_array(&dev->rc_radial, spec->rc_radial, (size_t)T * T, bytes, stream);
    if (err == cudaSuccess) err = upload_array(&dev->rc_angular, spec->rc_angular, (size_t)T * T, bytes, stream);
    if (err == cudaSuccess) err = upload_array(&dev->zbl_rows, rows, (size_t)T * T * 10, bytes, stream);
    if (err == cudaSuccess) err = upload_array(&dev->zbl_zizj, zizj, (size_t)T * T, bytes, stream);
    if (err == cudaSuccess) err = upload_array(&dev->zbl_ainv, ainv, (size_t)T * T, bytes, stream);
    free(zizj);
    free(ainv);
    free(rows);
    return err;
}

cudaError_t upload_parameters(const nepcu_dims *dm, const double *parameters,
                              size_t num_parameters, nepcu_model_dev *dev, cudaStream_t stream)
{
    (void)dm;
    return upload_array(&dev->parameters, parameters, num_parameters, NULL, stream);
}

void free_model(nepcu_model_dev *dev)
{
    void **all[] = {&dev->parameters, &dev->q_scaler, &dev->rc_radial, &dev->rc_angular,
                    &dev->zbl_rows, &dev->zbl_zizj, &dev->zbl_ainv};
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); ++k) {
        if (*all[k]) cudaFree(*all[k]);
        *all[k] = NULL;
    }
}

cudaError_t evaluate(const nepcu_dims *dims, const nepcu_model_dev *dev, const nepcu_work *work,
                     cudaStream_t stream)
{
    if (work->num_atoms == 0) return cudaSuccess;
    const model_ptrs m = ptrs_of(dev);
    const int threads = 64; /* GPUMD's choice for these register-heavy kernels */
    const int blocks = (work->num_atoms + threads - 1) / threads;
    /* register-resident s-vectors for l_max <= 4; NEPZBL_CUDA_GENERIC_ANGULAR=1 forces the
     * generic instantiation (for A/B timing on a device) */
    static const bool generic_forced = [] {
        const char *e = getenv("NEPZBL_CUDA_GENERIC_ANGULAR");
        return e != NULL && e[0] == '1';
    }();
    const bool small = dims->s_len == NEP_MIN_S_LEN && !generic_forced;
    if (small)
        NEPCU_LAUNCH(k_descriptors<NEP_MIN_S_LEN>, blocks, threads, stream, *dims, m, *work);
    else
        NEPCU_LAUNCH(k_descriptors<NEP_NUM_ABC>, blocks, threads, stream, *dims, m, *work);
    if (dims->num_neurons2 > 0)
        NEPCU_LAUNCH(k_network2, blocks, threads, stream, *dims, m, *work);
    else
        NEPCU_LAUNCH(k_network, blocks, threads, stream, *dims, m, *work);
    if (work->need_forces || dims->use_zbl || work->energy_zbl) {
        if (small)
            NEPCU_LAUNCH(k_pairs<NEP_MIN_S_LEN>, blocks, threads, stream, *dims, m, *work);
        else
            NEPCU_LAUNCH(k_pairs<NEP_NUM_ABC>, blocks, threads, stream, *dims, m, *work);
    }
    if (work->need_forces) {
        NEPCU_LAUNCH(k_gather, blocks, threads, stream, *work, (const real *)work->v, work->forces,
                                                 work->virials);
        if (work->vz && (work->forces_zbl || work->virials_zbl))
            NEPCU_LAUNCH(k_gather, blocks, threads, stream, *work, (const real *)work->vz,
                                                     work->forces_zbl, work->virials_zbl);
    }
    return cudaGetLastError();
}

} /* namespace NEP_CUDA_NS */
