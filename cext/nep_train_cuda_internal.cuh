/*
 * Internal interface between the host side of the CUDA training objective (nep_train_cuda.cu)
 * and its kernels (nep_train_cuda_kernels.cu, compiled once per precision into the namespaces
 * nepct_f64 and nepct_f32). Precision-dependent buffers are void pointers here.
 *
 * Device layouts (A atoms of the whole training set, all structures concatenated; P pairs):
 *   pairs      pair_offset[A + 1] (CSR, per atom, in the C engine's neighbour-list order),
 *              neighbor[P] (global atom index), r[P][3] double (r_j(image) - r_i, Angstrom);
 *              built once on the host by nep_neighbor_build: positions never change in training
 *   incoming   in_offset[A + 1], in_pair[P]: the pairs whose neighbour is the atom, in pair
 *              order, so that forces are gathered (no atomics, reproducible sums)
 *   per atom   e_atom[A] double, w_atom[A][9] double; per pair v[P][3] double (dU_i/dr_ij)
 *   gradient   one float64 row of num_parameters per atom of the current tile, each thread
 *              adding only to its own row, interleaved like the work arrays (parameter k of
 *              the t-th of n atoms at rows[k n + t]; rows[t][k] when they are not); then
 *              summed per parameter in a fixed order into the float64 gradient
 *              (deterministic, no float atomics)
 */
#ifndef NEPZBL_NEP_TRAIN_CUDA_INTERNAL_CUH
#define NEPZBL_NEP_TRAIN_CUDA_INTERNAL_CUH

#include <stddef.h>

#include "nep_cuda_internal.cuh" /* NEPCU_LAUNCH, the host emulation, cudaError_t */
#include "nep_train_atom.h"      /* nep_train_atom_model, the per-atom maths */

struct nepct_args {
    /* model header, as the shared per-atom maths reads it (rc_* and atomic_numbers: device
     * copies, as given) */
    nep_train_atom_model model;
    int scratch_len; /* NEP_REAL values of one thread's work arrays */
    int interleave;  /* 1: the threads' work arrays and gradient rows interleaved entry by
                      * entry (default) */
    int kernels;     /* NEPCT_KERNEL_* bits: which per-atom kernel runs which pass */
    /* model arrays in NEP_REAL */
    const void *parameters, *q_scaler, *zbl; /* zbl: [T*T][10] or NULL */
    /* the training set (uploaded once) */
    const int *types, *atom_structure;
    const double *temperature; /* [S] K, temperature models only (else NULL) */
    const long long *pair_offset, *in_offset, *in_pair;
    const int *num_angular; /* [A] an atom's pairs within the angular cutoff (listed first) */
    const int *neighbor;
    const double *r;
    /* this call: selected atoms (global indices) and the adjoints (NULL = zero), indexed by
     * global atom / structure */
    const int *selected_atoms;
    const double *alpha, *force_adjoint, *virial_adjoint;
    /* work and outputs */
    void *scratch;   /* [tile][scratch_len] NEP_REAL */
    double *rows;    /* a tile's gradient rows (see above), or NULL for predictions only */
    double *e_atom, *w_atom, *v_pair;
};

/* Where the candidates of a population find their parameters (NEP_REAL [candidates][P]) and
 * put their per-atom and per-pair outputs (candidate k's at k x atoms, 9 k x atoms and
 * 3 k x pairs, whole-set indexing) and work arrays ([candidates x count][scratch_len]). */
struct nepct_population {
    const void *parameters;
    void *scratch;
    double *e_atom, *w_atom, *v_pair;
    size_t atoms, pairs;
};

/* Kernel choices (nepct_args.kernels, nep_train_cuda_set_kernels): a prediction pass runs
 * predict_kernel, specialised for it (default on); the gradient pass runs atoms_kernel
 * (bounded to 12 warps per SM in float32) unless atoms_kernel_wide (bounded to 16 warps,
 * 128 registers), atoms_kernel_unbounded (the registers nvcc chooses) or
 * warp_gradient_kernel (a warp an atom, its state in shared memory) is asked for; with the
 * warp kernel and predict_kernel off, a prediction pass runs warp_predict_kernel, the warp
 * kernel's body without the gradient path. */
#define NEPCT_KERNEL_PREDICT 1
#define NEPCT_KERNEL_WIDE_GRADIENT 2
#define NEPCT_KERNEL_UNBOUNDED_GRADIENT 4
#define NEPCT_KERNEL_WARP_GRADIENT 8

/* Threads per block of the per-atom kernels: one warp, so that a small batch (a few hundred
 * atoms, one thread each) spreads over as many SMs as it can. */
#define NEPCT_THREADS 32

#define NEPCT_DECLARE(ns)                                                                   \
    namespace ns {                                                                          \
    size_t real_size();                                                                     \
    /* atoms one launch of the gradient kernel keeps resident on the current device (SMs x  \
     * blocks per SM x NEPCT_THREADS); 0 in the host emulation */                           \
    size_t resident_atoms();                                                                \
    /* atoms selected_atoms[first .. first + count) of the call, one thread each */         \
    void launch_atoms(const nepct_args &args, int first, int count, cudaStream_t stream);   \
    /* every selected atom for each of `candidates` parameter vectors, in one launch */     \
    void launch_population(const nepct_args &args, int count, int candidates,              \
                           const nepct_population &pop, cudaStream_t stream);              \
    /* the warp kernels (warp_gradient_kernel with args.rows set, warp_predict_kernel      \
     * without): the pass's dynamic shared memory (bytes), the blocks that fill the device  \
     * (0 when the device cannot say), and a launch over atoms                              \
     * selected_atoms[first .. first + count) by `blocks` blocks, block b's gradient into   \
     * row b of args.rows ([blocks][num_parameters], zeroed by the caller) */              \
    size_t warp_shared_bytes(const nepct_args &args);                                      \
    int warp_blocks(const nepct_args &args);                                               \
    void launch_warp(const nepct_args &args, int first, int count, int blocks,             \
                     cudaStream_t stream);                                                 \
    }
NEPCT_DECLARE(nepct_f64)
NEPCT_DECLARE(nepct_f32)
#undef NEPCT_DECLARE

#endif
