/*
 * nepzbl training on a CUDA device: the predictions and the exact gradient of a linear
 * functional of them (the same quantity as nep_train.h, by the same method), for a training
 * set that is uploaded once.
 *
 *     g = sum_s [ alpha_s dE_s/dtheta + sum_i a_{s,i} . dF_{s,i}/dtheta
 *                 + sum_{ab} B_{s,ab} dW_{s,ab}/dtheta ]
 *
 * Creating the object checks the model, builds every structure's neighbour list once on the
 * host (positions do not change during training) and uploads the structures, the pair
 * vectors and the per-atom incoming-pair lists. A call uploads only the parameter vector, the
 * selected structures and their adjoints. float32 (default) computes every per-atom product
 * in float and sums energies, forces, virials and the gradient in double; float64 checks the
 * float32 path against the CPU. Every sum has a fixed order (no floating-point atomics):
 * a call is bitwise reproducible.
 */
#ifndef NEPZBL_NEP_TRAIN_CUDA_H
#define NEPZBL_NEP_TRAIN_CUDA_H

#include <stddef.h>

#include "nep.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nep_train_cuda nep_train_cuda;

/* The order of an atom's pairs on the device. Both keep the list's angular pairs first (so
 * that a warp's threads, an atom each, take their angular pairs together). BY_TYPE (the
 * default) then orders each part by the neighbour's type: the k-th pairs of a warp's atoms
 * mostly share a type pair, so their coefficients' gradient rows are one run of addresses
 * instead of one per type pair, and the warp kernel's lanes sum a chunk's pairs of one type
 * in one run. AS_LISTED keeps the neighbour list's (spatial) order, for timing the two. The
 * numbers are the same up to the order of the sums over an atom's pairs. */
enum { NEP_TRAIN_CUDA_PAIRS_BY_TYPE = 0, NEP_TRAIN_CUDA_PAIRS_AS_LISTED = 1 };

/* Uploads the model header and the training set. `use_float64` selects the arithmetic,
 * `pair_order` the order of each atom's pairs (above).
 * Returns NEP_OK, a nep.h error for the model, NEP_ERR_ARGUMENT, NEP_ERR_NOMEM, or the first
 * structure's neighbour-list error (then *bad_system, when not NULL, names the structure);
 * device failures are reported as NEP_ERR_NOMEM (allocation) or NEP_ERR_UNSUPPORTED (no
 * device), with the CUDA message in nep_cuda_last_error (nep_cuda.h). */
int nep_train_cuda_create(const nep_model_spec *spec, int num_systems, const nep_system *systems,
                          int use_float64, int pair_order, nep_train_cuda **out,
                          int *bad_system);

/* One evaluation: structures selected[0 .. num_selected) (indices into the systems given to
 * create, each at most once), parameters [P] (spec->parameters is not read again).
 *   alpha [num_selected], force_adjoint [sum N][3] (atoms of the selected structures in
 *   selection order), virial_adjoint [num_selected][9]: NULL for zero.
 *   gradient [P] (NULL: predictions only), energy [num_selected], forces [sum N][3],
 *   virials [num_selected][9]: outputs, NULL when not wanted. With a gradient and none of
 *   the three, the pass forms none of the forces' terms (as nep_train_gradient does).
 * Returns NEP_OK, NEP_ERR_ARGUMENT or a device failure as above. */
int nep_train_cuda_run(nep_train_cuda *handle, const double *parameters, int num_selected,
                       const int *selected, const double *alpha, const double *force_adjoint,
                       const double *virial_adjoint, double *gradient, double *energy,
                       double *forces, double *virials);

/* Predictions for a whole population of parameter vectors (SNES) in one launch sequence with
 * one synchronisation (as many candidates per launch as the population budget allows): parameters [population][P]; structures as in nep_train_cuda_run;
 * outputs energy [population][num_selected], forces [population][sum N][3],
 * virials [population][num_selected][9] (all required). */
int nep_train_cuda_predict_population(nep_train_cuda *handle, int population,
                                      const double *parameters, int num_selected,
                                      const int *selected, double *energy, double *forces,
                                      double *virials);

/* ------------------------------------------------------------------ the loss on the device
 * With the labels and GPUMD's loss weights uploaded once (nep_train_cuda_set_loss), a training
 * step never leaves the device: predictions, the loss of nep_train_loss.h, its adjoints, the
 * gradient and the optimiser's update. A loss record is NEP_LOSS_LENGTH(T) doubles
 * (nep_train_loss.h): L(t), L1(t), L2(t), the energy, force and virial terms for t = 0..T,
 * then the shift and the RMSEs. */
typedef struct {
    /* per structure, in the order given to create (S of them) */
    const double *energy;        /* [S] total reference energy, eV */
    const double *virial;        /* [S][6] reference virial xx yy zz xy yz zx, eV (any value
                                    where has_virial is 0) */
    const int *has_virial;       /* [S] */
    const double *weight;        /* [S] structure weight w */
    const double *energy_weight; /* [S] energy weight epsilon */
    const double *forces;        /* [sum N][3] reference forces, eV/A */
    /* GPUMD's weights (nep.in keywords of the same names; lambda_1/2 resolved) */
    double lambda_e, lambda_f, lambda_v, lambda_shear, lambda_1, lambda_2, force_delta;
    const double *type_weight;          /* [T] */
    const int *parameter_types;         /* [P] 0..T (T: the global bias) */
    const unsigned char *global_mask;   /* [P] 1: left out of the t = T regularisation */
} nep_train_cuda_labels;

/* Uploads the labels and weights (once per handle). NEP_ERR_ARGUMENT on a missing array, a
 * parameter type outside 0..T or a second call. */
int nep_train_cuda_set_loss(nep_train_cuda *handle, const nep_train_cuda_labels *labels);

/* NEP_LOSS_LENGTH(T): the doubles of one loss record. */
size_t nep_train_cuda_loss_length(const nep_train_cuda *handle);

/* The loss record of `parameters` [P] on the selected structures, and (gradient not NULL) its
 * exact gradient dL(T)/dz [P], regularisation included: predictions, loss, adjoints and
 * gradient in one call with one synchronisation (the L-BFGS step). */
int nep_train_cuda_loss_gradient(nep_train_cuda *handle, const double *parameters,
                                 int num_selected, const int *selected, double *record,
                                 double *gradient);

/* The loss records [population][length] of every row of parameters [population][P] (SNES): the
 * predictions and the losses in one launch sequence; only the records come back. */
int nep_train_cuda_population_loss(nep_train_cuda *handle, int population,
                                   const double *parameters, int num_selected,
                                   const int *selected, double *records);

/* Adam (AdamW) with its state on the device. The scalars are the host optimiser's:
 * bias1 = 1 - beta1^step, bias2 = 1 - beta2^step of the step being made. */
typedef struct {
    double learning_rate, beta1, beta2, eps, weight_decay, bias1, bias2;
} nep_train_cuda_adam;

/* Uploads the parameters, the moments m and v [P] and the decay mask [P] (1: decays). */
int nep_train_cuda_adam_start(nep_train_cuda *handle, const double *parameters, const double *m,
                              const double *v, const unsigned char *decay_mask);

/* One step on the selected structures: the loss record of the parameters before the update
 * into record; *updated is 0 (and nothing changed) when the loss or the gradient is not
 * finite. One synchronisation; only the record and the flag come back. */
int nep_train_cuda_adam_step(nep_train_cuda *handle, int num_selected, const int *selected,
                             const nep_train_cuda_adam *adam, double *record, int *updated);

/* Downloads the parameters, m and v (each may be NULL). */
int nep_train_cuda_adam_state(nep_train_cuda *handle, double *parameters, double *m, double *v);

/* The device memory (bytes) a population's evaluation may hold for the candidates it runs
 * side by side (per-atom and per-pair outputs, work arrays); default 1 GiB. At least one
 * candidate runs at a time whatever the budget. */
void nep_train_cuda_set_population_budget(nep_train_cuda *handle, size_t bytes);

/* At most `atoms` atoms a launch of the per-atom kernels (and at most that many warp-kernel
 * blocks), within what the buffers were sized for: for tests, so that a small set runs as
 * several tiles, as a large one does. */
void nep_train_cuda_set_tile(nep_train_cuda *handle, int atoms);

/* The per-atom kernels' work arrays and gradient rows: interleaved entry by entry across the
 * threads of a launch (1, the default: a warp's accesses coalesce, and the rows are summed at
 * the device's bandwidth) or each thread's contiguous (0, the first layout). The same numbers
 * up to the order of the gradient's sums; for timing the two on a device. */
void nep_train_cuda_set_interleaved(nep_train_cuda *handle, int interleaved);

/* Which per-atom kernel runs which pass (the same numbers; for timing them on a device):
 * predict_kernel 1 (default) runs prediction passes in a kernel specialised for them (no
 * gradient path: fewer registers, more warps per SM), 0 in the gradient kernel. The gradient
 * runs in the kernel gradient_kernel names: NEP_TRAIN_CUDA_GRADIENT_DEFAULT (bounded to 12
 * one-warp blocks per SM in float32: 168 registers on sm_90, the rest spilled),
 * NEP_TRAIN_CUDA_GRADIENT_WIDE (16 blocks, 128 registers),
 * NEP_TRAIN_CUDA_GRADIENT_UNBOUNDED (the registers nvcc chooses: 244, 8 blocks) or
 * NEP_TRAIN_CUDA_GRADIENT_WARP (a warp an atom, its state in shared memory; one-hidden-layer
 * models whose atom state fits 48 KB, the default kernel otherwise; with predict_kernel 0 a
 * prediction pass then runs a warp an atom too, in warp_predict_kernel). */
enum {
    NEP_TRAIN_CUDA_GRADIENT_DEFAULT = 0,
    NEP_TRAIN_CUDA_GRADIENT_WIDE = 1,
    NEP_TRAIN_CUDA_GRADIENT_UNBOUNDED = 2,
    NEP_TRAIN_CUDA_GRADIENT_WARP = 3
};
void nep_train_cuda_set_kernels(nep_train_cuda *handle, int predict_kernel, int gradient_kernel);

/* Device memory held (bytes), the number of parameters, atoms and pairs. */
size_t nep_train_cuda_device_bytes(const nep_train_cuda *handle);
size_t nep_train_cuda_num_parameters(const nep_train_cuda *handle);
size_t nep_train_cuda_num_pairs(const nep_train_cuda *handle);

/* The CUDA runtime's message of the last failure in this thread ("" when none). */
const char *nep_train_cuda_last_error(void);

void nep_train_cuda_free(nep_train_cuda *handle);

#ifdef __cplusplus
}
#endif
#endif
