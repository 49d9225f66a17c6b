/*
 * Host emulation of the small part of CUDA the engine uses, so that the CUDA engine's exact
 * sources can be compiled by a plain C++ compiler and checked against the CPU engine on a
 * machine without a GPU (-DNEPCU_HOST_EMULATION, g++ -x c++). Kernels run as sequential loops
 * over blocks and threads (last first with NEPCU_EMU_REVERSE=1); atomics are plain
 * read-modify-writes; launches a device would refuse are refused; fresh and reused device
 * memory is poisoned. Only for testing: the meson build never defines NEPCU_HOST_EMULATION.
 */
#ifndef NEPZBL_NEP_CUDA_EMULATION_CUH
#define NEPZBL_NEP_CUDA_EMULATION_CUH

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <vector>

#define __global__
#define __launch_bounds__(...)
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __syncthreads() nepcu_emu_syncthreads()

struct nepcu_emu_dim3 {
    unsigned x, y, z;
};
inline thread_local nepcu_emu_dim3 threadIdx = {0, 0, 0};
inline thread_local nepcu_emu_dim3 blockIdx = {0, 0, 0};
inline thread_local nepcu_emu_dim3 blockDim = {1, 1, 1};

struct int4 {
    int x, y, z, w;
};
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

inline int atomicAdd(int *p, int v) { const int old = *p; *p += v; return old; }
inline int atomicOr(int *p, int v) { const int old = *p; *p |= v; return old; }
inline int atomicMax(int *p, int v) { const int old = *p; if (v > old) *p = v; return old; }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{
    const unsigned long long old = *p;
    *p += v;
    return old;
}
inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v)
{
    const unsigned long long old = *p;
    if (v < old) *p = v;
    return old;
}

struct double3 {
    double x, y, z;
};
inline double3 make_double3(double x, double y, double z) { return double3{x, y, z}; }

typedef int cudaError_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2, cudaErrorInvalidConfiguration = 9 };
typedef void *cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice
};
#define cudaStreamNonBlocking 1

inline const char *cudaGetErrorString(cudaError_t e)
{
    return e == cudaSuccess                     ? "no error"
           : e == cudaErrorInvalidConfiguration ? "invalid configuration argument"
                                                : "emulated error";
}
inline const char *cudaGetErrorName(cudaError_t e)
{
    return e == cudaSuccess                     ? "cudaSuccess"
           : e == cudaErrorInvalidConfiguration ? "cudaErrorInvalidConfiguration"
                                                : "cudaErrorEmulated";
}
/* A launch error waits here for cudaGetLastError, as on a device: a launch that is never
 * checked loses its error just as silently (and the next check reports it). */
inline thread_local cudaError_t nepcu_emu_last_error = cudaSuccess;
inline cudaError_t cudaGetLastError()
{
    const cudaError_t e = nepcu_emu_last_error;
    nepcu_emu_last_error = cudaSuccess;
    return e;
}
inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = malloc(n);
    if (*p) memset(*p, 0xA5, n); /* garbage, as on a GPU: reading unset memory must show */
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
inline cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
inline cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind)
{
    memmove(d, s, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t)
{
    return cudaMemcpy(d, s, n, k);
}
inline cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t)
{
    memset(d, v, n);
    return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
/* no device memory to ask about: the callers size nothing from it in the emulation */
inline cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    *free_bytes = *total_bytes = 0;
    return cudaSuccess;
}

/* A device refuses a launch of 0 blocks, of more than 2^31 - 1 blocks, or of 0 or more than
 * 1024 threads per block: it runs nothing and leaves cudaErrorInvalidConfiguration. So does the
 * emulation, and it says so on stderr (an unchecked launch shows in the test's output). */
inline bool nepcu_emu_launch_ok(long long blocks, long long threads, const char *kernel)
{
    if (blocks >= 1 && blocks <= 2147483647LL && threads >= 1 && threads <= 1024) return true;
    fprintf(stderr, "nepcu emulation: invalid launch of %s with %lld blocks of %lld threads\n",
            kernel, blocks, threads);
    nepcu_emu_last_error = cudaErrorInvalidConfiguration;
    return false;
}

/* NEPCU_EMU_REVERSE=1 in the environment runs every launch's blocks, and the threads of each
 * block, last first: a kernel that reads what another thread or block of the same launch
 * writes then gives other numbers than in the forward order (tests compare the two). */
inline bool nepcu_emu_reverse()
{
    static const bool reverse = [] {
        const char *e = getenv("NEPCU_EMU_REVERSE");
        return e != NULL && e[0] == '1';
    }();
    return reverse;
}

/* Device memory that a call reuses holds whatever the last call left there: in the emulation
 * it is poisoned again (as cudaMalloc's), so that a kernel reading what this call never wrote
 * fails the tests instead of passing on the last call's numbers. */
#define NEPCU_EMU_POISON(p, bytes) memset((p), 0xA5, (bytes))

/* Kernels with __syncthreads (launched by NEPCU_LAUNCH_BARRIERS) run each block's threads as
 * fibers: every thread runs until it waits at __syncthreads or ends, then the next one; when
 * all have arrived, all go on. A missing barrier then reads what another thread has not
 * written yet, as it may on a device. Elsewhere __syncthreads has nothing to wait for. */
struct nepcu_emu_fibers {
    ucontext_t scheduler;
    ucontext_t *context = nullptr;
    char *stacks = nullptr;
    int *done = nullptr;
    unsigned capacity = 0, current = 0;
    bool active = false;
    const std::function<void()> *body = nullptr;
};
inline thread_local nepcu_emu_fibers nepcu_emu_fiber;
#define NEPCU_EMU_FIBER_STACK ((size_t)1 << 18)

inline void nepcu_emu_syncthreads()
{
    nepcu_emu_fibers &f = nepcu_emu_fiber;
    if (f.active) swapcontext(&f.context[f.current], &f.scheduler);
}

inline void nepcu_emu_fiber_main()
{
    nepcu_emu_fibers &f = nepcu_emu_fiber;
    (*f.body)();
    f.done[f.current] = 1; /* then back to the scheduler (uc_link) */
}

inline void nepcu_emu_run_block(unsigned threads, bool reverse, const std::function<void()> &body)
{
    nepcu_emu_fibers &f = nepcu_emu_fiber;
    if (f.capacity < threads) {
        free(f.context);
        free(f.stacks);
        free(f.done);
        f.context = (ucontext_t *)malloc(sizeof(ucontext_t) * threads);
        f.stacks = (char *)malloc(NEPCU_EMU_FIBER_STACK * threads);
        f.done = (int *)malloc(sizeof(int) * threads);
        if (!f.context || !f.stacks || !f.done) {
            fprintf(stderr, "nepcu emulation: no memory for %u fibers\n", threads);
            abort();
        }
        f.capacity = threads;
    }
    for (unsigned t = 0; t < threads; ++t) {
        getcontext(&f.context[t]);
        f.context[t].uc_stack.ss_sp = f.stacks + NEPCU_EMU_FIBER_STACK * t;
        f.context[t].uc_stack.ss_size = NEPCU_EMU_FIBER_STACK;
        f.context[t].uc_link = &f.scheduler;
        makecontext(&f.context[t], nepcu_emu_fiber_main, 0);
        f.done[t] = 0;
    }
    f.body = &body;
    f.active = true;
    for (bool waiting = true; waiting;) { /* one round per barrier */
        waiting = false;
        for (unsigned k = 0; k < threads; ++k) {
            const unsigned t = reverse ? threads - 1 - k : k;
            if (f.done[t]) continue;
            f.current = t;
            threadIdx.x = t;
            swapcontext(&f.scheduler, &f.context[t]);
            waiting = waiting || !f.done[t];
        }
    }
    f.active = false;
}

/* Dynamic shared memory: one buffer, which a block's fibers share (they run on one host
 * thread) and which is poisoned before each block, as a block on a device finds its shared
 * memory holding whatever was there. */
inline thread_local std::vector<double> nepcu_emu_shared;
#define NEPCU_DYNAMIC_SHARED(name) double *name = nepcu_emu_shared.data()
#define NEPCU_LAUNCH_SHARED(kernel, blocks, threads, bytes, stream, ...)                     \
    do {                                                                                     \
        (void)(stream);                                                                      \
        const long long nb_ = (long long)(blocks), nt_ = (long long)(threads);               \
        if (!nepcu_emu_launch_ok(nb_, nt_, #kernel)) break;                                  \
        const bool rev_ = nepcu_emu_reverse();                                               \
        const std::function<void()> body_ = [&] { kernel(__VA_ARGS__); };                    \
        blockDim.x = (unsigned)nt_;                                                          \
        nepcu_emu_shared.resize(((size_t)(bytes) + 7) / 8 + 1);                              \
        for (long long b_ = 0; b_ < nb_; ++b_) {                                             \
            memset(nepcu_emu_shared.data(), 0xA5, nepcu_emu_shared.size() * sizeof(double)); \
            blockIdx.x = (unsigned)(rev_ ? nb_ - 1 - b_ : b_);                               \
            nepcu_emu_run_block((unsigned)nt_, rev_, body_);                                 \
        }                                                                                    \
    } while (0)

/* Kernels with __syncthreads and no dynamic shared memory. */
#define NEPCU_LAUNCH_BARRIERS(kernel, blocks, threads, stream, ...)                          \
    NEPCU_LAUNCH_SHARED(kernel, blocks, threads, 0, stream, __VA_ARGS__)

#define NEPCU_LAUNCH(kernel, blocks, threads, stream, ...)                                   \
    do {                                                                                     \
        (void)(stream);                                                                      \
        const long long nb_ = (long long)(blocks), nt_ = (long long)(threads);               \
        if (!nepcu_emu_launch_ok(nb_, nt_, #kernel)) break;                                  \
        const bool rev_ = nepcu_emu_reverse();                                               \
        blockDim.x = (unsigned)nt_;                                                          \
        for (long long b_ = 0; b_ < nb_; ++b_)                                               \
            for (long long t_ = 0; t_ < nt_; ++t_) {                                         \
                blockIdx.x = (unsigned)(rev_ ? nb_ - 1 - b_ : b_);                           \
                threadIdx.x = (unsigned)(rev_ ? nt_ - 1 - t_ : t_);                          \
                kernel(__VA_ARGS__);                                                         \
            }                                                                                \
    } while (0)

#endif
