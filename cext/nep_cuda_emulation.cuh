/*
 * Host emulation of the small part of CUDA the engine uses, so that the CUDA engine's exact
 * sources can be compiled by a plain C++ compiler and checked against the CPU engine on a
 * machine without a GPU (-DNEPCU_HOST_EMULATION, g++ -x c++). Kernels run as sequential loops
 * over blocks and threads; atomics are plain read-modify-writes. Only for testing: the meson
 * build never defines NEPCU_HOST_EMULATION.
 */
#ifndef NEPZBL_NEP_CUDA_EMULATION_CUH
#define NEPZBL_NEP_CUDA_EMULATION_CUH

#include <stdlib.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __syncthreads() ((void)0)

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
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
typedef void *cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToDevice,
    cudaMemcpyDeviceToHost,
    cudaMemcpyDeviceToDevice
};
#define cudaStreamNonBlocking 1

inline const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
inline const char *cudaGetErrorName(cudaError_t e) { return e ? "cudaErrorEmulated" : "cudaSuccess"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
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

#define NEPCU_LAUNCH(kernel, blocks, threads, stream, ...)                                   \
    do {                                                                                     \
        (void)(stream);                                                                      \
        blockDim.x = (unsigned)(threads);                                                    \
        for (unsigned b_ = 0; b_ < (unsigned)(blocks); ++b_)                                 \
            for (unsigned t_ = 0; t_ < (unsigned)(threads); ++t_) {                          \
                blockIdx.x = b_;                                                             \
                threadIdx.x = t_;                                                            \
                kernel(__VA_ARGS__);                                                         \
            }                                                                                \
    } while (0)

#endif
