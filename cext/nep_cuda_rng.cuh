/*
 * Counter-based random numbers for the device MD loop: Philox-4x32-10 (Salmon et al., SC'11,
 * "Parallel random numbers: as easy as 1, 2, 3"). A draw is a pure function of (key, counter),
 * so the noise of atom i at step s is the same however the atoms are spread over threads, on
 * the GPU and in the host emulation alike; no generator state is stored anywhere.
 *
 * Counters used by nep_cuda_md.cu: (i, step low, step high, NEPCU_RNG_ATOM) for the Langevin
 * noise of atom i, (k, step low, step high, NEPCU_RNG_THERMOSTAT / NEPCU_RNG_BAROSTAT) for
 * the k-th block of four draws of the global thermostat and barostat at that step.
 */
#ifndef NEPZBL_NEP_CUDA_RNG_CUH
#define NEPZBL_NEP_CUDA_RNG_CUH

#include <math.h>
#include <stdint.h>

#ifndef __CUDACC__
#ifndef __host__
#define __host__
#define __device__
#endif
#endif

#define NEPCU_RNG_ATOM 0u
#define NEPCU_RNG_THERMOSTAT 1u
#define NEPCU_RNG_BAROSTAT 2u

struct nepcu_u4 {
    uint32_t v[4];
};

__host__ __device__ inline void nepcu_mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    const uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

/* Philox-4x32 with 10 rounds (the constants of the paper and of Random123). */
__host__ __device__ inline nepcu_u4 nepcu_philox(uint32_t c0, uint32_t c1, uint32_t c2,
                                                 uint32_t c3, uint64_t seed)
{
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
    for (int round = 0; round < 10; ++round) {
        uint32_t hi0, lo0, hi1, lo1;
        nepcu_mulhilo(0xD2511F53u, x0, &hi0, &lo0);
        nepcu_mulhilo(0xCD9E8D57u, x2, &hi1, &lo1);
        const uint32_t y0 = hi1 ^ x1 ^ k0, y1 = lo1, y2 = hi0 ^ x3 ^ k1, y3 = lo0;
        x0 = y0;
        x1 = y1;
        x2 = y2;
        x3 = y3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nepcu_u4 r;
    r.v[0] = x0;
    r.v[1] = x1;
    r.v[2] = x2;
    r.v[3] = x3;
    return r;
}

/* Uniform in (0, 1], 53 bits from two 32-bit words: never 0, so log() is safe. */
__host__ __device__ inline double nepcu_uniform(uint32_t hi, uint32_t lo)
{
    const uint64_t bits = ((uint64_t)hi << 21) ^ (uint64_t)lo;
    return ((double)(bits & ((1ull << 53) - 1)) + 1.0) * (1.0 / 9007199254740992.0);
}

/* Two standard normals (Box-Muller) from one Philox block. */
__host__ __device__ inline void nepcu_normal2(nepcu_u4 r, double *a, double *b)
{
    const double u1 = nepcu_uniform(r.v[0], r.v[1]), u2 = nepcu_uniform(r.v[2], r.v[3]);
    const double radius = sqrt(-2.0 * log(u1));
    const double angle = 6.283185307179586 * u2;
    *a = radius * cos(angle);
    *b = radius * sin(angle);
}

#endif
