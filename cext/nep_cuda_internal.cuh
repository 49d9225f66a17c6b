/*
 * Internal interface between the host side of the CUDA engine (nep_cuda.cu) and the kernels
 * (nep_cuda_kernels.cu), which are compiled once per precision into namespaces nepcu_f64 and
 * nepcu_f32. Nothing here depends on NEP_REAL: precision-dependent buffers are void pointers.
 *
 * Device layouts (N atoms of the whole batch, MN neighbour slots per atom):
 *   neighbours  int4 nbr[slot * N + i] = (j, shift a, shift b, shift c), sorted per atom;
 *               r_ij = pos[j] - pos[i] + shift . cell (rows) of i's structure
 *   rev         int rev[slot * N + i]: the slot of (i, -shift) in j's list
 *   q           NEP_REAL q[d * N + i]     raw descriptors (before q_scaler)
 *   sg          NEP_REAL sg[(n * Ks + k) * N + i]  s-vectors, then dU/ds after the network
 *   fpr         NEP_REAL fpr[n * N + i]   dU/dq_n for the radial components (with q_scaler)
 *   v, vz       NEP_REAL v[(c * MN + slot) * N + i]  pair derivatives dU_i/dr_ij (all parts;
 *               vz the ZBL part alone, only when ZBL outputs are wanted)
 *   per-atom outputs are double and row-major: energy[N], forces[N][3], virials[N][9], ...
 */
#ifndef NEPZBL_NEP_CUDA_INTERNAL_CUH
#define NEPZBL_NEP_CUDA_INTERNAL_CUH

#include <stddef.h>

#ifdef NEPCU_HOST_EMULATION
/* Development aid for machines without a GPU: every kernel runs as a plain host loop over
 * blocks and threads (see nep_cuda_emulation.cuh). Never used by the meson build. */
#include "nep_cuda_emulation.cuh"
/* more than one thread, so that the block trees really combine threads (as fibers), and
 * few blocks for the MD loop's kinetic-energy tree, so that the tests' small systems give
 * every thread of it several atoms */
#define NEPCU_TOTALS_THREADS 8
#define NEPCU_KINETIC_BLOCKS 2
#else
#include <cuda_runtime.h>
#define NEPCU_LAUNCH(kernel, blocks, threads, stream, ...)                                   \
    kernel<<<(blocks), (threads), 0, (stream)>>>(__VA_ARGS__)
/* a kernel with __syncthreads (the host emulation runs its threads as fibers) */
#define NEPCU_LAUNCH_BARRIERS(kernel, blocks, threads, stream, ...)                          \
    NEPCU_LAUNCH(kernel, blocks, threads, stream, __VA_ARGS__)
/* a kernel with __syncthreads and `bytes` of dynamic shared memory, which it reaches through
 * NEPCU_DYNAMIC_SHARED(name) (a double array: 8-byte aligned) */
#define NEPCU_LAUNCH_SHARED(kernel, blocks, threads, bytes, stream, ...)                     \
    kernel<<<(blocks), (threads), (bytes), (stream)>>>(__VA_ARGS__)
#define NEPCU_DYNAMIC_SHARED(name) extern __shared__ double name[]
/* threads of the per-structure sum kernel (a power of two) */
#define NEPCU_TOTALS_THREADS 256
/* blocks of the MD loop's kinetic-energy sum (nep_cuda_md.cu) */
#define NEPCU_KINETIC_BLOCKS 128
/* the emulation's poisoning of reused device memory (nep_cuda_emulation.cuh): nothing here */
#define NEPCU_EMU_POISON(p, bytes) ((void)0)
#endif

/* Largest hidden layer the kernels hold in per-thread memory. */
#define NEPCU_MAX_NEURONS 256
/* Largest number of radial or angular channels (GPUMD's n_max limit is 19) and basis size
 * (GPUMD's basis_size limit is 19) held in per-thread arrays. */
#define NEPCU_MAX_CHANNELS 20
#define NEPCU_MAX_BASIS 20
/* Longest descriptor held in per-thread arrays (dU/dq): NEPCU_MAX_CHANNELS radial plus that
 * many per angular block (l_max <= 8 three-body blocks and the 6 optional invariants), plus
 * a temperature model's input. fill_dims refuses longer ones. */
#define NEPCU_MAX_DIM (NEPCU_MAX_CHANNELS * (1 + NEP_MAX_LMAX + 6) + 1)
/* Per-structure error bits, OR-ed by the kernels. */
#define NEPCU_FLAG_OVERLAP 1
#define NEPCU_FLAG_LIST 2 /* a pair without its reverse in the list: an engine bug */
/* Pairs closer than 1e-6 Angstrom inside a cutoff are overlapping atoms (as in the CPU
 * engine's NEP_OVERLAP_DISTANCE). */
#define NEPCU_OVERLAP2 1e-12

struct nepcu_dims {
    int version, num_types, n_max_radial, n_max_angular, basis_radial, basis_angular, l_max;
    int flags[6];
    int num_neurons, dim;
    int num_neurons2; /* a second hidden layer (k_network2), 0 for none */
    int num_abc; /* (L+1)^2 - 1 */
    int s_len;   /* max(num_abc, NEP_MIN_S_LEN): the stride of one channel's s-vector */
    int use_zbl;
    int temperature;      /* a temperature model: q[D-1] holds the structure's temperature */
    int block_size;       /* values per network block */
    int num_networks;     /* 1 for nep3, T otherwise */
    int c_radial_offset;  /* into the flat parameters */
    int c_angular_offset;
    int shared_bias_index;
};

/* Device copies of the model in the kernels' precision (NEP_REAL arrays). */
struct nepcu_model_dev {
    void *parameters; /* [num_parameters] */
    void *q_scaler;   /* [D] */
    void *rc_radial;  /* [T*T] */
    void *rc_angular; /* [T*T] */
    void *zbl_rows;   /* [T*T*10] */
    void *zbl_zizj;   /* [T*T] K Z_a Z_b */
    void *zbl_ainv;   /* [T*T] 1/a */
};

/* One evaluation of the whole batch. */
struct nepcu_work {
    int num_atoms, num_structs, max_neighbors;
    const double *pos;            /* [N][3] */
    const int *types;             /* [N] */
    const int *struct_of_atom;    /* [N] */
    const double *cells;          /* [S][9] rows a, b, c */
    const double *temperatures;   /* [S] K, temperature models only (else NULL) */
    const int4 *nbr;
    const int *nbr_count;         /* [N] */
    const int *rev;
    int *ang_slots;               /* [a * N + i]: i's slots inside the angular cutoff */
    int *ang_types;               /* [a * N + i]: the neighbour's type of angular pair a */
    void *ang_geom;               /* NEP_REAL [(c * MN + a) * N + i]: |r_ij|, then r_ij/|r_ij| */
    void *q, *sg, *fpr, *v, *vz;
    double *energy;      /* [N] always (NEP + ZBL per atom) */
    double *energy_zbl;  /* [N] or NULL */
    double *forces;      /* [N][3] or NULL */
    double *forces_zbl;  /* [N][3] or NULL */
    double *virials;     /* [N][9] or NULL */
    double *virials_zbl; /* [N][9] or NULL */
    double *descriptors; /* [N][D] or NULL (scaled by q_scaler) */
    double *latent;      /* [N][N1] or NULL: w1_k h_k, as NEP_CPU and the CPU engine */
    int *struct_flags;   /* [S] */
    int need_forces;     /* forces or virials wanted: run the derivative passes */
};

#define NEPCU_DECLARE(ns)                                                                   \
    namespace ns {                                                                          \
    cudaError_t upload_model(const nepcu_dims *dims, const nep_model_spec *spec,           \
                             nepcu_model_dev *dev, size_t *bytes, cudaStream_t stream);     \
    cudaError_t upload_parameters(const nepcu_dims *dims, const double *parameters,        \
                                  size_t num_parameters, nepcu_model_dev *dev,              \
                                  cudaStream_t stream);                                     \
    void free_model(nepcu_model_dev *dev);                                                  \
    size_t real_size();                                                                     \
    cudaError_t evaluate(const nepcu_dims *dims, const nepcu_model_dev *dev,               \
                         const nepcu_work *work, cudaStream_t stream);                      \
    }

#endif
