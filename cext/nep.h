/*
 * nepzbl C engine: public API.
 *
 * C99, no Python. The caller owns every input and output buffer; the engine holds no
 * global state. Every entry point returns an int status (NEP_OK on success) and
 * nep_strerror() turns it into a message.
 *
 * Conventions (see ../shared/docs/nep-reference.md):
 *   - float64 throughout; units Angstrom, eV, eV/Angstrom; virial in eV.
 *   - positions are row-major (N,3); the cell is row-major (3,3) with rows a, b, c.
 *   - virials are 9 components, row-major xx xy xz yx yy yz zx zy zz.
 *     W = -dE/d(strain) (compression positive); per-atom virials use GPUMD's and NEP_CPU's
 *     partition (the r_ij (x) dU_j/dr_ji term is given to atom i).
 *   - the model parameters are one flat vector in GPUMD's nep.txt order (network blocks,
 *     shared bias, radial then angular descriptor coefficients), followed by nothing else;
 *     q_scaler and the flexible ZBL table are passed separately.
 */
#ifndef NEPZBL_NEP_H
#define NEPZBL_NEP_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>
#include <stdint.h>

enum nep_status {
    NEP_OK = 0,
    NEP_ERR_NOMEM = 1,        /* allocation failed */
    NEP_ERR_ARGUMENT = 2,     /* a NULL or out-of-range argument */
    NEP_ERR_MODEL = 3,        /* inconsistent model specification */
    NEP_ERR_TYPE = 4,         /* an atom type outside 0..T-1 */
    NEP_ERR_OVERLAP = 5,      /* two atoms (or an atom and an image) at the same position */
    NEP_ERR_CELL = 6,         /* singular cell, or a periodic cell too thin for the images */
    NEP_ERR_NONFINITE = 7,    /* NaN, inf or beyond 1e10 A in positions or cell */
    NEP_ERR_UNSUPPORTED = 8,  /* a model feature this engine does not evaluate */
    NEP_ERR_CUDA = 9          /* a CUDA runtime error (CUDA engine only) */
};

/* Indices into nep_model_spec.flags, in descriptor block order. */
enum nep_flag { NEP_Q222 = 0, NEP_Q1111 = 1, NEP_Q112 = 2, NEP_Q123 = 3, NEP_Q233 = 4, NEP_Q134 = 5 };

#define NEP_MAX_TYPES 94
#define NEP_MAX_LMAX 8
#define NEP_MAX_NEURONS 256 /* of each layer of a two-layer network (GPUMD allows 120) */

/* Everything needed to build a model. Arrays are copied by nep_model_create. */
typedef struct {
    int version;          /* 3, 4 or 5 */
    int num_types;        /* T */
    int n_max_radial;     /* nR: nR+1 radial channels */
    int n_max_angular;    /* nA */
    int basis_radial;     /* bR: bR+1 Chebyshev functions */
    int basis_angular;    /* bA */
    int l_max;            /* L, 1..8 */
    int flags[6];         /* q222 q1111 q112 q123 q233 q134, nonzero = on */
    int num_neurons;      /* N1 */
    /* Pair tables, [T][T] row-major, symmetric. Python resolves GPUMD's per-type cutoffs
     * (pair cutoff = mean) and historic typewise forms into these, so C has one path. */
    const double *rc_radial;      /* [T][T] radial pair cutoffs */
    const double *rc_angular;     /* [T][T] angular pair cutoffs (ZBL also uses this list) */
    const int *atomic_numbers;    /* [T], Z counted from 1 */
    int use_zbl;                  /* 0 or 1 */
    /* [T][T][10]: r_inner r_outer A1 B1 A2 B2 A3 B3 A4 B4 for every ordered pair. The
     * universal and typewise modes are written here with the universal coefficients; the
     * screening length a = 0.46848/(Z_a^0.23 + Z_b^0.23) is always universal. */
    const double *zbl;
    const double *parameters;     /* flat vector, GPUMD order */
    size_t num_parameters;        /* must equal nep_model_spec_num_parameters() */
    const double *q_scaler;       /* [D] */
    /* Nonzero for GPUMD's temperature models (nep4_temperature, nep4_zbl_temperature): the
     * descriptor gets one more entry, the last, which holds the structure's temperature (K,
     * nep_system.temperature) before q_scaler. Nothing depends on it but the energy, so the
     * forces see it only through the network. Last so that zero-initialised specs stay plain. */
    int temperature;
    /* N2 > 0: a second hidden layer (GPUMD's `ANN N1 N2`, which GPUMD's nep trains but its MD
     * and NEP_CPU do not read), 1..NEP_MAX_NEURONS neurons; 0: one hidden layer. Per network
     * block: w0 [N1][D], b0 [N1], w1 [N2][N1], b1 [N2], w2 [N2] (then nep5's beta), and the
     * shared bias b2 after the blocks; U = w2 . h2 - b2, h2 = tanh(w1 h1 - b1),
     * h1 = tanh(w0 x - b0). The latent-space output is not defined for it. */
    int num_neurons_second;
} nep_model_spec;

typedef struct nep_model nep_model;

/* Derived sizes: descriptor length D and the flat parameter count for a spec (0 when the
 * header fields are out of range). */
int nep_model_spec_dim(const nep_model_spec *spec);
size_t nep_model_spec_num_parameters(const nep_model_spec *spec);

/* Checks a whole spec as nep_model_create does: NEP_OK or the error it would return. */
int nep_model_spec_check(const nep_model_spec *spec);

int nep_model_create(const nep_model_spec *spec, nep_model **out);
void nep_model_free(nep_model *model);
/* Replace the flat parameter vector (same length as at creation); for training. */
int nep_model_set_parameters(nep_model *model, const double *parameters);
int nep_model_dim(const nep_model *model);
int nep_model_num_neurons(const nep_model *model);
double nep_model_max_cutoff(const nep_model *model);

/* One structure. pbc[k] = 0 makes direction k open (no images along cell row k). */
typedef struct {
    int num_atoms;
    const int *types;         /* [N], 0..T-1 */
    const double *positions;  /* [N][3] */
    const double *cell;       /* [3][3], rows a, b, c */
    int pbc[3];
    double temperature;       /* K; read only by temperature models (GPUMD's temperature= in
                               * train.xyz, the target temperature in MD) */
} nep_system;

/* What to compute: every pointer may be NULL, meaning "not wanted". */
typedef struct {
    double *energy;        /* [1] total (NEP + ZBL) */
    double *energies;      /* [N] per-atom */
    double *forces;        /* [N][3] */
    double *virial;        /* [9] total */
    double *virials;       /* [N][9] per-atom */
    double *descriptors;   /* [N][D], scaled by q_scaler (the network input) */
    double *latent;        /* [N][N1] hidden-layer activations (calorine's latent space; one
                            * hidden layer only: NEP_ERR_UNSUPPORTED with a second one) */
    /* The ZBL part alone (already included in the totals above). */
    double *energy_zbl;    /* [1] */
    double *energies_zbl;  /* [N] */
    double *forces_zbl;    /* [N][3] */
    double *virial_zbl;    /* [9] */
} nep_outputs;

/* Evaluate one structure. num_threads <= 0 means the OpenMP default. */
int nep_compute(const nep_model *model, const nep_system *system, nep_outputs *outputs,
                int num_threads);

/* Evaluate many structures, in parallel over structures. statuses[k] receives each
 * structure's status; the return value is the first nonzero one (or NEP_OK). */
int nep_compute_batch(const nep_model *model, int num_systems, const nep_system *systems,
                      nep_outputs *outputs, int *statuses, int num_threads);

/* Every atom's radial and angular neighbour counts, as GPUMD writes their maxima on a model's
 * cutoff line: a periodic system (system->pbc is ignored; every direction periodic, as in
 * GPUMD's trainer), every periodic image a separate neighbour (only an atom's own zero-shift
 * image left out), a pair counted when its distance is strictly below its type pair's cutoff
 * (rc_radial, rc_angular: [T][T], Angstrom). radial and angular receive N counts each.
 * Statuses as nep_compute's neighbour list: NEP_ERR_OVERLAP for two atoms at one place. */
int nep_neighbor_counts(const nep_system *system, int num_types, const double *rc_radial,
                        const double *rc_angular, int *radial, int *angular);

const char *nep_strerror(int status);

/* Whether the library was built with OpenMP, and its default thread count. */
int nep_openmp_enabled(void);
int nep_max_threads(void);

#ifdef __cplusplus
}
#endif
#endif
