/*
 * The per-atom kernel of the CUDA training objective, compiled once per precision
 * (-DNEP_REAL=double -DNEP_CUDA_NS=nepct_f64, or float and nepct_f32). One thread per atom runs
 * the CPU gradient's own per-atom maths, nep_train_atom (nep_train_atom.h, through NEP_HD) in
 * NEP_REAL: every product is NEP_REAL; the sums that leave the thread (energy, virial, pair
 * derivatives, the gradient row) are double.
 */
#include "nep_train_cuda_internal.cuh"

#include "nep_train_atom.h"

#ifndef NEP_CUDA_NS
#error "compile with -DNEP_CUDA_NS=nepct_f64 (or nepct_f32) and the matching -DNEP_REAL"
#endif

namespace NEP_CUDA_NS {

typedef NEP_REAL real;

size_t real_size() { return sizeof(real); }

/* Thread t of `threads` in a launch: where its work arrays start in `scratch` ([threads]
 * [scratch_len] values) and their stride (nep_train_atom's st). Interleaved (the default):
 * entry e of every thread's array side by side, so a warp's loads and stores of one entry
 * fall in one or two cache lines; otherwise each thread's arrays contiguous (the layout
 * before 2026-11-30, kept for the A/B on a device). */
__device__ static real *work_start(const nepct_args &A, real *scratch, size_t t, size_t threads,
                                   size_t *stride)
{
    if (A.interleave) {
        *stride = threads;
        return scratch + t;
    }
    *stride = 1;
    return scratch + t * (size_t)A.scratch_len;
}

/* Atom i with parameters `par`: its energy, virial and pair derivatives into e_atom, w_atom
 * and v_pair (whole-set arrays), its gradient into `grad` (NULL: none), entries `stride`
 * apart like its work arrays, which ws holds one after the other (NEP_TRAIN_WORK_* order). */
__device__ static __forceinline__ void train_atom(const nepct_args &A, const real *par, int i,
                                                  real *ws, size_t stride, double *grad,
                                                  double *e_atom, double *w_atom, double *v_pair)
{
    real *work[NEP_TRAIN_NUM_WORK];
    for (int k = 0; k < NEP_TRAIN_NUM_WORK; ++k) {
        work[k] = ws;
        ws += nep_train_work_length(&A.model, k) * stride;
    }
    const int st = A.atom_structure[i];
    const double *fadj = A.force_adjoint;
    double virial[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    e_atom[i] = nep_train_atom(&A.model, par, (const real *)A.q_scaler,
                                 (const real *)A.zbl, A.types[i], (size_t)A.pair_offset[i],
                                 (size_t)A.pair_offset[i + 1], A.neighbor, A.r, A.types,
                                 A.temperature ? A.temperature[st] : 0.0, fadj ? fadj + 3 * (size_t)i : NULL, fadj,
                                 A.virial_adjoint ? A.virial_adjoint + 9 * (size_t)st : NULL,
                                 A.alpha ? A.alpha[st] : 0.0, work, stride, grad, stride,
                                 v_pair, virial);
    for (int k = 0; k < 9; ++k) w_atom[9 * (size_t)i + k] = virial[k];
}

/* The t-th of `count` atoms of a launch (selected_atoms[first + t]); with a gradient (args.rows
 * set) into row t, interleaved (parameter k at rows[k count + t]) when the work arrays are. */
__device__ static __forceinline__ void atoms_body(const nepct_args &args, int first, int count)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= count) return;
    const int i = args.selected_atoms[first + t];
    size_t stride;
    real *ws = work_start(args, (real *)args.scratch, (size_t)t, (size_t)count, &stride);
    double *row = !args.rows ? NULL
                  : args.interleave ? args.rows + t
                                    : args.rows + (size_t)t * args.model.num_parameters;
    train_atom(args, (const real *)args.parameters, i, ws, stride, row, args.e_atom,
               args.w_atom, args.v_pair);
}

/* One-warp blocks of the gradient kernel an SM must fit: 12 in float32 (168 registers, 348
 * bytes spilled, nvcc 13.0 for sm_90) rather than the 8 of the unbounded kernel (244
 * registers, none spilled; 255 and 544 bytes spilled when the first H200 measured it): the
 * kernel waits on memory, so half again the warps to switch between should outweigh the
 * spills, which L1 holds (an expectation until a device has timed it: gpu-epoch's A/B
 * against the 128-register kernel, and bench_profile_train.py). float64 stays at 8 (255). */
#define GRADIENT_BLOCKS_PER_SM (sizeof(real) == 4 ? 12 : 8)

/* Every pass: predictions, or predictions and the gradient. */
__global__ void __launch_bounds__(NEPCT_THREADS, GRADIENT_BLOCKS_PER_SM)
    atoms_kernel(const nepct_args args, int first, int count)
{
    atoms_body(args, first, count);
}

/* The same asked to fit 16 one-warp blocks per SM (at most 128 registers on sm_90, the rest
 * spilled to local memory): more warps to hide latency with, each slower. Chosen by
 * NEPCT_KERNEL_WIDE_GRADIENT, for timing against the others on a device. */
__global__ void __launch_bounds__(NEPCT_THREADS, 16)
    atoms_kernel_wide(const nepct_args args, int first, int count)
{
    atoms_body(args, first, count);
}

/* The same with the registers nvcc chooses (244 in float32: 8 blocks per SM, no spills).
 * Chosen by NEPCT_KERNEL_UNBOUNDED_GRADIENT, for the same A/B. */
__global__ void atoms_kernel_unbounded(const nepct_args args, int first, int count)
{
    atoms_body(args, first, count);
}

/* One-warp blocks the prediction kernels (predict_kernel, population_kernel) must fit on an
 * SM: 16 (128 registers) in float32, where nvcc 13.0 would otherwise take 148 (13 warps) for
 * the grouped loads of nep_train_s_add and, bounded, spills 20 bytes; 12 (170 registers) in
 * float64, which fits without spilling where unbounded it took up to 252 (8 warps). */
#define PREDICT_BLOCKS_PER_SM (sizeof(real) == 4 ? 16 : 12)

/* A prediction pass (no gradient, no adjoints): the same maths with the gradient's NULLs
 * known to the compiler, which drops the gradient path and its registers (as for
 * population_kernel), so more warps fit an SM. Same arithmetic, same results. The NULL row
 * is passed literally: through atoms_body (a.rows = NULL in a copy) nvcc 13.0 kept 234 of the
 * 255 registers instead of 126. */
__global__ void __launch_bounds__(NEPCT_THREADS, PREDICT_BLOCKS_PER_SM)
    predict_kernel(const nepct_args args, int first, int count)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= count) return;
    nepct_args a = args;
    a.alpha = a.force_adjoint = a.virial_adjoint = NULL;
    const int i = a.selected_atoms[first + t];
    size_t stride;
    real *ws = work_start(a, (real *)a.scratch, (size_t)t, (size_t)count, &stride);
    train_atom(a, (const real *)a.parameters, i, ws, stride, NULL, a.e_atom, a.w_atom,
               a.v_pair);
}

/* Thread (k, t): the t-th selected atom for candidate k of a population, predictions only;
 * candidate k's parameters, per-atom and per-pair outputs and work arrays at k times the
 * given strides. */
__global__ void __launch_bounds__(NEPCT_THREADS, PREDICT_BLOCKS_PER_SM)
    population_kernel(const nepct_args args, int count, int candidates, nepct_population pop)
{
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (long long)count * candidates) return;
    const int k = (int)(g / count), t = (int)(g % count);
    /* predictions only: the adjoints' NULLs known to the compiler, as in predict_kernel (the
     * one caller passes them NULL) */
    nepct_args a = args;
    a.alpha = a.force_adjoint = a.virial_adjoint = NULL;
    const int i = a.selected_atoms[t];
    size_t stride;
    real *ws = work_start(a, (real *)pop.scratch, (size_t)g, (size_t)count * candidates, &stride);
    train_atom(a, (const real *)pop.parameters + (size_t)k * a.model.num_parameters, i, ws,
               stride, NULL, pop.e_atom + (size_t)k * pop.atoms, pop.w_atom + 9 * (size_t)k * pop.atoms,
               pop.v_pair + 3 * (size_t)k * pop.pairs);
}

size_t resident_atoms()
{
#ifdef NEPCU_HOST_EMULATION
    return 0;
#else
    int device = 0, sms = 0, blocks = 0, wide = 0;
    if (cudaGetDevice(&device) != cudaSuccess
        || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess
        || cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, atoms_kernel, NEPCT_THREADS, 0)
               != cudaSuccess
        || cudaOccupancyMaxActiveBlocksPerMultiprocessor(&wide, atoms_kernel_wide, NEPCT_THREADS,
                                                         0) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    /* the larger of the two gradient kernels' waves, so that either fills the device */
    return (size_t)sms * (size_t)(wide > blocks ? wide : blocks) * NEPCT_THREADS;
#endif
}

/* The per-atom kernels use no shared memory, and each thread's local arrays (the pair's
 * spherical harmonics and their gradients, a few hundred bytes an atom, written and read back
 * within one pair) are what L1 should hold: ask for the largest L1 the SM allows rather than
 * leave the split to the driver. A hint; the numbers do not depend on it. Once per process
 * (a function-local static is initialised once, thread-safely). */
static bool prefer_l1()
{
#ifndef NEPCU_HOST_EMULATION
    const int max_l1 = cudaSharedmemCarveoutMaxL1;
    cudaFuncSetAttribute(atoms_kernel, cudaFuncAttributePreferredSharedMemoryCarveout, max_l1);
    cudaFuncSetAttribute(atoms_kernel_wide, cudaFuncAttributePreferredSharedMemoryCarveout, max_l1);
    cudaFuncSetAttribute(predict_kernel, cudaFuncAttributePreferredSharedMemoryCarveout, max_l1);
    cudaFuncSetAttribute(population_kernel, cudaFuncAttributePreferredSharedMemoryCarveout, max_l1);
    cudaGetLastError(); /* a device that refuses the hint runs the kernels as before */
#endif
    return true;
}

void launch_atoms(const nepct_args &args, int first, int count, cudaStream_t stream)
{
    static const bool l1 = prefer_l1();
    (void)l1;
    if (count <= 0) return;
    const unsigned blocks = (count + NEPCT_THREADS - 1) / NEPCT_THREADS;
    const bool predictions = !args.rows && !args.alpha && !args.force_adjoint
                             && !args.virial_adjoint;
    if (predictions && (args.kernels & NEPCT_KERNEL_PREDICT))
        NEPCU_LAUNCH(predict_kernel, blocks, NEPCT_THREADS, stream, args, first, count);
    else if (args.kernels & NEPCT_KERNEL_WIDE_GRADIENT)
        NEPCU_LAUNCH(atoms_kernel_wide, blocks, NEPCT_THREADS, stream, args, first, count);
    else if (args.kernels & NEPCT_KERNEL_UNBOUNDED_GRADIENT)
        NEPCU_LAUNCH(atoms_kernel_unbounded, blocks, NEPCT_THREADS, stream, args, first, count);
    else
        NEPCU_LAUNCH(atoms_kernel, blocks, NEPCT_THREADS, stream, args, first, count);
}

void launch_population(const nepct_args &args, int count, int candidates,
                       const nepct_population &pop, cudaStream_t stream)
{
    static const bool l1 = prefer_l1();
    (void)l1;
    const long long n = (long long)count * candidates;
    if (n <= 0) return;
    NEPCU_LAUNCH(population_kernel, (unsigned)((n + NEPCT_THREADS - 1) / NEPCT_THREADS),
                 NEPCT_THREADS, stream, args, count, candidates, pop);
}

} /* namespace NEP_CUDA_NS */
