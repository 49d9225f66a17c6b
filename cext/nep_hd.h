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

#endif
