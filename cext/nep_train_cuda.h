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

/* Uploads the model header and the training set. `use_float64` selects the arithmetic.
 * Returns NEP_OK, a nep.h error for the model, NEP_ERR_NOMEM, or the first structure's
 * neighbour-list error (then *bad_system, when not NULL, names the structure); device
 * failures are reported as NEP_ERR_NOMEM (allocation) or NEP_ERR_UNSUPPORTED (no device),
 * with the CUDA message in nep_cuda_last_error (nep_cuda.h). */
int nep_train_cuda_create(const nep_model_spec *spec, int num_systems, const nep_system *systems,
                          int use_float64, nep_train_cuda **out, int *bad_system);

/* One evaluation: structures selected[0 .. num_selected) (indices into the systems given to
 * create, each at most once), parameters [P] (spec->parameters is not read again).
 *   alpha [num_selected], force_adjoint [sum N][3] (atoms of the selected structures in
 *   selection order), virial_adjoint [num_selected][9]: NULL for zero.
 *   gradient [P] (NULL: predictions only), energy [num_selected], forces [sum N][3],
 *   virials [num_selected][9]: outputs, NULL when not wanted.
 * Returns NEP_OK, NEP_ERR_ARGUMENT or a device failure as above. */
int nep_train_cuda_run(nep_train_cuda *handle, const double *parameters, int num_selected,
                       const int *selected, const double *alpha, const double *force_adjoint,
                       const double *virial_adjoint, double *gradient, double *energy,
                       double *forces, double *virials);

/* Predictions for a whole population of parameter vectors (SNES) in one launch sequence with
 * one synchronisation: parameters [population][P]; structures as in nep_train_cuda_run;
 * outputs energy [population][num_selected], forces [population][sum N][3],
 * virials [population][num_selected][9] (all required). */
int nep_train_cuda_predict_population(nep_train_cuda *handle, int population,
                                      const double *parameters, int num_selected,
                                      const int *selected, double *energy, double *forces,
                                      double *virials);

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
