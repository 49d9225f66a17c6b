/*
 * nepzbl CUDA engine: the C API, a mirror of the CPU engine in nep.h.
 *
 * The model spec, nep_system and nep_outputs are those of nep.h and mean the same thing:
 * the same units, the same per-atom virial partition (row-major, given to the neighbour),
 * the same ZBL parts. Every entry point returns an enum nep_status value (NEP_OK on success);
 * CUDA runtime failures are NEP_ERR_CUDA (device allocation failures NEP_ERR_NOMEM) and
 * nep_cuda_last_error() then holds the CUDA message.
 *
 * Device memory persists in the model between calls and only grows. Each call uploads only
 * positions and cells (types when they change), and downloads only the requested outputs. The
 * neighbour list is a Verlet list (pair cutoff + skin) built on the GPU from a cell list, or by
 * periodic images for cells thinner than the list cutoff; it is rebuilt when any atom has moved
 * more than half the skin, or the cells, the pbc flags, the atom counts or the types change.
 * Forces are gathered, never scattered with atomics, and the lists are sorted, so two identical
 * calls give bitwise identical results.
 *
 * precision: 0 evaluates everything in float64. 1 evaluates the descriptor, network and pair
 * maths in float32 and accumulates per-atom outputs and totals in float64 (GPUMD's scheme).
 */
#ifndef NEPZBL_NEP_CUDA_H
#define NEPZBL_NEP_CUDA_H

#include "nep.h"

#ifdef __cplusplus
extern "C" {
#endif

enum nep_cuda_precision { NEP_CUDA_FLOAT64 = 0, NEP_CUDA_FLOAT32 = 1 };

typedef struct nep_cuda_model nep_cuda_model;

/* Number of usable CUDA devices; 0 when there is none or no driver (never an error). */
int nep_cuda_device_count(void);

/* Create a model on device device_id (cudaSetDevice) with the given precision. */
int nep_cuda_model_create(const nep_model_spec *spec, int precision, int device_id,
                          nep_cuda_model **out);
void nep_cuda_model_free(nep_cuda_model *model);
/* Replace the flat parameter vector (same length as at creation). */
int nep_cuda_model_set_parameters(nep_cuda_model *model, const double *parameters);
int nep_cuda_model_dim(const nep_cuda_model *model);
int nep_cuda_model_num_types(const nep_cuda_model *model);
int nep_cuda_model_num_neurons(const nep_cuda_model *model);
int nep_cuda_model_precision(const nep_cuda_model *model);
/* Verlet skin in Angstrom (default 1.0; >= 0). Changing it forces a rebuild. */
int nep_cuda_model_set_skin(nep_cuda_model *model, double skin);
/* Bytes of device memory the model holds now, and how many neighbour-list builds it did. */
size_t nep_cuda_model_device_bytes(const nep_cuda_model *model);
long nep_cuda_model_num_builds(const nep_cuda_model *model);

/* One structure. */
int nep_cuda_compute(nep_cuda_model *model, const nep_system *system, nep_outputs *outputs);

/* Many structures in one launch sequence (their atoms concatenated on the device). Every
 * outputs[k] asks for the same quantities as outputs[0] (NULL or not, pointer by pointer).
 * statuses[k] (may be NULL) receives each structure's status; the return value is the first
 * nonzero one. */
int nep_cuda_compute_batch(nep_cuda_model *model, int num_systems, const nep_system *systems,
                           nep_outputs *outputs, int *statuses);

/* Message for a status, with the CUDA detail of the last failure in this thread appended for
 * NEP_ERR_CUDA and NEP_ERR_NOMEM. The pointer stays valid until the next call in the thread. */
const char *nep_cuda_strerror(int status);
/* The CUDA runtime's message of the last failure in this thread ("" when none). */
const char *nep_cuda_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
