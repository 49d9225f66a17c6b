/*
 * nepzbl training support: exact analytic gradients of a linear functional of the
 * predictions with respect to every trainable parameter.
 *
 * For a batch of structures s with total energy E_s, forces F_{s,i} and total virial W_s
 * (9 components row-major, W = -dE/dstrain, compression positive, the nep.h convention), and
 * caller-given adjoint weights alpha_s, a_{s,i} (3-vectors) and B_s (3x3 row-major),
 *
 *     g = sum_s [ alpha_s dE_s/dtheta + sum_i a_{s,i} . dF_{s,i}/dtheta
 *                 + sum_{ab} B_{s,ab} dW_{s,ab}/dtheta ]
 *
 * over the flat parameter vector theta (GPUMD nep.txt order, see nep.h). The loss's chain
 * rule gives alpha, a and B (dLoss/dE, dLoss/dF, dLoss/dW), so one call gives dLoss/dtheta.
 *
 * Method (forward over reverse, exact): with the pair perturbation
 * delta r_ij = a_j - a_i + B^T r_ij, sum_i a_i.F_i + B:W = -sum_(i,j) dU_i/dr_ij . delta r_ij
 * = -sum_i dU_i/dq . qdot_i, where qdot_i is the directional derivative of atom i's
 * descriptor. Its parameter gradient is taken in reverse mode, with the closed-form
 * Hessian-vector product of the tanh network and of every angular invariant.
 * ZBL has no trainable parameters; it enters the predictions only.
 *
 * The model is given as a nep_model_spec (nep.h); only spec->parameters is read per call,
 * so a trainer can change the vector between calls without rebuilding anything.
 * Work is parallel over atoms: the atoms of all structures of a call are cut into fixed
 * blocks (a block may span structures) that threads take dynamically; every block adds into
 * its own gradient buffer and the buffers are summed in block order. The blocks depend on the
 * atom counts only, so the result is bitwise the same for every thread count and every run.
 */
#ifndef NEPZBL_NEP_TRAIN_H
#define NEPZBL_NEP_TRAIN_H

#include "nep.h"
#include "nep_train_loss.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of flat parameters the spec describes (the same count as nep.txt), or 0 if the
 * spec is inconsistent. */
size_t nep_train_num_parameters(const nep_model_spec *spec);

/* Gradient of the linear functional above and, optionally, the predictions.
 *
 *   spec            model (nep.h); version 3/4/5, one hidden layer, with or without the
 *                   temperature input (systems[s].temperature, K).
 *   num_systems     S structures in systems[] (pbc per direction is honoured; a periodic
 *                   direction needs a non-singular cell).
 *   alpha           [S] energy adjoints, or NULL for zero.
 *   force_adjoint   [sum N][3] force adjoints, atoms of all structures concatenated in
 *                   order, or NULL for zero.
 *   virial_adjoint  [S][9] virial adjoints (row-major B_ab), or NULL for zero.
 *   gradient        [P] output (overwritten), or NULL to compute predictions only.
 *   energy          [S] total energies (NEP + ZBL), or NULL.
 *   forces          [sum N][3] forces, or NULL.
 *   virials         [S][9] total virials, row-major, or NULL.
 *                   With a gradient and none of the three, the call forms none of the
 *                   forces' terms (a trainer that predicted first, for the adjoints): the
 *                   same gradient, bit for bit, for less work.
 *   statuses        [S] per-structure status, or NULL.
 *   num_threads     <= 0: the OpenMP default.
 *
 * Returns NEP_OK or the first nonzero per-structure status (the outputs are then not
 * meaningful), or NEP_ERR_ARGUMENT / NEP_ERR_MODEL / NEP_ERR_NOMEM / NEP_ERR_UNSUPPORTED
 * for the call as a whole.
 */
int nep_train_gradient(const nep_model_spec *spec, int num_systems, const nep_system *systems,
                       const double *alpha, const double *force_adjoint,
                       const double *virial_adjoint, double *gradient, double *energy,
                       double *forces, double *virials, int *statuses, int num_threads);

/* A trainer's state between calls: the neighbour lists of the structures it has seen (they
 * do not depend on the parameters) and the work arrays, so that repeated calls on the same
 * structures neither rebuild lists nor allocate. One call at a time uses a cache (a second
 * concurrent call runs uncached). Its memory is that of every cached neighbour list. */
typedef struct nep_train_cache nep_train_cache;

nep_train_cache *nep_train_cache_create(void);
void nep_train_cache_free(nep_train_cache *cache);

/* nep_train_gradient with a cache. structure_ids[S] names each structure with a stable id
 * (>= 0): the caller promises that an id always denotes the same types, positions, cell and
 * pbc. A list is built on an id's first use and kept; a spec with other cutoffs or types
 * drops the kept lists. cache == NULL: no cache (ids ignored). */
int nep_train_gradient_cached(nep_train_cache *cache, const int *structure_ids,
                              const nep_model_spec *spec, int num_systems,
                              const nep_system *systems, const double *alpha,
                              const double *force_adjoint, const double *virial_adjoint,
                              double *gradient, double *energy, double *forces,
                              double *virials, int *statuses, int num_threads);

/* GPUMD's loss of the batch L->selected (nep_train_loss.h, the same pieces the GPU sums) from
 * predictions in selection order: energy [n], virials [n][9] (row-major), forces [sum N][3];
 * parameters z [P]. Writes the loss record (NEP_LOSS_LENGTH(T) doubles) and, each when not
 * NULL, dL(T)/dE [n], dL(T)/dF [sum N][3], dL(T)/dW [n][9] and the regularisation's
 * gradient [P]. work holds n * NEP_LOSS_STRUCTURE_LENGTH doubles. Sums in batch order.
 * Returns NEP_OK or NEP_ERR_ARGUMENT. */
int nep_train_loss(const nep_loss_set *L, const double *energy, const double *virials,
                   const double *forces, const double *z, double *work, double *record,
                   double *alpha, double *force_adjoint, double *virial_adjoint,
                   double *regularisation_gradient);

#ifdef __cplusplus
}
#endif
#endif
