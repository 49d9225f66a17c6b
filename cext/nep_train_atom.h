/*
 * nepzbl: the per-atom maths of the exact training gradient, written once and called by the
 * CPU gradient (nep_train.c, NEP_REAL = double) and the CUDA training kernels
 * (nep_train_cuda_kernels.cu, NEP_REAL = double or float). The method is in nep_train.h; per
 * atom i, with the pair perturbation delta r_ij = a_j - a_i + B^T r_ij:
 *   pass 1 (neighbours): descriptor q_i and its directional derivative qdot_i (radial q, the
 *           angular s-vectors s and sdot, then the invariants P(s) and grad P . sdot);
 *   network: U_i, dU/dq, the Hessian-vector product along qdot, the network-parameter
 *           gradient of Phi_i = alpha U_i - dU_i/dq . qdot_i, and the adjoints
 *           lambda = dPhi/dq, mu = dPhi/dqdot (= -dU/dq), then the angular adjoints
 *           sigma = dPhi/ds, tau = dPhi/dsdot per channel;
 *   pass 2 (neighbours): the pair derivatives dU_i/dr_ij (forces, virial) and the
 *           angular coefficients' gradient through q and qdot (the radial ones' is formed
 *           once per atom before it, from per-type sums: nep_train_radial_pair).
 * Every product is NEP_REAL; the sums that leave the atom (energy, pair derivatives, virial,
 * gradient) are double. Without a gradient (grad NULL: the predictions a loss needs) the
 * directional derivatives and the adjoints that only the gradient reads (qdot, sdot, lambda,
 * sigma, the network's JVP, the invariants' Hessian-vector products) are skipped; the
 * energy, the pair derivatives and the virial are the same operations either way.
 *
 * Header-only, C99 and CUDA, through NEP_HD like nep_maths.h and nep_network.h.
 */
#ifndef NEPZBL_NEP_TRAIN_ATOM_H
#define NEPZBL_NEP_TRAIN_ATOM_H

#include <stddef.h>

#include "nep.h"
#include "nep_layout.h"
#include "nep_maths.h"
#include "nep_network.h"
#include "nep_train_maths.h"

#define NEP_TRAIN_NUM_Y NEP_NUM_ABC     /* s entries per channel: (L+1)^2 - 1 for L = 8 */
#define NEP_TRAIN_S_LEN NEP_MIN_S_LEN   /* s entries the invariants read */
#define NEP_TRAIN_MAX_BASIS 32          /* basis size + 1 */

/* The model header the per-atom maths reads: precision-independent, filled on the host by
 * nep_train_atom_model_fill (the CUDA side then points rc_* and atomic_numbers at device
 * copies). */
typedef struct {
    int version, num_types, dim, num_neurons, n_max_radial, n_max_angular;
    int num_neurons_second; /* a second hidden layer, 0 for none */
    int basis_radial, basis_angular, l_max, num_abc;
    int flags[6]; /* the optional invariants that are on (0 or 1) */
    int use_zbl;
    int temperature; /* a temperature model: q[dim - 1] is the structure's temperature */
    size_t num_parameters, block_size, shared_bias, offset_radial, offset_angular;
    const double *rc_radial, *rc_angular; /* [T][T] */
    const int *atomic_numbers;            /* [T] */
} nep_train_atom_model;

/* One atom's work arrays (NEP_TRAIN_WORK_* order): q, qdot, lambda, mu [dim]; hidden [N1]
 * (with a second layer [4 N1 + 2 N2]: nep_train_network2); s, sdot, sigma, tau
 * [(n_max_angular + 1) nep_train_s_stride]; the radial sums [2 T (basis_radial + 1)]
 * (nep_train_radial_pair). */
enum {
    NEP_TRAIN_WORK_Q,
    NEP_TRAIN_WORK_QDOT,
    NEP_TRAIN_WORK_LAMBDA,
    NEP_TRAIN_WORK_MU,
    NEP_TRAIN_WORK_HIDDEN,
    NEP_TRAIN_WORK_S,
    NEP_TRAIN_WORK_SDOT,
    NEP_TRAIN_WORK_SIGMA,
    NEP_TRAIN_WORK_TAU,
    NEP_TRAIN_WORK_RADIAL,
    NEP_TRAIN_NUM_WORK
};

/* Values from one channel's s-vector (or sigma, tau) to the next: the K = num_abc entries
 * the model has, or the NEP_TRAIN_S_LEN the invariants read when that is more (the entries
 * beyond K then zero). Sized for the model rather than for l_max 8 (NEP_TRAIN_NUM_Y, 80),
 * so that an atom zeroes and touches only what it uses: 24 a channel for l_max 4. */
NEP_HD int nep_train_s_stride(const nep_train_atom_model *m)
{
    return m->num_abc > NEP_TRAIN_S_LEN ? m->num_abc : NEP_TRAIN_S_LEN;
}

/* Length of work array `which` (values). */
NEP_HD size_t nep_train_work_length(const nep_train_atom_model *m, int which)
{
    if (which <= NEP_TRAIN_WORK_MU) return (size_t)m->dim;
    if (which == NEP_TRAIN_WORK_RADIAL)
        return 2 * (size_t)m->num_types * (size_t)(m->basis_radial + 1);
    if (which == NEP_TRAIN_WORK_HIDDEN)
        return m->num_neurons_second > 0
                   ? (size_t)(4 * m->num_neurons + 2 * m->num_neurons_second)
                   : (size_t)m->num_neurons;
    return (size_t)(m->n_max_angular + 1) * (size_t)nep_train_s_stride(m);
}

/* The header fields of `spec` (which nep_model_spec_check accepted). */
static inline void nep_train_atom_model_fill(const nep_model_spec *spec, nep_train_atom_model *m)
{
    nep_layout layout;
    nep_layout_compute(spec->version, spec->num_types, spec->n_max_radial, spec->n_max_angular,
                       spec->basis_radial, spec->basis_angular, spec->l_max, spec->flags,
                       spec->num_neurons, spec->temperature, spec->num_neurons_second,
                       &layout);
    m->version = spec->version;
    m->num_types = spec->num_types;
    m->dim = layout.dim;
    m->num_neurons = spec->num_neurons;
    m->num_neurons_second = spec->num_neurons_second > 0 ? spec->num_neurons_second : 0;
    m->n_max_radial = spec->n_max_radial;
    m->n_max_angular = spec->n_max_angular;
    m->basis_radial = spec->basis_radial;
    m->basis_angular = spec->basis_angular;
    m->l_max = spec->l_max;
    m->num_abc = nep_num_abc(spec->l_max);
    for (int k = 0; k < 6; ++k) m->flags[k] = spec->flags[k] != 0;
    m->use_zbl = spec->use_zbl;
    m->temperature = spec->temperature != 0;
    m->num_parameters = layout.num_parameters;
    m->block_size = layout.block_size;
    m->shared_bias = layout.shared_bias;
    m->offset_radial = layout.offset_radial;
    m->offset_angular = layout.offset_angular;
    m->rc_radial = spec->rc_radial;
    m->rc_angular = spec->rc_angular;
    m->atomic_numbers = spec->atomic_numbers;
}

/* 3-body weight w'_kappa = (1 or 2) C3B_kappa of kappa = l^2 - 1 + m (1 for m = 0). */
NEP_HD NEP_REAL nep_train_w3(int l, int kappa)
{
    return (NEP_REAL)((kappa == l * l - 1 ? 1.0 : 2.0) * (double)nep_c3b(kappa));
}

/* f_k(d) and f_k'(d), k = 0..nb, for cutoff rc. */
NEP_HD void nep_train_radial_basis(NEP_REAL d, NEP_REAL rc, int nb, NEP_REAL *f, NEP_REAL *fp)
{
    NEP_REAL fc, fcp;
    nep_cutoff(d, rc, (NEP_REAL)1 / rc, &fc, &fcp);
    nep_chebyshev(nb, d, (NEP_REAL)1 / rc, fc, fcp, f, fp);
}

/* The s-gradient of optional invariant `which` into grad[0 .. NEP_TRAIN_S_LEN). */
NEP_HD void nep_train_invariant_grad(int which, const NEP_REAL *s, NEP_REAL *grad)
{
    for (int k = 0; k < NEP_TRAIN_S_LEN; ++k) grad[k] = (NEP_REAL)0;
    nep_invariant_grad(which, s, (NEP_REAL)1, grad);
}

/* A pair's distance d and unit vector u. */
NEP_HD void nep_train_pair_distance(const double *r, NEP_REAL *d, NEP_REAL *u)
{
    const NEP_REAL rr[3] = {(NEP_REAL)r[0], (NEP_REAL)r[1], (NEP_REAL)r[2]};
    *d = sqrt(rr[0] * rr[0] + rr[1] * rr[1] + rr[2] * rr[2]);
    for (int b = 0; b < 3; ++b) u[b] = rr[b] / *d;
}

/* A pair's perturbation delta = a_j - a_i + B^T r (formed in double; ai, aj, B may be NULL:
 * zero) and its radial part u . delta, returned. Pass 2 needs it for angular pairs only
 * (the radial coefficients' gradient is formed per atom), so its radial-only pairs skip the
 * neighbour's adjoint. */
NEP_HD NEP_REAL nep_train_pair_perturbation(const double *r, const NEP_REAL *u, const double *ai,
                                            const double *aj, const double *B, NEP_REAL *delta)
{
    NEP_REAL ddot = (NEP_REAL)0;
    for (int b = 0; b < 3; ++b) {
        double db = (aj ? aj[b] : 0.0) - (ai ? ai[b] : 0.0);
        if (B) db += B[b] * r[0] + B[3 + b] * r[1] + B[6 + b] * r[2];
        delta[b] = (NEP_REAL)db;
        ddot += u[b] * delta[b];
    }
    return ddot;
}

/* Both, as pass 1 needs them: d, u, delta, and u . delta returned. */
NEP_HD NEP_REAL nep_train_pair_geometry(const double *r, const double *ai, const double *aj,
                                        const double *B, NEP_REAL *d, NEP_REAL *u,
                                        NEP_REAL *delta)
{
    nep_train_pair_distance(r, d, u);
    return nep_train_pair_perturbation(r, u, ai, aj, B, delta);
}

/* v = (delta - u (u . delta)) / d, the component of a pair's perturbation across the bond
 * over d, and 1/d returned: Ydot = dY/du . v (nep_train_angular_pair, _tangent). One division
 * a pair, where dividing each of the 3 K entries of dY/dr (72 a pair for l_max 4) took
 * several instructions apiece on a GPU and tens of cycles' latency on a CPU. */
NEP_HD NEP_REAL nep_train_across(NEP_REAL d, const NEP_REAL *u, const NEP_REAL *delta,
                                 NEP_REAL *v)
{
    const NEP_REAL dinv = (NEP_REAL)1 / d;
    const NEP_REAL ux = u[0] * delta[0] + u[1] * delta[1] + u[2] * delta[2];
    for (int c = 0; c < 3; ++c) v[c] = (delta[c] - u[c] * ux) * dinv;
    return dinv;
}

/* Y_kappa(u), its gradient with respect to r, dyr[kappa][c] = (dY/du_c - u_c (u . dY/du)) / d,
 * and its derivative along the perturbation, ydot[kappa] = dyr[kappa] . delta, formed as
 * dY/du . v (nep_train_across): the same bits as nep_train_angular_tangent's. */
NEP_HD void nep_train_angular_pair(int L, NEP_REAL d, const NEP_REAL *u, const NEP_REAL *delta,
                                   NEP_REAL *y, NEP_REAL (*dyr)[3], NEP_REAL *ydot)
{
    NEP_REAL dy[3][NEP_TRAIN_NUM_Y], v[3];
    const NEP_REAL dinv = nep_train_across(d, u, delta, v);
    nep_sph_grad(L, u[0], u[1], u[2], y, dy[0], dy[1], dy[2]);
    for (int k = 0; k < nep_num_abc(L); ++k) {
        const NEP_REAL ud = u[0] * dy[0][k] + u[1] * dy[1][k] + u[2] * dy[2][k];
        for (int c = 0; c < 3; ++c) dyr[k][c] = (dy[c][k] - u[c] * ud) * dinv;
        ydot[k] = dy[0][k] * v[0] + dy[1][k] * v[1] + dy[2][k] * v[2];
    }
}

/* Y_kappa(u) and ydot alone, as pass 1 and a gradient pass without forces need them. */
NEP_HD void nep_train_angular_tangent(int L, NEP_REAL d, const NEP_REAL *u, const NEP_REAL *delta,
                                      NEP_REAL *y, NEP_REAL *ydot)
{
    NEP_REAL dy[3][NEP_TRAIN_NUM_Y], v[3];
    nep_train_across(d, u, delta, v);
    nep_sph_grad(L, u[0], u[1], u[2], y, dy[0], dy[1], dy[2]);
    for (int k = 0; k < nep_num_abc(L); ++k)
        ydot[k] = dy[0][k] * v[0] + dy[1][k] * v[1] + dy[2][k] * v[2];
}

/* The two-hidden-layer network of nep_train_atom (x = q q_scaler, xdot = qdot q_scaler; the
 * block at par + w0_off as in nep_network2_forward). Returns U and writes mu = -dU/dx; with a
 * gradient (grad not NULL) also lam = dPhi/dx of Phi = alpha U - dU/dx . xdot and Phi's
 * network-parameter gradient, by reverse mode through the forward pass and its tangent:
 *   z1dot = w0 xdot, h1dot = (1 - h1^2) z1dot, z2dot = w1 h1dot,
 *   Phi = alpha (w2 . h2 - b2 - beta) - sum_j w2_j (1 - h2_j^2) z2dot_j,
 *   c2_j = dPhi/dz2dot_j = -w2_j (1 - h2_j^2), a2_j = dPhi/dz2_j = w2_j (alpha + 2 h2_j z2dot_j)
 *   (1 - h2_j^2); P = w1^T a2, Q = w1^T c2; c1 = Q (1 - h1^2) = dPhi/dz1dot (w0^T c1 = mu),
 *   a1 = (P - 2 h1 z1dot Q) (1 - h1^2) = dPhi/dz1 (w0^T a1 = lam).
 * lam and mu are in x (the caller multiplies by q_scaler, as for one layer); hid holds h1, h2,
 * z1dot, z2dot, P, Q ([4 N1 + 2 N2], entries st apart); gradient entry k is grad[k gst]. */
NEP_HD NEP_REAL nep_train_network2(const nep_train_atom_model *m, const NEP_REAL *par,
                                   size_t w0_off, size_t shared_bias, const NEP_REAL *q,
                                   const NEP_REAL *qdot, size_t st, const NEP_REAL *scaler,
                                   double alpha, NEP_REAL *hid, double *grad, size_t gst,
                                   NEP_REAL *lam, NEP_REAL *mu)
{
    const int D = m->dim, N1 = m->num_neurons, N2 = m->num_neurons_second;
    const NEP_REAL *w0 = par + w0_off, *b0 = w0 + (size_t)N1 * D, *w1 = b0 + N1;
    const NEP_REAL *b1 = w1 + (size_t)N2 * N1, *w2 = b1 + N2;
    const size_t beta = (size_t)(D + 1) * N1 + (size_t)(N1 + 2) * N2; /* nep5, in the block */
    NEP_REAL *h1 = hid, *h2 = hid + (size_t)N1 * st, *z1d = hid + (size_t)(N1 + N2) * st;
    NEP_REAL *z2d = hid + (size_t)(2 * N1 + N2) * st, *P = hid + (size_t)(2 * N1 + 2 * N2) * st;
    NEP_REAL *Q = hid + (size_t)(3 * N1 + 2 * N2) * st;
    const NEP_REAL U = nep_network2_forward(D, N1, N2, w0, par[shared_bias],
                                            m->version == 5 ? w0 + beta : NULL, q, st, scaler,
                                            h1, h2, st, mu, st);
    for (int d = 0; d < D; ++d) {
        lam[d * st] = (NEP_REAL)0;
        mu[d * st] = -mu[d * st];
    }
    if (!grad) return U;
    const NEP_REAL al = (NEP_REAL)alpha;
    for (int k = 0; k < N1; ++k) {
        z1d[k * st] = nep_network_dot(D, w0 + (size_t)k * D, qdot, st, scaler);
        P[k * st] = Q[k * st] = (NEP_REAL)0;
    }
    double *g0 = grad + w0_off * gst, *gb0 = g0 + (size_t)N1 * D * gst, *g1 = gb0 + N1 * gst;
    double *gb1 = g1 + (size_t)N2 * N1 * gst, *g2 = gb1 + N2 * gst;
    for (int j = 0; j < N2; ++j) {
        const NEP_REAL *wj = w1 + (size_t)j * N1;
        NEP_REAL zd = (NEP_REAL)0;
        for (int k = 0; k < N1; ++k) {
            const NEP_REAL h = h1[k * st];
            zd += wj[k] * ((NEP_REAL)1 - h * h) * z1d[k * st];
        }
        z2d[j * st] = zd;
        const NEP_REAL h = h2[j * st], dh = (NEP_REAL)1 - h * h;
        const NEP_REAL c2 = -w2[j] * dh;
        const NEP_REAL a2 = w2[j] * (al + (NEP_REAL)2 * h * zd) * dh;
        g2[j * gst] += (double)(al * h - dh * zd);
        gb1[j * gst] -= (double)a2;
        double *gj = g1 + (size_t)j * N1 * gst;
        for (int k = 0; k < N1; ++k) {
            const NEP_REAL hk = h1[k * st];
            const NEP_REAL h1dot = ((NEP_REAL)1 - hk * hk) * z1d[k * st];
            gj[k * gst] += (double)(a2 * hk + c2 * h1dot);
            P[k * st] += a2 * wj[k];
            Q[k * st] += c2 * wj[k];
        }
    }
    for (int k = 0; k < N1; ++k) {
        const NEP_REAL h = h1[k * st], dh = (NEP_REAL)1 - h * h;
        const NEP_REAL c1 = Q[k * st] * dh;
        const NEP_REAL a1 = (P[k * st] - (NEP_REAL)2 * h * z1d[k * st] * Q[k * st]) * dh;
        const NEP_REAL *wk = w0 + (size_t)k * D;
        double *gk = g0 + (size_t)k * D * gst;
        for (int d = 0; d < D; ++d) {
            gk[d * gst] += (double)(a1 * q[d * st] * scaler[d] + c1 * qdot[d * st] * scaler[d]);
            lam[d * st] += a1 * wk[d];
        }
        gb0[k * gst] -= (double)a1;
    }
    grad[shared_bias * gst] -= alpha;
    if (m->version == 5) grad[(w0_off + beta) * gst] -= alpha;
    return U;
}

/* Copies the first `count` entries of a strided array (x[k * stride]) into the contiguous
 * local y: what the invariants' maths (nep_maths.h, nep_train_maths.h) reads. */
NEP_HD void nep_train_gather(const NEP_REAL *x, size_t stride, int count, NEP_REAL *y)
{
    for (int k = 0; k < count; ++k) y[k] = x[(size_t)k * stride];
}

/* ---- the radial descriptors through per-type sums of the basis
 * A radial channel of atom i is q_n = sum_j sum_k c[n][k][ti][tj] f_k(r_ij): the
 * coefficients depend on the pair only through the neighbour's type, so pass 1 sums, per
 * neighbour type t, F[t][k] = sum_j f_k(r_ij) and (with a gradient) G[t][k] = sum_j
 * f_k'(r_ij) ddot_ij, and then q_n = sum_t sum_k c[n][k][ti][t] F[t][k] (qdot_n the same
 * with G). The coefficients' gradient lambda_n F[t][k] + mu_n G[t][k] is then one term per
 * coefficient and atom instead of one per pair, and pass 2's pair derivative is
 * (sum_k W[t][k] f_k'(r_ij)) u_ij with W[t][k] = sum_n dU/dq_n c[n][k][ti][t], formed once
 * per atom: per radial pair 2 (bR + 1) sums and bR + 1 products where the channel by
 * channel sums took about 5 (nR + 1)(bR + 1) and (nR + 1)(bR + 1) read-modify-writes of
 * the gradient. Work array NEP_TRAIN_WORK_RADIAL holds F then G
 * (entry t (bR + 1) + k of each), and W over F once the gradient has read it. */

/* One pair with a neighbour of type t: F[t][k] += f_k and, with G (not NULL), G[t][k] +=
 * f_k' ddot, for k < nb1; F and G point at type t's entries, `st` apart. */
NEP_HD void nep_train_radial_pair(int nb1, const NEP_REAL *fk, const NEP_REAL *fkp, NEP_REAL ddot,
                                  NEP_REAL *F, NEP_REAL *G, size_t st)
{
    for (int k = 0; k < nb1; ++k) F[(size_t)k * st] += fk[k];
    if (G)
        for (int k = 0; k < nb1; ++k) G[(size_t)k * st] += fkp[k] * ddot;
}

/* Radial channel n of an atom of type ti from the per-type sums F (and G, not NULL with a
 * gradient; both with entries `st` apart): returns q_n and writes qdot_n to *qdot_n. */
NEP_HD NEP_REAL nep_train_radial_channel(const nep_train_atom_model *m, const NEP_REAL *par,
                                         int ti, int n, const NEP_REAL *F, const NEP_REAL *G,
                                         size_t st, NEP_REAL *qdot_n)
{
    const int T = m->num_types, b1 = m->basis_radial + 1;
    NEP_REAL qn = (NEP_REAL)0, qd = (NEP_REAL)0;
    for (int t = 0; t < T; ++t) {
        const NEP_REAL *c = par + m->offset_radial + nep_coefficient_index(n, 0, b1, T, ti, t);
        const size_t at = (size_t)t * b1;
        for (int k = 0; k < b1; ++k) {
            const NEP_REAL ck = c[(size_t)k * T * T];
            qn += ck * F[(at + k) * st];
            if (G) qd += ck * G[(at + k) * st];
        }
    }
    if (qdot_n) *qdot_n = qd;
    return qn;
}

/* dPhi/dc[n][k][ti][t] of a radial coefficient from its channel's adjoints lambda_n, mu_n
 * and the per-type sums F[t][k], G[t][k]. */
NEP_HD double nep_train_radial_gradient(NEP_REAL lam_n, NEP_REAL mu_n, NEP_REAL F, NEP_REAL G)
{
    return (double)(lam_n * F + mu_n * G);
}

/* W[t][k] = sum_n dU/dq_n c[n][k][ti][t] for neighbour type t and basis function k, with
 * dU/dq_n = -mu_n (mu[n sst], scaled): pass 2's radial pair derivative is
 * (sum_k W[t][k] f_k') u. */
NEP_HD NEP_REAL nep_train_radial_weight(const nep_train_atom_model *m, const NEP_REAL *par,
                                        int ti, int t, int k, const NEP_REAL *mu, size_t sst)
{
    const int T = m->num_types, b1 = m->basis_radial + 1;
    NEP_REAL w = (NEP_REAL)0;
    for (int n = 0; n <= m->n_max_radial; ++n)
        w -= mu[(size_t)n * sst] * par[m->offset_radial + nep_coefficient_index(n, k, b1, T, ti, t)];
    return w;
}

/* One channel's radial function for a pair with coefficients c (nb1 of them, `stride` apart)
 * and basis values fk: returns g = sum_k c_k f_k and, with gd not NULL (a gradient), writes
 * gd = (sum_k c_k f'_k) ddot, its derivative along the pair perturbation. */
NEP_HD NEP_REAL nep_train_channel_pair(int nb1, const NEP_REAL *c, size_t stride,
                                       const NEP_REAL *fk, const NEP_REAL *fkp, NEP_REAL ddot,
                                       NEP_REAL *gd)
{
    if (!gd) return nep_channel(nb1, c, stride, fk);
    NEP_REAL g, gp;
    nep_channel_deriv(nb1, c, stride, fk, fkp, &g, &gp);
    *gd = gp * ddot;
    return g;
}

/* g[k gst] += (double)(a x[k] + b y[k]) for k < count: one channel's coefficient gradient
 * from one pair. Where NEP_TRAIN_GROUPED_RMW is defined (the CUDA kernels) the loads of each
 * group of four are written before its stores: a compiler cannot tell that the four
 * addresses differ, so written one after another each read-modify-write waits for the last,
 * while grouped a GPU thread has four in flight. The CPU keeps the plain loop, which it runs
 * faster (LLZO's full-batch gradient on one thread: 268 ms plain, 275 ms grouped). The
 * arithmetic is the same either way. */
NEP_HD void nep_train_grad_add(double *g, size_t gst, int count, NEP_REAL a, const NEP_REAL *x,
                               NEP_REAL b, const NEP_REAL *y)
{
    int k = 0;
#ifdef NEP_TRAIN_GROUPED_RMW
    for (; k + 4 <= count; k += 4) {
        double *g0 = g + (size_t)k * gst, *g1 = g0 + gst, *g2 = g1 + gst, *g3 = g2 + gst;
        const double v0 = *g0, v1 = *g1, v2 = *g2, v3 = *g3;
        *g0 = v0 + (double)(a * x[k] + b * y[k]);
        *g1 = v1 + (double)(a * x[k + 1] + b * y[k + 1]);
        *g2 = v2 + (double)(a * x[k + 2] + b * y[k + 2]);
        *g3 = v3 + (double)(a * x[k + 3] + b * y[k + 3]);
    }
#endif
    for (; k < count; ++k) g[(size_t)k * gst] += (double)(a * x[k] + b * y[k]);
}

/* One pair's part of one angular channel: s[k st] += g y[k] and, with sdot (not NULL),
 * sdot[k st] += gd y[k] + g ydot[k], for k < K; grouped as in nep_train_grad_add (s and sdot
 * lie in the same work buffer). */
NEP_HD void nep_train_s_add(NEP_REAL *s, NEP_REAL *sdot, size_t st, int K, NEP_REAL g,
                            NEP_REAL gd, const NEP_REAL *y, const NEP_REAL *ydot)
{
    int k = 0;
    if (!sdot) {
#ifdef NEP_TRAIN_GROUPED_RMW
        for (; k + 4 <= K; k += 4) {
            NEP_REAL *s0 = s + (size_t)k * st, *s1 = s0 + st, *s2 = s1 + st, *s3 = s2 + st;
            const NEP_REAL v0 = *s0, v1 = *s1, v2 = *s2, v3 = *s3;
            *s0 = v0 + g * y[k];
            *s1 = v1 + g * y[k + 1];
            *s2 = v2 + g * y[k + 2];
            *s3 = v3 + g * y[k + 3];
        }
#endif
        for (; k < K; ++k) s[(size_t)k * st] += g * y[k];
        return;
    }
#ifdef NEP_TRAIN_GROUPED_RMW
    for (; k + 2 <= K; k += 2) {
        NEP_REAL *s0 = s + (size_t)k * st, *s1 = s0 + st;
        NEP_REAL *d0 = sdot + (size_t)k * st, *d1 = d0 + st;
        const NEP_REAL v0 = *s0, v1 = *s1, w0 = *d0, w1 = *d1;
        *s0 = v0 + g * y[k];
        *s1 = v1 + g * y[k + 1];
        *d0 = w0 + (gd * y[k] + g * ydot[k]);
        *d1 = w1 + (gd * y[k + 1] + g * ydot[k + 1]);
    }
#endif
    for (; k < K; ++k) {
        s[(size_t)k * st] += g * y[k];
        sdot[(size_t)k * st] += gd * y[k] + g * ydot[k];
    }
}

/* Channel n's angular descriptors q (nep_pack_angular) from its s-vector sn and, with sdn
 * (not NULL: a gradient), their directional derivatives qdot = dq/ds . sdot; sn and sdn hold
 * max(K, NEP_TRAIN_S_LEN) entries sst apart (the ones beyond K zero), q and qdot entries st
 * apart. */
NEP_HD void nep_train_channel_descriptors(const nep_train_atom_model *m, int n,
                                          const NEP_REAL *sn, const NEP_REAL *sdn, size_t sst,
                                          NEP_REAL *q, NEP_REAL *qdot, size_t st)
{
    const int L = m->l_max, nR = m->n_max_radial, nA = m->n_max_angular, K = m->num_abc;
    const int SG = nep_train_s_stride(m);
    NEP_REAL sl[NEP_TRAIN_NUM_Y], sdl[NEP_TRAIN_NUM_Y], inv_grad[NEP_TRAIN_S_LEN];
    nep_train_gather(sn, sst, SG, sl);
    nep_pack_angular(L, m->flags, nR, nA, n, sl, q, st);
    if (!sdn) return;
    nep_train_gather(sdn, sst, SG, sdl);
    for (int l = 1; l <= L; ++l) {
        NEP_REAL qd = (NEP_REAL)0;
        for (int k = l * l - 1; k < (l + 1) * (l + 1) - 1; ++k)
            qd += (NEP_REAL)2 * nep_train_w3(l, k) * sl[k] * sdl[k];
        qdot[(size_t)nep_angular_descriptor_index(nR, nA, l - 1, n) * st] = qd;
    }
    int block = L;
    for (int f = 0; f < 6; ++f) {
        if (!m->flags[f]) continue;
        nep_train_invariant_grad(f, sl, inv_grad);
        NEP_REAL qd = (NEP_REAL)0;
        for (int k = 0; k < NEP_TRAIN_S_LEN; ++k) qd += inv_grad[k] * sdl[k];
        qdot[(size_t)nep_angular_descriptor_index(nR, nA, block, n) * st] = qd;
        ++block;
    }
}

/* Neuron k's part of the one-hidden-layer network's derivatives (forward over reverse), from
 * its activation h = h_k, its weights wk = w0_k and w1k: with zdot_k = w0_k . (qdot
 * q_scaler), *e = dU/dz_k = w1_k (1 - h^2) (so dU/dx = sum_k e_k w0_k), *A = dPhi/dz_k =
 * alpha e - d2U/dz_k^2 zdot_k (lam = sum_k A_k w0_k) and *gw1 = dPhi/dw1_k. */
NEP_HD void nep_train_neuron_jvp(int D, const NEP_REAL *wk, NEP_REAL w1k, NEP_REAL h,
                                 const NEP_REAL *qdot, size_t st, const NEP_REAL *scaler,
                                 NEP_REAL alpha, NEP_REAL *e, NEP_REAL *A, NEP_REAL *gw1)
{
    const NEP_REAL zd = nep_network_dot(D, wk, qdot, st, scaler);
    const NEP_REAL dh = (NEP_REAL)1 - h * h;
    *e = w1k * dh;
    const NEP_REAL nf = (NEP_REAL)(-2) * w1k * h * dh * zd; /* d2U/dz_k^2 zdot_k */
    *A = alpha * *e - nf;
    *gw1 = alpha * h - dh * zd;
}

/* dPhi/dw0[k][d] of a neuron with nep_train_neuron_jvp's A and e, for input d (raw descriptor
 * q_d, its derivative qdot_d, q_scaler s_d). */
NEP_HD NEP_REAL nep_train_w0_term(NEP_REAL A, NEP_REAL e, NEP_REAL qd, NEP_REAL qdotd, NEP_REAL s)
{
    return A * qd * s - e * qdotd * s;
}

/* The one-hidden-layer network of nep_train_atom (the block of type ti at par + w0_off):
 * returns U and writes mu = -dU/dx (x = q q_scaler; the caller multiplies by q_scaler) and
 * hidden; with a gradient (want_gradient) also lam = dPhi/dx of Phi = alpha U - dU/dx . xdot,
 * and, when gblock is not NULL, Phi's gradient with respect to the block's parameters (entry
 * k at gblock[k gst]) and the shared bias (*gbias). */
NEP_HD NEP_REAL nep_train_network1(const nep_train_atom_model *m, const NEP_REAL *par,
                                   size_t w0_off, const NEP_REAL *q, const NEP_REAL *qdot,
                                   size_t st, const NEP_REAL *scaler, double alpha,
                                   int want_gradient, NEP_REAL *hidden, double *gblock,
                                   double *gbias, size_t gst, NEP_REAL *lam, NEP_REAL *mu)
{
    const int D = m->dim, N1 = m->num_neurons;
    const NEP_REAL *w0 = par + w0_off;
    const NEP_REAL *b0 = w0 + (size_t)N1 * D;
    const NEP_REAL *w1 = b0 + N1;
    const NEP_REAL U = nep_network_forward(D, N1, w0, b0, w1, par[m->shared_bias],
                                           m->version == 5 ? w1 + N1 : NULL, q, st, scaler,
                                           NULL, hidden, mu, st);
    for (int d = 0; d < D; ++d) {
        lam[d * st] = (NEP_REAL)0;
        mu[d * st] = -mu[d * st];
    }
    if (!want_gradient) return U;
    /* its JVP along qdot, neuron by neuron */
    for (int k = 0; k < N1; ++k) {
        const NEP_REAL *wk = w0 + (size_t)k * D;
        NEP_REAL e, A, gw1;
        nep_train_neuron_jvp(D, wk, w1[k], hidden[k * st], qdot, st, scaler, (NEP_REAL)alpha,
                             &e, &A, &gw1);
        for (int d = 0; d < D; ++d) lam[d * st] += A * wk[d];
        if (gblock) {
            double *gw = gblock + (size_t)k * D * gst;
            for (int d = 0; d < D; ++d)
                gw[d * gst] += (double)nep_train_w0_term(A, e, q[d * st], qdot[d * st], scaler[d]);
            gblock[((size_t)N1 * D + k) * gst] -= (double)A;
            gblock[((size_t)N1 * D + N1 + k) * gst] += (double)gw1;
        }
    }
    if (gblock) {
        *gbias -= alpha;
        if (m->version == 5) gblock[(size_t)(D + 2) * N1 * gst] -= alpha;
    }
    return U;
}

/* Channel n's angular adjoints sigma = dPhi/ds (sg; with a gradient only: sdn not NULL) and
 * tau = dPhi/dsdot (ta) from lam and mu (entries st apart) and the channel's s and sdot
 * (entries sst apart, as in nep_train_channel_descriptors); sg and ta: K entries sst apart,
 * overwritten. */
NEP_HD void nep_train_channel_adjoints(const nep_train_atom_model *m, int n, const NEP_REAL *sn,
                                       const NEP_REAL *sdn, size_t sst, const NEP_REAL *lam,
                                       const NEP_REAL *mu, size_t st, NEP_REAL *sg, NEP_REAL *ta)
{
    const int L = m->l_max, nR = m->n_max_radial, nA = m->n_max_angular, K = m->num_abc;
    const int SG = nep_train_s_stride(m);
    const int want_gradient = sdn != NULL;
    NEP_REAL sl[NEP_TRAIN_NUM_Y], sdl[NEP_TRAIN_NUM_Y];
    NEP_REAL inv_grad[NEP_TRAIN_S_LEN], inv_hvp[NEP_TRAIN_S_LEN];
    for (int k = 0; k < K; ++k) sg[k * sst] = ta[k * sst] = (NEP_REAL)0;
    nep_train_gather(sn, sst, SG, sl);
    if (want_gradient) nep_train_gather(sdn, sst, SG, sdl);
    for (int l = 1; l <= L; ++l) {
        const size_t index = (size_t)nep_angular_descriptor_index(nR, nA, l - 1, n) * st;
        const NEP_REAL la = lam[index], mi = mu[index];
        for (int k = l * l - 1; k < (l + 1) * (l + 1) - 1; ++k) {
            const NEP_REAL w2 = (NEP_REAL)2 * nep_train_w3(l, k);
            if (want_gradient) sg[k * sst] += la * w2 * sl[k] + mi * w2 * sdl[k];
            ta[k * sst] += mi * w2 * sl[k];
        }
    }
    int block = L;
    for (int f = 0; f < 6; ++f) {
        if (!m->flags[f]) continue;
        const size_t index = (size_t)nep_angular_descriptor_index(nR, nA, block, n) * st;
        const NEP_REAL la = lam[index], mi = mu[index];
        nep_train_invariant_grad(f, sl, inv_grad);
        if (!want_gradient) {
            const int size = nep_train_invariant_size(f);
            for (int k = 0; k < size && k < K; ++k) ta[k * sst] += mi * inv_grad[k];
            ++block;
            continue;
        }
        const int size = nep_train_invariant_hvp(f, sl, sdl, inv_hvp);
        for (int k = 0; k < size && k < K; ++k) {
            sg[k * sst] += la * inv_grad[k] + mi * inv_hvp[k];
            ta[k * sst] += mi * inv_grad[k];
        }
        ++block;
    }
}

/* One pair's sums over one angular channel's adjoints (ta, sg: K entries sst apart; sg read
 * only with a gradient): tau . Y, tau . dY/dr (tau_dy[3]; dyr NULL: neither read nor
 * formed, for a gradient pass without forces) and, with a gradient, sigma . Y + tau . Ydot
 * (*sig; else 0). */
NEP_HD void nep_train_pair_channel_sums(int K, const NEP_REAL *ta, const NEP_REAL *sg,
                                        size_t sst, int want_gradient, const NEP_REAL *y,
                                        const NEP_REAL *ydot, NEP_REAL (*dyr)[3],
                                        NEP_REAL *tau_y, NEP_REAL *sig, NEP_REAL *tau_dy)
{
    NEP_REAL ty = (NEP_REAL)0, sg_sum = (NEP_REAL)0;
    NEP_REAL t0 = (NEP_REAL)0, t1 = (NEP_REAL)0, t2 = (NEP_REAL)0;
    if (!dyr) { /* the gradient alone: two of the sums, in the same order */
        for (int k = 0; k < K; ++k) {
            const NEP_REAL tk = ta[k * sst];
            ty += tk * y[k];
            if (want_gradient) sg_sum += sg[k * sst] * y[k] + tk * ydot[k];
        }
        *tau_y = ty;
        *sig = sg_sum;
        return;
    }
    for (int k = 0; k < K; ++k) {
        const NEP_REAL tk = ta[k * sst];
        ty += tk * y[k];
        if (want_gradient) sg_sum += sg[k * sst] * y[k] + tk * ydot[k];
        t0 += tk * dyr[k][0];
        t1 += tk * dyr[k][1];
        t2 += tk * dyr[k][2];
    }
    *tau_y = ty;
    *sig = sg_sum;
    tau_dy[0] = t0;
    tau_dy[1] = t1;
    tau_dy[2] = t2;
}

/* Atom i of type ti, whose pairs are p0 .. p1 - 1 of a neighbour list (neighbor[p], r[3 p]
 * = r_j - r_i; types[j] the neighbours' types), those within the angular cutoff first
 * (p0 .. pa - 1, as nep_neighbor_build and the GPU upload order them), in a structure at `temperature` (K; read by
 * temperature models only, whose last descriptor entry it is: no pair depends on it, so its
 * qdot is 0 and its adjoints are never read by pass 2, while the network's gradient covers
 * its weights like any other input's). par, scaler and zbl ([T*T][10], or NULL) are
 * the model arrays in NEP_REAL; ai = a_i and fadj (a_j = fadj + 3 j) the force adjoint, B
 * the virial adjoint (each NULL: zero), alpha the energy weight. work[k] holds work array k
 * (NEP_TRAIN_WORK_*) with entry e at work[k][e * st]: st = 1 keeps one atom's arrays
 * contiguous (the CPU), st = the threads of a launch interleaves the atoms (the GPU: a warp's
 * 32 threads then read and write 32 neighbouring values at once instead of 32 cache lines).
 * The arithmetic is the same for every st. Adds the gradient contributions to grad (NULL:
 * none; parameter k's at grad[k gst], gst = 1 on the CPU, the threads of a tile on the GPU,
 * whose rows are interleaved like the work arrays), writes v = dU_i/dr_ij to pair_v[3 p], subtracts r_ij (x) v from virial[9] (NULL:
 * not formed) and returns the atom's energy (its network energy and half of its ZBL pair
 * energies).
 * pair_v NULL: a gradient pass whose predictions are known (the trainer's call predicts
 * first, for the loss's adjoints): pass 2 then forms none of the forces' terms (v, the
 * virial, ZBL), so it stops at pa: the pairs beyond the angular cutoff add nothing more
 * (pass 1's per-type sums gave their radial coefficients' gradient); the gradient is the
 * same, bit for bit, and the returned energy is the network's alone. */
NEP_HD double nep_train_atom(const nep_train_atom_model *m, const NEP_REAL *par,
                             const NEP_REAL *scaler, const NEP_REAL *zbl, int ti, size_t p0,
                             size_t pa, size_t p1, const int *neighbor, const double *r_pairs,
                             const int *types, double temperature, const double *ai,
                             const double *fadj, const double *B, double alpha,
                             NEP_REAL *const *work, size_t st, double *grad, size_t gst,
                             double *pair_v, double *virial)
{
    const int T = m->num_types, D = m->dim;
    const int nR = m->n_max_radial, nA = m->n_max_angular;
    const int bR = m->basis_radial, bA = m->basis_angular, L = m->l_max, K = m->num_abc;
    const size_t ns = nep_train_work_length(m, NEP_TRAIN_WORK_S);
    const size_t sy = (size_t)nep_train_s_stride(m) * st; /* from one channel's s-vector to the next */
    NEP_REAL *q = work[NEP_TRAIN_WORK_Q], *qdot = work[NEP_TRAIN_WORK_QDOT];
    NEP_REAL *lam = work[NEP_TRAIN_WORK_LAMBDA], *mu = work[NEP_TRAIN_WORK_MU];
    NEP_REAL *hidden = work[NEP_TRAIN_WORK_HIDDEN];
    NEP_REAL *s = work[NEP_TRAIN_WORK_S], *sdot = work[NEP_TRAIN_WORK_SDOT];
    NEP_REAL *sigma = work[NEP_TRAIN_WORK_SIGMA], *tau = work[NEP_TRAIN_WORK_TAU];
    /* the per-type radial sums F and G, then W over F (nep_train_radial_pair) */
    const size_t bR1 = (size_t)bR + 1, nF = (size_t)T * bR1;
    NEP_REAL *F = work[NEP_TRAIN_WORK_RADIAL], *G = F + nF * st;
    NEP_REAL fk[NEP_TRAIN_MAX_BASIS], fkp[NEP_TRAIN_MAX_BASIS];
    NEP_REAL y[NEP_TRAIN_NUM_Y], dyr[NEP_TRAIN_NUM_Y][3], ydot[NEP_TRAIN_NUM_Y];
    const int want_gradient = grad != NULL;
    for (int d = 0; d < D; ++d) q[d * st] = qdot[d * st] = (NEP_REAL)0;
    /* (the entries of an s-vector beyond K, which the invariants read, stay 0) */
    for (size_t k = 0; k < ns; ++k) s[k * st] = sdot[k * st] = (NEP_REAL)0;
    for (size_t k = 0; k < 2 * nF; ++k) F[k * st] = (NEP_REAL)0;

    /* ---- pass 1: descriptors and their directional derivatives */
    for (size_t p = p0; p < p1; ++p) {
        const int j = neighbor[p], tj = types[j];
        NEP_REAL d, u[3], delta[3];
        const NEP_REAL ddot = nep_train_pair_geometry(r_pairs + 3 * p, ai,
                                                      fadj ? fadj + 3 * (size_t)j : NULL, B, &d,
                                                      u, delta);
        const NEP_REAL rcr = (NEP_REAL)m->rc_radial[ti * T + tj];
        if (d < rcr) {
            nep_train_radial_basis(d, rcr, bR, fk, fkp);
            nep_train_radial_pair(bR + 1, fk, fkp, ddot, F + tj * bR1 * st,
                                  want_gradient ? G + tj * bR1 * st : NULL, st);
        }
        const NEP_REAL rca = (NEP_REAL)m->rc_angular[ti * T + tj];
        if (d < rca) {
            nep_train_radial_basis(d, rca, bA, fk, fkp);
            if (want_gradient) nep_train_angular_tangent(L, d, u, delta, y, ydot);
            else nep_sph(L, u[0], u[1], u[2], y); /* the same values, without the gradient */
            for (int n = 0; n <= nA; ++n) {
                const NEP_REAL *c = par + m->offset_angular + nep_coefficient_index(n, 0, bA + 1, T, ti, tj);
                NEP_REAL *sn = s + (size_t)n * sy;
                if (!want_gradient) {
                    nep_train_s_add(sn, NULL, st, K,
                                    nep_train_channel_pair(bA + 1, c, (size_t)T * T, fk, fkp,
                                                           ddot, NULL),
                                    (NEP_REAL)0, y, NULL);
                    continue;
                }
                NEP_REAL gd;
                const NEP_REAL g = nep_train_channel_pair(bA + 1, c, (size_t)T * T, fk, fkp, ddot,
                                                          &gd);
                nep_train_s_add(sn, sdot + (size_t)n * sy, st, K, g, gd, y, ydot);
            }
        }
    }
    /* the radial channels from the per-type sums, then the invariants and their
     * directional derivatives qdot = dq/ds . sdot */
    for (int n = 0; n <= nR; ++n)
        q[n * st] = nep_train_radial_channel(m, par, ti, n, F, want_gradient ? G : NULL, st,
                                             &qdot[n * st]);
    for (int n = 0; n <= nA; ++n)
        nep_train_channel_descriptors(m, n, s + (size_t)n * sy,
                                      want_gradient ? sdot + (size_t)n * sy : NULL, st, q, qdot,
                                      st);
    if (m->temperature) q[(size_t)(D - 1) * st] = (NEP_REAL)temperature;

    /* ---- network, its parameter gradient and the descriptor adjoints */
    const size_t w0_off = (size_t)nep_network_of_type(m->version, ti) * m->block_size;
    /* U and dU/dq (into mu, negated), with a gradient lam and the network's parameter
     * gradient; a second hidden layer has a network pass of its own */
    const NEP_REAL U =
        m->num_neurons_second > 0
            ? nep_train_network2(m, par, w0_off, m->shared_bias, q, qdot, st, scaler, alpha,
                                 hidden, grad, gst, lam, mu)
            : nep_train_network1(m, par, w0_off, q, qdot, st, scaler, alpha, want_gradient,
                                 hidden, grad ? grad + w0_off * gst : NULL,
                                 grad ? grad + m->shared_bias * gst : NULL, gst, lam, mu);
    double energy = (double)U;
    for (int d = 0; d < D; ++d) {
        lam[d * st] *= scaler[d];
        mu[d * st] *= scaler[d];
    }
    /* the radial coefficients' gradient, one term per coefficient, then W over F */
    for (int t = 0; t < T; ++t)
        for (int k = 0; k < bR + 1; ++k) {
            const size_t at = (t * bR1 + (size_t)k) * st;
            if (grad)
                for (int n = 0; n <= nR; ++n)
                    grad[(m->offset_radial + nep_coefficient_index(n, k, bR + 1, T, ti, t)) * gst] +=
                        nep_train_radial_gradient(lam[n * st], mu[n * st], F[at], G[at]);
            F[at] = nep_train_radial_weight(m, par, ti, t, k, mu, st);
        }
    /* angular adjoints sigma = dPhi/ds and tau = dPhi/dsdot per channel */
    for (int n = 0; n <= nA; ++n)
        nep_train_channel_adjoints(m, n, s + (size_t)n * sy,
                                   want_gradient ? sdot + (size_t)n * sy : NULL, st, lam, mu, st,
                                   sigma + (size_t)n * sy, tau + (size_t)n * sy);

    /* ---- pass 2: pair derivatives (forces, virial) and coefficient gradients */
    const int want_forces = pair_v != NULL;
    for (size_t p = p0; p < (want_forces ? p1 : pa); ++p) {
        const int j = neighbor[p], tj = types[j];
        const double *r = r_pairs + 3 * p;
        NEP_REAL d, u[3], delta[3];
        nep_train_pair_distance(r, &d, u);
        const NEP_REAL rca = (NEP_REAL)m->rc_angular[ti * T + tj];
        /* (a pair of the angular part whose distance rounds to the cutoff in NEP_REAL) */
        if (!want_forces && !(d < rca)) continue;
        NEP_REAL v[3] = {(NEP_REAL)0, (NEP_REAL)0, (NEP_REAL)0}; /* dU_i/dr_ij */
        const NEP_REAL rcr = (NEP_REAL)m->rc_radial[ti * T + tj];
        if (want_forces && d < rcr) {
            nep_train_radial_basis(d, rcr, bR, fk, fkp);
            const NEP_REAL *W = F + tj * bR1 * st;
            NEP_REAL gp = (NEP_REAL)0; /* dU/dd through the radial channels */
            for (int k = 0; k <= bR; ++k) gp += W[(size_t)k * st] * fkp[k];
            for (int c3 = 0; c3 < 3; ++c3) v[c3] += gp * u[c3];
        }
        if (d < rca) {
            const NEP_REAL ddot = nep_train_pair_perturbation(
                r, u, ai, fadj ? fadj + 3 * (size_t)j : NULL, B, delta);
            nep_train_radial_basis(d, rca, bA, fk, fkp);
            if (want_forces) nep_train_angular_pair(L, d, u, delta, y, dyr, ydot);
            else nep_train_angular_tangent(L, d, u, delta, y, ydot); /* no dY/dr needed */
            for (int n = 0; n <= nA; ++n) {
                const size_t off = m->offset_angular + nep_coefficient_index(n, 0, bA + 1, T, ti, tj);
                NEP_REAL tau_y, sig, tau_dy[3];
                nep_train_pair_channel_sums(K, tau + (size_t)n * sy, sigma + (size_t)n * sy, st,
                                            want_gradient, y, ydot, want_forces ? dyr : NULL,
                                            &tau_y, &sig, tau_dy);
                if (want_forces) {
                    NEP_REAL g, gp;
                    nep_channel_deriv(bA + 1, par + off, (size_t)T * T, fk, fkp, &g, &gp);
                    /* dU/ds = -tau */
                    for (int c3 = 0; c3 < 3; ++c3) v[c3] -= gp * tau_y * u[c3] + g * tau_dy[c3];
                }
                if (grad)
                    nep_train_grad_add(grad + off * gst, (size_t)T * T * gst, bA + 1, sig, fk,
                                       tau_y * ddot, fkp);
            }
            if (!want_forces) continue;
            if (m->use_zbl) {
                NEP_REAL phi, dphi;
                nep_zbl_pair(d, m->atomic_numbers[ti], m->atomic_numbers[tj],
                             zbl ? zbl + 10 * (size_t)(ti * T + tj) : NULL, &phi, &dphi);
                energy += 0.5 * (double)phi;
                for (int c3 = 0; c3 < 3; ++c3) v[c3] += (NEP_REAL)0.5 * dphi * u[c3];
            }
        }
        double *vp = pair_v + 3 * p;
        for (int c3 = 0; c3 < 3; ++c3) vp[c3] = (double)v[c3];
        if (virial)
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) virial[3 * a + b] -= r[a] * (double)v[b];
    }
    return energy;
}

#endif
