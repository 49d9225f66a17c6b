/*
 * The per-atom kernel of the CUDA training objective, compiled once per precision
 * (-DNEP_REAL=double -DNEP_CUDA_NS=nepct_f64, or float and nepct_f32). One thread per atom runs
 * the CPU gradient's own per-atom maths, nep_train_atom (nep_train_atom.h, through NEP_HD) in
 * NEP_REAL: every product is NEP_REAL; the sums that leave the thread (energy, virial, pair
 * derivatives, the gradient row) are double.
 */
/* the per-atom maths with its read-modify-writes grouped (nep_train_grad_add) */
#define NEP_TRAIN_GROUPED_RMW 1
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
 * and v_pair (whole-set arrays; v_pair NULL: a gradient pass without predictions, which
 * writes none of the three), its gradient into `grad` (NULL: none), entries `stride`
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
    const double energy = nep_train_atom(
        &A.model, par, (const real *)A.q_scaler, (const real *)A.zbl, A.types[i],
        (size_t)A.pair_offset[i], (size_t)A.pair_offset[i] + (size_t)A.num_angular[i],
        (size_t)A.pair_offset[i + 1], A.neighbor, A.r, A.types,
        A.temperature ? A.temperature[st] : 0.0, fadj ? fadj + 3 * (size_t)i : NULL, fadj,
        A.virial_adjoint ? A.virial_adjoint + 9 * (size_t)st : NULL, A.alpha ? A.alpha[st] : 0.0,
        work, stride, grad, stride, v_pair, v_pair ? virial : NULL);
    if (!v_pair) return;
    e_atom[i] = energy;
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
 * SM: 16 (at most 128 registers) in float32, where the grouped loads of nep_train_s_add had
 * taken nvcc 13.0 to 148 (13 warps); 12 (at most 170) in float64, where unbounded it had
 * taken up to 252 (8 warps). Neither spills (127 and 168 registers at the end of
 * 2026-11-30). */
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

/* ---- the warp gradient kernel: one warp an atom, the atom's state in shared memory ----
 *
 * The per-atom kernels above give an atom one thread, whose work arrays (2.5 KB for LLZO in
 * float32), stack and gradient row live in global and local memory: with 8 to 16 warps per
 * SM that is far more than L1 holds, so nearly every access waits on L2 or DRAM. Here a
 * block of one warp takes one atom at a time: its descriptors, s-vectors and adjoints sit in
 * shared memory, its pairs are shared among the lanes in chunks of NEPCT_THREADS, and each
 * lane then owns entries (a descriptor, an s-vector entry, a coefficient) and sums the
 * chunk's contributions to them in pair order, so every sum keeps the order of the CPU's
 * (deterministic, no atomics). The per-channel maths, the neurons' and the pair maths are
 * the functions nep_train_atom calls (nep_train_atom.h); this is only another assembly of
 * them, the network's sums split over the lanes (neurons, then inputs).
 * Persistent: block b takes atoms b, b + blocks, ... and adds their gradients to row b (rows
 * [blocks][P], summed in order afterwards): for LLZO on an H200 87 MB of rows instead of a
 * row per atom of a tile (3.7 GB). One-hidden-layer networks (the host runs the other
 * kernels for two). */

/* Where a warp keeps an atom's state in its dynamic shared memory: NEP_REAL values (offsets
 * below, in values), then ints (each chunk pair's neighbour type and cutoff flags). A pair's
 * record in a chunk holds, in pass 1, fkR[bR+1] (fkpR ddot)[bR+1] ag[nA+1] agd[nA+1] y[K]
 * ydot[K], without the tangents (fkpR ddot, agd, ydot) in a prediction pass: half the
 * records, so more warps fit an SM; in pass 2, fkA[bA+1] fkpA[bA+1] sig[nA+1] tyd[nA+1] v[3]
 * phi (with predictions the radial basis and its derivative first, which the angular
 * basis then overwrites). */
struct warp_layout {
    int SG;  /* values of one channel's s-vector (max(K, NEP_TRAIN_S_LEN)) */
    int rec; /* values of one pair's record in a chunk (the larger pass's) */
    int o_rgd, o_ag, o_agd, o_y, o_ydot;           /* pass 1 (-1: none) */
    int o_fkA, o_fkpA, o_sig, o_tyd, o_v, o_phi;   /* pass 2 */
    int q, qdot, lam, mu, hidden, ne, na, s, sdot, sigma, tau, radial, pairs, reals;
    size_t bytes;
};

/* The layout of a gradient pass (gradient) or of a prediction pass. */
__host__ __device__ static warp_layout make_warp_layout(const nep_train_atom_model &m,
                                                        bool gradient)
{
    warp_layout w;
    const int K = m.num_abc, nA1 = m.n_max_angular + 1;
    const int bR1 = m.basis_radial + 1, bA1 = m.basis_angular + 1, D = m.dim;
    w.SG = nep_train_s_stride(&m);
    int at = bR1; /* after fkR */
    w.o_rgd = gradient ? at : -1, at += gradient ? bR1 : 0;
    w.o_ag = at, at += nA1;
    w.o_agd = gradient ? at : -1, at += gradient ? nA1 : 0;
    w.o_y = at, at += K;
    w.o_ydot = gradient ? at : -1, at += gradient ? K : 0;
    const int pass1 = at;
    w.o_fkA = 0, w.o_fkpA = bA1, w.o_sig = 2 * bA1, w.o_tyd = w.o_sig + nA1;
    w.o_v = w.o_tyd + nA1, w.o_phi = w.o_v + 3;
    const int pass2 = w.o_phi + 1;
    w.rec = pass1 > pass2 ? pass1 : pass2;
    if (w.rec < 2 * bR1) w.rec = 2 * bR1;
    /* an odd stride: the lanes writing their pairs' records (rec0 + lane rec) then hit 32
     * different banks of shared memory (16 per half-warp in float64); an even one shares
     * them (LLZO's 76 in float32: four lanes a bank) */
    w.rec |= 1;
    at = 0;
    w.q = at, at += D;
    w.qdot = at, at += D;
    w.lam = at, at += D;
    w.mu = at, at += D;
    w.hidden = at, at += m.num_neurons;
    w.ne = at, at += m.num_neurons; /* each neuron's dU/dz */
    w.na = at, at += m.num_neurons; /* and dPhi/dz */
    w.s = at, at += nA1 * w.SG;
    w.sdot = at, at += nA1 * w.SG;
    w.sigma = at, at += nA1 * w.SG;
    w.tau = at, at += nA1 * w.SG;
    w.radial = at, at += 2 * m.num_types * bR1; /* F then G, W over F (nep_train_radial_pair) */
    w.pairs = at, at += NEPCT_THREADS * w.rec;
    w.reals = at;
    w.bytes = sizeof(real) * (size_t)w.reals + sizeof(int) * 2 * NEPCT_THREADS;
    return w;
}

/* Pair p of the list, as both passes of the warp kernel take it: its neighbour (returned)
 * and the neighbour's type (*tj), its distance and unit vector (nep_train_pair_distance). */
__device__ static __forceinline__ int warp_pair(const nepct_args &A, size_t p, int *tj, real *d,
                                                real *u)
{
    const int j = A.neighbor[p];
    *tj = A.types[j];
    nep_train_pair_distance(A.r + 3 * p, d, u);
    return j;
}

/* Its perturbation with the atom's force adjoint ai and the virial adjoint B
 * (nep_train_pair_perturbation): delta, and u . delta returned. */
__device__ static __forceinline__ real warp_perturbation(const nepct_args &A, size_t p, int j,
                                                         const real *u, const double *ai,
                                                         const double *B, real *delta)
{
    const double *fadj = A.force_adjoint;
    return nep_train_pair_perturbation(A.r + 3 * p, u, ai, fadj ? fadj + 3 * (size_t)j : NULL,
                                       B, delta);
}

/* The warp kernels' body: GRADIENT a gradient pass (A.rows set; with predictions too when
 * A.v_pair is), otherwise predictions alone, the gradient path then known absent to the
 * compiler (as predict_kernel is to atoms_kernel). */
template <bool GRADIENT>
__device__ static __forceinline__ void warp_atoms(const nepct_args &A, int first, int count,
                                                  int blocks)
{
    NEPCU_DYNAMIC_SHARED(shared);
    const nep_train_atom_model &m = A.model;
    const warp_layout W = make_warp_layout(m, GRADIENT);
    const int lane = threadIdx.x, T = m.num_types, D = m.dim, K = m.num_abc;
    const int nR = m.n_max_radial, nA = m.n_max_angular, bR = m.basis_radial;
    const int bA = m.basis_angular, L = m.l_max, SG = W.SG;
    const real *par = (const real *)A.parameters, *scaler = (const real *)A.q_scaler;
    const real *zbl = (const real *)A.zbl;
    const size_t P = m.num_parameters;
    real *sr = (real *)shared;
    real *q = sr + W.q, *qdot = sr + W.qdot, *lam = sr + W.lam, *mu = sr + W.mu;
    real *hidden = sr + W.hidden, *ne = sr + W.ne, *na = sr + W.na;
    real *s = sr + W.s, *sdot = sr + W.sdot;
    real *sigma = sr + W.sigma, *tau = sr + W.tau, *rec0 = sr + W.pairs;
    /* the per-type radial sums F [T][bR+1] and G (W over F in pass 2), as in nep_train_atom */
    const int bR1 = bR + 1, nF = T * bR1;
    real *F = sr + W.radial, *G = F + nF;
    int *rec_type = (int *)(sr + W.reals), *rec_flags = rec_type + NEPCT_THREADS;
    /* a gradient pass (rows) or predictions only, the same for the whole launch; a gradient
     * pass whose predictions are known (v_pair NULL) forms none of the forces' terms */
    const bool want = GRADIENT, pred = !GRADIENT || A.v_pair != NULL;
    double *row = want ? A.rows + (size_t)blockIdx.x * P : NULL;
    /* the records' entries (warp_layout) */
    const int o_rgd = W.o_rgd, o_ag = W.o_ag, o_agd = W.o_agd, o_y = W.o_y, o_ydot = W.o_ydot;
    const int o_fkA = W.o_fkA, o_fkpA = W.o_fkpA, o_sig = W.o_sig, o_tyd = W.o_tyd;
    const int o_v = W.o_v, o_phi = W.o_phi;
    const int ownA = (nA + 1) * (bA + 1);

    for (int t = blockIdx.x; t < count; t += blocks) {
        const int i = A.selected_atoms[first + t];
        const int ti = A.types[i], st = A.atom_structure[i];
        const size_t p0 = (size_t)A.pair_offset[i], p1 = (size_t)A.pair_offset[i + 1];
        const double *fadj = A.force_adjoint;
        const double *ai = fadj ? fadj + 3 * (size_t)i : NULL;
        const double *B = A.virial_adjoint ? A.virial_adjoint + 9 * (size_t)st : NULL;
        const double alpha = A.alpha ? A.alpha[st] : 0.0;
        const size_t w0_off = (size_t)nep_network_of_type(m.version, ti) * m.block_size;
        for (int e = lane; e < D; e += NEPCT_THREADS) q[e] = qdot[e] = (real)0;
        for (int e = lane; e < (nA + 1) * SG; e += NEPCT_THREADS) s[e] = sdot[e] = (real)0;
        for (int e = lane; e < 2 * nF; e += NEPCT_THREADS) F[e] = (real)0;
        __syncthreads();

        /* ---- pass 1: lane l computes pair c + l, then each lane sums its entries */
        for (size_t c = p0; c < p1; c += NEPCT_THREADS) {
            const int chunk = (int)(p1 - c < NEPCT_THREADS ? p1 - c : NEPCT_THREADS);
            if (lane < chunk) {
                const size_t p = c + lane;
                real *rec = rec0 + lane * W.rec;
                int tj;
                real d, u[3], delta[3];
                real fk[NEP_TRAIN_MAX_BASIS], fkp[NEP_TRAIN_MAX_BASIS];
                const int j = warp_pair(A, p, &tj, &d, u);
                const real ddot = warp_perturbation(A, p, j, u, ai, B, delta);
                int flags = 0;
                const real rcr = (real)m.rc_radial[ti * T + tj];
                if (d < rcr) {
                    nep_train_radial_basis(d, rcr, bR, rec, fkp);
                    if (want)
                        for (int k = 0; k <= bR; ++k) rec[o_rgd + k] = fkp[k] * ddot;
                    flags |= 1;
                }
                rec_type[lane] = tj;
                const real rca = (real)m.rc_angular[ti * T + tj];
                if (d < rca) {
                    nep_train_radial_basis(d, rca, bA, fk, fkp);
                    if (want) nep_train_angular_tangent(L, d, u, delta, rec + o_y, rec + o_ydot);
                    else nep_sph(L, u[0], u[1], u[2], rec + o_y);
                    for (int n = 0; n <= nA; ++n) {
                        real gd;
                        rec[o_ag + n] = nep_train_channel_pair(
                            bA + 1, par + m.offset_angular
                                        + nep_coefficient_index(n, 0, bA + 1, T, ti, tj),
                            (size_t)T * T, fk, fkp, ddot, want ? &gd : NULL);
                        if (want) rec[o_agd + n] = gd;
                    }
                    flags |= 2;
                }
                rec_flags[lane] = flags;
            }
            __syncthreads();
            /* the chunk's pairs up to its last angular one (the list puts them first, so a
             * chunk of radial-only pairs has none, and its lanes sum F and G alone) */
            int angular_end = chunk;
            while (angular_end > 0 && !(rec_flags[angular_end - 1] & 2)) --angular_end;
            const int entries = 2 * bR1 + (angular_end > 0 ? (nA + 1) * K : 0);
            for (int e = lane; e < entries; e += NEPCT_THREADS) {
                if (e < 2 * bR1) {
                    /* F[t][k] (e = k) or G[t][k] (e = bR1 + k), t each pair's type, summed
                     * in pair order as nep_train_radial_pair does */
                    if (e >= bR1 && !want) continue;
                    real *sum = e < bR1 ? F + e : G + (e - bR1);
                    const int o = e < bR1 ? e : o_rgd + (e - bR1);
                    for (int j = 0; j < chunk; ++j)
                        if (rec_flags[j] & 1) sum[rec_type[j] * bR1] += rec0[j * W.rec + o];
                    continue;
                }
                const int n = (e - 2 * bR1) / K, k = (e - 2 * bR1) % K;
                real se = s[n * SG + k], sde = sdot[n * SG + k];
                for (int j = 0; j < angular_end; ++j) {
                    if (!(rec_flags[j] & 2)) continue;
                    const real *rec = rec0 + j * W.rec;
                    const real g = rec[o_ag + n];
                    se += g * rec[o_y + k];
                    if (want) sde += rec[o_agd + n] * rec[o_y + k] + g * rec[o_ydot + k];
                }
                s[n * SG + k] = se;
                sdot[n * SG + k] = sde;
            }
            __syncthreads();
        }

        /* ---- descriptors, network, adjoints (the functions nep_train_atom calls) */
        for (int n = lane; n <= nR; n += NEPCT_THREADS)
            q[n] = nep_train_radial_channel(&m, par, ti, n, F, want ? G : NULL, 1, &qdot[n]);
        for (int n = lane; n <= nA; n += NEPCT_THREADS)
            nep_train_channel_descriptors(&m, n, s + n * SG, want ? sdot + n * SG : NULL, 1, q,
                                          qdot, 1);
        if (lane == 0 && m.temperature) q[D - 1] = (real)A.temperature[st];
        __syncthreads();
        /* the network as nep_train_network1 takes it, with the same sums in the same order:
         * lane k the neuron k (its activation, nep_train_neuron_jvp, its bias and output
         * weight's gradient), then lane d the sums over neurons for input d (dU/dx, lam)
         * and the input weights' gradient; lane 0 U and the shared biases */
        const int N1 = m.num_neurons;
        const real *w0 = par + w0_off, *b0 = w0 + (size_t)N1 * D, *w1 = b0 + N1;
        double *gw0 = want ? row + w0_off : NULL;
        for (int k = lane; k < N1; k += NEPCT_THREADS) {
            /* (predictions: qdot and alpha are 0, so e is dU/dz_k alone and A is 0) */
            const real *wk = w0 + (size_t)k * D;
            const real h = nep_neuron(D, wk, b0[k], q, 1, scaler);
            real e, Ak, gw1;
            nep_train_neuron_jvp(D, wk, w1[k], h, qdot, 1, scaler, (real)alpha, &e, &Ak, &gw1);
            hidden[k] = h;
            ne[k] = e;
            na[k] = Ak;
            if (!want) continue;
            gw0[(size_t)N1 * D + k] -= (double)Ak;
            gw0[(size_t)N1 * D + N1 + k] += (double)gw1;
        }
        __syncthreads();
        for (int x = lane; want && x < N1 * D; x += NEPCT_THREADS) {
            const int k = x / D, d = x % D;
            gw0[x] += (double)nep_train_w0_term(na[k], ne[k], q[d], qdot[d], scaler[d]);
        }
        for (int d = lane; d < D; d += NEPCT_THREADS) {
            real dudx = (real)0, la = (real)0;
            for (int k = 0; k < N1; ++k) {
                const real w = w0[(size_t)k * D + d];
                dudx += ne[k] * w;
                la += na[k] * w;
            }
            mu[d] = -dudx * scaler[d];
            lam[d] = la * scaler[d];
        }
        double energy = 0.0;
        if (lane == 0) {
            real U = -par[m.shared_bias];
            if (m.version == 5) U -= w1[N1];
            for (int k = 0; k < N1; ++k) U += w1[k] * hidden[k];
            energy = (double)U;
            if (want) {
                row[m.shared_bias] -= alpha;
                if (m.version == 5) gw0[(size_t)(D + 2) * N1] -= alpha;
            }
        }
        __syncthreads();
        for (int n = lane; n <= nA; n += NEPCT_THREADS)
            nep_train_channel_adjoints(&m, n, s + n * SG, want ? sdot + n * SG : NULL, 1, lam,
                                       mu, 1, sigma + n * SG, tau + n * SG);
        /* the radial coefficients' gradient, one term per coefficient (lane: n, t, k) */
        for (int e = lane; want && e < (nR + 1) * nF; e += NEPCT_THREADS) {
            const int n = e / nF, x = e % nF;
            row[m.offset_radial + nep_coefficient_index(n, x % bR1, bR1, T, ti, x / bR1)] +=
                nep_train_radial_gradient(lam[n], mu[n], F[x], G[x]);
        }
        __syncthreads();
        for (int x = lane; x < nF; x += NEPCT_THREADS) /* then W over F */
            F[x] = nep_train_radial_weight(&m, par, ti, x / bR1, x % bR1, mu, 1);
        __syncthreads();

        /* ---- pass 2: pair derivatives, then each lane sums its coefficients' gradient;
         * without predictions only the angular pairs, which come first, have any */
        double virial = 0.0; /* lanes 0..8: component lane of -sum r (x) v */
        const size_t p2 = pred ? p1 : p0 + (size_t)A.num_angular[i];
        for (size_t c = p0; c < p2; c += NEPCT_THREADS) {
            const int chunk = (int)(p2 - c < NEPCT_THREADS ? p2 - c : NEPCT_THREADS);
            if (lane < chunk) {
                const size_t p = c + lane;
                real *rec = rec0 + lane * W.rec;
                int tj;
                real d, u[3], delta[3];
                real y[NEP_TRAIN_NUM_Y], dyr[NEP_TRAIN_NUM_Y][3], ydot[NEP_TRAIN_NUM_Y];
                const int j = warp_pair(A, p, &tj, &d, u);
                real v[3] = {(real)0, (real)0, (real)0};
                int flags = 0;
                const real rcr = (real)m.rc_radial[ti * T + tj];
                if (pred && d < rcr) {
                    /* the radial basis in the record (the angular one overwrites it) */
                    nep_train_radial_basis(d, rcr, bR, rec, rec + bR1);
                    const real *Wt = F + tj * bR1;
                    real gp = (real)0; /* dU/dd through the radial channels */
                    for (int k = 0; k <= bR; ++k) gp += Wt[k] * rec[bR1 + k];
                    for (int c3 = 0; c3 < 3; ++c3) v[c3] += gp * u[c3];
                }
                const real rca = (real)m.rc_angular[ti * T + tj];
                if (d < rca) {
                    const real ddot = warp_perturbation(A, p, j, u, ai, B, delta);
                    real *fk = rec + o_fkA, *fkp = rec + o_fkpA;
                    nep_train_radial_basis(d, rca, bA, fk, fkp);
                    if (pred) nep_train_angular_pair(L, d, u, delta, y, dyr, ydot);
                    else nep_train_angular_tangent(L, d, u, delta, y, ydot);
                    for (int n = 0; n <= nA; ++n) {
                        real tau_y, sig, tau_dy[3];
                        nep_train_pair_channel_sums(K, tau + n * SG, sigma + n * SG, 1, want, y,
                                                    ydot, pred ? dyr : NULL, &tau_y, &sig,
                                                    tau_dy);
                        if (pred) {
                            real g, gp;
                            nep_channel_deriv(bA + 1, par + m.offset_angular
                                                  + nep_coefficient_index(n, 0, bA + 1, T, ti, tj),
                                              (size_t)T * T, fk, fkp, &g, &gp);
                            for (int c3 = 0; c3 < 3; ++c3)
                                v[c3] -= gp * tau_y * u[c3] + g * tau_dy[c3];
                        }
                        rec[o_sig + n] = sig;
                        rec[o_tyd + n] = tau_y * ddot;
                    }
                    rec[o_phi] = (real)0;
                    if (pred && m.use_zbl) {
                        real phi, dphi;
                        nep_zbl_pair(d, m.atomic_numbers[ti], m.atomic_numbers[tj],
                                     zbl ? zbl + 10 * (size_t)(ti * T + tj) : NULL, &phi, &dphi);
                        rec[o_phi] = phi;
                        for (int c3 = 0; c3 < 3; ++c3) v[c3] += (real)0.5 * dphi * u[c3];
                    }
                    flags = 2;
                }
                for (int c3 = 0; pred && c3 < 3; ++c3) {
                    rec[o_v + c3] = v[c3];
                    A.v_pair[3 * p + c3] = (double)v[c3];
                }
                rec_type[lane] = tj;
                rec_flags[lane] = flags;
            }
            __syncthreads();
            /* the angular coefficients c[n][kb][ti][.] of the atom's type: each lane its own
             * (n, kb), summing the chunk's pairs in order and adding each run of one
             * neighbour type to that type's entry (pairs in type order make a run of a
             * type's pairs in a chunk, so every lane is busy on every pair and a chunk adds
             * once per type) */
            for (int e = lane; want && e < ownA; e += NEPCT_THREADS) {
                const int n = e / (bA + 1), kb = e % (bA + 1);
                double *entry = row + m.offset_angular;
                double sum = 0.0;
                int run = -1; /* the neighbour type being summed */
                for (int j = 0; j < chunk; ++j) {
                    if (!(rec_flags[j] & 2)) continue;
                    if (rec_type[j] != run) {
                        if (run >= 0) entry[nep_coefficient_index(n, kb, bA + 1, T, ti, run)] += sum;
                        run = rec_type[j];
                        sum = 0.0;
                    }
                    const real *rec = rec0 + j * W.rec;
                    sum += (double)(rec[o_sig + n] * rec[o_fkA + kb] + rec[o_tyd + n] * rec[o_fkpA + kb]);
                }
                if (run >= 0) entry[nep_coefficient_index(n, kb, bA + 1, T, ti, run)] += sum;
            }
            /* the virial (lanes 0..8) and the ZBL energy (lane 0), in pair order */
            if (pred && lane < 9)
                for (int j = 0; j < chunk; ++j)
                    virial -= A.r[3 * (c + j) + lane / 3]
                              * (double)rec0[j * W.rec + o_v + lane % 3];
            if (pred && lane == 0 && m.use_zbl)
                for (int j = 0; j < chunk; ++j)
                    if (rec_flags[j] & 2) energy += 0.5 * (double)rec0[j * W.rec + o_phi];
            __syncthreads();
        }
        if (pred && lane < 9) A.w_atom[9 * (size_t)i + lane] = virial;
        if (pred && lane == 0) A.e_atom[i] = energy;
        __syncthreads();
    }
}

/* Bounded like atoms_kernel (12 blocks per SM in float32: 168 registers, 216 bytes spilled,
 * where unbounded it took 255); an LLZO atom's state is 13.7 KB of shared memory in float32
 * (14,056 bytes), so 12 blocks take 181 of an H200 SM's 228 KB with the 1 KB the hardware
 * keeps for each block. */
__global__ void __launch_bounds__(NEPCT_THREADS, GRADIENT_BLOCKS_PER_SM)
    warp_gradient_kernel(const nepct_args A, int first, int count, int blocks)
{
    warp_atoms<true>(A, first, count, blocks);
}

/* A prediction pass a warp an atom: bounded like predict_kernel (16 blocks per SM in float32,
 * 127 registers, none spilled, where inside warp_gradient_kernel the same pass had that
 * kernel's 168 and 12 blocks), the adjoints' NULLs known to the compiler. Its pair records
 * have no tangents, so an LLZO atom's state is 9.0 KB (9,192 bytes) and 16 blocks take 163
 * of an SM's 228 KB. The same maths as the prediction pass of warp_gradient_kernel, the
 * same bits. */
__global__ void __launch_bounds__(NEPCT_THREADS, PREDICT_BLOCKS_PER_SM)
    warp_predict_kernel(const nepct_args args, int first, int count, int blocks)
{
    nepct_args a = args;
    a.alpha = a.force_adjoint = a.virial_adjoint = NULL;
    a.rows = NULL;
    warp_atoms<false>(a, first, count, blocks);
}

size_t warp_shared_bytes(const nepct_args &args)
{
    return make_warp_layout(args.model, args.rows != NULL).bytes;
}

int warp_blocks(const nepct_args &args)
{
#ifdef NEPCU_HOST_EMULATION
    (void)args;
    return 7; /* a few, so that every block takes several atoms in the tests */
#else
    int device = 0, sms = 0, per_sm = 0;
    const size_t bytes = warp_shared_bytes(args);
    if (cudaGetDevice(&device) != cudaSuccess
        || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess
        || cudaOccupancyMaxActiveBlocksPerMultiprocessor(
               &per_sm, args.rows ? warp_gradient_kernel : warp_predict_kernel, NEPCT_THREADS,
               bytes) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return sms * per_sm;
#endif
}

void launch_warp(const nepct_args &args, int first, int count, int blocks, cudaStream_t stream)
{
    if (count <= 0 || blocks <= 0) return;
    if (args.rows)
        NEPCU_LAUNCH_SHARED(warp_gradient_kernel, blocks, NEPCT_THREADS, warp_shared_bytes(args),
                            stream, args, first, count, blocks);
    else
        NEPCU_LAUNCH_SHARED(warp_predict_kernel, blocks, NEPCT_THREADS, warp_shared_bytes(args),
                            stream, args, first, count, blocks);
}

} /* namespace NEP_CUDA_NS */
