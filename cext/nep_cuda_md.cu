/*
 * nepzbl device MD loop (nep_cuda_md.h): the integrator and observer kernels, and the host
 * driver that launches one step after another without downloading anything but a few scalars
 * (the Verlet-list check every step; the kinetic tensor and virial on steps whose thermostat
 * or barostat needs them). Forces come from the CUDA engine's device-resident entry
 * (nepcu_compute_resident), so positions never leave the GPU between samples.
 *
 * Determinism: every kernel writes only its own atom's values; sums over atoms go through a
 * fixed number of contiguous ranges (a block tree each for the kinetic tensor, one thread each
 * for the MSD) and then a fixed-order sum of the ranges; the RDF histogram uses integer atomics and the minimum distances an atomic minimum on
 * the bit patterns of non-negative doubles, both independent of the order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "nep.h"
#include "nep_cuda.h"
#include "nep_cuda_internal.cuh"
#include "nep_cuda_md.h"
#include "nep_cuda_resident.cuh"
#include "nep_cuda_rng.cuh"

namespace {

const int md_threads = 128;
/* chunks of the fixed-order MSD sums (one thread each; only at sample steps) */
const int sum_chunks = 256;
/* blocks of the kinetic tensor's sum (a block tree each, then one block over the blocks):
 * run every step under Bussi, Berendsen and the barostats, so it streams coalesced */
const int kinetic_blocks = NEPCU_KINETIC_BLOCKS;

inline int blocks_for(int n, int threads) { return (n + threads - 1) / threads; }

/* ------------------------------------------------------------------ integrator kernels */
/* Half kick, half drift, the Langevin O step (exact Ornstein-Uhlenbeck), half drift: the
 * CPU engine's order of operations, so NVE trajectories agree to round-off. */
__global__ void k_first_half(int N, double half_dt, const double *__restrict__ inv_mass,
                             const double *__restrict__ force, double *vel, double *pos,
                             int langevin, double decay, double noise_kT, uint64_t seed,
                             long step)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const double im = inv_mass[i];
    double v[3], x[3];
    for (int c = 0; c < 3; ++c) {
        v[c] = vel[3 * i + c] + half_dt * force[3 * i + c] * im;
        x[c] = pos[3 * i + c] + half_dt * v[c];
    }
    if (langevin) {
        const nepcu_u4 r1 = nepcu_philox((uint32_t)i, (uint32_t)step, (uint32_t)(step >> 32),
                                         NEPCU_RNG_ATOM, seed);
        const nepcu_u4 r2 = nepcu_philox((uint32_t)i, (uint32_t)step, (uint32_t)(step >> 32),
                                         NEPCU_RNG_ATOM + 0x10000u, seed);
        double g[4];
        nepcu_normal2(r1, &g[0], &g[1]);
        nepcu_normal2(r2, &g[2], &g[3]);
        const double sigma = sqrt((1.0 - decay * decay) * noise_kT * im);
        for (int c = 0; c < 3; ++c) v[c] = v[c] * decay + sigma * g[c];
    }
    for (int c = 0; c < 3; ++c) {
        x[c] += half_dt * v[c];
        vel[3 * i + c] = v[c];
        pos[3 * i + c] = x[c];
    }
}

__global__ void k_second_half(int N, double half_dt, const double *__restrict__ inv_mass,
                              const double *__restrict__ force, double *vel)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    for (int c = 0; c < 3; ++c) vel[3 * i + c] += half_dt * force[3 * i + c] * inv_mass[i];
}

/* Velocities times alpha; positions times mu (per axis) and velocities divided by nu. */
__global__ void k_scale(int N, double alpha, double3 mu, double3 nu, double *vel, double *pos)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const double m[3] = {mu.x, mu.y, mu.z}, n[3] = {nu.x, nu.y, nu.z};
    for (int c = 0; c < 3; ++c) {
        vel[3 * i + c] = vel[3 * i + c] * alpha / n[c];
        pos[3 * i + c] *= m[c];
    }
}

/* ------------------------------------------------------------------ fixed-order sums */
/* Fixed-shape tree over the threads of a block (as k_totals of nep_cuda.cu): the same order
 * every launch. part[t][0..8] in, part[0][0..8] out. */
__device__ __forceinline__ void block_tree9(double (*part)[9], int t)
{
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride)
            for (int c = 0; c < 9; ++c) part[t][c] += part[t + stride][c];
        __syncthreads();
    }
}

/* partial[block][9] = sum over the block's contiguous range of atoms of m v_a v_b: threads
 * stride through the range (coalesced), then the block's tree. */
__global__ void k_kinetic_blocks(int N, int blocks, const double *mass, const double *vel,
                                 double *partial)
{
    __shared__ double part[NEPCU_TOTALS_THREADS][9];
    const int b = blockIdx.x, t = threadIdx.x;
    const long lo = (long)N * b / blocks, hi = (long)N * (b + 1) / blocks;
    double acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (long i = lo + t; i < hi; i += blockDim.x)
        for (int a = 0; a < 3; ++a)
            for (int c = 0; c < 3; ++c) acc[3 * a + c] += mass[i] * vel[3 * i + a] * vel[3 * i + c];
    for (int c = 0; c < 9; ++c) part[t][c] = acc[c];
    block_tree9(part, t);
    if (t == 0)
        for (int c = 0; c < 9; ++c) partial[9 * b + c] = part[0][c];
}

/* out[9] = sum of partial[blocks][9], one block, fixed order. */
__global__ void k_kinetic_final(int blocks, const double *partial, double *out)
{
    __shared__ double part[NEPCU_TOTALS_THREADS][9];
    const int t = threadIdx.x;
    double acc[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int b = t; b < blocks; b += blockDim.x)
        for (int c = 0; c < 9; ++c) acc[c] += partial[9 * b + c];
    for (int c = 0; c < 9; ++c) part[t][c] = acc[c];
    block_tree9(part, t);
    if (t == 0)
        for (int c = 0; c < 9; ++c) out[c] = part[0][c];
}

/* partial[chunk][T][3] = sum over the chunk's atoms of type t of (x - x0)^2 per axis. */
__global__ void k_msd_chunks(int N, int chunks, int T, const int *types, const double *pos,
                             const double *origin, double *partial)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= chunks) return;
    const long lo = (long)N * c / chunks, hi = (long)N * (c + 1) / chunks;
    double *out = partial + (size_t)c * T * 3;
    for (int k = 0; k < 3 * T; ++k) out[k] = 0.0;
    for (long i = lo; i < hi; ++i)
        for (int a = 0; a < 3; ++a) {
            const double d = pos[3 * i + a] - origin[3 * i + a];
            out[3 * types[i] + a] += d * d;
        }
}

/* out[k] = sum over chunks of partial[chunk][k], chunks in order (one thread per k). */
__global__ void k_sum_chunks(int chunks, int width, const double *partial, double *out)
{
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= width) return;
    double acc = 0.0;
    for (int c = 0; c < chunks; ++c) acc += partial[(size_t)c * width + k];
    out[k] = acc;
}

/* ------------------------------------------------------------------ observers */
__device__ __forceinline__ double list_distance(const nepcu_resident &r, int i, int slot)
{
    const int4 e = r.nbr[(size_t)slot * r.num_atoms + i];
    double d2 = 0.0;
    for (int c = 0; c < 3; ++c) {
        const double x = r.pos[3 * e.x + c] - r.pos[3 * i + c] + (double)e.y * r.cell[c] +
                         (double)e.z * r.cell[3 + c] + (double)e.w * r.cell[6 + c];
        d2 += x * x;
    }
    return sqrt(d2);
}

/* Minimum per ordered type pair: non-negative doubles order like their bit patterns, so an
 * integer atomic minimum gives the exact minimum whatever the order. */
__global__ void k_min_distances(nepcu_resident r, int T, double search,
                                unsigned long long *best)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= r.num_atoms) return;
    const int ti = r.types[i];
    for (int slot = 0; slot < r.nbr_count[i]; ++slot) {
        const double d = list_distance(r, i, slot);
        if (!(d < search)) continue;
        const int tj = r.types[r.nbr[(size_t)slot * r.num_atoms + i].x];
        unsigned long long bits;
        memcpy(&bits, &d, sizeof(bits));
        atomicMin(&best[ti * T + tj], bits);
    }
}

__global__ void k_rdf(nepcu_resident r, int T, double r_max, int bins, unsigned long long *hist)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= r.num_atoms) return;
    const int ti = r.types[i];
    const double scale = bins / r_max;
    for (int slot = 0; slot < r.nbr_count[i]; ++slot) {
        const double d = list_distance(r, i, slot);
        if (!(d < r_max)) continue;
        int bin = (int)(d * scale);
        if (bin >= bins) bin = bins - 1;
        const int tj = r.types[r.nbr[(size_t)slot * r.num_atoms + i].x];
        atomicAdd(&hist[(size_t)(ti * T + tj) * bins + bin], 1ull);
    }
}

/* A grow-once device buffer. */
struct dmem {
    void *p = nullptr;
    size_t bytes = 0;
};

cudaError_t ensure(dmem *b, size_t bytes)
{
    if (b->bytes >= bytes) return cudaSuccess;
    if (b->p) cudaFree(b->p);
    b->p = nullptr;
    b->bytes = 0;
    cudaError_t err = cudaMalloc(&b->p, bytes);
    if (err == cudaSuccess) b->bytes = bytes;
    else b->p = nullptr; /* never a pointer nep_cuda_md_free would free */
    return err;
}

/* ------------------------------------------------------------------ host-side controls */
/* Standard normals and a chi-square of the global controls, from Philox blocks counted by
 * draw: the same numbers on every device for the same (seed, step). */
struct global_draws {
    uint64_t seed;
    long step;
    uint32_t stream, block = 0;
    double spare = 0.0;
    bool has_spare = false;
    double normal()
    {
        if (has_spare) {
            has_spare = false;
            return spare;
        }
        double a, b;
        nepcu_normal2(nepcu_philox(block++, (uint32_t)step, (uint32_t)(step >> 32), stream, seed),
                      &a, &b);
        spare = b;
        has_spare = true;
        return a;
    }
    double uniform()
    {
        const nepcu_u4 r =
            nepcu_philox(block++, (uint32_t)step, (uint32_t)(step >> 32), stream, seed);
        return nepcu_uniform(r.v[0], r.v[1]);
    }
    /* Gamma(shape, 1) by Marsaglia & Tsang (2000); shape >= 1 here (dof >= 3). */
    double gamma(double shape)
    {
        if (shape < 1.0) return gamma(shape + 1.0) * pow(uniform(), 1.0 / shape);
        const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
        for (;;) {
            double x, v;
            do {
                x = normal();
                v = 1.0 + c * x;
            } while (v <= 0.0);
            v = v * v * v;
            const double u = uniform();
            if (log(u) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
        }
    }
    double chisquare(double k) { return 2.0 * gamma(0.5 * k); }
};

/* As dynamics._bussi_factor. */
double bussi_factor(double kinetic, double target, int dof, double dt_over_tau, global_draws *g)
{
    if (kinetic <= 0.0) return 1.0;
    const double decay = isfinite(dt_over_tau) ? exp(-dt_over_tau) : 0.0;
    const double r1 = g->normal();
    const double others = dof > 1 ? g->chisquare(dof - 1) : 0.0;
    const double next = kinetic + (1.0 - decay) * (target * (others + r1 * r1) / dof - kinetic) +
                        2.0 * r1 * sqrt(kinetic * target / dof * (1.0 - decay) * decay);
    return sqrt(fmax(next, 0.0) / kinetic);
}

double det3(const double *h)
{
    return h[0] * (h[4] * h[8] - h[5] * h[7]) - h[1] * (h[3] * h[8] - h[5] * h[6]) +
           h[2] * (h[3] * h[7] - h[4] * h[6]);
}

} // namespace

struct nep_cuda_md {
    nep_cuda_model *model = nullptr;
    nep_cuda_md_settings s;
    int N = 0, T = 0;
    int *types = nullptr; /* host */
    int pbc[3] = {0, 0, 0};
    double cell[9];
    long step = 0;
    double model_temperature = 0.0; /* temperature models' input: the last step's target */
    double energy = 0.0, virial[9];
    bool have_virial = false;
    nepcu_resident res; /* views of the engine's buffers after the last evaluation */
    dmem pos, vel, mass, inv_mass, origin, partial, sums, best, hist;
    double rdf_r_max = 0.0;
    int rdf_bins = 0, rdf_frames = 0;
};

namespace {

int cuda_status(cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return NEP_OK;
    char text[256];
    snprintf(text, sizeof(text), "%s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
    cudaGetLastError();
    return nepcu_resident_error(err == cudaErrorMemoryAllocation ? NEP_ERR_NOMEM : NEP_ERR_CUDA,
                                text);
}

#define MD_CHECK(call, what)                                                                 \
    do {                                                                                     \
        const int st_ = cuda_status((call), what);                                           \
        if (st_ != NEP_OK) return st_;                                                       \
    } while (0)

int evaluate(nep_cuda_md *md, bool want_virial)
{
    nep_system sys;
    memset(&sys, 0, sizeof(sys));
    sys.num_atoms = md->N;
    sys.types = md->types;
    sys.positions = (const double *)md->pos.p; /* device */
    sys.cell = md->cell;
    for (int k = 0; k < 3; ++k) sys.pbc[k] = md->pbc[k];
    sys.temperature = md->model_temperature;
    const int code = nepcu_compute_resident(md->model, &sys, want_virial, &md->res);
    if (code == NEP_OK) md->have_virial = want_virial;
    return code;
}

/* The model's device made current and, when the model was used by anything else since the
 * last step (an evaluation reuses and may reallocate the buffers md->res points into), the
 * forces, list and totals evaluated again at the same positions: the same numbers, so the
 * trajectory goes on as if nothing had happened. */
int enter(nep_cuda_md *md, bool need_views)
{
    const int code = nepcu_model_enter(md->model, nullptr);
    if (code != NEP_OK || !need_views || nepcu_resident_current(md->model, &md->res)) return code;
    return evaluate(md, md->have_virial);
}

/* The kinetic tensor (and, when asked, energy and virial totals) to the host. */
int download_scalars(nep_cuda_md *md, double kinetic[9], bool totals)
{
    const int N = md->N;
    const cudaStream_t st = md->res.stream;
    double *partial = (double *)md->partial.p, *sums = (double *)md->sums.p;
    NEPCU_LAUNCH_BARRIERS(k_kinetic_blocks, kinetic_blocks, NEPCU_TOTALS_THREADS, st, N, kinetic_blocks,
                 (const double *)md->mass.p, (const double *)md->vel.p, partial);
    NEPCU_LAUNCH_BARRIERS(k_kinetic_final, 1, NEPCU_TOTALS_THREADS, st, kinetic_blocks,
                 (const double *)partial, sums);
    MD_CHECK(cudaGetLastError(), "summing the kinetic energy");
    double host[20];
    MD_CHECK(cudaMemcpyAsync(kinetic, sums, sizeof(double) * 9, cudaMemcpyDeviceToHost, st),
             "downloading the kinetic energy");
    if (totals)
        MD_CHECK(cudaMemcpyAsync(host, md->res.totals, sizeof(double) * 10,
                                 cudaMemcpyDeviceToHost, st), "downloading the energy");
    MD_CHECK(cudaStreamSynchronize(st), "downloading the kinetic energy");
    if (totals) {
        md->energy = host[0];
        if (md->have_virial) memcpy(md->virial, host + 1, sizeof(double) * 9);
    }
    return NEP_OK;
}

/* Thermostat velocity scaling and the barostat, as dynamics.run_md after the second kick. */
int controls(nep_cuda_md *md, double target)
{
    const nep_cuda_md_settings &s = md->s;
    const bool thermo = s.thermostat == NEP_MD_BUSSI || s.thermostat == NEP_MD_BERENDSEN;
    if (!thermo && s.barostat == NEP_MD_NO_BAROSTAT) return NEP_OK;
    double kin[9];
    int code = download_scalars(md, kin, s.barostat != NEP_MD_NO_BAROSTAT);
    if (code != NEP_OK) return code;
    const double kinetic = 0.5 * (kin[0] + kin[4] + kin[8]);
    double alpha = 1.0;
    if (s.thermostat == NEP_MD_BUSSI) {
        global_draws g;
        g.seed = s.seed;
        g.step = md->step;
        g.stream = NEPCU_RNG_THERMOSTAT;
        alpha = bussi_factor(kinetic, 0.5 * s.dof * s.boltzmann * target, s.dof, s.dt_over_tau_t,
                             &g);
    } else if (s.thermostat == NEP_MD_BERENDSEN && kinetic > 0) {
        const double current = 2.0 * kinetic / (s.dof * s.boltzmann);
        alpha = sqrt(fmax(1.0 + s.dt_over_tau_t * (target / current - 1.0), 0.0));
    }
    double mu[3] = {1.0, 1.0, 1.0}, nu[3] = {1.0, 1.0, 1.0};
    if (s.barostat != NEP_MD_NO_BAROSTAT) {
        /* the pressure tensor after the thermostat's scaling, as the CPU engine sees it */
        const double volume = fabs(det3(md->cell));
        double current[3];
        for (int a = 0; a < 3; ++a) current[a] = 0.0;
        double diag[3];
        for (int a = 0; a < 3; ++a)
            diag[a] = (alpha * alpha * kin[4 * a] + md->virial[4 * a]) / volume;
        for (int a = 0; a < 3; ++a)
            current[a] = s.anisotropic ? diag[a] : (diag[0] + diag[1] + diag[2]) / 3.0;
        const double kT = s.boltzmann * target;
        if (s.barostat == NEP_MD_BARO_BERENDSEN) {
            for (int a = 0; a < 3; ++a) {
                const double m = 1.0 - s.beta * s.dt_over_tau_p / 3.0 *
                                           (s.target_pressure[s.anisotropic ? a : 0] - current[a]);
                mu[a] = fmin(fmax(m, 0.99), 1.01);
            }
        } else {
            global_draws g;
            g.seed = s.seed;
            g.step = md->step;
            g.stream = NEPCU_RNG_BAROSTAT;
            double strain[3];
            const double spread = sqrt(2.0 * kT * s.beta * s.dt_over_tau_p / volume);
            if (s.anisotropic) {
                for (int a = 0; a < 3; ++a)
                    strain[a] = -s.beta * s.dt_over_tau_p *
                                    (s.target_pressure[a] - current[a] - kT / volume) / 3.0 +
                                spread / sqrt(3.0) * g.normal();
            } else {
                const double drift =
                    -s.beta * s.dt_over_tau_p * (s.target_pressure[0] - current[0] - kT / volume);
                const double e = (drift + spread * g.normal()) / 3.0;
                strain[0] = strain[1] = strain[2] = e;
            }
            for (int a = 0; a < 3; ++a) {
                mu[a] = exp(fmin(fmax(strain[a], -0.01), 0.01));
                nu[a] = mu[a];
            }
        }
        for (int r = 0; r < 3; ++r)
            for (int a = 0; a < 3; ++a) md->cell[3 * r + a] *= mu[a];
    }
    if (alpha != 1.0 || s.barostat != NEP_MD_NO_BAROSTAT)
        NEPCU_LAUNCH(k_scale, blocks_for(md->N, md_threads), md_threads, md->res.stream, md->N,
                     alpha, make_double3(mu[0], mu[1], mu[2]), make_double3(nu[0], nu[1], nu[2]),
                     (double *)md->vel.p, (double *)md->pos.p);
    return cuda_status(cudaGetLastError(), "scaling");
}

/* Overlap flags and a finite energy after the last evaluation. */
int check_health(nep_cuda_md *md)
{
    int flags = 0;
    double energy = 0.0;
    const cudaStream_t st = md->res.stream;
    MD_CHECK(cudaMemcpyAsync(&flags, md->res.flags, sizeof(int), cudaMemcpyDeviceToHost, st), "flags");
    MD_CHECK(cudaMemcpyAsync(&energy, md->res.totals, sizeof(double), cudaMemcpyDeviceToHost, st),
             "energy");
    MD_CHECK(cudaStreamSynchronize(st), "flags");
    if (flags & NEPCU_FLAG_OVERLAP) return NEP_ERR_OVERLAP;
    if (flags & NEPCU_FLAG_LIST) return nepcu_resident_error(NEP_ERR_CUDA, "inconsistent neighbour list");
    if (!isfinite(energy)) return NEP_ERR_NONFINITE;
    return NEP_OK;
}

} // namespace

extern "C" {

int nep_cuda_md_create(nep_cuda_model *model, int N, const int *types, const double *masses,
                       const double *positions, const double *velocities, const double cell[9],
                       const int pbc[3], const nep_cuda_md_settings *settings, nep_cuda_md **out)
{
    if (!model || N < 1 || !types || !masses || !positions || !velocities || !cell || !pbc ||
        !settings || !out)
        return NEP_ERR_ARGUMENT;
    *out = nullptr;
    const nep_cuda_md_settings &s = *settings;
    if (!(s.dt > 0) || s.dof < 1 || s.thermostat < 0 || s.thermostat > 3 || s.barostat < 0 ||
        s.barostat > 2)
        return NEP_ERR_ARGUMENT;
    if (s.barostat != NEP_MD_NO_BAROSTAT && !(pbc[0] && pbc[1] && pbc[2])) return NEP_ERR_CELL;
    const int T = nep_cuda_model_num_types(model);
    for (int i = 0; i < N; ++i) {
        if (types[i] < 0 || types[i] >= T) return NEP_ERR_TYPE;
        if (!(masses[i] > 0)) return NEP_ERR_ARGUMENT;
        for (int c = 0; c < 3; ++c)
            if (!(fabs(positions[3 * i + c]) <= 1e10) || !isfinite(velocities[3 * i + c]))
                return NEP_ERR_NONFINITE;
    }
    cudaStream_t stream = nullptr;
    const int entered = nepcu_model_enter(model, &stream);
    if (entered != NEP_OK) return entered;
    void *mem = malloc(sizeof(nep_cuda_md));
    if (!mem) return NEP_ERR_NOMEM;
    nep_cuda_md *md = new (mem) nep_cuda_md();
    md->model = model;
    md->s = s;
    md->model_temperature = s.model_temperature;
    md->N = N;
    md->T = T;
    md->types = (int *)malloc(sizeof(int) * N);
    double *inv = (double *)malloc(sizeof(double) * N);
    int code = md->types && inv ? NEP_OK : NEP_ERR_NOMEM;
    if (code == NEP_OK) {
        memcpy(md->types, types, sizeof(int) * N);
        for (int i = 0; i < N; ++i) inv[i] = 1.0 / masses[i];
        memcpy(md->cell, cell, sizeof(double) * 9);
        for (int k = 0; k < 3; ++k) md->pbc[k] = pbc[k] != 0;
        const size_t v3 = sizeof(double) * 3 * N;
        cudaError_t err = ensure(&md->pos, v3);
        if (err == cudaSuccess) err = ensure(&md->vel, v3);
        if (err == cudaSuccess) err = ensure(&md->origin, v3);
        if (err == cudaSuccess) err = ensure(&md->mass, sizeof(double) * N);
        if (err == cudaSuccess) err = ensure(&md->inv_mass, sizeof(double) * N);
        if (err == cudaSuccess)
            err = ensure(&md->partial, sizeof(double) * (sum_chunks * 3 * T > 9 * kinetic_blocks
                                                             ? sum_chunks * 3 * T
                                                             : 9 * kinetic_blocks));
        if (err == cudaSuccess) err = ensure(&md->sums, sizeof(double) * (3 * T > 20 ? 3 * T : 20));
        if (err == cudaSuccess) err = ensure(&md->best, sizeof(unsigned long long) * T * T);
        /* on the model's stream, which every later kernel of the run uses: a plain cudaMemcpy
         * runs on the legacy stream, which does not order that non-blocking stream, and from
         * pageable memory it may return before its DMA has landed */
        const cudaMemcpyKind up = cudaMemcpyHostToDevice;
        if (err == cudaSuccess) err = cudaMemcpyAsync(md->pos.p, positions, v3, up, stream);
        if (err == cudaSuccess) err = cudaMemcpyAsync(md->origin.p, positions, v3, up, stream);
        if (err == cudaSuccess) err = cudaMemcpyAsync(md->vel.p, velocities, v3, up, stream);
        if (err == cudaSuccess)
            err = cudaMemcpyAsync(md->mass.p, masses, sizeof(double) * N, up, stream);
        if (err == cudaSuccess)
            err = cudaMemcpyAsync(md->inv_mass.p, inv, sizeof(double) * N, up, stream);
        if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
        code = cuda_status(err, "allocating the MD state");
    }
    free(inv);
    if (code == NEP_OK) code = evaluate(md, true);
    if (code == NEP_OK) code = check_health(md);
    if (code == NEP_OK) {
        double kin[9];
        code = download_scalars(md, kin, true);
    }
    if (code != NEP_OK) {
        nep_cuda_md_free(md);
        return code;
    }
    *out = md;
    return NEP_OK;
}

void nep_cuda_md_free(nep_cuda_md *md)
{
    if (!md) return;
    nepcu_model_enter(md->model, nullptr); /* the run's buffers are on the model's device */
    dmem *all[] = {&md->pos, &md->vel, &md->mass, &md->inv_mass, &md->origin, &md->partial,
                   &md->sums, &md->best, &md->hist};
    for (dmem *b : all)
        if (b->p) cudaFree(b->p);
    free(md->types);
    md->~nep_cuda_md();
    free(md);
}

int nep_cuda_md_run(nep_cuda_md *md, int steps, const double *targets, int *done)
{
    if (!md || steps < 0 || (steps > 0 && !targets && md->s.thermostat != NEP_MD_NONE))
        return NEP_ERR_ARGUMENT;
    if (done) *done = 0;
    const int entered = enter(md, steps > 0);
    if (entered != NEP_OK) return entered;
    const nep_cuda_md_settings &s = md->s;
    const int N = md->N;
    const double half_dt = 0.5 * s.dt;
    const bool langevin = s.thermostat == NEP_MD_LANGEVIN;
    const double decay = langevin ? exp(-s.dt_over_tau_t) : 1.0;
    for (int k = 0; k < steps; ++k) {
        const double target = targets ? targets[k] : 0.0;
        if (targets) md->model_temperature = target; /* the temperature models' input */
        NEPCU_LAUNCH(k_first_half, blocks_for(N, md_threads), md_threads, md->res.stream, N,
                     half_dt, (const double *)md->inv_mass.p, md->res.forces,
                     (double *)md->vel.p, (double *)md->pos.p, (int)langevin, decay,
                     s.boltzmann * target, (uint64_t)s.seed, md->step + 1);
        MD_CHECK(cudaGetLastError(), "first half step");
        const bool want_virial = s.barostat != NEP_MD_NO_BAROSTAT || k == steps - 1;
        int code = evaluate(md, want_virial);
        if (code != NEP_OK) return code;
        NEPCU_LAUNCH(k_second_half, blocks_for(N, md_threads), md_threads, md->res.stream, N,
                     half_dt, (const double *)md->inv_mass.p, md->res.forces, (double *)md->vel.p);
        MD_CHECK(cudaGetLastError(), "second half step");
        md->step += 1;
        code = controls(md, target);
        if (code != NEP_OK) return code;
        if (done) *done = k + 1;
    }
    if (steps > 0) {
        const int code = check_health(md);
        if (code != NEP_OK) return code;
        double kin[9];
        return download_scalars(md, kin, true);
    }
    return NEP_OK;
}

int nep_cuda_md_state(nep_cuda_md *md, double *positions, double *velocities, double *cell,
                      double *energy, double *virial, double *kinetic, long *step)
{
    if (!md) return NEP_ERR_ARGUMENT;
    const int entered = enter(md, false);
    if (entered != NEP_OK) return entered;
    const cudaStream_t st = md->res.stream;
    const size_t v3 = sizeof(double) * 3 * md->N;
    double kin[9];
    const int code = download_scalars(md, kin, false);
    if (code != NEP_OK) return code;
    if (positions)
        MD_CHECK(cudaMemcpyAsync(positions, md->pos.p, v3, cudaMemcpyDeviceToHost, st), "positions");
    if (velocities)
        MD_CHECK(cudaMemcpyAsync(velocities, md->vel.p, v3, cudaMemcpyDeviceToHost, st), "velocities");
    MD_CHECK(cudaStreamSynchronize(st), "downloading the state");
    if (cell) memcpy(cell, md->cell, sizeof(double) * 9);
    if (energy) *energy = md->energy;
    if (virial) {
        if (md->have_virial) memcpy(virial, md->virial, sizeof(double) * 9);
        else for (int k = 0; k < 9; ++k) virial[k] = NAN;
    }
    if (kinetic) memcpy(kinetic, kin, sizeof(double) * 9);
    if (step) *step = md->step;
    return NEP_OK;
}

int nep_cuda_md_min_distances(nep_cuda_md *md, double search, double *out)
{
    if (!md || !out || !(search > 0) || search > md->res.list_cutoff) return NEP_ERR_ARGUMENT;
    const int entered = enter(md, true);
    if (entered != NEP_OK) return entered;
    const int T = md->T;
    const cudaStream_t st = md->res.stream;
    const double inf = INFINITY;
    unsigned long long inf_bits;
    memcpy(&inf_bits, &inf, sizeof(inf_bits));
    unsigned long long *h = (unsigned long long *)malloc(sizeof(unsigned long long) * T * T);
    if (!h) return NEP_ERR_NOMEM;
    for (int k = 0; k < T * T; ++k) h[k] = inf_bits;
    cudaError_t err = cudaMemcpyAsync(md->best.p, h, sizeof(unsigned long long) * T * T,
                                      cudaMemcpyHostToDevice, st);
    if (err == cudaSuccess) {
        NEPCU_LAUNCH(k_min_distances, blocks_for(md->N, md_threads), md_threads, st, md->res, T,
                     search, (unsigned long long *)md->best.p);
        err = cudaGetLastError();
    }
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(h, md->best.p, sizeof(unsigned long long) * T * T,
                              cudaMemcpyDeviceToHost, st);
    if (err == cudaSuccess) err = cudaStreamSynchronize(st);
    for (int k = 0; err == cudaSuccess && k < T * T; ++k) memcpy(&out[k], &h[k], sizeof(double));
    free(h);
    return cuda_status(err, "minimum distances");
}

int nep_cuda_md_rdf_setup(nep_cuda_md *md, double r_max, int bins)
{
    if (!md || !(r_max > 0) || r_max > md->res.list_cutoff || bins < 1 || bins > 100000)
        return NEP_ERR_ARGUMENT;
    const int entered = enter(md, false);
    if (entered != NEP_OK) return entered;
    const size_t bytes = sizeof(unsigned long long) * md->T * md->T * bins;
    MD_CHECK(ensure(&md->hist, bytes), "allocating the RDF histogram");
    MD_CHECK(cudaMemsetAsync(md->hist.p, 0, bytes, md->res.stream), "clearing the RDF histogram");
    md->rdf_r_max = r_max;
    md->rdf_bins = bins;
    md->rdf_frames = 0;
    return NEP_OK;
}

int nep_cuda_md_rdf_sample(nep_cuda_md *md)
{
    if (!md || md->rdf_bins < 1) return NEP_ERR_ARGUMENT;
    const int entered = enter(md, true);
    if (entered != NEP_OK) return entered;
    NEPCU_LAUNCH(k_rdf, blocks_for(md->N, md_threads), md_threads, md->res.stream, md->res,
                 md->T, md->rdf_r_max, md->rdf_bins, (unsigned long long *)md->hist.p);
    md->rdf_frames += 1;
    return cuda_status(cudaGetLastError(), "RDF sample");
}

int nep_cuda_md_rdf_counts(nep_cuda_md *md, double *counts, int *frames)
{
    if (!md || !counts || md->rdf_bins < 1) return NEP_ERR_ARGUMENT;
    const int entered = enter(md, false);
    if (entered != NEP_OK) return entered;
    const size_t n = (size_t)md->T * md->T * md->rdf_bins;
    unsigned long long *h = (unsigned long long *)malloc(sizeof(unsigned long long) * n);
    if (!h) return NEP_ERR_NOMEM;
    cudaError_t err = cudaMemcpyAsync(h, md->hist.p, sizeof(unsigned long long) * n,
                                      cudaMemcpyDeviceToHost, md->res.stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(md->res.stream);
    for (size_t k = 0; err == cudaSuccess && k < n; ++k) counts[k] = (double)h[k];
    free(h);
    if (frames) *frames = md->rdf_frames;
    return cuda_status(err, "downloading the RDF");
}

int nep_cuda_md_msd_origin(nep_cuda_md *md)
{
    if (!md) return NEP_ERR_ARGUMENT;
    const int entered = enter(md, false);
    if (entered != NEP_OK) return entered;
    MD_CHECK(cudaMemcpyAsync(md->origin.p, md->pos.p, sizeof(double) * 3 * md->N,
                             cudaMemcpyDeviceToDevice, md->res.stream), "MSD origin");
    return NEP_OK;
}

int nep_cuda_md_msd(nep_cuda_md *md, double *out)
{
    if (!md || !out) return NEP_ERR_ARGUMENT;
    const int entered = enter(md, true);
    if (entered != NEP_OK) return entered;
    const int T = md->T;
    const cudaStream_t st = md->res.stream;
    double *partial = (double *)md->partial.p, *sums = (double *)md->sums.p;
    NEPCU_LAUNCH(k_msd_chunks, blocks_for(sum_chunks, md_threads), md_threads, st, md->N,
                 sum_chunks, T, (const int *)md->res.types, (const double *)md->pos.p,
                 (const double *)md->origin.p, partial);
    NEPCU_LAUNCH(k_sum_chunks, blocks_for(3 * T, 32), 32, st, sum_chunks, 3 * T,
                 (const double *)partial, sums);
    MD_CHECK(cudaGetLastError(), "MSD");
    MD_CHECK(cudaMemcpyAsync(out, sums, sizeof(double) * 3 * T, cudaMemcpyDeviceToHost, st), "MSD");
    MD_CHECK(cudaStreamSynchronize(st), "MSD");
    /* sums to means per type */
    int *count = (int *)calloc(T, sizeof(int));
    if (!count) return NEP_ERR_NOMEM;
    for (int i = 0; i < md->N; ++i) count[md->types[i]] += 1;
    for (int t = 0; t < T; ++t)
        for (int a = 0; a < 3; ++a) out[3 * t + a] = count[t] ? out[3 * t + a] / count[t] : NAN;
    free(count);
    return NEP_OK;
}

} /* extern "C" */
