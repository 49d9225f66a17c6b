/*
 * GPUMD's training loss (nep-reference.md section 4.5) and its adjoints, one structure or one
 * atom at a time: the pieces that the device sums in a fixed order (nep_train_cuda.cu), so
 * that a training step never leaves the GPU. The numpy implementation in
 * nepzbl_plugin/train/loss.py is the reference these pieces are tested against.
 *
 * For the batch of selected structures and every type t = 0..T (the species, then T for all):
 *
 *   shift   s    = sum eps_n Delta_n / sum eps_n,         Delta_n = (E_n - E_n^ref) / N_n
 *   energy  L_e(t) = lambda_e sqrt( sum_{n has t} w_n^2 eps_n (Delta_n - s)^2 / #{n has t} )
 *   force   L_f(t) = lambda_f sqrt( sum_{n has t} sum_i c_i |F_i - F_i^ref|^2 / (3 sum_{n has t} N_n) )
 *           c_i = w_n^2 tau_{t_i}^2 (force_delta / (force_delta + |F_i^ref|) when force_delta > 0)
 *   virial  L_v(t) = lambda_v sqrt( sum_{n has t, virial} w_n^2 sum_c kappa_c Wbar_nc^2 / (6 #) ),
 *           Wbar_n = (W_n - W_n^ref) / N_n in GPUMD's six components, kappa = 1 1 1 ls^2 ls^2 ls^2
 *   L1(t) = lambda_1 sum |z| / d_t, L2(t) = lambda_2 sqrt(sum z^2 / d_t) over the parameters of
 *           type t (t = T: all but the global ones), d_t = N_par / T (t < T) or N_par (t = T).
 *
 * Gradient optimisers minimise L(T); SNES ranks its population by every L(t).
 */
#ifndef NEPZBL_NEP_TRAIN_LOSS_H
#define NEPZBL_NEP_TRAIN_LOSS_H

#include <math.h>

#include "nep_hd.h"

/* One evaluation of the loss, as doubles: six blocks of T + 1 values (t = 0..T), then the
 * scalars the adjoints and the reports need. */
enum {
    NEP_LOSS_TOTAL = 0, /* block index: L(t) */
    NEP_LOSS_L1 = 1,
    NEP_LOSS_L2 = 2,
    NEP_LOSS_ENERGY = 3,
    NEP_LOSS_FORCE = 4,
    NEP_LOSS_VIRIAL = 5,
    NEP_LOSS_NUM_BLOCKS = 6
};
enum {
    NEP_LOSS_SHIFT = 0,    /* s, eV/atom */
    NEP_LOSS_RMSE_E,       /* sqrt(sum eps (Delta - s)^2 / S), eV/atom */
    NEP_LOSS_RMSE_F,       /* eV/A */
    NEP_LOSS_RMSE_V,       /* eV/atom (0 without virials) */
    NEP_LOSS_X_E,          /* the arguments of L_e(T), L_f(T), L_v(T)'s square roots */
    NEP_LOSS_X_F,
    NEP_LOSS_X_V,
    NEP_LOSS_SUM_R,        /* sum w^2 eps (Delta - s): the shift's share of the energy adjoint */
    NEP_LOSS_SUM_EPS,      /* sum eps */
    NEP_LOSS_NUM_VIRIAL,   /* structures with a virial */
    NEP_LOSS_NUM_ATOMS,    /* sum N */
    NEP_LOSS_NORM,         /* sqrt(sum z^2 / N_par) over the non-global parameters */
    NEP_LOSS_NUM_SCALARS
};
#define NEP_LOSS_BLOCK(T, block, t) ((block) * ((T) + 1) + (t))
#define NEP_LOSS_SCALAR(T, which) (NEP_LOSS_NUM_BLOCKS * ((T) + 1) + (which))
#define NEP_LOSS_LENGTH(T) (NEP_LOSS_NUM_BLOCKS * ((T) + 1) + NEP_LOSS_NUM_SCALARS)

/* Per structure, what the sums over the batch need (NEP_LOSS_STRUCTURE_LENGTH doubles). */
enum {
    NEP_LOSS_S_DELTA = 0, /* Delta_n, eV/atom */
    NEP_LOSS_S_FORCE_W,   /* sum_i c_i |dF_i|^2 */
    NEP_LOSS_S_FORCE,     /* sum_i |dF_i|^2 */
    NEP_LOSS_S_VIRIAL_W,  /* w^2 sum_c kappa_c Wbar_c^2 (0 without virial) */
    NEP_LOSS_S_VIRIAL,    /* sum_c Wbar_c^2 */
    NEP_LOSS_S_WBAR,      /* Wbar_c, six values */
    NEP_LOSS_STRUCTURE_LENGTH = NEP_LOSS_S_WBAR + 6
};

/* GPUMD's six virial components xx yy zz xy yz zx of a 3x3 tensor (row-major); the
 * off-diagonal ones are the mean of the two mirror entries. */
NEP_HD void nep_loss_virial_six(const double *w9, double *six)
{
    six[0] = w9[0];
    six[1] = w9[4];
    six[2] = w9[8];
    six[3] = 0.5 * (w9[1] + w9[3]);
    six[4] = 0.5 * (w9[5] + w9[7]);
    six[5] = 0.5 * (w9[6] + w9[2]);
}

/* The adjoint of nep_loss_virial_six: six values to a 3x3 tensor (row-major). */
NEP_HD void nep_loss_virial_six_adjoint(const double *six, double *w9)
{
    w9[0] = six[0];
    w9[4] = six[1];
    w9[8] = six[2];
    w9[1] = w9[3] = 0.5 * six[3];
    w9[5] = w9[7] = 0.5 * six[4];
    w9[6] = w9[2] = 0.5 * six[5];
}

NEP_HD double nep_loss_kappa(int component, double lambda_shear)
{
    return component < 3 ? 1.0 : lambda_shear * lambda_shear;
}

/* sqrt that is 0 for x <= 0 (a perfect fit, or an empty set) and NaN for NaN, as numpy's
 * sqrt(maximum(x, 0)): a NaN label must show in the loss, not vanish from it */
NEP_HD double nep_loss_root(double x) { return x > 0.0 ? sqrt(x) : (x == x ? 0.0 : x); }

/* The per-structure quantities of one structure of n atoms: predicted energy e, virial w9
 * (3x3, row-major) and forces f[n][3]; reference energy e_ref, virial v_ref6 (GPUMD's six),
 * forces f_ref[n][3]; per-atom force weights c[n]; structure weight. */
NEP_HD void nep_loss_structure(long long n, double e, const double *w9, const double *f,
                               double e_ref, const double *v_ref6, int has_virial,
                               const double *f_ref, const double *c, double weight,
                               double lambda_shear, double *out)
{
    const double inv_n = 1.0 / (double)n;
    out[NEP_LOSS_S_DELTA] = (e - e_ref) * inv_n;
    double fw = 0.0, fs = 0.0;
    for (long long i = 0; i < n; ++i) {
        double sq = 0.0;
        for (int a = 0; a < 3; ++a) {
            const double d = f[3 * i + a] - f_ref[3 * i + a];
            sq += d * d;
        }
        fw += c[i] * sq;
        fs += sq;
    }
    out[NEP_LOSS_S_FORCE_W] = fw;
    out[NEP_LOSS_S_FORCE] = fs;
    double six[6];
    nep_loss_virial_six(w9, six);
    double vw = 0.0, vs = 0.0;
    for (int k = 0; k < 6; ++k) {
        const double d = has_virial ? (six[k] - v_ref6[k]) * inv_n : 0.0;
        out[NEP_LOSS_S_WBAR + k] = d;
        vw += nep_loss_kappa(k, lambda_shear) * d * d;
        vs += d * d;
    }
    out[NEP_LOSS_S_VIRIAL_W] = weight * weight * vw;
    out[NEP_LOSS_S_VIRIAL] = vs;
}

/* A training set's labels and GPUMD's weights, and the batch being evaluated: what the sums
 * over the batch read. Arrays by whole-set structure (S) or atom (A) index. */
typedef struct {
    int T;                             /* species */
    int num_selected;                  /* structures in the batch */
    const int *selected;               /* [num_selected] their indices */
    const long long *structure_offset; /* [S + 1] first atom of each structure */
    const double *ref_energy;          /* [S] eV */
    const double *ref_virial;          /* [S][6] GPUMD's six components, eV */
    const int *has_virial;             /* [S] */
    const double *weight;              /* [S] w */
    const double *energy_weight;       /* [S] epsilon */
    const unsigned char *contains;     /* [S][T + 1] structure holds type t (t = T: always) */
    const double *ref_forces;          /* [A][3] eV/A */
    const double *force_weight;        /* [A] c_i (nep_loss_force_weight) */
    double lambda_e, lambda_f, lambda_v, lambda_shear, lambda_1, lambda_2;
    size_t num_parameters;
    const int *parameter_types;        /* [P] 0..T */
    const unsigned char *global_mask;  /* [P] left out of the t = T regularisation */
} nep_loss_set;

/* Every term of type t (0..T) of the batch into record (NEP_LOSS_LENGTH(T) doubles), from the
 * per-structure quantities q [num_selected][NEP_LOSS_STRUCTURE_LENGTH] (nep_loss_structure)
 * and the parameters z [P]; t = T also writes the scalars. Sums in batch and parameter order
 * (the shift is recomputed for every t: a few flops a structure, the same bits each time). */
NEP_HD void nep_loss_type(const nep_loss_set *L, const double *q, const double *z, int t,
                          double *record)
{
    const int T = L->T, types = T + 1, S = L->num_selected;
    double sum_eps = 0.0, sum_eps_delta = 0.0;
    for (int j = 0; j < S; ++j) {
        const double eps = L->energy_weight[L->selected[j]];
        sum_eps += eps;
        sum_eps_delta += eps * q[(size_t)j * NEP_LOSS_STRUCTURE_LENGTH + NEP_LOSS_S_DELTA];
    }
    const double shift = sum_eps > 0.0 ? sum_eps_delta / sum_eps : 0.0;
    double e_sum = 0.0, f_sum = 0.0, v_sum = 0.0, frames = 0.0, atoms = 0.0, vframes = 0.0;
    double sum_r = 0.0, e_rmse = 0.0, f_rmse = 0.0, v_rmse = 0.0;
    for (int j = 0; j < S; ++j) {
        const int s = L->selected[j];
        const double *qs = q + (size_t)j * NEP_LOSS_STRUCTURE_LENGTH;
        const double eps = L->energy_weight[s], w = L->weight[s];
        const double d = qs[NEP_LOSS_S_DELTA] - shift;
        const double n = (double)(L->structure_offset[s + 1] - L->structure_offset[s]);
        sum_r += w * w * eps * d;
        e_rmse += eps * d * d;
        f_rmse += qs[NEP_LOSS_S_FORCE];
        v_rmse += qs[NEP_LOSS_S_VIRIAL];
        if (!L->contains[(size_t)s * types + t]) continue;
        e_sum += w * w * eps * d * d;
        frames += 1.0;
        f_sum += qs[NEP_LOSS_S_FORCE_W];
        atoms += n;
        if (L->has_virial[s]) {
            v_sum += qs[NEP_LOSS_S_VIRIAL_W];
            vframes += 1.0;
        }
    }
    const double x_e = frames > 0.0 ? e_sum / frames : 0.0;
    const double x_f = atoms > 0.0 ? f_sum / (3.0 * atoms) : 0.0;
    const double x_v = vframes > 0.0 ? v_sum / (6.0 * vframes) : 0.0;
    const double np = (double)L->num_parameters;
    const double divisor = t == T ? np : np / T;
    double l1 = 0.0, l2 = 0.0;
    for (size_t p = 0; p < L->num_parameters; ++p) {
        const int mine = t == T ? !L->global_mask[p] : L->parameter_types[p] == t;
        if (!mine) continue;
        l1 += fabs(z[p]);
        l2 += z[p] * z[p];
    }
    const double L1 = L->lambda_1 * l1 / divisor, L2 = L->lambda_2 * nep_loss_root(l2 / divisor);
    const double Le = L->lambda_e * nep_loss_root(x_e), Lf = L->lambda_f * nep_loss_root(x_f);
    const double Lv = L->lambda_v * nep_loss_root(x_v);
    record[NEP_LOSS_BLOCK(T, NEP_LOSS_TOTAL, t)] = L1 + L2 + Le + Lf + Lv;
    record[NEP_LOSS_BLOCK(T, NEP_LOSS_L1, t)] = L1;
    record[NEP_LOSS_BLOCK(T, NEP_LOSS_L2, t)] = L2;
    record[NEP_LOSS_BLOCK(T, NEP_LOSS_ENERGY, t)] = Le;
    record[NEP_LOSS_BLOCK(T, NEP_LOSS_FORCE, t)] = Lf;
    record[NEP_LOSS_BLOCK(T, NEP_LOSS_VIRIAL, t)] = Lv;
    if (t != T) return;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_SHIFT)] = shift;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_RMSE_E)] = S > 0 ? sqrt(e_rmse / S) : 0.0;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_RMSE_F)] = atoms > 0.0 ? sqrt(f_rmse / (3.0 * atoms)) : 0.0;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_RMSE_V)] = vframes > 0.0 ? sqrt(v_rmse / (6.0 * vframes)) : 0.0;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_X_E)] = x_e;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_X_F)] = x_f;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_X_V)] = x_v;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_SUM_R)] = sum_r;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_SUM_EPS)] = sum_eps;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_NUM_VIRIAL)] = vframes;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_NUM_ATOMS)] = atoms;
    record[NEP_LOSS_SCALAR(T, NEP_LOSS_NORM)] = nep_loss_root(l2 / np);
}

/* The per-structure quantities of selected structure j (nep_loss_structure) from predictions
 * in selection order: energy [num_selected], virials [num_selected][9], forces [sum N][3] with
 * the structure's atoms starting at atom `first` of the selection. */
NEP_HD void nep_loss_selected(const nep_loss_set *L, int j, long long first, const double *energy,
                              const double *virials, const double *forces, double *q)
{
    const int s = L->selected[j];
    const long long g = L->structure_offset[s];
    nep_loss_structure(L->structure_offset[s + 1] - g, energy[j], virials + 9 * (size_t)j,
                       forces + 3 * (size_t)first, L->ref_energy[s], L->ref_virial + 6 * (size_t)s,
                       L->has_virial[s], L->ref_forces + 3 * (size_t)g, L->force_weight + g,
                       L->weight[s], L->lambda_shear, q + (size_t)j * NEP_LOSS_STRUCTURE_LENGTH);
}

/* The force weight c_i of one atom (see the top of this file). */
NEP_HD double nep_loss_force_weight(double structure_weight, double type_weight,
                                    const double *f_ref, double force_delta)
{
    double c = structure_weight * structure_weight * type_weight * type_weight;
    if (force_delta > 0.0) {
        const double norm = sqrt(f_ref[0] * f_ref[0] + f_ref[1] * f_ref[1] + f_ref[2] * f_ref[2]);
        c *= force_delta / (force_delta + norm);
    }
    return c;
}

/* The per-set tables of nep_loss_set, once, on the host: contains [S][T + 1] (structure s holds
 * type t; column T always set) and force_weight [A] (c_i), from the atoms' types [A], the
 * structure offsets [S + 1], the structure weights [S], type_weight [T] and the reference
 * forces [A][3]. Returns the index of the first atom whose type is outside 0..T-1, or -1. */
static inline long long nep_loss_set_tables(int T, int S, const long long *structure_offset,
                                            const int *types, const double *weight,
                                            const double *type_weight, const double *forces,
                                            double force_delta, unsigned char *contains,
                                            double *force_weight)
{
    for (int s = 0; s < S; ++s) {
        unsigned char *row = contains + (size_t)s * (T + 1);
        for (int t = 0; t < T; ++t) row[t] = 0;
        row[T] = 1;
        for (long long i = structure_offset[s]; i < structure_offset[s + 1]; ++i) {
            const int t = types[i];
            if (t < 0 || t >= T) return i;
            row[t] = 1;
            force_weight[i] = nep_loss_force_weight(weight[s], type_weight[t], forces + 3 * i,
                                                    force_delta);
        }
    }
    return -1;
}

/* dL(T)/dE_n of structure n: Delta_n, eps_n, w_n, N_n and the loss record's scalars.
 * L_e = lambda_e sqrt(X), X = sum_m r_m (Delta_m - s) / S with r_m = w_m^2 eps_m (Delta_m - s);
 * dX/dDelta_n = 2 r_n / S - eps_n / sum eps * 2 sum_m r_m / S (through the shift). */
NEP_HD double nep_loss_energy_adjoint(double delta, double eps, double weight, double n_atoms,
                                      int num_structures, const double *scalars,
                                      double lambda_e)
{
    const double x = scalars[NEP_LOSS_X_E];
    if (!(x > 0.0) || lambda_e == 0.0) return 0.0;
    const double S = (double)num_structures;
    const double r = weight * weight * eps * (delta - scalars[NEP_LOSS_SHIFT]);
    double d = 2.0 * r / S;
    if (scalars[NEP_LOSS_SUM_EPS] > 0.0)
        d -= eps / scalars[NEP_LOSS_SUM_EPS] * (2.0 * scalars[NEP_LOSS_SUM_R] / S);
    return lambda_e / (2.0 * sqrt(x)) * d / n_atoms;
}

/* The factor k of dL(T)/dF_i = k c_i (F_i - F_i^ref). */
NEP_HD double nep_loss_force_adjoint_factor(const double *scalars, double lambda_f)
{
    const double x = scalars[NEP_LOSS_X_F];
    if (!(x > 0.0) || lambda_f == 0.0) return 0.0;
    return lambda_f / (2.0 * sqrt(x)) * 2.0 / (3.0 * scalars[NEP_LOSS_NUM_ATOMS]);
}

/* dL(T)/dW_n (3x3, row-major, into b9) of structure n with Wbar_n (six values). */
NEP_HD void nep_loss_virial_adjoint(const double *wbar, int has_virial, double weight,
                                    double n_atoms, const double *scalars, double lambda_v,
                                    double lambda_shear, double *b9)
{
    double six[6] = {0, 0, 0, 0, 0, 0};
    const double x = scalars[NEP_LOSS_X_V], nv = scalars[NEP_LOSS_NUM_VIRIAL];
    if (has_virial && nv > 0.0 && x > 0.0 && lambda_v != 0.0) {
        const double k = lambda_v / (2.0 * sqrt(x)) * 2.0 * weight * weight / (6.0 * nv) / n_atoms;
        for (int c = 0; c < 6; ++c) six[c] = k * nep_loss_kappa(c, lambda_shear) * wbar[c];
    }
    nep_loss_virial_six_adjoint(six, b9);
}

/* d(L1(T) + L2(T))/dz_p of a non-global parameter (0 for a global one); norm is
 * NEP_LOSS_NORM, num_parameters N_par. */
NEP_HD double nep_loss_regularisation_gradient(double z, int is_global, double norm,
                                               double num_parameters, double lambda_1,
                                               double lambda_2)
{
    if (is_global) return 0.0;
    const double sign = z > 0.0 ? 1.0 : (z < 0.0 ? -1.0 : 0.0);
    double g = lambda_1 * sign / num_parameters;
    if (norm > 0.0) g += lambda_2 * z / (num_parameters * norm);
    return g;
}

#endif
