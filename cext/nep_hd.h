/*
 * NEP_HD: the qualifiers of the header-only functions shared by the C engine and the CUDA
 * kernels (`static inline`, plus `__host__ __device__` under nvcc), so one source compiles
 * for both.
 */
#ifndef NEPZBL_NEP_HD_H
#define NEPZBL_NEP_HD_H

#ifdef __CUDACC__
#define NEP_HD __host__ __device__ static inline
#else
#define NEP_HD static inline
#endif

/* NEP_LOAD(p): a read of model coefficients or weights, which no kernel writes while it runs:
 * through the read-only data cache (__ldg) in device code, a plain read elsewhere. */
#if defined(__CUDA_ARCH__)
#define NEP_LOAD(p) __ldg(p)
#else
#define NEP_LOAD(p) (*(p))
#endif

#endif
