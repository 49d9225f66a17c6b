/*
 * nepzbl C engine: NEP (nep3 / nep4 / nep5) + ZBL evaluation, float64 (see nep.h).
 *
 * One call of nep_compute:
 *   1. neighbour list (nep_neighbors.c): every pair within max(rc^R, rc^A) of its type pair,
 *      angular pairs first in each atom's list;
 *   2. pass 1, per atom: Chebyshev bases, radial channels g_n and their derivatives g_n'
 *      (stored per pair for pass 2), s-vectors, descriptors, network, dU/dq, and from it
 *      G[n][kappa] = sum_d dU/dq_d dq_d/ds_{n,kappa}; the ZBL pair energy and derivative;
 *   3. pass 2, per atom: the pair derivative v_ij = dU_i/dr_ij from the stored per-pair
 *      values, then F_i += v_ij, F_j -= v_ij, W -= r_ij (x) v_ij, and the per-atom virial of
 *      the neighbour W_j -= r_ij (x) v_ij (GPUMD / NEP_CPU partition). Threads accumulate
 *      into private force / virial buffers that are summed at the end, so there are no write
 *      races and no atomics.
 * Per pair, the Chebyshev bases and channel functions are computed once (pass 1) and their
 * derivatives stored; only Y_kappa(u) is evaluated again in pass 2, together with its gradient
 * (one polynomial pass gives both, and storing up to 80 values per angular pair would cost far
 * more memory than it saves). Per-call arrays are cached on the model between calls (ws_*).
 * Formulas: ../shared/docs/nep-reference.md sections 2 and 3; per-pair maths in nep_maths.h.
 */
#include "nep.h"
#include "nep_internal.h"

#ifndef NEP_MIN_ATOMS_PER_THREAD
#define NEP_MIN_ATOMS_PER_THREAD 128
#endif
#include "nep_maths.h"
#include "nep_network.h"
#include "nep_neighbors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Per-call arrays, kept on the model between nep_compute calls (see ws_acquire). */
enum {
    WS_ENERGY_NN,
    WS_ENERGY_ZBL,
    WS_GR_DERIV,
    WS_GA_VAL,
    WS_GA_DERIV,
    WS_ZBL_HALF,
    WS_FP_RADIAL,
    WS_G,
    WS_SCRATCH,
    NEP_WS_SLOTS
};

struct nep_model {
    int version, T, nR, nA, bR, bA, L, N1, D;
    int N2; /* second hidden layer, 0 for none */
    int flags[6];
    int nabc;                         /* (L+1)^2 - 1 */
    int slen;                         /* s-vector length per channel (>= NEP_MIN_S_LEN) */
    nep_layout layout;                /* sizes and offsets of the flat parameters */
    double *parameters;
    double *q_scaler;
    double *rc_radial, *rc_angular, *rcinv_radial, *rcinv_angular, *rc_list; /* [T][T] */
    double rc_max;
    int *atomic_numbers;
    int use_zbl;
    int temperature;  /* q[D-1] is the structure's temperature */
    double *zbl;      /* [T][T][10] */
    double *zbl_zizj; /* [T][T] K Z_a Z_b */
    double *zbl_ainv; /* [T][T] 1/a */
    double *c_radial;  /* [T][T][nR+1][bR+1], rearranged from the flat vector */
    double *c_angular; /* [T][T][nA+1][bA+1] */
    /* Scratch arrays reused by successive nep_compute calls, so that an MD loop does not map
     * and fault in fresh pages every step. Only one call at a time holds them (ws_busy);
     * concurrent calls on the same model allocate their own. Freed with the model. */
    void *ws_ptr[NEP_WS_SLOTS];
    size_t ws_size[NEP_WS_SLOTS];
    int ws_busy;
};

/* ----------------------------------------------------------------------------- status */

const char *nep_strerror(int status)
{
    switch (status) {
    case NEP_OK: return "no error";
    case NEP_ERR_NOMEM: return "out of memory";
    case NEP_ERR_ARGUMENT: return "invalid argument";
    case NEP_ERR_MODEL: return "inconsistent model specification";
    case NEP_ERR_TYPE: return "atom type outside the model's species";
    case NEP_ERR_OVERLAP: return "two atoms (or an atom and a periodic image) at the same position";
    case NEP_ERR_CELL: return "singular cell, or a periodic cell too thin for its images";
    case NEP_ERR_NONFINITE: return "NaN, infinite or huge (beyond 1e10 A) position or cell, or a non-finite temperature";
    case NEP_ERR_UNSUPPORTED: return "model feature not supported by this engine";
    case NEP_ERR_CUDA: return "CUDA error";
    default: return "unknown error";
    }
}

int nep_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int nep_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ----------------------------------------------------------------------------- model */

int nep_spec_layout(const nep_model_spec *spec, nep_layout *layout)
{
    if (!spec || !layout) return NEP_ERR_ARGUMENT;
    if (spec->version != 3 && spec->version != 4 && spec->version != 5) return NEP_ERR_UNSUPPORTED;
    const int T = spec->num_types;
    if (T < 1 || T > NEP_MAX_TYPES) return NEP_ERR_MODEL;
    if (spec->n_max_radial < 0 || spec->n_max_radial + 1 > NEP_MAX_CHANNELS) return NEP_ERR_MODEL;
    if (spec->n_max_angular < 0 || spec->n_max_angular + 1 > NEP_MAX_CHANNELS) return NEP_ERR_MODEL;
    if (spec->basis_radial < 0 || spec->basis_radial + 1 > NEP_MAX_BASIS) return NEP_ERR_MODEL;
    if (spec->basis_angular < 0 || spec->basis_angular + 1 > NEP_MAX_BASIS) return NEP_ERR_MODEL;
    if (spec->l_max < 1 || spec->l_max > NEP_MAX_LMAX) return NEP_ERR_MODEL;
    if (spec->num_neurons < 1) return NEP_ERR_MODEL;
    if (spec->num_neurons_second < 0 || spec->num_neurons_second > NEP_MAX_NEURONS ||
        (spec->num_neurons_second > 0 && spec->num_neurons > NEP_MAX_NEURONS))
        return NEP_ERR_MODEL;
    nep_layout_compute(spec->version, T, spec->n_max_radial, spec->n_max_angular,
                       spec->basis_radial, spec->basis_angular, spec->l_max, spec->flags,
                       spec->num_neurons, spec->temperature, spec->num_neurons_second,
                       layout);
    if (layout->dim > NEP_MAX_DIM) return NEP_ERR_MODEL;
    return NEP_OK;
}

int nep_model_spec_dim(const nep_model_spec *spec)
{
    nep_layout layout;
    return nep_spec_layout(spec, &layout) == NEP_OK ? layout.dim : 0;
}

size_t nep_model_spec_num_parameters(const nep_model_spec *spec)
{
    nep_layout layout;
    return nep_spec_layout(spec, &layout) == NEP_OK ? layout.num_parameters : 0;
}

/* Rearrange the c coefficients into [ti][tj][n][k] for contiguous per-pair access. */
static void rearrange_coefficients(nep_model *m)
{
    const int T = m->T;
    const double *cr = m->parameters + m->layout.offset_radial;
    const double *ca = m->parameters + m->layout.offset_angular;
    for (int n = 0; n <= m->nR; ++n)
        for (int k = 0; k <= m->bR; ++k)
            for (int ti = 0; ti < T; ++ti)
                for (int tj = 0; tj < T; ++tj)
                    m->c_radial[((size_t)(ti * T + tj) * (m->nR + 1) + n) * (m->bR + 1) + k] =
                        cr[nep_coefficient_index(n, k, m->bR + 1, T, ti, tj)];
    for (int n = 0; n <= m->nA; ++n)
        for (int k = 0; k <= m->bA; ++k)
            for (int ti = 0; ti < T; ++ti)
                for (int tj = 0; tj < T; ++tj)
                    m->c_angular[((size_t)(ti * T + tj) * (m->nA + 1) + n) * (m->bA + 1) + k] =
                        ca[nep_coefficient_index(n, k, m->bA + 1, T, ti, tj)];
}

void nep_model_free(nep_model *m)
{
    if (!m) return;
    free(m->parameters);
    free(m->q_scaler);
    free(m->rc_radial);
    free(m->rc_angular);
    free(m->rcinv_radial);
    free(m->rcinv_angular);
    free(m->rc_list);
    free(m->atomic_numbers);
    free(m->zbl);
    free(m->zbl_zizj);
    free(m->zbl_ainv);
    free(m->c_radial);
    free(m->c_angular);
    for (int k = 0; k < NEP_WS_SLOTS; ++k) free(m->ws_ptr[k]);
    free(m);
}

static int all_finite(const double *x, size_t n)
{
    for (size_t k = 0; k < n; ++k)
        if (!isfinite(x[k])) return 0;
    return 1;
}

int nep_model_spec_check(const nep_model_spec *spec)
{
    nep_layout layout;
    const int status = nep_spec_layout(spec, &layout);
    if (status != NEP_OK) return status;
    const int T = spec->num_types;
    if (!spec->rc_radial || !spec->rc_angular || !spec->atomic_numbers || !spec->parameters ||
        !spec->q_scaler)
        return NEP_ERR_ARGUMENT;
    if (spec->use_zbl && !spec->zbl) return NEP_ERR_ARGUMENT;
    if (spec->num_parameters != layout.num_parameters) return NEP_ERR_MODEL;
    if (!all_finite(spec->parameters, spec->num_parameters)) return NEP_ERR_MODEL;
    if (!all_finite(spec->q_scaler, (size_t)layout.dim)) return NEP_ERR_MODEL;
    for (int a = 0; a < T; ++a) {
        if (spec->atomic_numbers[a] < 1 || spec->atomic_numbers[a] > NEP_MAX_TYPES) return NEP_ERR_MODEL;
        for (int b = 0; b < T; ++b) {
            double rr = spec->rc_radial[a * T + b], ra = spec->rc_angular[a * T + b];
            if (!(rr > 0.0) || !(ra > 0.0) || !isfinite(rr) || !isfinite(ra)) return NEP_ERR_MODEL;
            if (rr != spec->rc_radial[b * T + a] || ra != spec->rc_angular[b * T + a]) return NEP_ERR_MODEL;
            if (spec->use_zbl) {
                const double *row = spec->zbl + 10 * (a * T + b);
                if (!all_finite(row, 10)) return NEP_ERR_MODEL;
                if (!(row[0] >= 0.0) || !(row[1] > row[0])) return NEP_ERR_MODEL;
            }
        }
    }
    return NEP_OK;
}

int nep_model_create(const nep_model_spec *spec, nep_model **out)
{
    if (!out) return NEP_ERR_ARGUMENT;
    *out = NULL;
    const int status = nep_model_spec_check(spec);
    if (status != NEP_OK) return status;
    nep_layout layout;
    nep_spec_layout(spec, &layout);
    const int T = spec->num_types;
    const int D = layout.dim;

    nep_model *m = (nep_model *)calloc(1, sizeof(nep_model));
    if (!m) return NEP_ERR_NOMEM;
    m->version = spec->version;
    m->T = T;
    m->nR = spec->n_max_radial;
    m->nA = spec->n_max_angular;
    m->bR = spec->basis_radial;
    m->bA = spec->basis_angular;
    m->L = spec->l_max;
    m->N1 = spec->num_neurons;
    m->N2 = spec->num_neurons_second > 0 ? spec->num_neurons_second : 0;
    m->D = D;
    for (int k = 0; k < 6; ++k) m->flags[k] = spec->flags[k] != 0;
    m->nabc = nep_num_abc(m->L);
    m->slen = m->nabc > NEP_MIN_S_LEN ? m->nabc : NEP_MIN_S_LEN;
    m->layout = layout;
    m->use_zbl = spec->use_zbl != 0;
    m->temperature = spec->temperature != 0;

    const size_t TT = (size_t)T * T;
    m->parameters = (double *)malloc(m->layout.num_parameters * sizeof(double));
    m->q_scaler = (double *)malloc((size_t)D * sizeof(double));
    m->rc_radial = (double *)malloc(TT * sizeof(double));
    m->rc_angular = (double *)malloc(TT * sizeof(double));
    m->rcinv_radial = (double *)malloc(TT * sizeof(double));
    m->rcinv_angular = (double *)malloc(TT * sizeof(double));
    m->rc_list = (double *)malloc(TT * sizeof(double));
    m->atomic_numbers = (int *)malloc((size_t)T * sizeof(int));
    m->zbl = (double *)calloc(TT * 10, sizeof(double));
    m->zbl_zizj = (double *)calloc(TT, sizeof(double));
    m->zbl_ainv = (double *)calloc(TT, sizeof(double));
    m->c_radial = (double *)malloc(TT * (m->nR + 1) * (m->bR + 1) * sizeof(double));
    m->c_angular = (double *)malloc(TT * (m->nA + 1) * (m->bA + 1) * sizeof(double));
    if (!m->parameters || !m->q_scaler || !m->rc_radial || !m->rc_angular || !m->rcinv_radial ||
        !m->rcinv_angular || !m->rc_list || !m->atomic_numbers || !m->zbl || !m->zbl_zizj ||
        !m->zbl_ainv || !m->c_radial || !m->c_angular) {
        nep_model_free(m);
        return NEP_ERR_NOMEM;
    }
    memcpy(m->parameters, spec->parameters, m->layout.num_parameters * sizeof(double));
    memcpy(m->q_scaler, spec->q_scaler, (size_t)D * sizeof(double));
    memcpy(m->atomic_numbers, spec->atomic_numbers, (size_t)T * sizeof(int));
    m->rc_max = 0.0;
    for (size_t p = 0; p < TT; ++p) {
        m->rc_radial[p] = spec->rc_radial[p];
        m->rc_angular[p] = spec->rc_angular[p];
        m->rcinv_radial[p] = 1.0 / spec->rc_radial[p];
        m->rcinv_angular[p] = 1.0 / spec->rc_angular[p];
        m->rc_list[p] = m->rc_radial[p] > m->rc_angular[p] ? m->rc_radial[p] : m->rc_angular[p];
        if (m->rc_list[p] > m->rc_max) m->rc_max = m->rc_list[p];
    }
    if (m->use_zbl) {
        memcpy(m->zbl, spec->zbl, TT * 10 * sizeof(double));
        for (int a = 0; a < T; ++a)
            for (int b = 0; b < T; ++b) {
                const double za = (double)m->atomic_numbers[a], zb = (double)m->atomic_numbers[b];
                m->zbl_zizj[a * T + b] = NEP_K_C_SP * za * zb;
                m->zbl_ainv[a * T + b] = nep_zbl_ainv(za, zb);
            }
    }
    rearrange_coefficients(m);
    *out = m;
    return NEP_OK;
}

int nep_model_set_parameters(nep_model *m, const double *parameters)
{
    if (!m || !parameters) return NEP_ERR_ARGUMENT;
    if (!all_finite(parameters, m->layout.num_parameters)) return NEP_ERR_MODEL;
    memcpy(m->parameters, parameters, m->layout.num_parameters * sizeof(double));
    rearrange_coefficients(m);
    return NEP_OK;
}

int nep_model_dim(const nep_model *m) { return m ? m->D : 0; }
int nep_model_num_neurons(const nep_model *m) { return m ? m->N1 : 0; }
double nep_model_max_cutoff(const nep_model *m) { return m ? m->rc_max : 0.0; }

/* --------------------------------------------------------------------------- compute */

typedef struct {
    int want_forces;   /* forces, virial or per-atom virials (any pass-2 output) */
    int want_network;  /* energies, forces, latent, ... */
} plan;

/* Pass 1 for atom i: descriptors, network, dU/dq. Writes the per-pair values used by pass 2. */
static void atom_pass1(const nep_model *m, const nep_system *sys, const nep_neighbor_list *nl,
                       int i, int want_forces, double *gR_deriv, double *gA_val,
                       double *gA_deriv, double *zbl_half_deriv, double *Fp_radial,
                       double *G, double *energy_nn, double *energy_zbl, double *descriptors,
                       double *latent)
{
    const int T = m->T, nR1 = m->nR + 1, nA1 = m->nA + 1, bR1 = m->bR + 1, bA1 = m->bA + 1;
    const int L = m->L, slen = m->slen, nabc = m->nabc, D = m->D;
    const int ti = sys->types[i];
    double q[NEP_MAX_DIM];
    double s[NEP_MAX_CHANNELS * NEP_NUM_ABC];
    double f[NEP_MAX_BASIS], fp[NEP_MAX_BASIS], Y[NEP_NUM_ABC];
    for (int d = 0; d < D; ++d) q[d] = 0.0;
    for (int k = 0; k < nA1 * slen; ++k) s[k] = 0.0;
    double uzbl = 0.0;

    const size_t p0 = nl->offset[i], p1 = nl->offset[i + 1];
    const int nang = nl->num_angular[i];
    const size_t a0 = nl->angular_offset[i];
    for (size_t p = p0; p < p1; ++p) {
        const int j = nl->neighbor[p];
        const int tj = sys->types[j];
        const int tp = ti * T + tj;
        const double *r = nl->r + 3 * p;
        const double d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
        const double d = sqrt(d2);
        /* radial */
        if (d < m->rc_radial[tp]) {
            const double rcinv = m->rcinv_radial[tp];
            double fc, fcp;
            nep_cutoff(d, m->rc_radial[tp], rcinv, &fc, &fcp);
            const double *c = m->c_radial + (size_t)tp * nR1 * bR1;
            if (want_forces) {
                nep_chebyshev(m->bR, d, rcinv, fc, fcp, f, fp);
                double *gd = gR_deriv + p * nR1;
                for (int n = 0; n < nR1; ++n) {
                    double g, gp;
                    nep_channel_deriv(bR1, c + n * bR1, 1, f, fp, &g, &gp);
                    q[n] += g;
                    gd[n] = gp;
                }
            } else {
                nep_chebyshev_value(m->bR, d, rcinv, fc, f);
                for (int n = 0; n < nR1; ++n) q[n] += nep_channel(bR1, c + n * bR1, 1, f);
            }
        }
        /* angular (the first nang entries of i's list) */
        const int k_in_list = (int)(p - p0);
        if (k_in_list < nang) {
            const size_t a = a0 + (size_t)k_in_list;
            const double rcinv = m->rcinv_angular[tp];
            double fc, fcp;
            nep_cutoff(d, m->rc_angular[tp], rcinv, &fc, &fcp);
            const double *c = m->c_angular + (size_t)tp * nA1 * bA1;
            const double dinv = 1.0 / d;
            nep_sph(L, r[0] * dinv, r[1] * dinv, r[2] * dinv, Y);
            if (want_forces) {
                nep_chebyshev(m->bA, d, rcinv, fc, fcp, f, fp);
            } else {
                nep_chebyshev_value(m->bA, d, rcinv, fc, f);
            }
            for (int n = 0; n < nA1; ++n) {
                const double g = nep_channel(bA1, c + n * bA1, 1, f);
                double *sn = s + n * slen;
                for (int kk = 0; kk < nabc; ++kk) sn[kk] += g * Y[kk];
                if (want_forces) {
                    gA_val[a * nA1 + n] = g;
                    gA_deriv[a * nA1 + n] = nep_channel(bA1, c + n * bA1, 1, fp);
                }
            }
            if (m->use_zbl) {
                double phi, dphi;
                nep_zbl(d, m->zbl_zizj[tp], m->zbl_ainv[tp], m->zbl + 10 * tp, &phi, &dphi);
                uzbl += 0.5 * phi;
                if (want_forces) zbl_half_deriv[a] = 0.5 * dphi;
            }
        }
    }

    /* descriptors: radial q[0..nR] are complete; angular blocks, l outer and n inner */
    for (int n = 0; n < nA1; ++n) nep_pack_angular(L, m->flags, m->nR, m->nA, n, s + n * slen, q, 1);
    if (m->temperature) q[D - 1] = sys->temperature;
    for (int d = 0; d < D; ++d) q[d] *= m->q_scaler[d];
    if (descriptors) memcpy(descriptors + (size_t)i * D, q, (size_t)D * sizeof(double));
    energy_zbl[i] = uzbl;
    if (!energy_nn) return;

    /* network */
    const double *w0 = m->parameters + m->layout.block_size * (size_t)nep_network_of_type(m->version, ti);
    const double *b0 = w0 + (size_t)m->N1 * D;
    const double *w1 = b0 + m->N1;
    double Fp[NEP_MAX_DIM];
    if (m->N2 > 0) {
        double h1[NEP_MAX_NEURONS], h2[NEP_MAX_NEURONS];
        const size_t beta = (size_t)(D + 1) * m->N1 + (size_t)(m->N1 + 2) * m->N2;
        energy_nn[i] = nep_network2_forward(D, m->N1, m->N2, w0,
                                            m->parameters[m->layout.shared_bias],
                                            m->version == 5 ? w0 + beta : NULL, q, 1, NULL, h1,
                                            h2, 1, want_forces ? Fp : NULL, 1);
    } else {
        energy_nn[i] = nep_network_forward(D, m->N1, w0, b0, w1,
                                           m->parameters[m->layout.shared_bias],
                                           m->version == 5 ? w1 + m->N1 : NULL, q, 1, NULL,
                                           latent ? latent + (size_t)i * m->N1 : NULL, NULL,
                                           want_forces ? Fp : NULL, 1);
    }
    if (!want_forces) return;

    /* dU/dq (unscaled) and G[n][kappa] = sum_d dU/dq_d dq_d/ds_{n,kappa} */
    for (int d = 0; d < D; ++d) Fp[d] *= m->q_scaler[d];
    memcpy(Fp_radial + (size_t)i * nR1, Fp, (size_t)nR1 * sizeof(double));
    double *Gi = G + (size_t)i * nA1 * slen;
    for (int n = 0; n < nA1; ++n) {
        double *Gn = Gi + n * slen;
        for (int k = 0; k < slen; ++k) Gn[k] = 0.0;
        nep_pack_angular_grad(L, m->flags, m->nR, m->nA, n, s + n * slen, Fp, 1, Gn);
    }
}

typedef struct {
    double *forces;   /* [N][3] */
    double *virial;   /* [9] */
    double *virials;  /* [N][9] or NULL */
    double *forces_zbl;
    double *virial_zbl;
} accumulators;

/* Pass 2 for atom i: pair derivatives, scattered into the accumulators. */
static void atom_pass2(const nep_model *m, const nep_system *sys, const nep_neighbor_list *nl,
                       int i, const double *gR_deriv, const double *gA_val,
                       const double *gA_deriv, const double *zbl_half_deriv,
                       const double *Fp_radial, const double *G, accumulators *acc)
{
    const int T = m->T, nR1 = m->nR + 1, nA1 = m->nA + 1, L = m->L, slen = m->slen;
    const int nabc = m->nabc;
    const int ti = sys->types[i];
    const double *Fr = Fp_radial + (size_t)i * nR1;
    const double *Gi = G + (size_t)i * nA1 * slen;
    const size_t p0 = nl->offset[i], p1 = nl->offset[i + 1];
    const int nang = nl->num_angular[i];
    const size_t a0 = nl->angular_offset[i];
    double H[NEP_NUM_ABC], K[NEP_NUM_ABC];
    double fi[3] = {0.0, 0.0, 0.0}, fzi[3] = {0.0, 0.0, 0.0};
    double w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0}, wz[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t p = p0; p < p1; ++p) {
        const int j = nl->neighbor[p];
        const int tp = ti * T + sys->types[j];
        const double *r = nl->r + 3 * p;
        const double d = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
        const double dinv = 1.0 / d;
        const double u[3] = {r[0] * dinv, r[1] * dinv, r[2] * dinv};
        double v[3] = {0.0, 0.0, 0.0};
        if (d < m->rc_radial[tp]) {
            const double *gd = gR_deriv + p * nR1;
            double gsum = 0.0;
            for (int n = 0; n < nR1; ++n) gsum += Fr[n] * gd[n];
            v[0] = gsum * u[0];
            v[1] = gsum * u[1];
            v[2] = gsum * u[2];
        }
        const int k_in_list = (int)(p - p0);
        double vz[3] = {0.0, 0.0, 0.0};
        if (k_in_list < nang) {
            const size_t a = a0 + (size_t)k_in_list;
            const double *g = gA_val + a * nA1;
            const double *gp = gA_deriv + a * nA1;
            for (int kk = 0; kk < nabc; ++kk) {
                H[kk] = 0.0;
                K[kk] = 0.0;
            }
            for (int n = 0; n < nA1; ++n) {
                const double *Gn = Gi + n * slen;
                const double gn = g[n], gpn = gp[n];
                for (int kk = 0; kk < nabc; ++kk) {
                    H[kk] += gpn * Gn[kk];
                    K[kk] += gn * Gn[kk];
                }
            }
            double hy, grad[3];
            nep_sph_contract(L, u[0], u[1], u[2], H, K, &hy, grad);
            const double ug = u[0] * grad[0] + u[1] * grad[1] + u[2] * grad[2];
            for (int c = 0; c < 3; ++c) v[c] += hy * u[c] + (grad[c] - ug * u[c]) * dinv;
            if (m->use_zbl) {
                const double z = zbl_half_deriv[a];
                for (int c = 0; c < 3; ++c) {
                    vz[c] = z * u[c];
                    v[c] += vz[c];
                }
            }
        }
        /* F_i += v, F_j -= v; W -= r (x) v, per-atom part to the neighbour j */
        for (int c = 0; c < 3; ++c) {
            fi[c] += v[c];
            acc->forces[3 * (size_t)j + c] -= v[c];
        }
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) w[3 * a + b] -= r[a] * v[b];
        if (acc->virials) {
            double *wj = acc->virials + 9 * (size_t)j;
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) wj[3 * a + b] -= r[a] * v[b];
        }
        if (acc->forces_zbl) {
            for (int c = 0; c < 3; ++c) {
                fzi[c] += vz[c];
                acc->forces_zbl[3 * (size_t)j + c] -= vz[c];
            }
        }
        if (acc->virial_zbl) {
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) wz[3 * a + b] -= r[a] * vz[b];
        }
    }
    for (int c = 0; c < 3; ++c) acc->forces[3 * (size_t)i + c] += fi[c];
    for (int k = 0; k < 9; ++k) acc->virial[k] += w[k];
    if (acc->forces_zbl)
        for (int c = 0; c < 3; ++c) acc->forces_zbl[3 * (size_t)i + c] += fzi[c];
    if (acc->virial_zbl)
        for (int k = 0; k < 9; ++k) acc->virial_zbl[k] += wz[k];
}

/* The per-call arrays: the model's cached ones when no other call holds them, else fresh. */
typedef struct {
    nep_model *cache; /* non-NULL: this call holds the model's scratch arrays */
    void *owned[NEP_WS_SLOTS];
} workspace;

static void ws_acquire(const nep_model *m, workspace *w, int allow_cache)
{
    memset(w, 0, sizeof(*w));
#if defined(__GNUC__) || defined(__clang__)
    if (allow_cache) {
        /* logically const: only the scratch cache of the model changes */
        nep_model *mm = (nep_model *)m;
        if (__sync_lock_test_and_set(&mm->ws_busy, 1) == 0) w->cache = mm;
    }
#else
    (void)m;
    (void)allow_cache;
#endif
}

static void *ws_get(workspace *w, int slot, size_t bytes)
{
    if (bytes == 0) bytes = sizeof(double);
    if (w->cache) {
        nep_model *m = w->cache;
        if (m->ws_size[slot] < bytes) {
            free(m->ws_ptr[slot]);
            const size_t want = bytes + bytes / 4; /* headroom for MD fluctuations */
            m->ws_ptr[slot] = malloc(want);
            m->ws_size[slot] = m->ws_ptr[slot] ? want : 0;
        }
        return m->ws_ptr[slot];
    }
    w->owned[slot] = malloc(bytes);
    return w->owned[slot];
}

static void ws_release(workspace *w)
{
    for (int k = 0; k < NEP_WS_SLOTS; ++k) free(w->owned[k]);
#if defined(__GNUC__) || defined(__clang__)
    if (w->cache) __sync_lock_release(&w->cache->ws_busy);
#endif
    w->cache = NULL;
}

static int compute_one(const nep_model *m, const nep_system *sys, nep_outputs *out, int nt,
                       int allow_cache)
{
    if (!m || !sys || !out) return NEP_ERR_ARGUMENT;
    const int N = sys->num_atoms;
    if (N < 0 || (N > 0 && (!sys->types || !sys->positions)) || !sys->cell) return NEP_ERR_ARGUMENT;
    if (out->latent && m->N2 > 0) return NEP_ERR_UNSUPPORTED; /* defined for one hidden layer */
    for (int i = 0; i < N; ++i)
        if (sys->types[i] < 0 || sys->types[i] >= m->T) return NEP_ERR_TYPE;
    if (m->temperature && !isfinite(sys->temperature)) return NEP_ERR_NONFINITE;

    const int want_forces = out->forces || out->virial || out->virials || out->forces_zbl ||
                            out->virial_zbl;
    const int want_network = want_forces || out->energy || out->energies || out->latent;
    const int nR1 = m->nR + 1, nA1 = m->nA + 1, slen = m->slen;

    /* One thread count for the neighbour list and both passes. */
    int nthreads = nep_resolve_threads(nt, N);
    /* With the default thread count, give each thread at least NEP_MIN_ATOMS_PER_THREAD atoms:
     * waking a team costs more than a dimer or a small cell takes (seen: 31 ms with 2 threads
     * against 1 ms with 1 for two atoms on a loaded machine). An explicit count is obeyed. */
    if (nt <= 0 && nthreads > 1) {
        int useful = N / NEP_MIN_ATOMS_PER_THREAD;
        if (useful < 1) useful = 1;
        if (nthreads > useful) nthreads = useful;
    }

    nep_neighbor_list nl;
    int status =
        nep_neighbor_build(sys, m->T, m->rc_list, m->rc_angular, m->rc_max, nthreads, &nl);
    if (status != NEP_OK) return status;

    const size_t P = nl.num_pairs ? nl.num_pairs : 1, PA = nl.num_angular_pairs ? nl.num_angular_pairs : 1;
    const size_t NN = N > 0 ? (size_t)N : 1;
    workspace ws;
    ws_acquire(m, &ws, allow_cache);
    double *energy_nn =
        want_network ? (double *)ws_get(&ws, WS_ENERGY_NN, NN * sizeof(double)) : NULL;
    double *energy_zbl = (double *)ws_get(&ws, WS_ENERGY_ZBL, NN * sizeof(double));
    double *gR_deriv = NULL, *gA_val = NULL, *gA_deriv = NULL, *zbl_half = NULL, *Fp_radial = NULL,
           *G = NULL;
    int ok = energy_zbl && (!want_network || energy_nn);
    if (want_forces) {
        gR_deriv = (double *)ws_get(&ws, WS_GR_DERIV, P * nR1 * sizeof(double));
        gA_val = (double *)ws_get(&ws, WS_GA_VAL, PA * nA1 * sizeof(double));
        gA_deriv = (double *)ws_get(&ws, WS_GA_DERIV, PA * nA1 * sizeof(double));
        zbl_half = m->use_zbl ? (double *)ws_get(&ws, WS_ZBL_HALF, PA * sizeof(double)) : NULL;
        Fp_radial = (double *)ws_get(&ws, WS_FP_RADIAL, NN * nR1 * sizeof(double));
        G = (double *)ws_get(&ws, WS_G, NN * nA1 * slen * sizeof(double));
        ok = ok && gR_deriv && gA_val && gA_deriv && (zbl_half || !m->use_zbl) && Fp_radial && G;
    }
    if (!ok) {
        ws_release(&ws);
        nep_neighbor_free(&nl);
        return NEP_ERR_NOMEM;
    }

    /* pass 1 */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) num_threads(nthreads) if (nthreads > 1)
#endif
    for (int i = 0; i < N; ++i)
        atom_pass1(m, sys, &nl, i, want_forces, gR_deriv, gA_val, gA_deriv, zbl_half, Fp_radial, G,
                   energy_nn, energy_zbl, out->descriptors, out->latent);

    /* energies, summed in atom order (deterministic for any thread count) */
    if (out->energies)
        for (int i = 0; i < N; ++i) out->energies[i] = energy_nn[i] + energy_zbl[i];
    if (out->energy) {
        double e = 0.0;
        for (int i = 0; i < N; ++i) e += energy_nn[i] + energy_zbl[i];
        out->energy[0] = e;
    }
    if (out->energies_zbl) memcpy(out->energies_zbl, energy_zbl, (size_t)N * sizeof(double));
    if (out->energy_zbl) {
        double e = 0.0;
        for (int i = 0; i < N; ++i) e += energy_zbl[i];
        out->energy_zbl[0] = e;
    }

    if (want_forces) {
        /* per-thread accumulators; thread 0 of a 1-thread run writes the outputs directly */
        const size_t nf = 3 * NN, nw = 9 * NN;
        const int want_virials = out->virials != NULL;
        const int want_fz = out->forces_zbl != NULL, want_wz = out->virial_zbl != NULL;
        const size_t per_thread = nf + 9 + (want_virials ? nw : 0) + (want_fz ? nf : 0) + (want_wz ? 9 : 0);
        double *scratch =
            (double *)ws_get(&ws, WS_SCRATCH, per_thread * (size_t)nthreads * sizeof(double));
        if (!scratch) {
            ws_release(&ws);
            nep_neighbor_free(&nl);
            return NEP_ERR_NOMEM;
        }
        memset(scratch, 0, per_thread * (size_t)nthreads * sizeof(double));
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
        {
            const int tid = nep_thread_id();
            double *base = scratch + per_thread * (size_t)tid;
            accumulators acc;
            acc.forces = base;
            acc.virial = base + nf;
            double *next = base + nf + 9;
            acc.virials = want_virials ? next : NULL;
            next += want_virials ? nw : 0;
            acc.forces_zbl = want_fz ? next : NULL;
            next += want_fz ? nf : 0;
            acc.virial_zbl = want_wz ? next : NULL;
            /* static chunks, not dynamic: which thread's accumulator receives atom i's
             * scatter to its neighbours must not depend on timing, or the sums below round
             * differently from call to call and MD with a fixed seed stops being repeatable */
#ifdef _OPENMP
#pragma omp for schedule(static, 16)
#endif
            for (int i = 0; i < N; ++i)
                atom_pass2(m, sys, &nl, i, gR_deriv, gA_val, gA_deriv, zbl_half, Fp_radial, G, &acc);
            /* reduce over threads, in thread order, by atom chunks */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int i = 0; i < N; ++i) {
                for (int t = 0; t < nthreads; ++t) {
                    const double *b = scratch + per_thread * (size_t)t;
                    if (out->forces)
                        for (int c = 0; c < 3; ++c)
                            out->forces[3 * (size_t)i + c] = (t ? out->forces[3 * (size_t)i + c] : 0.0) + b[3 * (size_t)i + c];
                    const double *q = b + nf + 9;
                    if (want_virials) {
                        for (int c = 0; c < 9; ++c)
                            out->virials[9 * (size_t)i + c] = (t ? out->virials[9 * (size_t)i + c] : 0.0) + q[9 * (size_t)i + c];
                        q += nw;
                    }
                    if (want_fz)
                        for (int c = 0; c < 3; ++c)
                            out->forces_zbl[3 * (size_t)i + c] = (t ? out->forces_zbl[3 * (size_t)i + c] : 0.0) + q[3 * (size_t)i + c];
                }
            }
        }
        if (out->virial || out->virial_zbl) {
            double w[9] = {0}, wz[9] = {0};
            for (int t = 0; t < nthreads; ++t) {
                const double *b = scratch + per_thread * (size_t)t;
                for (int c = 0; c < 9; ++c) w[c] += b[nf + c];
                if (want_wz) {
                    const double *q = b + nf + 9 + (want_virials ? nw : 0) + (want_fz ? nf : 0);
                    for (int c = 0; c < 9; ++c) wz[c] += q[c];
                }
            }
            if (out->virial) memcpy(out->virial, w, sizeof(w));
            if (out->virial_zbl) memcpy(out->virial_zbl, wz, sizeof(wz));
        }
    }
    ws_release(&ws);
    nep_neighbor_free(&nl);
    return NEP_OK;
}

int nep_compute(const nep_model *model, const nep_system *system, nep_outputs *outputs,
                int num_threads)
{
    return compute_one(model, system, outputs, num_threads, 1);
}

int nep_compute_batch(const nep_model *model, int num_systems, const nep_system *systems,
                      nep_outputs *outputs, int *statuses, int num_threads)
{
    if (!model || num_systems < 0 || (num_systems > 0 && (!systems || !outputs || !statuses)))
        return NEP_ERR_ARGUMENT;
    const int nt = nep_resolve_threads(num_threads, num_systems);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
#endif
    for (int k = 0; k < num_systems; ++k)
        statuses[k] = compute_one(model, &systems[k], &outputs[k], 1, 0);
    for (int k = 0; k < num_systems; ++k)
        if (statuses[k] != NEP_OK) return statuses[k];
    return NEP_OK;
}
