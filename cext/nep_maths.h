/*
 * nepzbl: the per-pair and per-atom maths of NEP and ZBL, shared by the C engine
 * (nep_core.c), the CUDA engine and the training-gradient code.
 *
 * Header-only, C99 and CUDA. Everything is written in NEP_REAL (double unless the includer
 * defines it first, e.g. `#define NEP_REAL float` for a float32 GPU copy). Every function is
 * `static inline` (plus `__host__ __device__` under nvcc), holds no tables in global memory
 * (constants are inlined in the code so that the same source works on a GPU) and allocates
 * nothing. Formulas: ../shared/docs/nep-reference.md sections 2 and 3.
 *
 * Contents
 *   nep_cutoff          fc(d) and fc'(d)                                    (section 2.2)
 *   nep_chebyshev       f_k(d), f_k'(d), k = 0..N_bas                         (section 2.3)
 *   nep_chebyshev_value f_k(d) only
 *   nep_sph             Y_kappa(x, y, z), l = 1..L (kappa = l^2-1+k)          (section 2.6)
 *   nep_sph_grad        Y and its polynomial gradient, x, y, z independent
 *   nep_sph_contract    sum_k H_k Y_k and sum_k K_k grad Y_k in one pass (force pass)
 *   nep_c3b             the 3-body weights W(l, m) as GPUMD's 80-entry C3B table
 *   nep_q3b, nep_q3b_grad                 the L three-body invariants and their s-gradients
 *   nep_q222 ... nep_q134 (+ _grad)       the invariants of section 2.7 and their s-gradients
 *   nep_invariant, nep_invariant_grad     the same by enum nep_flag index (0..5)
 *   nep_zbl, nep_zbl_pair, nep_zbl_ainv   smoothed ZBL pair energy and derivative (section 3)
 *
 * Stability: after the NEP_MATHS_STABLE marker below, existing signatures never change;
 * only new functions are added.
 */
/* NEP_MATHS_STABLE */
#ifndef NEPZBL_NEP_MATHS_H
#define NEPZBL_NEP_MATHS_H

#include "nep_hd.h"

#ifndef NEP_REAL
#define NEP_REAL double
#endif

#include <math.h>

/* Largest l of the 3-body terms, and the length of a full s-vector (l = 1..8). */
#define NEP_MAX_L 8
#define NEP_NUM_ABC 80
/* The optional invariants read s up to index 23 (l = 4) even when L is smaller; an s-vector
 * buffer is at least this long, zero beyond (L+1)^2-1 (GPUMD leaves those s values 0). */
#define NEP_MIN_S_LEN 24

/* Coulomb constant 1/(4 pi eps0) in eV Angstrom, as in GPUMD and NEP_CPU (K_C_SP). */
#define NEP_K_C_SP 14.399645
/* 1/a = (Z_a^0.23 + Z_b^0.23) * NEP_ZBL_AINV_FACTOR. GPUMD and NEP_CPU use 2.134563, the
 * 7-digit value of 1/0.46848 (which is 2.1345628...); bit parity with them needs theirs. */
#define NEP_ZBL_AINV_FACTOR 2.134563
#define NEP_PI 3.141592653589793
#define NEP_PI_HALF 1.570796326794897

/* Number of Y / s components for a given L: (L+1)^2 - 1. */
NEP_HD int nep_num_abc(int L) { return (L + 1) * (L + 1) - 1; }

/* Cutoff function fc(d) = (1 + cos(pi d / rc)) / 2 and its derivative, for d < rc
 * (zero at and beyond rc). rcinv = 1/rc is passed because callers keep it per pair. */
NEP_HD void nep_cutoff(NEP_REAL d, NEP_REAL rc, NEP_REAL rcinv, NEP_REAL *fc, NEP_REAL *fcp)
{
    if (d < rc) {
        const NEP_REAL x = d * rcinv;
#ifdef __CUDA_ARCH__
        /* sin(pi x) and cos(pi x) in one call whose argument reduction is exact and short:
         * sin and cos of a general argument each carry a slow path for huge arguments (with
         * a local-memory table) that x in [0, 1) never takes (CUDA Best Practices Guide) */
        NEP_REAL s, c;
        sincospi(x, &s, &c);
        *fc = (NEP_REAL)0.5 * c + (NEP_REAL)0.5;
        *fcp = -(NEP_REAL)NEP_PI_HALF * s * rcinv;
#else
        *fc = (NEP_REAL)0.5 * cos((NEP_REAL)NEP_PI * x) + (NEP_REAL)0.5;
        *fcp = -(NEP_REAL)NEP_PI_HALF * sin((NEP_REAL)NEP_PI * x) * rcinv;
#endif
    } else {
        *fc = (NEP_REAL)0;
        *fcp = (NEP_REAL)0;
    }
}

/* Chebyshev radial basis f_k(d) = (T_k(x) + 1)/2 fc(d), x = 2 (d/rc - 1)^2 - 1, and its
 * derivative f_k'(d), for k = 0..nbas (f and fp hold nbas+1 values). fc, fcp from
 * nep_cutoff. Same operation order as NEP_CPU's find_fn_and_fnp. */
NEP_HD void nep_chebyshev(int nbas, NEP_REAL d, NEP_REAL rcinv, NEP_REAL fc, NEP_REAL fcp,
                          NEP_REAL *f, NEP_REAL *fp)
{
    const NEP_REAL r = d * rcinv - (NEP_REAL)1;
    const NEP_REAL x = (NEP_REAL)2 * r * r - (NEP_REAL)1;
    const NEP_REAL half_dxdd = (NEP_REAL)2 * r * rcinv; /* (1/2) dx/dd */
    NEP_REAL t0 = (NEP_REAL)1, t1 = x, u0 = (NEP_REAL)1, u1 = (NEP_REAL)2 * x;
    /* k = 0: T_0 = 1, T_0' = 0 */
    f[0] = fc;
    fp[0] = fcp;
    if (nbas < 1) return;
    {
        const NEP_REAL fk = (x + (NEP_REAL)1) * (NEP_REAL)0.5;
        fp[1] = half_dxdd * fc + fk * fcp;
        f[1] = fk * fc;
    }
    for (int k = 2; k <= nbas; ++k) {
        const NEP_REAL t2 = (NEP_REAL)2 * x * t1 - t0; /* T_k */
        const NEP_REAL tp = (NEP_REAL)k * u1;           /* T_k' = k U_{k-1} */
        const NEP_REAL u2 = (NEP_REAL)2 * x * u1 - u0;
        const NEP_REAL fk = (t2 + (NEP_REAL)1) * (NEP_REAL)0.5;
        fp[k] = tp * half_dxdd * fc + fk * fcp;
        f[k] = fk * fc;
        t0 = t1;
        t1 = t2;
        u0 = u1;
        u1 = u2;
    }
}

/* f_k(d) only, k = 0..nbas. */
NEP_HD void nep_chebyshev_value(int nbas, NEP_REAL d, NEP_REAL rcinv, NEP_REAL fc, NEP_REAL *f)
{
    const NEP_REAL r = d * rcinv - (NEP_REAL)1;
    const NEP_REAL x = (NEP_REAL)2 * r * r - (NEP_REAL)1;
    NEP_REAL t0 = (NEP_REAL)1, t1 = x;
    f[0] = fc;
    if (nbas < 1) return;
    f[1] = (x + (NEP_REAL)1) * (NEP_REAL)0.5 * fc;
    for (int k = 2; k <= nbas; ++k) {
        const NEP_REAL t2 = (NEP_REAL)2 * x * t1 - t0;
        f[k] = (t2 + (NEP_REAL)1) * (NEP_REAL)0.5 * fc;
        t0 = t1;
        t1 = t2;
    }
}

/* ------------------------------------------------------------------------------- ZBL */

/* Inverse screening length 1/a for atomic numbers za, zb (counted from 1). */
NEP_HD NEP_REAL nep_zbl_ainv(NEP_REAL za, NEP_REAL zb)
{
    return (pow(za, (NEP_REAL)0.23) + pow(zb, (NEP_REAL)0.23)) * (NEP_REAL)NEP_ZBL_AINV_FACTOR;
}

/* Smoothed ZBL pair energy phi(d) and dphi/dd for one pair.
 *   zizj  = NEP_K_C_SP * Z_a * Z_b   (eV Angstrom)
 *   ainv  = nep_zbl_ainv(Z_a, Z_b)
 *   row   = r_inner, r_outer, A1, B1, A2, B2, A3, B3, A4, B4 (a row of Model.zbl_table())
 * Switching: f_s = 1 for d < r_inner (never, when r_inner = 0: typewise mode),
 * (1 + cos(pi (d - r1)/(r2 - r1)))/2 for r_inner <= d < r_outer, 0 beyond. */
NEP_HD void nep_zbl(NEP_REAL d, NEP_REAL zizj, NEP_REAL ainv, const NEP_REAL *row,
                    NEP_REAL *phi, NEP_REAL *dphi)
{
    const NEP_REAL r1 = row[0], r2 = row[1];
    if (!(d < r2)) {
        *phi = (NEP_REAL)0;
        *dphi = (NEP_REAL)0;
        return;
    }
    const NEP_REAL dinv = (NEP_REAL)1 / d;
    const NEP_REAL x = d * ainv;
    NEP_REAL f = (NEP_REAL)0, fp = (NEP_REAL)0;
    for (int k = 0; k < 4; ++k) {
        const NEP_REAL tmp = row[2 + 2 * k] * exp(-row[3 + 2 * k] * x);
        f += tmp;
        fp -= row[3 + 2 * k] * tmp;
    }
    f *= zizj;
    fp *= zizj * ainv;
    fp = fp * dinv - f * dinv * dinv;
    f *= dinv;
    NEP_REAL fs, fsp;
    if (d < r1) {
        fs = (NEP_REAL)1;
        fsp = (NEP_REAL)0;
    } else {
        const NEP_REAL pi_factor = (NEP_REAL)NEP_PI / (r2 - r1);
#ifdef __CUDA_ARCH__
        NEP_REAL s, c; /* as in nep_cutoff: (d - r1) / (r2 - r1) is in [0, 1) */
        sincospi((d - r1) / (r2 - r1), &s, &c);
        fs = c * (NEP_REAL)0.5 + (NEP_REAL)0.5;
        fsp = -s * pi_factor * (NEP_REAL)0.5;
#else
        fs = cos(pi_factor * (d - r1)) * (NEP_REAL)0.5 + (NEP_REAL)0.5;
        fsp = -sin(pi_factor * (d - r1)) * pi_factor * (NEP_REAL)0.5;
#endif
    }
    *dphi = fp * fs + f * fsp;
    *phi = f * fs;
}

/* Convenience form of nep_zbl taking the atomic numbers. */
NEP_HD void nep_zbl_pair(NEP_REAL d, int za, int zb, const NEP_REAL *row, NEP_REAL *phi,
                         NEP_REAL *dphi)
{
    nep_zbl(d, (NEP_REAL)NEP_K_C_SP * (NEP_REAL)za * (NEP_REAL)zb,
            nep_zbl_ainv((NEP_REAL)za, (NEP_REAL)zb), row, phi, dphi);
}

/* ------------------------------------------------------------- spherical harmonics */
/* nep_sph, nep_sph_contract and nep_sph_grad (from a table of z-polynomials), nep_c3b (the
 * 3-body weights w_kappa) and nep_q3b (the L three-body invariants of one channel, from
 * GPUMD's C3B table): generated by cext/tools/gen_spherical_harmonics.py (edit the generator,
 * not the output). */
#include "nep_sph.h"

/* G[kappa] += dEdq[l-1] * dq_l/ds_kappa for the three-body invariants, l = 1..L. */
NEP_HD void nep_q3b_grad(int L, const NEP_REAL *s, const NEP_REAL *dEdq, NEP_REAL *G)
{
    for (int l = 1; l <= L; ++l) {
        const int base = l * l - 1;
        const NEP_REAL f2 = (NEP_REAL)2 * dEdq[l - 1], f4 = (NEP_REAL)4 * dEdq[l - 1];
        G[base] += f2 * nep_c3b(base) * s[base];
        for (int k = 1; k <= 2 * l; ++k) G[base + k] += f4 * nep_c3b(base + k) * s[base + k];
    }
}

/* 4-body invariant q_222 (needs s_3..s_7). */
NEP_HD NEP_REAL nep_q222(const NEP_REAL *s)
{
    return (NEP_REAL)-0.007499480826664 * s[3] * s[3] * s[3]
         + (NEP_REAL)-0.134990654879954 * s[3] * s[4] * s[4]
         + (NEP_REAL)-0.134990654879954 * s[3] * s[5] * s[5]
         + (NEP_REAL)0.067495327439977 * s[3] * s[6] * s[6]
         + (NEP_REAL)0.067495327439977 * s[3] * s[7] * s[7]
         + (NEP_REAL)0.404971964639861 * s[6] * s[5] * s[5]
         + (NEP_REAL)-0.404971964639861 * s[6] * s[4] * s[4]
         + (NEP_REAL)-0.809943929279723 * s[4] * s[5] * s[7];
}

/* G[k] += factor * dq222/ds_k. */
NEP_HD void nep_q222_grad(const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    G[3] += factor * ((NEP_REAL)-0.022498442479991998 * s[3] * s[3] + (NEP_REAL)-0.134990654879954 * s[4] * s[4] + (NEP_REAL)-0.134990654879954 * s[5] * s[5] + (NEP_REAL)0.067495327439977 * s[6] * s[6] + (NEP_REAL)0.067495327439977 * s[7] * s[7]);
    G[4] += factor * ((NEP_REAL)-0.269981309759908 * s[3] * s[4] + (NEP_REAL)-0.809943929279722 * s[6] * s[4] + (NEP_REAL)-0.809943929279723 * s[5] * s[7]);
    G[5] += factor * ((NEP_REAL)-0.269981309759908 * s[3] * s[5] + (NEP_REAL)0.809943929279722 * s[6] * s[5] + (NEP_REAL)-0.809943929279723 * s[4] * s[7]);
    G[6] += factor * ((NEP_REAL)0.134990654879954 * s[3] * s[6] + (NEP_REAL)0.404971964639861 * s[5] * s[5] + (NEP_REAL)-0.404971964639861 * s[4] * s[4]);
    G[7] += factor * ((NEP_REAL)0.134990654879954 * s[3] * s[7] + (NEP_REAL)-0.809943929279723 * s[4] * s[5]);
}

/* 5-body invariant q_1111 (needs s_0..s_2). */
NEP_HD NEP_REAL nep_q1111(const NEP_REAL *s)
{
    return (NEP_REAL)0.026596810706114 * s[0] * s[0] * s[0] * s[0]
         + (NEP_REAL)0.053193621412227 * s[0] * s[0] * s[1] * s[1]
         + (NEP_REAL)0.053193621412227 * s[0] * s[0] * s[2] * s[2]
         + (NEP_REAL)0.026596810706114 * s[1] * s[1] * s[1] * s[1]
         + (NEP_REAL)0.053193621412228 * s[1] * s[1] * s[2] * s[2]
         + (NEP_REAL)0.026596810706114 * s[2] * s[2] * s[2] * s[2];
}

/* G[k] += factor * dq1111/ds_k. */
NEP_HD void nep_q1111_grad(const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    G[0] += factor * ((NEP_REAL)0.106387242824456 * s[0] * s[0] * s[0] + (NEP_REAL)0.106387242824454 * s[0] * s[1] * s[1] + (NEP_REAL)0.106387242824454 * s[0] * s[2] * s[2]);
    G[1] += factor * ((NEP_REAL)0.106387242824454 * s[0] * s[0] * s[1] + (NEP_REAL)0.106387242824456 * s[1] * s[1] * s[1] + (NEP_REAL)0.106387242824456 * s[1] * s[2] * s[2]);
    G[2] += factor * ((NEP_REAL)0.106387242824454 * s[0] * s[0] * s[2] + (NEP_REAL)0.106387242824456 * s[1] * s[1] * s[2] + (NEP_REAL)0.106387242824456 * s[2] * s[2] * s[2]);
}

/* 4-body invariant q_112 (needs s_0..s_7). */
NEP_HD NEP_REAL nep_q112(const NEP_REAL *s)
{
    return (NEP_REAL)0.027493550848847 * s[0] * s[0] * s[3]
         + (NEP_REAL)0.16496130509308 * s[0] * s[1] * s[4]
         + (NEP_REAL)0.16496130509308 * s[0] * s[2] * s[5]
         + (NEP_REAL)-0.013746775424423 * s[3] * s[1] * s[1]
         + (NEP_REAL)-0.013746775424423 * s[3] * s[2] * s[2]
         + (NEP_REAL)0.04124032627327 * s[6] * s[1] * s[1]
         + (NEP_REAL)-0.04124032627327 * s[6] * s[2] * s[2]
         + (NEP_REAL)0.08248065254654 * s[1] * s[2] * s[7];
}

/* G[k] += factor * dq112/ds_k. */
NEP_HD void nep_q112_grad(const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    G[0] += factor * ((NEP_REAL)0.054987101697694 * s[0] * s[3] + (NEP_REAL)0.16496130509308 * s[1] * s[4] + (NEP_REAL)0.16496130509308 * s[2] * s[5]);
    G[1] += factor * ((NEP_REAL)0.16496130509308 * s[0] * s[4] + (NEP_REAL)-0.027493550848846 * s[3] * s[1] + (NEP_REAL)0.08248065254654 * s[6] * s[1] + (NEP_REAL)0.08248065254654 * s[2] * s[7]);
    G[2] += factor * ((NEP_REAL)0.16496130509308 * s[0] * s[5] + (NEP_REAL)-0.027493550848846 * s[3] * s[2] + (NEP_REAL)-0.08248065254654 * s[6] * s[2] + (NEP_REAL)0.08248065254654 * s[1] * s[7]);
    G[3] += factor * ((NEP_REAL)0.027493550848847 * s[0] * s[0] + (NEP_REAL)-0.013746775424423 * s[1] * s[1] + (NEP_REAL)-0.013746775424423 * s[2] * s[2]);
    G[4] += factor * ((NEP_REAL)0.16496130509308 * s[0] * s[1]);
    G[5] += factor * ((NEP_REAL)0.16496130509308 * s[0] * s[2]);
    G[6] += factor * ((NEP_REAL)0.04124032627327 * s[1] * s[1] + (NEP_REAL)-0.04124032627327 * s[2] * s[2]);
    G[7] += factor * ((NEP_REAL)0.08248065254654 * s[1] * s[2]);
}

/* 4-body invariant q_123 (needs s_0..s_14). */
NEP_HD NEP_REAL nep_q123(const NEP_REAL *s)
{
    return (NEP_REAL)-0.168362926992344 * s[12] * s[2] * s[4]
         + (NEP_REAL)0.168362926992344 * s[11] * s[2] * s[5]
         + (NEP_REAL)-0.168362926992344 * s[1] * s[11] * s[4]
         + (NEP_REAL)-0.168362926992344 * s[1] * s[12] * s[5]
         + (NEP_REAL)-0.084181463496172 * s[0] * s[11] * s[6]
         + (NEP_REAL)-0.084181463496172 * s[0] * s[12] * s[7]
         + (NEP_REAL)-0.042090731748086 * s[14] * s[2] * s[6]
         + (NEP_REAL)0.042090731748086 * s[13] * s[2] * s[7]
         + (NEP_REAL)-0.042090731748086 * s[1] * s[13] * s[6]
         + (NEP_REAL)-0.042090731748086 * s[1] * s[14] * s[7]
         + (NEP_REAL)-0.067345170796937 * s[10] * s[0] * s[5]
         + (NEP_REAL)-0.067345170796937 * s[0] * s[4] * s[9]
         + (NEP_REAL)-0.016836292699234 * s[10] * s[2] * s[3]
         + (NEP_REAL)-0.016836292699234 * s[0] * s[3] * s[8]
         + (NEP_REAL)-0.016836292699234 * s[1] * s[3] * s[9]
         + (NEP_REAL)-0.008418146349617 * s[10] * s[2] * s[6]
         + (NEP_REAL)0.008418146349617 * s[10] * s[1] * s[7]
         + (NEP_REAL)0.008418146349617 * s[2] * s[7] * s[9]
         + (NEP_REAL)0.008418146349617 * s[1] * s[6] * s[9]
         + (NEP_REAL)0.033672585398469 * s[2] * s[5] * s[8]
         + (NEP_REAL)0.033672585398469 * s[1] * s[4] * s[8];
}

/* G[k] += factor * dq123/ds_k. */
NEP_HD void nep_q123_grad(const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    G[0] += factor * ((NEP_REAL)-0.084181463496172 * s[11] * s[6] + (NEP_REAL)-0.084181463496172 * s[12] * s[7] + (NEP_REAL)-0.067345170796937 * s[10] * s[5] + (NEP_REAL)-0.067345170796937 * s[4] * s[9] + (NEP_REAL)-0.016836292699234 * s[3] * s[8]);
    G[1] += factor * ((NEP_REAL)-0.168362926992344 * s[11] * s[4] + (NEP_REAL)-0.168362926992344 * s[12] * s[5] + (NEP_REAL)-0.042090731748086 * s[13] * s[6] + (NEP_REAL)-0.042090731748086 * s[14] * s[7] + (NEP_REAL)-0.016836292699234 * s[3] * s[9] + (NEP_REAL)0.008418146349617 * s[10] * s[7] + (NEP_REAL)0.008418146349617 * s[6] * s[9] + (NEP_REAL)0.033672585398469 * s[4] * s[8]);
    G[2] += factor * ((NEP_REAL)-0.168362926992344 * s[12] * s[4] + (NEP_REAL)0.168362926992344 * s[11] * s[5] + (NEP_REAL)-0.042090731748086 * s[14] * s[6] + (NEP_REAL)0.042090731748086 * s[13] * s[7] + (NEP_REAL)-0.016836292699234 * s[10] * s[3] + (NEP_REAL)-0.008418146349617 * s[10] * s[6] + (NEP_REAL)0.008418146349617 * s[7] * s[9] + (NEP_REAL)0.033672585398469 * s[5] * s[8]);
    G[3] += factor * ((NEP_REAL)-0.016836292699234 * s[10] * s[2] + (NEP_REAL)-0.016836292699234 * s[0] * s[8] + (NEP_REAL)-0.016836292699234 * s[1] * s[9]);
    G[4] += factor * ((NEP_REAL)-0.168362926992344 * s[12] * s[2] + (NEP_REAL)-0.168362926992344 * s[1] * s[11] + (NEP_REAL)-0.067345170796937 * s[0] * s[9] + (NEP_REAL)0.033672585398469 * s[1] * s[8]);
    G[5] += factor * ((NEP_REAL)0.168362926992344 * s[11] * s[2] + (NEP_REAL)-0.168362926992344 * s[1] * s[12] + (NEP_REAL)-0.067345170796937 * s[10] * s[0] + (NEP_REAL)0.033672585398469 * s[2] * s[8]);
    G[6] += factor * ((NEP_REAL)-0.084181463496172 * s[0] * s[11] + (NEP_REAL)-0.042090731748086 * s[14] * s[2] + (NEP_REAL)-0.042090731748086 * s[1] * s[13] + (NEP_REAL)-0.008418146349617 * s[10] * s[2] + (NEP_REAL)0.008418146349617 * s[1] * s[9]);
    G[7] += factor * ((NEP_REAL)-0.084181463496172 * s[0] * s[12] + (NEP_REAL)0.042090731748086 * s[13] * s[2] + (NEP_REAL)-0.042090731748086 * s[1] * s[14] + (NEP_REAL)0.008418146349617 * s[10] * s[1] + (NEP_REAL)0.008418146349617 * s[2] * s[9]);
    G[8] += factor * ((NEP_REAL)-0.016836292699234 * s[0] * s[3] + (NEP_REAL)0.033672585398469 * s[2] * s[5] + (NEP_REAL)0.033672585398469 * s[1] * s[4]);
    G[9] += factor * ((NEP_REAL)-0.067345170796937 * s[0] * s[4] + (NEP_REAL)-0.016836292699234 * s[1] * s[3] + (NEP_REAL)0.008418146349617 * s[2] * s[7] + (NEP_REAL)0.008418146349617 * s[1] * s[6]);
    G[10] += factor * ((NEP_REAL)-0.067345170796937 * s[0] * s[5] + (NEP_REAL)-0.016836292699234 * s[2] * s[3] + (NEP_REAL)-0.008418146349617 * s[2] * s[6] + (NEP_REAL)0.008418146349617 * s[1] * s[7]);
    G[11] += factor * ((NEP_REAL)0.168362926992344 * s[2] * s[5] + (NEP_REAL)-0.168362926992344 * s[1] * s[4] + (NEP_REAL)-0.084181463496172 * s[0] * s[6]);
    G[12] += factor * ((NEP_REAL)-0.168362926992344 * s[2] * s[4] + (NEP_REAL)-0.168362926992344 * s[1] * s[5] + (NEP_REAL)-0.084181463496172 * s[0] * s[7]);
    G[13] += factor * ((NEP_REAL)0.042090731748086 * s[2] * s[7] + (NEP_REAL)-0.042090731748086 * s[1] * s[6]);
    G[14] += factor * ((NEP_REAL)-0.042090731748086 * s[2] * s[6] + (NEP_REAL)-0.042090731748086 * s[1] * s[7]);
}

/* 4-body invariant q_233 (needs s_3..s_14). */
NEP_HD NEP_REAL nep_q233(const NEP_REAL *s)
{
    return (NEP_REAL)0.008572620635186 * s[3] * s[8] * s[8]
         + (NEP_REAL)0.009644198214584 * s[3] * s[10] * s[10]
         + (NEP_REAL)0.009644198214584 * s[3] * s[9] * s[9]
         + (NEP_REAL)0.019288396429168 * s[6] * s[9] * s[9]
         + (NEP_REAL)-0.019288396429168 * s[6] * s[10] * s[10]
         + (NEP_REAL)0.025717861905558 * s[4] * s[8] * s[9]
         + (NEP_REAL)0.025717861905558 * s[10] * s[5] * s[8]
         + (NEP_REAL)-0.026789439484956 * s[3] * s[13] * s[13]
         + (NEP_REAL)-0.026789439484956 * s[3] * s[14] * s[14]
         + (NEP_REAL)-0.032147327381947 * s[14] * s[7] * s[9]
         + (NEP_REAL)-0.032147327381947 * s[13] * s[6] * s[9]
         + (NEP_REAL)-0.032147327381947 * s[10] * s[14] * s[6]
         + (NEP_REAL)0.032147327381947 * s[10] * s[13] * s[7]
         + (NEP_REAL)0.038576792858337 * s[10] * s[7] * s[9]
         + (NEP_REAL)-0.12858930952779 * s[11] * s[6] * s[8]
         + (NEP_REAL)-0.12858930952779 * s[12] * s[7] * s[8]
         + (NEP_REAL)0.192883964291685 * s[11] * s[4] * s[9]
         + (NEP_REAL)0.192883964291685 * s[12] * s[5] * s[9]
         + (NEP_REAL)0.192883964291685 * s[10] * s[12] * s[4]
         + (NEP_REAL)-0.192883964291685 * s[10] * s[11] * s[5]
         + (NEP_REAL)0.321473273819474 * s[12] * s[14] * s[4]
         + (NEP_REAL)0.321473273819474 * s[11] * s[14] * s[5]
         + (NEP_REAL)0.321473273819474 * s[13] * s[11] * s[4]
         + (NEP_REAL)-0.321473273819474 * s[13] * s[12] * s[5];
}

/* G[k] += factor * dq233/ds_k. */
NEP_HD void nep_q233_grad(const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    G[3] += factor * ((NEP_REAL)0.008572620635186 * s[8] * s[8] + (NEP_REAL)0.009644198214584 * s[10] * s[10] + (NEP_REAL)0.009644198214584 * s[9] * s[9] + (NEP_REAL)-0.026789439484956 * s[13] * s[13] + (NEP_REAL)-0.026789439484956 * s[14] * s[14]);
    G[4] += factor * ((NEP_REAL)0.025717861905558 * s[8] * s[9] + (NEP_REAL)0.192883964291685 * s[11] * s[9] + (NEP_REAL)0.192883964291685 * s[10] * s[12] + (NEP_REAL)0.321473273819474 * s[12] * s[14] + (NEP_REAL)0.321473273819474 * s[13] * s[11]);
    G[5] += factor * ((NEP_REAL)0.025717861905558 * s[10] * s[8] + (NEP_REAL)0.192883964291685 * s[12] * s[9] + (NEP_REAL)-0.192883964291685 * s[10] * s[11] + (NEP_REAL)0.321473273819474 * s[11] * s[14] + (NEP_REAL)-0.321473273819474 * s[13] * s[12]);
    G[6] += factor * ((NEP_REAL)0.019288396429168 * s[9] * s[9] + (NEP_REAL)-0.019288396429168 * s[10] * s[10] + (NEP_REAL)-0.032147327381947 * s[13] * s[9] + (NEP_REAL)-0.032147327381947 * s[10] * s[14] + (NEP_REAL)-0.12858930952779 * s[11] * s[8]);
    G[7] += factor * ((NEP_REAL)-0.032147327381947 * s[14] * s[9] + (NEP_REAL)0.032147327381947 * s[10] * s[13] + (NEP_REAL)0.038576792858337 * s[10] * s[9] + (NEP_REAL)-0.12858930952779 * s[12] * s[8]);
    G[8] += factor * ((NEP_REAL)0.017145241270372 * s[3] * s[8] + (NEP_REAL)0.025717861905558 * s[4] * s[9] + (NEP_REAL)0.025717861905558 * s[10] * s[5] + (NEP_REAL)-0.12858930952779 * s[11] * s[6] + (NEP_REAL)-0.12858930952779 * s[12] * s[7]);
    G[9] += factor * ((NEP_REAL)0.019288396429168 * s[3] * s[9] + (NEP_REAL)0.038576792858336 * s[6] * s[9] + (NEP_REAL)0.025717861905558 * s[4] * s[8] + (NEP_REAL)-0.032147327381947 * s[14] * s[7] + (NEP_REAL)-0.032147327381947 * s[13] * s[6] + (NEP_REAL)0.038576792858337 * s[10] * s[7] + (NEP_REAL)0.192883964291685 * s[11] * s[4] + (NEP_REAL)0.192883964291685 * s[12] * s[5]);
    G[10] += factor * ((NEP_REAL)0.019288396429168 * s[3] * s[10] + (NEP_REAL)-0.038576792858336 * s[6] * s[10] + (NEP_REAL)0.025717861905558 * s[5] * s[8] + (NEP_REAL)-0.032147327381947 * s[14] * s[6] + (NEP_REAL)0.032147327381947 * s[13] * s[7] + (NEP_REAL)0.038576792858337 * s[7] * s[9] + (NEP_REAL)0.192883964291685 * s[12] * s[4] + (NEP_REAL)-0.192883964291685 * s[11] * s[5]);
    G[11] += factor * ((NEP_REAL)-0.12858930952779 * s[6] * s[8] + (NEP_REAL)0.192883964291685 * s[4] * s[9] + (NEP_REAL)-0.192883964291685 * s[10] * s[5] + (NEP_REAL)0.321473273819474 * s[14] * s[5] + (NEP_REAL)0.321473273819474 * s[13] * s[4]);
    G[12] += factor * ((NEP_REAL)-0.12858930952779 * s[7] * s[8] + (NEP_REAL)0.192883964291685 * s[5] * s[9] + (NEP_REAL)0.192883964291685 * s[10] * s[4] + (NEP_REAL)0.321473273819474 * s[14] * s[4] + (NEP_REAL)-0.321473273819474 * s[13] * s[5]);
    G[13] += factor * ((NEP_REAL)-0.053578878969912 * s[3] * s[13] + (NEP_REAL)-0.032147327381947 * s[6] * s[9] + (NEP_REAL)0.032147327381947 * s[10] * s[7] + (NEP_REAL)0.321473273819474 * s[11] * s[4] + (NEP_REAL)-0.321473273819474 * s[12] * s[5]);
    G[14] += factor * ((NEP_REAL)-0.053578878969912 * s[3] * s[14] + (NEP_REAL)-0.032147327381947 * s[7] * s[9] + (NEP_REAL)-0.032147327381947 * s[10] * s[6] + (NEP_REAL)0.321473273819474 * s[12] * s[4] + (NEP_REAL)0.321473273819474 * s[11] * s[5]);
}

/* 4-body invariant q_134 (needs s_0..s_23). */
NEP_HD NEP_REAL nep_q134(const NEP_REAL *s)
{
    return (NEP_REAL)-0.003645164295772 * s[10] * s[15] * s[2]
         + (NEP_REAL)-0.003645164295772 * s[1] * s[15] * s[9]
         + (NEP_REAL)0.004860219061029 * s[0] * s[15] * s[8]
         + (NEP_REAL)-0.006075273826286 * s[1] * s[13] * s[18]
         + (NEP_REAL)-0.006075273826286 * s[1] * s[14] * s[19]
         + (NEP_REAL)-0.006075273826286 * s[2] * s[14] * s[18]
         + (NEP_REAL)0.006075273826286 * s[2] * s[13] * s[19]
         + (NEP_REAL)-0.018225821478859 * s[10] * s[18] * s[2]
         + (NEP_REAL)0.018225821478859 * s[1] * s[10] * s[19]
         + (NEP_REAL)0.018225821478859 * s[1] * s[18] * s[9]
         + (NEP_REAL)0.018225821478859 * s[2] * s[19] * s[9]
         + (NEP_REAL)0.024301095305146 * s[1] * s[16] * s[8]
         + (NEP_REAL)0.024301095305146 * s[2] * s[17] * s[8]
         + (NEP_REAL)0.036451642957719 * s[0] * s[10] * s[17]
         + (NEP_REAL)0.036451642957719 * s[0] * s[16] * s[9]
         + (NEP_REAL)-0.036451642957719 * s[1] * s[11] * s[16]
         + (NEP_REAL)-0.036451642957719 * s[1] * s[12] * s[17]
         + (NEP_REAL)-0.036451642957719 * s[2] * s[12] * s[16]
         + (NEP_REAL)0.036451642957719 * s[2] * s[11] * s[17]
         + (NEP_REAL)0.042526916784005 * s[1] * s[13] * s[22]
         + (NEP_REAL)0.042526916784005 * s[1] * s[14] * s[23]
         + (NEP_REAL)-0.042526916784005 * s[2] * s[14] * s[22]
         + (NEP_REAL)0.042526916784005 * s[2] * s[13] * s[23]
         + (NEP_REAL)0.072903285915437 * s[0] * s[11] * s[18]
         + (NEP_REAL)0.072903285915437 * s[0] * s[12] * s[19]
         + (NEP_REAL)0.08505383356801 * s[0] * s[13] * s[20]
         + (NEP_REAL)0.08505383356801 * s[0] * s[14] * s[21]
         + (NEP_REAL)0.25516150070403 * s[1] * s[11] * s[20]
         + (NEP_REAL)0.25516150070403 * s[1] * s[12] * s[21]
         + (NEP_REAL)-0.25516150070403 * s[2] * s[12] * s[20]
         + (NEP_REAL)0.25516150070403 * s[2] * s[11] * s[21];
}

/* G[k] += factor * dq134/ds_k. */
NEP_HD void nep_q134_grad(const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    G[0] += factor * ((NEP_REAL)0.004860219061029 * s[15] * s[8] + (NEP_REAL)0.036451642957719 * s[10] * s[17] + (NEP_REAL)0.036451642957719 * s[16] * s[9] + (NEP_REAL)0.072903285915437 * s[11] * s[18] + (NEP_REAL)0.072903285915437 * s[12] * s[19] + (NEP_REAL)0.08505383356801 * s[13] * s[20] + (NEP_REAL)0.08505383356801 * s[14] * s[21]);
    G[1] += factor * ((NEP_REAL)-0.003645164295772 * s[15] * s[9] + (NEP_REAL)-0.006075273826286 * s[13] * s[18] + (NEP_REAL)-0.006075273826286 * s[14] * s[19] + (NEP_REAL)0.018225821478859 * s[10] * s[19] + (NEP_REAL)0.018225821478859 * s[18] * s[9] + (NEP_REAL)0.024301095305146 * s[16] * s[8] + (NEP_REAL)-0.036451642957719 * s[11] * s[16] + (NEP_REAL)-0.036451642957719 * s[12] * s[17] + (NEP_REAL)0.042526916784005 * s[13] * s[22] + (NEP_REAL)0.042526916784005 * s[14] * s[23] + (NEP_REAL)0.25516150070403 * s[11] * s[20] + (NEP_REAL)0.25516150070403 * s[12] * s[21]);
    G[2] += factor * ((NEP_REAL)-0.003645164295772 * s[10] * s[15] + (NEP_REAL)-0.006075273826286 * s[14] * s[18] + (NEP_REAL)0.006075273826286 * s[13] * s[19] + (NEP_REAL)-0.018225821478859 * s[10] * s[18] + (NEP_REAL)0.018225821478859 * s[19] * s[9] + (NEP_REAL)0.024301095305146 * s[17] * s[8] + (NEP_REAL)-0.036451642957719 * s[12] * s[16] + (NEP_REAL)0.036451642957719 * s[11] * s[17] + (NEP_REAL)-0.042526916784005 * s[14] * s[22] + (NEP_REAL)0.042526916784005 * s[13] * s[23] + (NEP_REAL)-0.25516150070403 * s[12] * s[20] + (NEP_REAL)0.25516150070403 * s[11] * s[21]);
    G[8] += factor * ((NEP_REAL)0.004860219061029 * s[0] * s[15] + (NEP_REAL)0.024301095305146 * s[1] * s[16] + (NEP_REAL)0.024301095305146 * s[2] * s[17]);
    G[9] += factor * ((NEP_REAL)-0.003645164295772 * s[1] * s[15] + (NEP_REAL)0.018225821478859 * s[1] * s[18] + (NEP_REAL)0.018225821478859 * s[2] * s[19] + (NEP_REAL)0.036451642957719 * s[0] * s[16]);
    G[10] += factor * ((NEP_REAL)-0.003645164295772 * s[15] * s[2] + (NEP_REAL)-0.018225821478859 * s[18] * s[2] + (NEP_REAL)0.018225821478859 * s[1] * s[19] + (NEP_REAL)0.036451642957719 * s[0] * s[17]);
    G[11] += factor * ((NEP_REAL)-0.036451642957719 * s[1] * s[16] + (NEP_REAL)0.036451642957719 * s[2] * s[17] + (NEP_REAL)0.072903285915437 * s[0] * s[18] + (NEP_REAL)0.25516150070403 * s[1] * s[20] + (NEP_REAL)0.25516150070403 * s[2] * s[21]);
    G[12] += factor * ((NEP_REAL)-0.036451642957719 * s[1] * s[17] + (NEP_REAL)-0.036451642957719 * s[2] * s[16] + (NEP_REAL)0.072903285915437 * s[0] * s[19] + (NEP_REAL)0.25516150070403 * s[1] * s[21] + (NEP_REAL)-0.25516150070403 * s[2] * s[20]);
    G[13] += factor * ((NEP_REAL)-0.006075273826286 * s[1] * s[18] + (NEP_REAL)0.006075273826286 * s[2] * s[19] + (NEP_REAL)0.042526916784005 * s[1] * s[22] + (NEP_REAL)0.042526916784005 * s[2] * s[23] + (NEP_REAL)0.08505383356801 * s[0] * s[20]);
    G[14] += factor * ((NEP_REAL)-0.006075273826286 * s[1] * s[19] + (NEP_REAL)-0.006075273826286 * s[2] * s[18] + (NEP_REAL)0.042526916784005 * s[1] * s[23] + (NEP_REAL)-0.042526916784005 * s[2] * s[22] + (NEP_REAL)0.08505383356801 * s[0] * s[21]);
    G[15] += factor * ((NEP_REAL)-0.003645164295772 * s[10] * s[2] + (NEP_REAL)-0.003645164295772 * s[1] * s[9] + (NEP_REAL)0.004860219061029 * s[0] * s[8]);
    G[16] += factor * ((NEP_REAL)0.024301095305146 * s[1] * s[8] + (NEP_REAL)0.036451642957719 * s[0] * s[9] + (NEP_REAL)-0.036451642957719 * s[1] * s[11] + (NEP_REAL)-0.036451642957719 * s[2] * s[12]);
    G[17] += factor * ((NEP_REAL)0.024301095305146 * s[2] * s[8] + (NEP_REAL)0.036451642957719 * s[0] * s[10] + (NEP_REAL)-0.036451642957719 * s[1] * s[12] + (NEP_REAL)0.036451642957719 * s[2] * s[11]);
    G[18] += factor * ((NEP_REAL)-0.006075273826286 * s[1] * s[13] + (NEP_REAL)-0.006075273826286 * s[2] * s[14] + (NEP_REAL)-0.018225821478859 * s[10] * s[2] + (NEP_REAL)0.018225821478859 * s[1] * s[9] + (NEP_REAL)0.072903285915437 * s[0] * s[11]);
    G[19] += factor * ((NEP_REAL)-0.006075273826286 * s[1] * s[14] + (NEP_REAL)0.006075273826286 * s[2] * s[13] + (NEP_REAL)0.018225821478859 * s[1] * s[10] + (NEP_REAL)0.018225821478859 * s[2] * s[9] + (NEP_REAL)0.072903285915437 * s[0] * s[12]);
    G[20] += factor * ((NEP_REAL)0.08505383356801 * s[0] * s[13] + (NEP_REAL)0.25516150070403 * s[1] * s[11] + (NEP_REAL)-0.25516150070403 * s[2] * s[12]);
    G[21] += factor * ((NEP_REAL)0.08505383356801 * s[0] * s[14] + (NEP_REAL)0.25516150070403 * s[1] * s[12] + (NEP_REAL)0.25516150070403 * s[2] * s[11]);
    G[22] += factor * ((NEP_REAL)0.042526916784005 * s[1] * s[13] + (NEP_REAL)-0.042526916784005 * s[2] * s[14]);
    G[23] += factor * ((NEP_REAL)0.042526916784005 * s[1] * s[14] + (NEP_REAL)0.042526916784005 * s[2] * s[13]);
}


/* The optional invariant `which` (enum nep_flag order: 0 q222, 1 q1111, 2 q112, 3 q123,
 * 4 q233, 5 q134) of one channel's s-vector (at least NEP_MIN_S_LEN long). */
NEP_HD NEP_REAL nep_invariant(int which, const NEP_REAL *s)
{
    switch (which) {
    case 0: return nep_q222(s);
    case 1: return nep_q1111(s);
    case 2: return nep_q112(s);
    case 3: return nep_q123(s);
    case 4: return nep_q233(s);
    case 5: return nep_q134(s);
    default: return (NEP_REAL)0;
    }
}

/* G[k] += factor * d(invariant `which`)/ds_k (G at least NEP_MIN_S_LEN long). */
NEP_HD void nep_invariant_grad(int which, const NEP_REAL *s, NEP_REAL factor, NEP_REAL *G)
{
    switch (which) {
    case 0: nep_q222_grad(s, factor, G); break;
    case 1: nep_q1111_grad(s, factor, G); break;
    case 2: nep_q112_grad(s, factor, G); break;
    case 3: nep_q123_grad(s, factor, G); break;
    case 4: nep_q233_grad(s, factor, G); break;
    case 5: nep_q134_grad(s, factor, G); break;
    default: break;
    }
}

#endif /* NEPZBL_NEP_MATHS_H */
