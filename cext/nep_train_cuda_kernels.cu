/*
 * The per-atom kernel of the CUDA training objective, compiled once per precision
 * (-DNEP_REAL=double -DNEP_CUDA_NS=nepct_f64, or float and nepct_f32). One thread per atom runs
 * the CPU gradient's per-atom steps (cext/nep_train.c, the method in nep_train.h) in NEP_REAL:
 *   pass 1: descriptor q and its directional derivative qdot along the pair perturbation
 *           delta r_ij = a_j - a_i + B^T r_ij;
 *   network: U, dU/dq, the Hessian-vector product along qdot, the network-parameter gradient
 *           and the adjoints lambda = dPhi/dq, mu = dPhi/dqdot (= -dU/dq), then the angular
 *           adjoints sigma = dPhi/ds, tau = dPhi/dsdot;
 *   pass 2: the pair derivatives dU_i/dr_ij (forces, virial) and the descriptor-coefficient
 *           gradient.
 * Every product is NEP_REAL; the sums that leave the thread (energy, virial, pair
 * derivatives, the gradient row) are double. The shared maths (nep_maths.h, nep_network.h,
 * nep_train_maths.h) is the CPU code's own, through NEP_HD.
 */
#include "nep_train_cuda_internal.cuh"

#include <math.h>

#include "nep_layout.h"
#include "nep_maths.h"
#include "nep_network.h"
#include "nep_train_maths.h"

#if NEPCT_NUM_Y != NEP_NUM_ABC
#error "NEPCT_NUM_Y must equal NEP_NUM_ABC"
#endif
#ifndef NEP_CUDA_NS
#error "compile with -DNEP_CUDA_NS=nepct_f64 (or nepct_f32) and the matching -DNEP_REAL"
#endif

#define NEPCT_S_LEN NEP_MIN_S_LEN
#define NEPCT_MAX_BASIS 32

namespace NEP_CUDA_NS {

typedef NEP_REAL real;

size_t real_size() { return sizeof(real); }

/* 3-body weight w'_kappa = (1 or 2) C3B_kappa, for kappa = l^2 - 1 + m. */
__device__ static inline real w3_of(int l, int kappa)
{
    return (real)((kappa == l * l - 1 ? 1.0 : 2.0) * (double)nep_c3b(kappa));
}

__device__ static inline void radial_basis(real d, real rc, int nb, real *f, real *fp)
{
    real fc, fcp;
    nep_cutoff(d, rc, (real)1 / rc, &fc, &fcp);
    nep_chebyshev(nb, d, (real)1 / rc, fc, fcp, f, fp);
}

/* The s-gradient and the Hessian-vector product of optional invariant `which`; the HVP
 * tables are double, so float32 goes through double copies (24 values). */
__device__ static inline int invariant_grad_hvp(int which, const real *s, const real *v,
                                                real *grad, real *hvp)
{
    for (int k = 0; k < NEPCT_S_LEN; ++k) grad[k] = (real)0;
    nep_invariant_grad(which, s, (real)1, grad);
    double sd[NEPCT_S_LEN], vd[NEPCT_S_LEN], hd[NEPCT_S_LEN];
    for (int k = 0; k < NEPCT_S_LEN; ++k) {
        sd[k] = (double)s[k];
        vd[k] = (double)v[k];
    }
    const int size = nep_train_invariant_hvp(which, sd, vd, hd);
    for (int k = 0; k < size; ++k) hvp[k] = (real)hd[k];
    return size;
}

/* Pair geometry: distance, unit vector, perturbation delta and its radial part u . delta. */
__device__ static inline real pair_geometry(const double *r, const double *ai, const double *aj,
                                            const double *B, real *d, real *u, real *delta)
{
    const real x = (real)r[0], y = (real)r[1], z = (real)r[2];
    *d = sqrt(x * x + y * y + z * z);
    const real rr[3] = {x, y, z};
    real ddot = (real)0;
    for (int b = 0; b < 3; ++b) {
        u[b] = rr[b] / *d;
        double db = (aj ? aj[b] : 0.0) - (ai ? ai[b] : 0.0);
        if (B) db += B[b] * r[0] + B[3 + b] * r[1] + B[6 + b] * r[2];
        delta[b] = (real)db;
        ddot += u[b] * delta[b];
    }
    return ddot;
}

/* Y, its gradient with respect to r (dyr) and its derivative along delta (ydot). */
__device__ static inline void angular_pair(int L, int K, real d, const real *u, const real *delta,
                                           real *y, real (*dyr)[3], real *ydot)
{
    real dy[3][NEPCT_NUM_Y];
    nep_sph_grad(L, u[0], u[1], u[2], y, dy[0], dy[1], dy[2]);
    for (int k = 0; k < K; ++k) {
        const real ud = u[0] * dy[0][k] + u[1] * dy[1][k] + u[2] * dy[2][k];
        real yd = (real)0;
        for (int c = 0; c < 3; ++c) {
            dyr[k][c] = (dy[c][k] - u[c] * ud) / d;
            yd += dyr[k][c] * delta[c];
        }
        ydot[k] = yd;
    }
}

__device__ static void train_atom(const nepct_args &A, int i, real *ws, double *grad)
{
    const int T = A.num_types, D = A.dim, N1 = A.num_neurons;
    const int nR = A.n_max_radial, nA = A.n_max_angular;
    const int bR = A.basis_radial, bA = A.basis_angular, L = A.l_max, K = A.num_abc;
    const int ns = (nA + 1) * NEPCT_NUM_Y;
    real *q = ws, *qdot = q + D, *lam = qdot + D, *mu = lam + D, *hidden = mu + D;
    real *s = hidden + N1, *sdot = s + ns, *sigma = sdot + ns, *tau = sigma + ns;
    const real *par = (const real *)A.parameters;
    const real *scaler = (const real *)A.q_scaler;
    const real *zbl = (const real *)A.zbl;
    const int ti = A.types[i], st = A.atom_structure[i];
    const double alpha = A.alpha ? A.alpha[st] : 0.0;
    const double *fadj = A.force_adjoint;
    const double *ai = fadj ? fadj + 3 * (size_t)i : NULL;
    const double *B = A.virial_adjoint ? A.virial_adjoint + 9 * (size_t)st : NULL;
    const long long p0 = A.pair_offset[i], p1 = A.pair_offset[i + 1];
    real fk[NEPCT_MAX_BASIS], fkp[NEPCT_MAX_BASIS];
    real y[NEPCT_NUM_Y], dyr[NEPCT_NUM_Y][3], ydot[NEPCT_NUM_Y];
    real inv_grad[NEPCT_S_LEN], inv_hvp[NEPCT_S_LEN];
    for (int d = 0; d < D; ++d) q[d] = qdot[d] = (real)0;
    for (int k = 0; k < ns; ++k) s[k] = sdot[k] = (real)0;

    /* ---- pass 1: descriptors and their directional derivatives */
    for (long long p = p0; p < p1; ++p) {
        const int j = A.neighbor[p], tj = A.types[j];
        real d, u[3], delta[3];
        const real ddot = pair_geometry(A.r + 3 * p, ai, fadj ? fadj + 3 * (size_t)j : NULL, B,
                                        &d, u, delta);
        const real rcr = (real)A.rc_radial[ti * T + tj];
        if (d < rcr) {
            radial_basis(d, rcr, bR, fk, fkp);
            for (int n = 0; n <= nR; ++n) {
                const real *c = par + A.offset_radial + nep_coefficient_index(n, 0, bR + 1, T, ti, tj);
                real g, gp;
                nep_channel_deriv(bR + 1, c, (size_t)T * T, fk, fkp, &g, &gp);
                q[n] += g;
                qdot[n] += gp * ddot;
            }
        }
        const real rca = (real)A.rc_angular[ti * T + tj];
        if (d < rca) {
            radial_basis(d, rca, bA, fk, fkp);
            angular_pair(L, K, d, u, delta, y, dyr, ydot);
            for (int n = 0; n <= nA; ++n) {
                const real *c = par + A.offset_angular + nep_coefficient_index(n, 0, bA + 1, T, ti, tj);
                real g, gp;
                nep_channel_deriv(bA + 1, c, (size_t)T * T, fk, fkp, &g, &gp);
                real *sn = s + n * NEPCT_NUM_Y, *sdn = sdot + n * NEPCT_NUM_Y;
                for (int k = 0; k < K; ++k) {
                    sn[k] += g * y[k];
                    sdn[k] += gp * ddot * y[k] + g * ydot[k];
                }
            }
        }
    }
    /* invariants and their directional derivatives */
    for (int n = 0; n <= nA; ++n) {
        const real *sn = s + n * NEPCT_NUM_Y, *sdn = sdot + n * NEPCT_NUM_Y;
        nep_pack_angular(L, A.flags, nR, nA, n, sn, q, 1);
        for (int l = 1; l <= L; ++l) {
            real qd = (real)0;
            for (int k = l * l - 1; k < (l + 1) * (l + 1) - 1; ++k)
                qd += (real)2 * w3_of(l, k) * sn[k] * sdn[k];
            qdot[nep_angular_descriptor_index(nR, nA, l - 1, n)] = qd;
        }
        int block = L;
        for (int f = 0; f < 6; ++f) {
            if (!A.flags[f]) continue;
            for (int k = 0; k < NEPCT_S_LEN; ++k) inv_grad[k] = (real)0;
            nep_invariant_grad(f, sn, (real)1, inv_grad);
            real qd = (real)0;
            for (int k = 0; k < NEPCT_S_LEN; ++k) qd += inv_grad[k] * sdn[k];
            qdot[nep_angular_descriptor_index(nR, nA, block, n)] = qd;
            ++block;
        }
    }

    /* ---- network, its parameter gradient and the descriptor adjoints */
    const size_t w0_off = (size_t)nep_network_of_type(A.version, ti) * A.block_size;
    const real *w0 = par + w0_off;
    const real *b0 = w0 + (size_t)N1 * D;
    const real *w1 = b0 + N1;
    const real U = nep_network_forward(D, N1, w0, b0, w1, par[A.shared_bias],
                                       A.version == 5 ? w1 + N1 : NULL, q, 1, scaler, NULL,
                                       hidden, mu);
    for (int d = 0; d < D; ++d) {
        lam[d] = (real)0;
        mu[d] = -mu[d];
    }
    const real alpha_r = (real)alpha;
    for (int k = 0; k < N1; ++k) {
        const real *wk = w0 + (size_t)k * D;
        const real zd = nep_network_dot(D, wk, qdot, 1, scaler);
        const real h = hidden[k];
        const real dh = (real)1 - h * h;
        const real e = w1[k] * dh;                  /* dU/dz_k */
        const real nf = (real)(-2) * w1[k] * h * dh * zd; /* d2U/dz_k^2 zdot_k */
        const real Ak = alpha_r * e - nf;           /* dPhi/dz_k */
        for (int d = 0; d < D; ++d) lam[d] += Ak * wk[d];
        if (grad) {
            double *gw = grad + w0_off + (size_t)k * D;
            for (int d = 0; d < D; ++d) gw[d] += (double)(Ak * q[d] * scaler[d] - e * qdot[d] * scaler[d]);
            grad[w0_off + (size_t)N1 * D + k] -= (double)Ak;
            grad[w0_off + (size_t)N1 * D + N1 + k] += (double)(alpha_r * h - dh * zd);
        }
    }
    if (grad) {
        grad[A.shared_bias] -= alpha;
        if (A.version == 5) grad[w0_off + (size_t)(D + 2) * N1] -= alpha;
    }
    double energy = (double)U;
    for (int d = 0; d < D; ++d) {
        lam[d] *= scaler[d];
        mu[d] *= scaler[d];
    }
    for (int k = 0; k < 2 * ns; ++k) sigma[k] = (real)0; /* sigma and tau are adjacent */
    for (int n = 0; n <= nA; ++n) {
        const real *sn = s + n * NEPCT_NUM_Y, *sdn = sdot + n * NEPCT_NUM_Y;
        real *sg = sigma + n * NEPCT_NUM_Y, *ta = tau + n * NEPCT_NUM_Y;
        for (int l = 1; l <= L; ++l) {
            const int index = nep_angular_descriptor_index(nR, nA, l - 1, n);
            const real la = lam[index], m = mu[index];
            for (int k = l * l - 1; k < (l + 1) * (l + 1) - 1; ++k) {
                const real w2 = (real)2 * w3_of(l, k);
                sg[k] += la * w2 * sn[k] + m * w2 * sdn[k];
                ta[k] += m * w2 * sn[k];
            }
        }
        int block = L;
        for (int f = 0; f < 6; ++f) {
            if (!A.flags[f]) continue;
            const int index = nep_angular_descriptor_index(nR, nA, block, n);
            const real la = lam[index], m = mu[index];
            const int size = invariant_grad_hvp(f, sn, sdn, inv_grad, inv_hvp);
            for (int k = 0; k < size && k < K; ++k) {
                sg[k] += la * inv_grad[k] + m * inv_hvp[k];
                ta[k] += m * inv_grad[k];
            }
            ++block;
        }
    }

    /* ---- pass 2: pair derivatives (forces, virial) and coefficient gradients */
    double virial[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (long long p = p0; p < p1; ++p) {
        const int j = A.neighbor[p], tj = A.types[j];
        const double *r = A.r + 3 * p;
        real d, u[3], delta[3];
        const real ddot = pair_geometry(r, ai, fadj ? fadj + 3 * (size_t)j : NULL, B, &d, u, delta);
        real v[3] = {(real)0, (real)0, (real)0}; /* dU_i/dr_ij */
        const real rcr = (real)A.rc_radial[ti * T + tj];
        if (d < rcr) {
            radial_basis(d, rcr, bR, fk, fkp);
            for (int n = 0; n <= nR; ++n) {
                const size_t off = A.offset_radial + nep_coefficient_index(n, 0, bR + 1, T, ti, tj);
                const real gp = nep_channel(bR + 1, par + off, (size_t)T * T, fkp);
                const real dudq = -mu[n];
                for (int c3 = 0; c3 < 3; ++c3) v[c3] += dudq * gp * u[c3];
                if (grad) {
                    const real la = lam[n], mud = mu[n] * ddot;
                    for (int k = 0; k <= bR; ++k)
                        grad[off + (size_t)k * T * T] += (double)(la * fk[k] + mud * fkp[k]);
                }
            }
        }
        const real rca = (real)A.rc_angular[ti * T + tj];
        if (d < rca) {
            radial_basis(d, rca, bA, fk, fkp);
            angular_pair(L, K, d, u, delta, y, dyr, ydot);
            for (int n = 0; n <= nA; ++n) {
                const size_t off = A.offset_angular + nep_coefficient_index(n, 0, bA + 1, T, ti, tj);
                real g, gp;
                nep_channel_deriv(bA + 1, par + off, (size_t)T * T, fk, fkp, &g, &gp);
                const real *sg = sigma + n * NEPCT_NUM_Y, *ta = tau + n * NEPCT_NUM_Y;
                real tau_y = (real)0, sig = (real)0, tau_dy[3] = {(real)0, (real)0, (real)0};
                for (int k = 0; k < K; ++k) {
                    tau_y += ta[k] * y[k];
                    sig += sg[k] * y[k] + ta[k] * ydot[k];
                    tau_dy[0] += ta[k] * dyr[k][0];
                    tau_dy[1] += ta[k] * dyr[k][1];
                    tau_dy[2] += ta[k] * dyr[k][2];
                }
                for (int c3 = 0; c3 < 3; ++c3) v[c3] -= gp * tau_y * u[c3] + g * tau_dy[c3];
                if (grad) {
                    const real tyd = tau_y * ddot;
                    for (int k = 0; k <= bA; ++k)
                        grad[off + (size_t)k * T * T] += (double)(fk[k] * sig + fkp[k] * tyd);
                }
            }
            if (A.use_zbl) {
                real phi, dphi;
                nep_zbl_pair(d, A.atomic_numbers[ti], A.atomic_numbers[tj],
                             zbl ? zbl + 10 * (size_t)(ti * T + tj) : NULL, &phi, &dphi);
                energy += 0.5 * (double)phi;
                for (int c3 = 0; c3 < 3; ++c3) v[c3] += (real)0.5 * dphi * u[c3];
            }
        }
        double *vp = A.v_pair + 3 * p;
        for (int c3 = 0; c3 < 3; ++c3) vp[c3] = (double)v[c3];
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) virial[3 * a + b] -= r[a] * (double)v[b];
    }
    A.e_atom[i] = energy;
    for (int k = 0; k < 9; ++k) A.w_atom[9 * (size_t)i + k] = virial[k];
}

__global__ void atoms_kernel(const nepct_args args, int first, int count)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= count) return;
    const int i = args.selected_atoms[first + t];
    real *ws = (real *)args.scratch + (size_t)t * (size_t)args.scratch_len;
    double *row = args.rows ? args.rows + (size_t)t * args.num_parameters : NULL;
    train_atom(args, i, ws, row);
}

void launch_atoms(const nepct_args &args, int first, int count, cudaStream_t stream)
{
    if (count <= 0) return;
    const int threads = 64;
    NEPCU_LAUNCH(atoms_kernel, (count + threads - 1) / threads, threads, stream, args, first, count);
}

} /* namespace NEP_CUDA_NS */
