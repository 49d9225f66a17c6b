/*
 * nepzbl CUDA engine: host side (model, persistent device buffers, neighbour list) and the C
 * API of nep_cuda.h. The evaluation kernels live in nep_cuda_kernels.cu, compiled once per
 * precision; this file is precision-free (neighbour lists and outputs are double/int).
 *
 * Neighbour list. Each structure gets a binning lattice: its cell rows for periodic
 * directions, and for open directions either the cell row or, when the cell is singular
 * (molecules without a cell), an orthogonal completion scaled to the atoms' extent. Atoms are
 * binned by fractional coordinate (wrapped along periodic directions, clamped along open ones;
 * clamping keeps "two bins apart means farther than the list cutoff" true). A periodic
 * direction with at least 3 bins searches the adjacent bins with wrap-around; a thinner one has
 * a single bin and searches images -n..n with n = ceil(cutoff / thickness), which covers small
 * cells. Shifts are stored relative to the caller's (unwrapped) positions, so the list stays
 * valid while atoms move (Verlet skin) and r_ij = pos_j - pos_i + shift . cell.
 * Lists are sorted per atom, so results do not depend on the order atoms land in bins.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "nep.h"
#include "nep_cuda.h"
#include "nep_cuda_internal.cuh"
#include "nep_cuda_resident.cuh"
#include "nep_layout.h"
#include "nep_maths.h"

NEPCU_DECLARE(nepcu_f64)
NEPCU_DECLARE(nepcu_f32)

namespace {

struct impl {
    cudaError_t (*upload_model)(const nepcu_dims *, const nep_model_spec *, nepcu_model_dev *,
                                size_t *, cudaStream_t);
    cudaError_t (*upload_parameters)(const nepcu_dims *, const double *, size_t,
                                     nepcu_model_dev *, cudaStream_t);
    void (*free_model)(nepcu_model_dev *);
    size_t (*real_size)();
    cudaError_t (*evaluate)(const nepcu_dims *, const nepcu_model_dev *, const nepcu_work *,
                            cudaStream_t);
};

const impl impl_f64 = {nepcu_f64::upload_model, nepcu_f64::upload_parameters,
                       nepcu_f64::free_model, nepcu_f64::real_size, nepcu_f64::evaluate};
const impl impl_f32 = {nepcu_f32::upload_model, nepcu_f32::upload_parameters,
                       nepcu_f32::free_model, nepcu_f32::real_size, nepcu_f32::evaluate};

thread_local char last_error[512];
thread_local char message[768];

void set_error(const char *what, cudaError_t err)
{
    snprintf(last_error, sizeof(last_error), "%s: %s (%s)", what, cudaGetErrorString(err),
             cudaGetErrorName(err));
}

int status_of(cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return NEP_OK;
    set_error(what, err);
    cudaGetLastError(); /* clear a non-sticky error */
    return err == cudaErrorMemoryAllocation ? NEP_ERR_NOMEM : NEP_ERR_CUDA;
}

/* A grow-only device buffer. */
struct dbuf {
    void *p = nullptr;
    size_t bytes = 0;
};

/* Per-structure binning data on the device. */
struct bininfo {
    double hinv[9];   /* frac_k = sum_c (p_c - origin_c) hinv[3c + k] */
    double origin[3];
    int nb[3], range[3], periodic[3];
    int bin_offset, atom_offset, num_atoms;
};

} // namespace

struct nep_cuda_model {
    int precision = 0, device = 0;
    const impl *im = nullptr;
    nepcu_dims dims;
    nepcu_model_dev dev;
    size_t num_parameters = 0;
    double list_cutoff_base = 0.0; /* largest pair cutoff */
    double skin = 1.0;
    size_t model_bytes = 0;
    cudaStream_t stream = nullptr;
    long builds = 0;
    long generation = 0; /* calls that may change the buffers (nepcu_resident_current) */
    int max_neighbors = 0;

    dbuf pos, pos_build, types, struct_of_atom, cells, binfo, atom_bin, atom_cell, atom_wrap,
        bin_count, bin_start, bin_fill, bin_atoms, nbr, nbr_count, rev, ang_slots, ang_types,
        ang_geom, q, sg, fpr, v, vz,
        energy, energy_zbl, forces, forces_zbl, virials, virials_zbl, descriptors, latent,
        struct_flags, totals, scratch, temperatures;

    /* what the current list was built for */
    bool list_valid = false;
    int last_atoms = -1, last_structs = -1;
    int *last_counts = nullptr;
    double *last_cells = nullptr;
    int *last_pbc = nullptr;
    int *last_types = nullptr;
    size_t last_capacity_structs = 0, last_capacity_atoms = 0;
    double last_skin = -1.0;

    /* host staging */
    double *h_pos = nullptr;
    size_t h_pos_capacity = 0;
};

namespace {

size_t buffers_bytes(const nep_cuda_model *m)
{
    const dbuf *all[] = {&m->pos, &m->pos_build, &m->types, &m->struct_of_atom, &m->cells,
                         &m->binfo, &m->atom_bin, &m->atom_cell, &m->atom_wrap, &m->bin_count,
                         &m->bin_start, &m->bin_fill, &m->bin_atoms, &m->nbr, &m->nbr_count,
                         &m->rev, &m->ang_slots, &m->ang_types, &m->ang_geom, &m->q, &m->sg,
                         &m->fpr, &m->v, &m->vz, &m->energy,
                         &m->energy_zbl, &m->forces, &m->forces_zbl, &m->virials,
                         &m->virials_zbl, &m->descriptors, &m->latent, &m->struct_flags,
                         &m->totals, &m->scratch, &m->temperatures};
    size_t total = 0;
    for (const dbuf *b : all) total += b->bytes;
    return total;
}

void free_buffers(nep_cuda_model *m)
{
    dbuf *all[] = {&m->pos, &m->pos_build, &m->types, &m->struct_of_atom, &m->cells, &m->binfo,
                   &m->atom_bin, &m->atom_cell, &m->atom_wrap, &m->bin_count, &m->bin_start,
                   &m->bin_fill, &m->bin_atoms, &m->nbr, &m->nbr_count, &m->rev, &m->ang_slots,
                   &m->ang_types, &m->ang_geom, &m->q, &m->sg,
                   &m->fpr, &m->v, &m->vz, &m->energy, &m->energy_zbl, &m->forces,
                   &m->forces_zbl, &m->virials, &m->virials_zbl, &m->descriptors, &m->latent,
                   &m->struct_flags, &m->totals, &m->scratch, &m->temperatures};
    for (dbuf *b : all) {
        if (b->p) cudaFree(b->p);
        b->p = nullptr;
        b->bytes = 0;
    }
}

/* Make b hold at least `bytes` (contents are not kept). */
cudaError_t reserve(dbuf *b, size_t bytes)
{
    if (bytes == 0) bytes = 16;
    if (b->bytes >= bytes) {
        NEPCU_EMU_POISON(b->p, b->bytes); /* every caller rewrites what it reserves */
        return cudaSuccess;
    }
    if (b->p) cudaFree(b->p);
    b->p = nullptr;
    b->bytes = 0;
    const size_t grown = bytes + bytes / 8; /* a little headroom against regrowth */
    cudaError_t err = cudaMalloc(&b->p, grown);
    if (err != cudaSuccess) {
        cudaGetLastError();
        b->p = nullptr;
        err = cudaMalloc(&b->p, bytes);
        if (err != cudaSuccess) {
            b->p = nullptr; /* never a pointer free_buffers would free */
            return err;
        }
        b->bytes = bytes;
        return cudaSuccess;
    }
    b->bytes = grown;
    return cudaSuccess;
}

int fill_dims(const nep_model_spec *s, nepcu_dims *d)
{
    memset(d, 0, sizeof(*d));
    if (s->version < 3 || s->version > 5 || s->num_types < 1 || s->num_types > NEP_MAX_TYPES ||
        s->n_max_radial < 0 || s->n_max_angular < 0 || s->basis_radial < 0 ||
        s->basis_angular < 0 || s->l_max < 1 || s->l_max > NEP_MAX_LMAX || s->num_neurons < 1)
        return NEP_ERR_MODEL;
    if (s->n_max_radial >= NEPCU_MAX_CHANNELS || s->n_max_angular >= NEPCU_MAX_CHANNELS ||
        s->basis_radial >= NEPCU_MAX_BASIS || s->basis_angular >= NEPCU_MAX_BASIS ||
        s->num_neurons > NEPCU_MAX_NEURONS ||
        s->num_neurons_second < 0 || s->num_neurons_second > NEPCU_MAX_NEURONS)
        return NEP_ERR_UNSUPPORTED;
    d->version = s->version;
    d->num_types = s->num_types;
    d->n_max_radial = s->n_max_radial;
    d->n_max_angular = s->n_max_angular;
    d->basis_radial = s->basis_radial;
    d->basis_angular = s->basis_angular;
    d->l_max = s->l_max;
    for (int k = 0; k < 6; ++k) d->flags[k] = s->flags[k] != 0;
    nep_layout layout;
    nep_layout_compute(s->version, s->num_types, s->n_max_radial, s->n_max_angular,
                       s->basis_radial, s->basis_angular, s->l_max, d->flags, s->num_neurons,
                       s->temperature, s->num_neurons_second, &layout);
    d->num_neurons = s->num_neurons;
    d->num_neurons2 = s->num_neurons_second > 0 ? s->num_neurons_second : 0;
    d->temperature = s->temperature != 0;
    d->dim = layout.dim;
    if (d->dim > NEPCU_MAX_DIM) return NEP_ERR_UNSUPPORTED; /* the kernels' dU/dq array */
    d->num_abc = (s->l_max + 1) * (s->l_max + 1) - 1;
    d->s_len = d->num_abc > NEP_MIN_S_LEN ? d->num_abc : NEP_MIN_S_LEN;
    d->use_zbl = s->use_zbl != 0;
    d->block_size = (int)layout.block_size;
    d->num_networks = layout.num_networks;
    d->shared_bias_index = (int)layout.shared_bias;
    d->c_radial_offset = (int)layout.offset_radial;
    d->c_angular_offset = (int)layout.offset_angular;
    const int T = s->num_types;
    const size_t expected = layout.num_parameters;
    if (s->num_parameters != expected) return NEP_ERR_MODEL;
    if (!s->rc_radial || !s->rc_angular || !s->atomic_numbers || !s->parameters || !s->q_scaler)
        return NEP_ERR_ARGUMENT;
    if (d->use_zbl && !s->zbl) return NEP_ERR_ARGUMENT;
    for (int k = 0; k < T * T; ++k)
        if (!(s->rc_radial[k] > 0.0) || !(s->rc_angular[k] > 0.0)) return NEP_ERR_MODEL;
    for (int k = 0; k < T; ++k)
        if (s->atomic_numbers[k] < 1 || s->atomic_numbers[k] > 118) return NEP_ERR_MODEL;
    return NEP_OK;
}

/* ------------------------------------------------------------------ list kernels */
__global__ void k_moved(int N, const double *pos, const double *pos_build, double limit2,
                        int *flag)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    double d2 = 0.0;
    for (int c = 0; c < 3; ++c) {
        const double dx = pos[3 * i + c] - pos_build[3 * i + c];
        d2 += dx * dx;
    }
    if (d2 > limit2) *flag = 1;
}

__global__ void k_bin(int N, const double *pos, const int *struct_of_atom, const bininfo *info,
                      int *atom_bin, int4 *atom_cell, int4 *atom_wrap, int *bin_count)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const bininfo &b = info[struct_of_atom[i]];
    int cellidx[3], wrap[3];
    for (int k = 0; k < 3; ++k) {
        double f = 0.0;
        for (int c = 0; c < 3; ++c) f += (pos[3 * i + c] - b.origin[c]) * b.hinv[3 * c + k];
        if (b.periodic[k]) {
            const double n = floor(f);
            wrap[k] = (int)n;
            f -= n;
            int bin = (int)(f * b.nb[k]);
            cellidx[k] = bin < 0 ? 0 : (bin >= b.nb[k] ? b.nb[k] - 1 : bin);
        } else {
            wrap[k] = 0;
            const double x = floor(f * b.nb[k]);
            cellidx[k] = x < 0.0 ? 0 : (x >= (double)b.nb[k] ? b.nb[k] - 1 : (int)x);
        }
    }
    const int bin = b.bin_offset + (cellidx[0] * b.nb[1] + cellidx[1]) * b.nb[2] + cellidx[2];
    atom_bin[i] = bin;
    atom_cell[i] = make_int4(cellidx[0], cellidx[1], cellidx[2], 0);
    atom_wrap[i] = make_int4(wrap[0], wrap[1], wrap[2], 0);
    atomicAdd(&bin_count[bin], 1);
}

__global__ void k_fill(int N, const int *atom_bin, const int *bin_start, int *bin_fill,
                       int *bin_atoms)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int bin = atom_bin[i];
    const int at = atomicAdd(&bin_fill[bin], 1);
    bin_atoms[bin_start[bin] + at] = i;
}

__device__ __forceinline__ bool key_less(int4 a, int4 b)
{
    if (a.x != b.x) return a.x < b.x;
    if (a.y != b.y) return a.y < b.y;
    if (a.z != b.z) return a.z < b.z;
    return a.w < b.w;
}

__global__ void k_build(int N, int MN, double cutoff2, const double *pos,
                        const int *struct_of_atom, const double *cells, const bininfo *info,
                        const int4 *atom_cell, const int4 *atom_wrap, const int *bin_start,
                        const int *bin_count, const int *bin_atoms, int4 *nbr, int *nbr_count,
                        int *max_count)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int st = struct_of_atom[i];
    const bininfo &b = info[st];
    const double *cell = cells + 9 * st;
    const int4 ci = atom_cell[i], wi = atom_wrap[i];
    const int cidx[3] = {ci.x, ci.y, ci.z};
    const int wrapi[3] = {wi.x, wi.y, wi.z};
    int count = 0;
    for (int o0 = -b.range[0]; o0 <= b.range[0]; ++o0)
        for (int o1 = -b.range[1]; o1 <= b.range[1]; ++o1)
            for (int o2 = -b.range[2]; o2 <= b.range[2]; ++o2) {
                const int off[3] = {o0, o1, o2};
                int nc[3], sb[3];
                bool skip = false;
                for (int k = 0; k < 3; ++k) {
                    if (b.periodic[k]) {
                        if (b.nb[k] == 1) { /* image mode */
                            nc[k] = 0;
                            sb[k] = off[k];
                        } else {
                            int c = cidx[k] + off[k];
                            sb[k] = c < 0 ? -1 : (c >= b.nb[k] ? 1 : 0);
                            nc[k] = c - sb[k] * b.nb[k];
                        }
                    } else {
                        nc[k] = cidx[k] + off[k];
                        sb[k] = 0;
                        if (nc[k] < 0 || nc[k] >= b.nb[k]) skip = true;
                    }
                }
                if (skip) continue;
                const int bin = b.bin_offset + (nc[0] * b.nb[1] + nc[1]) * b.nb[2] + nc[2];
                const int start = bin_start[bin], end = start + bin_count[bin];
                for (int a = start; a < end; ++a) {
                    const int j = bin_atoms[a];
                    const int4 wj = atom_wrap[j];
                    const int sh[3] = {sb[0] - wj.x + wrapi[0], sb[1] - wj.y + wrapi[1],
                                       sb[2] - wj.z + wrapi[2]};
                    if (j == i && sh[0] == 0 && sh[1] == 0 && sh[2] == 0) continue;
                    double d2 = 0.0;
                    for (int c = 0; c < 3; ++c) {
                        const double r = pos[3 * j + c] - pos[3 * i + c] +
                                         (double)sh[0] * cell[c] + (double)sh[1] * cell[3 + c] +
                                         (double)sh[2] * cell[6 + c];
                        d2 += r * r;
                    }
                    if (!(d2 < cutoff2)) continue;
                    if (count < MN) nbr[(size_t)count * N + i] = make_int4(j, sh[0], sh[1], sh[2]);
                    ++count;
                }
            }
    atomicMax(max_count, count);
    if (count > MN) {
        nbr_count[i] = 0;
        return;
    }
    /* insertion sort by (j, shift): a deterministic order whatever the bin filling order */
    for (int a = 1; a < count; ++a) {
        const int4 key = nbr[(size_t)a * N + i];
        int c = a - 1;
        while (c >= 0 && key_less(key, nbr[(size_t)c * N + i])) {
            nbr[(size_t)(c + 1) * N + i] = nbr[(size_t)c * N + i];
            --c;
        }
        nbr[(size_t)(c + 1) * N + i] = key;
    }
    nbr_count[i] = count;
}

__global__ void k_reverse(int N, const int *struct_of_atom, const int4 *nbr,
                          const int *nbr_count, int *rev, int *struct_flags)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    const int count = nbr_count[i];
    for (int slot = 0; slot < count; ++slot) {
        const int4 e = nbr[(size_t)slot * N + i];
        const int4 key = make_int4(i, -e.y, -e.z, -e.w);
        int lo = 0, hi = nbr_count[e.x] - 1, found = -1;
        while (lo <= hi) {
            const int mid = (lo + hi) / 2;
            const int4 x = nbr[(size_t)mid * N + e.x];
            if (key_less(x, key)) lo = mid + 1;
            else if (key_less(key, x)) hi = mid - 1;
            else { found = mid; break; }
        }
        if (found < 0) {
            atomicOr(&struct_flags[struct_of_atom[i]], NEPCU_FLAG_LIST);
            found = slot; /* keeps the gather in bounds; the status reports the failure */
        }
        rev[(size_t)slot * N + i] = found;
    }
}

/* Per-structure sums in a fixed order: one block per structure. Layout of totals[s][20]:
 * energy, virial[9], energy_zbl, virial_zbl[9]. */
__global__ void k_totals(const bininfo *info, const double *energy, const double *virials,
                         const double *energy_zbl, const double *virials_zbl, double *totals)
{
    __shared__ double part[NEPCU_TOTALS_THREADS][20];
    const int s = blockIdx.x, t = threadIdx.x;
    const bininfo &b = info[s];
    double acc[20];
    for (int c = 0; c < 20; ++c) acc[c] = 0.0;
    for (int a = t; a < b.num_atoms; a += blockDim.x) {
        const size_t i = (size_t)b.atom_offset + a;
        acc[0] += energy[i];
        if (virials)
            for (int c = 0; c < 9; ++c) acc[1 + c] += virials[9 * i + c];
        if (energy_zbl) acc[10] += energy_zbl[i];
        if (virials_zbl)
            for (int c = 0; c < 9; ++c) acc[11 + c] += virials_zbl[9 * i + c];
    }
    for (int c = 0; c < 20; ++c) part[t][c] = acc[c];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (t < stride)
            for (int c = 0; c < 20; ++c) part[t][c] += part[t + stride][c];
        __syncthreads();
    }
    for (int c = t; c < 20; c += blockDim.x) totals[20 * s + c] = part[0][c];
}

inline int blocks_for(int n, int threads) { return (n + threads - 1) / threads; }

/* Whether a cell (rows a, b, c) is too flat to bin atoms by: a molecule without a cell. Its
 * binning lattice then follows the atoms' extent, so make_bininfo reads the positions. */
bool cell_is_singular(const double *H)
{
    const double vol = fabs(H[0] * (H[4] * H[8] - H[5] * H[7]) - H[1] * (H[3] * H[8] - H[5] * H[6]) +
                            H[2] * (H[3] * H[7] - H[4] * H[6]));
    double len[3];
    for (int k = 0; k < 3; ++k)
        len[k] = sqrt(H[3 * k] * H[3 * k] + H[3 * k + 1] * H[3 * k + 1] + H[3 * k + 2] * H[3 * k + 2]);
    return !(vol > 1e-9 * (len[0] * len[1] * len[2] + 1e-300)) || !(vol > 1e-12);
}

/* Binning lattice of one structure (see the file comment); sys->positions are read on the
 * host when the cell is singular. Returns a nep_status. */
int make_bininfo(const nep_system *sys, double cutoff, bininfo *b, int *num_bins)
{
    const double *H = sys->cell;
    double rows[3][3];
    for (int k = 0; k < 3; ++k)
        for (int c = 0; c < 3; ++c) rows[k][c] = H[3 * k + c];
    for (int k = 0; k < 3; ++k) b->periodic[k] = sys->pbc[k] != 0;
    b->origin[0] = b->origin[1] = b->origin[2] = 0.0;
    double len[3];
    for (int k = 0; k < 3; ++k)
        len[k] = sqrt(rows[k][0] * rows[k][0] + rows[k][1] * rows[k][1] + rows[k][2] * rows[k][2]);
    if (cell_is_singular(H)) {
        /* Gram-Schmidt: keep the periodic rows, complete with orthonormal open rows scaled to
         * the atoms' extent (plus one cutoff so that the extent is never zero). */
        double basis[3][3];
        int nbasis = 0;
        for (int k = 0; k < 3; ++k) {
            if (!b->periodic[k]) continue;
            if (!(len[k] > 1e-9)) return NEP_ERR_CELL;
            double u[3] = {rows[k][0], rows[k][1], rows[k][2]};
            for (int a = 0; a < nbasis; ++a) {
                const double p = u[0] * basis[a][0] + u[1] * basis[a][1] + u[2] * basis[a][2];
                for (int c = 0; c < 3; ++c) u[c] -= p * basis[a][c];
            }
            const double n = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
            if (!(n > 1e-6 * len[k])) return NEP_ERR_CELL;
            for (int c = 0; c < 3; ++c) basis[nbasis][c] = u[c] / n;
            ++nbasis;
        }
        const double axes[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
        for (int k = 0; k < 3; ++k) {
            if (b->periodic[k]) continue;
            double best[3] = {0, 0, 0}, bestn = -1.0;
            for (int a = 0; a < 3; ++a) { /* the coordinate axis least inside the span */
                double u[3] = {axes[a][0], axes[a][1], axes[a][2]};
                for (int q = 0; q < nbasis; ++q) {
                    const double p = u[0] * basis[q][0] + u[1] * basis[q][1] + u[2] * basis[q][2];
                    for (int c = 0; c < 3; ++c) u[c] -= p * basis[q][c];
                }
                const double n = sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
                if (n > bestn) {
                    bestn = n;
                    for (int c = 0; c < 3; ++c) best[c] = u[c] / n;
                }
            }
            for (int c = 0; c < 3; ++c) basis[nbasis][c] = best[c];
            double lo = 0.0, hi = 0.0;
            for (int i = 0; i < sys->num_atoms; ++i) {
                const double *p = sys->positions + 3 * i;
                const double x = p[0] * best[0] + p[1] * best[1] + p[2] * best[2];
                if (i == 0 || x < lo) lo = x;
                if (i == 0 || x > hi) hi = x;
            }
            const double extent = hi - lo + cutoff;
            for (int c = 0; c < 3; ++c) {
                rows[k][c] = best[c] * extent;
                b->origin[c] += best[c] * (lo - 0.5 * cutoff);
            }
            ++nbasis;
        }
    }
    /* inverse of the row matrix: frac = (p - origin) . inv */
    const double a00 = rows[0][0], a01 = rows[0][1], a02 = rows[0][2];
    const double a10 = rows[1][0], a11 = rows[1][1], a12 = rows[1][2];
    const double a20 = rows[2][0], a21 = rows[2][1], a22 = rows[2][2];
    const double det = a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) +
                       a02 * (a10 * a21 - a11 * a20);
    if (!(fabs(det) > 1e-12) || !isfinite(det)) return NEP_ERR_CELL;
    double inv[9] = {(a11 * a22 - a12 * a21) / det, (a02 * a21 - a01 * a22) / det,
                     (a01 * a12 - a02 * a11) / det, (a12 * a20 - a10 * a22) / det,
                     (a00 * a22 - a02 * a20) / det, (a02 * a10 - a00 * a12) / det,
                     (a10 * a21 - a11 * a20) / det, (a01 * a20 - a00 * a21) / det,
                     (a00 * a11 - a01 * a10) / det};
    memcpy(b->hinv, inv, sizeof(inv));
    /* Bins at least one list cutoff wide; coarser bins stay correct, so a mostly empty box
     * (a molecule in a huge cell) is coarsened to about 8 bins per atom at most. */
    const long target = 8L * (sys->num_atoms > 512 ? sys->num_atoms : 512);
    int want[3];
    double thick[3];
    for (int k = 0; k < 3; ++k) {
        /* thickness along k: |det| / |row_l x row_m| */
        const double *u = rows[(k + 1) % 3], *w = rows[(k + 2) % 3];
        const double cx = u[1] * w[2] - u[2] * w[1], cy = u[2] * w[0] - u[0] * w[2],
                     cz = u[0] * w[1] - u[1] * w[0];
        thick[k] = fabs(det) / sqrt(cx * cx + cy * cy + cz * cz);
        want[k] = (int)fmax(1.0, fmin(floor(thick[k] / cutoff), 4096.0));
    }
    for (;;) {
        long total = (long)want[0] * want[1] * want[2];
        int largest = 0;
        for (int k = 1; k < 3; ++k)
            if (want[k] > want[largest]) largest = k;
        if (total <= target || want[largest] <= 3) break;
        want[largest] = (want[largest] + 1) / 2 < 3 ? 3 : (want[largest] + 1) / 2;
    }
    long total = 1;
    for (int k = 0; k < 3; ++k) {
        if (b->periodic[k] && want[k] < 3) {
            /* image mode: one bin, all images -n..n of every atom */
            const double n = ceil(cutoff / thick[k]);
            if (!(n <= 64.0)) return NEP_ERR_CELL; /* absurdly thin periodic cell */
            b->nb[k] = 1;
            b->range[k] = (int)n;
        } else {
            b->nb[k] = want[k];
            b->range[k] = 1;
        }
        total *= b->nb[k];
    }
    if (total > (1L << 26)) return NEP_ERR_CELL;
    *num_bins = (int)total;
    return NEP_OK;
}

int fail(int status, const char *text)
{
    snprintf(last_error, sizeof(last_error), "%s", text);
    return status;
}

} // namespace

/* ================================================================== C API */
extern "C" {

int nep_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

const char *nep_cuda_last_error(void) { return last_error; }

const char *nep_cuda_strerror(int status)
{
    const char *base;
    switch (status) {
    case NEP_OK: base = "no error"; break;
    case NEP_ERR_NOMEM: base = "out of memory"; break;
    case NEP_ERR_ARGUMENT: base = "invalid argument"; break;
    case NEP_ERR_MODEL: base = "inconsistent model specification"; break;
    case NEP_ERR_TYPE: base = "atom type outside the model's species"; break;
    case NEP_ERR_OVERLAP: base = "two atoms at the same position"; break;
    case NEP_ERR_CELL: base = "singular or unusable cell"; break;
    case NEP_ERR_NONFINITE: base = "NaN, infinite or huge (beyond 1e10 A) position or cell"; break;
    case NEP_ERR_UNSUPPORTED: base = "model feature not supported by this engine"; break;
    case NEP_ERR_CUDA: base = "CUDA error"; break;
    default: base = "unknown error"; break;
    }
    if ((status == NEP_ERR_CUDA || status == NEP_ERR_NOMEM || status == NEP_ERR_CELL ||
         status == NEP_ERR_UNSUPPORTED) && last_error[0])
        snprintf(message, sizeof(message), "%s (%s)", base, last_error);
    else
        snprintf(message, sizeof(message), "%s", base);
    return message;
}

int nep_cuda_model_create(const nep_model_spec *spec, int precision, int device_id,
                          nep_cuda_model **out)
{
    last_error[0] = '\0';
    if (!spec || !out || (precision != 0 && precision != 1)) return NEP_ERR_ARGUMENT;
    *out = nullptr;
    nepcu_dims dims;
    int st = fill_dims(spec, &dims);
    if (st != NEP_OK) return st;
    const int ndev = nep_cuda_device_count();
    if (ndev == 0) return fail(NEP_ERR_CUDA, "no CUDA device is available");
    if (device_id < 0 || device_id >= ndev) return fail(NEP_ERR_ARGUMENT, "no such CUDA device");
    cudaError_t err = cudaSetDevice(device_id);
    if (err != cudaSuccess) return status_of(err, "cudaSetDevice");
    /* placement new on malloc: no C++ runtime library is needed at link time */
    void *mem = malloc(sizeof(nep_cuda_model));
    if (!mem) return NEP_ERR_NOMEM;
    nep_cuda_model *m = new (mem) nep_cuda_model();
    m->precision = precision;
    m->device = device_id;
    m->im = precision == 0 ? &impl_f64 : &impl_f32;
    m->dims = dims;
    memset(&m->dev, 0, sizeof(m->dev));
    m->num_parameters = spec->num_parameters;
    double rc = 0.0;
    for (int k = 0; k < spec->num_types * spec->num_types; ++k) {
        rc = fmax(rc, spec->rc_radial[k]);
        rc = fmax(rc, spec->rc_angular[k]);
    }
    m->list_cutoff_base = rc;
    err = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking);
    if (err == cudaSuccess) err = m->im->upload_model(&m->dims, spec, &m->dev, &m->model_bytes,
                                                         m->stream);
    if (err != cudaSuccess) {
        st = status_of(err, "uploading the model");
        nep_cuda_model_free(m);
        return st;
    }
    *out = m;
    return NEP_OK;
}

void nep_cuda_model_free(nep_cuda_model *m)
{
    if (!m) return;
    cudaSetDevice(m->device);
    if (m->im) m->im->free_model(&m->dev);
    free_buffers(m);
    if (m->stream) cudaStreamDestroy(m->stream);
    if (m->h_pos) cudaFreeHost(m->h_pos);
    free(m->last_counts);
    free(m->last_cells);
    free(m->last_pbc);
    free(m->last_types);
    m->~nep_cuda_model();
    free(m);
}

int nep_cuda_model_set_parameters(nep_cuda_model *m, const double *parameters)
{
    if (!m || !parameters) return NEP_ERR_ARGUMENT;
    for (size_t k = 0; k < m->num_parameters; ++k)
        if (!isfinite(parameters[k])) return NEP_ERR_NONFINITE;
    m->generation += 1; /* resident forces no longer match the model */
    cudaSetDevice(m->device);
    return status_of(m->im->upload_parameters(&m->dims, parameters, m->num_parameters, &m->dev,
                                                 m->stream),
                     "uploading parameters");
}

int nep_cuda_model_dim(const nep_cuda_model *m) { return m ? m->dims.dim : 0; }
int nep_cuda_model_num_types(const nep_cuda_model *m) { return m ? m->dims.num_types : 0; }
int nep_cuda_model_num_neurons(const nep_cuda_model *m) { return m ? m->dims.num_neurons : 0; }
int nep_cuda_model_precision(const nep_cuda_model *m) { return m ? m->precision : -1; }
size_t nep_cuda_model_device_bytes(const nep_cuda_model *m)
{
    return m ? m->model_bytes + buffers_bytes(m) : 0;
}
long nep_cuda_model_num_builds(const nep_cuda_model *m) { return m ? m->builds : 0; }

int nep_cuda_model_set_skin(nep_cuda_model *m, double skin)
{
    if (!m || !(skin >= 0.0) || !(skin < 100.0)) return NEP_ERR_ARGUMENT;
    m->skin = skin;
    m->list_valid = false;
    return NEP_OK;
}

int nep_cuda_compute(nep_cuda_model *m, const nep_system *system, nep_outputs *outputs)
{
    int status = NEP_OK;
    const int rc = nep_cuda_compute_batch(m, 1, system, outputs, &status);
    return rc != NEP_OK ? rc : status;
}

} /* extern "C" */

namespace {

/* One nep_cuda_compute_batch call, passed through its steps: check, list, upload,
 * evaluate, download. The host arrays are freed by batch_free whatever step fails. */
struct batch {
    int num_structs = 0, num_atoms = 0, total_bins = 0;
    const nep_system *systems = nullptr;
    bininfo *info = nullptr;  /* [S] binning lattice and atom range of every structure */
    double *h_cells = nullptr; /* [S][9] */
    double *h_temperatures = nullptr; /* [S], temperature models only */
};

void batch_free(batch *b)
{
    free(b->info);
    free(b->h_cells);
    free(b->h_temperatures);
    b->info = nullptr;
    b->h_cells = nullptr;
    b->h_temperatures = nullptr;
}

/* A CUDA failure inside a step: the list may be half built, so it is rebuilt next time. */
#define NEPCU_CHECK(call, what)                                                              \
    do {                                                                                     \
        cudaError_t err_ = (call);                                                           \
        if (err_ != cudaSuccess) {                                                           \
            m->list_valid = false;                                                           \
            return status_of(err_, what);                                                    \
        }                                                                                    \
    } while (0)

/* Host checks, per structure, into st[]: the batch runs only when every structure is valid,
 * so that a bad structure says so at once and costs no device time. */
int check_systems(const nep_cuda_model *m, int num_systems, const nep_system *systems, int *st,
                  long *total_atoms)
{
    const int T = m->dims.num_types;
    int first_bad = NEP_OK;
    *total_atoms = 0;
    for (int s = 0; s < num_systems; ++s) {
        const nep_system &sys = systems[s];
        int code = NEP_OK;
        if (sys.num_atoms < 0 || (sys.num_atoms > 0 && (!sys.types || !sys.positions)) ||
            !sys.cell)
            code = NEP_ERR_ARGUMENT;
        for (int k = 0; code == NEP_OK && k < 9; ++k)
            if (!(fabs(sys.cell[k]) <= 1e10)) code = NEP_ERR_NONFINITE; /* as nep_neighbors.c */
        if (code == NEP_OK && m->dims.temperature && !isfinite(sys.temperature))
            code = NEP_ERR_NONFINITE; /* as nep_core.c */
        for (int i = 0; code == NEP_OK && i < sys.num_atoms; ++i) {
            if (sys.types[i] < 0 || sys.types[i] >= T) code = NEP_ERR_TYPE;
            for (int c = 0; c < 3; ++c)
                if (!(fabs(sys.positions[3 * i + c]) <= 1e10)) code = NEP_ERR_NONFINITE;
        }
        st[s] = code;
        if (code != NEP_OK && first_bad == NEP_OK) first_bad = code;
        *total_atoms += sys.num_atoms;
    }
    return first_bad;
}

/* The binning lattice of every structure (host only). */
int plan_bins(batch *b, double cutoff, int *statuses)
{
    b->info = (bininfo *)calloc(b->num_structs, sizeof(bininfo));
    if (!b->info) return NEP_ERR_NOMEM;
    int offset = 0;
    for (int s = 0; s < b->num_structs; ++s) {
        int nbins = 0;
        const int code = make_bininfo(&b->systems[s], cutoff, &b->info[s], &nbins);
        if (code != NEP_OK) {
            if (statuses) statuses[s] = code;
            if (!last_error[0])
                snprintf(last_error, sizeof(last_error), "structure %d: cell too thin or singular", s);
            return code;
        }
        b->info[s].bin_offset = b->total_bins;
        b->info[s].atom_offset = offset;
        b->info[s].num_atoms = b->systems[s].num_atoms;
        b->total_bins += nbins;
        offset += b->systems[s].num_atoms;
    }
    return NEP_OK;
}

/* Does the current list still describe this batch (same structures, cells, pbc, types)? */
bool same_layout(const nep_cuda_model *m, const batch *b)
{
    if (!(m->list_valid && m->last_atoms == b->num_atoms && m->last_structs == b->num_structs &&
          m->last_skin == m->skin))
        return false;
    for (int s = 0; s < b->num_structs; ++s) {
        const nep_system &sys = b->systems[s];
        if (m->last_counts[s] != sys.num_atoms || memcmp(m->last_cells + 9 * s, sys.cell, 72) ||
            m->last_pbc[3 * s] != sys.pbc[0] || m->last_pbc[3 * s + 1] != sys.pbc[1] ||
            m->last_pbc[3 * s + 2] != sys.pbc[2] ||
            memcmp(m->last_types + b->info[s].atom_offset, sys.types, sizeof(int) * sys.num_atoms))
            return false;
    }
    return true;
}

/* The pinned host staging of the positions, for N atoms. */
int reserve_host_positions(nep_cuda_model *m, int N)
{
    if (m->h_pos_capacity >= (size_t)N * 3 + 3) return NEP_OK;
    if (m->h_pos) cudaFreeHost(m->h_pos);
    m->h_pos = nullptr;
    m->h_pos_capacity = 0;
    cudaError_t err = cudaMallocHost((void **)&m->h_pos, sizeof(double) * ((size_t)N * 3 + 3));
    if (err != cudaSuccess) return status_of(err, "pinned host buffer");
    m->h_pos_capacity = (size_t)N * 3 + 3;
    return NEP_OK;
}

/* Upload step: positions, cells and binning lattices (types go with a list rebuild). */
int upload_positions(nep_cuda_model *m, batch *b, bool positions_on_device = false)
{
    const int N = b->num_atoms, S = b->num_structs;
    if (!positions_on_device) {
        const int code = reserve_host_positions(m, N);
        if (code != NEP_OK) return code;
    }
    b->h_cells = (double *)malloc(sizeof(double) * 9 * S);
    if (!b->h_cells) return NEP_ERR_NOMEM;
    for (int s = 0; s < S; ++s) {
        if (!positions_on_device)
            memcpy(m->h_pos + 3 * (size_t)b->info[s].atom_offset, b->systems[s].positions,
                   sizeof(double) * 3 * b->systems[s].num_atoms);
        memcpy(b->h_cells + 9 * s, b->systems[s].cell, sizeof(double) * 9);
    }
    const size_t Nz = N > 0 ? (size_t)N : 1;
    NEPCU_CHECK(reserve(&m->pos, sizeof(double) * 3 * Nz), "allocating positions");
    NEPCU_CHECK(reserve(&m->cells, sizeof(double) * 9 * S), "allocating cells");
    NEPCU_CHECK(reserve(&m->binfo, sizeof(bininfo) * S), "allocating cells");
    NEPCU_CHECK(reserve(&m->struct_flags, sizeof(int) * S), "allocating flags");
    NEPCU_CHECK(reserve(&m->totals, sizeof(double) * 20 * S), "allocating totals");
    NEPCU_CHECK(reserve(&m->scratch, sizeof(int) * 4), "allocating flags");
    if (positions_on_device) /* one structure whose positions already live on the device */
        NEPCU_CHECK(cudaMemcpyAsync(m->pos.p, b->systems[0].positions, sizeof(double) * 3 * N,
                                    cudaMemcpyDeviceToDevice, m->stream), "copying positions");
    else
        NEPCU_CHECK(cudaMemcpyAsync(m->pos.p, m->h_pos, sizeof(double) * 3 * N,
                                    cudaMemcpyHostToDevice, m->stream), "uploading positions");
    NEPCU_CHECK(cudaMemcpyAsync(m->cells.p, b->h_cells, sizeof(double) * 9 * S,
                                cudaMemcpyHostToDevice, m->stream), "uploading cells");
    NEPCU_CHECK(cudaMemcpyAsync(m->binfo.p, b->info, sizeof(bininfo) * S, cudaMemcpyHostToDevice,
                                m->stream), "uploading cells");
    NEPCU_CHECK(cudaMemsetAsync(m->struct_flags.p, 0, sizeof(int) * S, m->stream), "flags");
    if (m->dims.temperature) { /* the temperature models' last descriptor entry */
        b->h_temperatures = (double *)malloc(sizeof(double) * S);
        if (!b->h_temperatures) return NEP_ERR_NOMEM;
        for (int s = 0; s < S; ++s) b->h_temperatures[s] = b->systems[s].temperature;
        NEPCU_CHECK(reserve(&m->temperatures, sizeof(double) * S), "allocating temperatures");
        NEPCU_CHECK(cudaMemcpyAsync(m->temperatures.p, b->h_temperatures, sizeof(double) * S,
                                    cudaMemcpyHostToDevice, m->stream), "uploading temperatures");
    }
    return NEP_OK;
}

const int list_threads = 128;

/* Verlet criterion: whether any atom moved more than half the skin since the last build. */
int atoms_moved(nep_cuda_model *m, const batch *b, bool *moved)
{
    int *d_scratch = (int *)m->scratch.p; /* [0] moved flag */
    const int N = b->num_atoms;
    NEPCU_CHECK(cudaMemsetAsync(d_scratch, 0, sizeof(int), m->stream), "flags");
    const double half = 0.5 * m->skin;
    NEPCU_LAUNCH(k_moved, blocks_for(N, list_threads), list_threads, m->stream,
        N, (const double *)m->pos.p, (const double *)m->pos_build.p, half * half, d_scratch);
    int flag = 0;
    NEPCU_CHECK(cudaMemcpyAsync(&flag, d_scratch, sizeof(int), cudaMemcpyDeviceToHost,
                                m->stream), "neighbour list check");
    NEPCU_CHECK(cudaStreamSynchronize(m->stream), "neighbour list check");
    *moved = flag != 0;
    return NEP_OK;
}

/* Types and structure index of every atom, uploaded and remembered as the list's layout. */
int upload_types(nep_cuda_model *m, const batch *b)
{
    const int N = b->num_atoms, S = b->num_structs;
    const size_t Nz = N > 0 ? (size_t)N : 1;
    int *h_types = (int *)malloc(sizeof(int) * Nz);
    int *h_struct = (int *)malloc(sizeof(int) * Nz);
    if (!h_types || !h_struct) {
        free(h_types);
        free(h_struct);
        return NEP_ERR_NOMEM;
    }
    for (int s = 0; s < S; ++s)
        for (int a = 0; a < b->systems[s].num_atoms; ++a) {
            h_types[b->info[s].atom_offset + a] = b->systems[s].types[a];
            h_struct[b->info[s].atom_offset + a] = s;
        }
    cudaError_t err = reserve(&m->types, sizeof(int) * Nz);
    if (err == cudaSuccess) err = reserve(&m->struct_of_atom, sizeof(int) * Nz);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(m->types.p, h_types, sizeof(int) * N, cudaMemcpyHostToDevice,
                              m->stream);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(m->struct_of_atom.p, h_struct, sizeof(int) * N,
                              cudaMemcpyHostToDevice, m->stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(m->stream);
    if (err == cudaSuccess) {
        free(m->last_types);
        m->last_types = h_types;
        h_types = nullptr;
        free(m->last_counts);
        free(m->last_cells);
        free(m->last_pbc);
        m->last_counts = (int *)malloc(sizeof(int) * S);
        m->last_cells = (double *)malloc(sizeof(double) * 9 * S);
        m->last_pbc = (int *)malloc(sizeof(int) * 3 * S);
        if (!m->last_counts || !m->last_cells || !m->last_pbc) err = cudaErrorMemoryAllocation;
        for (int s = 0; err == cudaSuccess && s < S; ++s) {
            m->last_counts[s] = b->systems[s].num_atoms;
            memcpy(m->last_cells + 9 * s, b->systems[s].cell, 72);
            for (int k = 0; k < 3; ++k) m->last_pbc[3 * s + k] = b->systems[s].pbc[k];
        }
    }
    free(h_types);
    free(h_struct);
    NEPCU_CHECK(err, "uploading types");
    return NEP_OK;
}

/* The cell list: atoms binned, bins counted, prefix-summed on the host and filled. */
int build_cell_list(nep_cuda_model *m, const batch *b)
{
    const int N = b->num_atoms, total_bins = b->total_bins;
    const size_t Nz = N > 0 ? (size_t)N : 1;
    NEPCU_CHECK(reserve(&m->pos_build, sizeof(double) * 3 * Nz), "allocating list");
    NEPCU_CHECK(reserve(&m->atom_bin, sizeof(int) * Nz), "allocating list");
    NEPCU_CHECK(reserve(&m->atom_cell, sizeof(int4) * Nz), "allocating list");
    NEPCU_CHECK(reserve(&m->atom_wrap, sizeof(int4) * Nz), "allocating list");
    NEPCU_CHECK(reserve(&m->bin_count, sizeof(int) * (total_bins + 1)), "allocating list");
    NEPCU_CHECK(reserve(&m->bin_start, sizeof(int) * (total_bins + 1)), "allocating list");
    NEPCU_CHECK(reserve(&m->bin_fill, sizeof(int) * (total_bins + 1)), "allocating list");
    NEPCU_CHECK(reserve(&m->bin_atoms, sizeof(int) * Nz), "allocating list");
    NEPCU_CHECK(reserve(&m->nbr_count, sizeof(int) * Nz), "allocating list");
    NEPCU_CHECK(cudaMemcpyAsync(m->pos_build.p, m->pos.p, sizeof(double) * 3 * N,
                                cudaMemcpyDeviceToDevice, m->stream), "list");
    NEPCU_CHECK(cudaMemsetAsync(m->bin_count.p, 0, sizeof(int) * (total_bins + 1), m->stream),
                "list");
    NEPCU_CHECK(cudaMemsetAsync(m->bin_fill.p, 0, sizeof(int) * (total_bins + 1), m->stream),
                "list");
    if (N > 0)
        NEPCU_LAUNCH(k_bin, blocks_for(N, list_threads), list_threads, m->stream,
            N, (const double *)m->pos.p, (const int *)m->struct_of_atom.p,
            (const bininfo *)m->binfo.p, (int *)m->atom_bin.p, (int4 *)m->atom_cell.p,
            (int4 *)m->atom_wrap.p, (int *)m->bin_count.p);
    int *h_bins = (int *)malloc(sizeof(int) * (total_bins + 1));
    if (!h_bins) return NEP_ERR_NOMEM;
    cudaError_t err = cudaMemcpyAsync(h_bins, m->bin_count.p, sizeof(int) * total_bins,
                                      cudaMemcpyDeviceToHost, m->stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(m->stream);
    if (err == cudaSuccess) {
        int run = 0;
        for (int k = 0; k < total_bins; ++k) {
            const int c = h_bins[k];
            h_bins[k] = run;
            run += c;
        }
        err = cudaMemcpyAsync(m->bin_start.p, h_bins, sizeof(int) * total_bins,
                              cudaMemcpyHostToDevice, m->stream);
    }
    if (err == cudaSuccess) err = cudaStreamSynchronize(m->stream);
    free(h_bins);
    NEPCU_CHECK(err, "building the cell list");
    if (N > 0)
        NEPCU_LAUNCH(k_fill, blocks_for(N, list_threads), list_threads, m->stream,
            N, (const int *)m->atom_bin.p, (const int *)m->bin_start.p,
            (int *)m->bin_fill.p, (int *)m->bin_atoms.p);
    return NEP_OK;
}

/* The Verlet list from the cell list: grow the capacity and rebuild until every atom fits,
 * then the reverse slots. */
int build_verlet_list(nep_cuda_model *m, const batch *b, double cutoff)
{
    const int N = b->num_atoms;
    const size_t Nz = N > 0 ? (size_t)N : 1;
    int *d_scratch = (int *)m->scratch.p; /* [1] max neighbour count */
    if (m->max_neighbors < 16) m->max_neighbors = 64;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const int MN = m->max_neighbors;
        NEPCU_CHECK(reserve(&m->nbr, sizeof(int4) * (size_t)MN * Nz), "allocating list");
        NEPCU_CHECK(reserve(&m->rev, sizeof(int) * (size_t)MN * Nz), "allocating list");
        NEPCU_CHECK(cudaMemsetAsync(d_scratch + 1, 0, sizeof(int), m->stream), "list");
        if (N > 0)
            NEPCU_LAUNCH(k_build, blocks_for(N, list_threads), list_threads, m->stream,
                N, MN, cutoff * cutoff, (const double *)m->pos.p,
                (const int *)m->struct_of_atom.p, (const double *)m->cells.p,
                (const bininfo *)m->binfo.p, (const int4 *)m->atom_cell.p,
                (const int4 *)m->atom_wrap.p, (const int *)m->bin_start.p,
                (const int *)m->bin_count.p, (const int *)m->bin_atoms.p,
                (int4 *)m->nbr.p, (int *)m->nbr_count.p, d_scratch + 1);
        int max_count = 0;
        NEPCU_CHECK(cudaMemcpyAsync(&max_count, d_scratch + 1, sizeof(int),
                                    cudaMemcpyDeviceToHost, m->stream), "list");
        NEPCU_CHECK(cudaStreamSynchronize(m->stream), "building the neighbour list");
        if (max_count <= MN) break;
        m->max_neighbors = ((max_count + max_count / 8 + 8) / 8) * 8;
        if (attempt == 2) return fail(NEP_ERR_CUDA, "neighbour list did not converge");
    }
    if (N > 0)
        NEPCU_LAUNCH(k_reverse, blocks_for(N, list_threads), list_threads, m->stream,
            N, (const int *)m->struct_of_atom.p, (const int4 *)m->nbr.p,
            (const int *)m->nbr_count.p, (int *)m->rev.p, (int *)m->struct_flags.p);
    NEPCU_CHECK(cudaGetLastError(), "building the neighbour list");
    return NEP_OK;
}

/* List step: keep the list while the layout is the same and no atom moved more than half
 * the skin; rebuild it otherwise. */
int update_list(nep_cuda_model *m, const batch *b, bool layout_unchanged, double cutoff)
{
    bool rebuild = !layout_unchanged;
    if (!rebuild && b->num_atoms > 0) {
        const int code = atoms_moved(m, b, &rebuild);
        if (code != NEP_OK) return code;
    }
    if (!rebuild) return NEP_OK;
    m->list_valid = false;
    int code = upload_types(m, b);
    if (code == NEP_OK) code = build_cell_list(m, b);
    if (code == NEP_OK) code = build_verlet_list(m, b, cutoff);
    if (code != NEP_OK) return code;
    m->builds += 1;
    m->last_atoms = b->num_atoms;
    m->last_structs = b->num_structs;
    m->last_skin = m->skin;
    m->list_valid = true;
    return NEP_OK;
}

/* Evaluate step: work buffers for what outputs[0] asks (every structure asks the same), the
 * kernels and the per-structure totals. */
int evaluate_outputs(nep_cuda_model *m, const batch *b, const nep_outputs &o0)
{
    const nepcu_dims &dm = m->dims;
    const int N = b->num_atoms;
    const size_t Nz = N > 0 ? (size_t)N : 1;
    const bool want_virial = o0.virial || o0.virials;
    const bool want_zbl_parts = o0.forces_zbl || o0.virial_zbl;
    const bool need_forces = o0.forces || want_virial || want_zbl_parts;
    const bool want_zbl_virial = o0.virial_zbl != nullptr;
    const size_t R = m->im->real_size();
    const int MN = m->max_neighbors;
    NEPCU_CHECK(reserve(&m->q, R * dm.dim * Nz), "allocating descriptors");
    NEPCU_CHECK(reserve(&m->ang_slots, sizeof(int) * (size_t)MN * Nz), "allocating pairs");
    NEPCU_CHECK(reserve(&m->ang_types, sizeof(int) * (size_t)MN * Nz), "allocating pairs");
    NEPCU_CHECK(reserve(&m->ang_geom, R * 4 * (size_t)MN * Nz), "allocating pairs");
    NEPCU_CHECK(reserve(&m->sg, R * (dm.n_max_angular + 1) * dm.s_len * Nz), "allocating s");
    NEPCU_CHECK(reserve(&m->fpr, R * (dm.n_max_radial + 1) * Nz), "allocating gradients");
    NEPCU_CHECK(reserve(&m->energy, sizeof(double) * Nz), "allocating energies");
    if (need_forces) NEPCU_CHECK(reserve(&m->v, R * 3 * (size_t)MN * Nz), "allocating pairs");
    if (need_forces && want_zbl_parts)
        NEPCU_CHECK(reserve(&m->vz, R * 3 * (size_t)MN * Nz), "allocating pairs");
    if (o0.energy_zbl || o0.energies_zbl)
        NEPCU_CHECK(reserve(&m->energy_zbl, sizeof(double) * Nz), "allocating energies");
    if (need_forces) NEPCU_CHECK(reserve(&m->forces, sizeof(double) * 3 * Nz), "allocating forces");
    if (o0.forces_zbl)
        NEPCU_CHECK(reserve(&m->forces_zbl, sizeof(double) * 3 * Nz), "allocating forces");
    if (want_virial) NEPCU_CHECK(reserve(&m->virials, sizeof(double) * 9 * Nz), "allocating virials");
    if (want_zbl_virial)
        NEPCU_CHECK(reserve(&m->virials_zbl, sizeof(double) * 9 * Nz), "allocating virials");
    if (o0.descriptors)
        NEPCU_CHECK(reserve(&m->descriptors, sizeof(double) * dm.dim * Nz), "allocating");
    if (o0.latent)
        NEPCU_CHECK(reserve(&m->latent, sizeof(double) * dm.num_neurons * Nz), "allocating");

    nepcu_work w;
    memset(&w, 0, sizeof(w));
    w.num_atoms = N;
    w.num_structs = b->num_structs;
    w.max_neighbors = MN;
    w.pos = (const double *)m->pos.p;
    w.types = (const int *)m->types.p;
    w.struct_of_atom = (const int *)m->struct_of_atom.p;
    w.cells = (const double *)m->cells.p;
    w.temperatures = dm.temperature ? (const double *)m->temperatures.p : nullptr;
    w.nbr = (const int4 *)m->nbr.p;
    w.nbr_count = (const int *)m->nbr_count.p;
    w.rev = (const int *)m->rev.p;
    w.ang_slots = (int *)m->ang_slots.p;
    w.ang_types = (int *)m->ang_types.p;
    w.ang_geom = m->ang_geom.p;
    w.q = m->q.p;
    w.sg = m->sg.p;
    w.fpr = m->fpr.p;
    w.v = need_forces ? m->v.p : nullptr;
    w.vz = need_forces && want_zbl_parts ? m->vz.p : nullptr;
    w.energy = (double *)m->energy.p;
    w.energy_zbl = (o0.energy_zbl || o0.energies_zbl) ? (double *)m->energy_zbl.p : nullptr;
    w.forces = need_forces ? (double *)m->forces.p : nullptr;
    w.forces_zbl = o0.forces_zbl ? (double *)m->forces_zbl.p : nullptr;
    w.virials = want_virial ? (double *)m->virials.p : nullptr;
    w.virials_zbl = want_zbl_virial ? (double *)m->virials_zbl.p : nullptr;
    w.descriptors = o0.descriptors ? (double *)m->descriptors.p : nullptr;
    w.latent = o0.latent ? (double *)m->latent.p : nullptr;
    w.struct_flags = (int *)m->struct_flags.p;
    w.need_forces = need_forces;
    /* the ZBL virial needs the ZBL pair buffer and the ZBL gather */
    NEPCU_CHECK(m->im->evaluate(&dm, &m->dev, &w, m->stream), "running the kernels");
    NEPCU_LAUNCH_BARRIERS(k_totals, b->num_structs, NEPCU_TOTALS_THREADS, m->stream,
                 (const bininfo *)m->binfo.p, w.energy, w.virials, w.energy_zbl, w.virials_zbl,
                 (double *)m->totals.p);
    NEPCU_CHECK(cudaGetLastError(), "summing totals");
    return NEP_OK;
}

/* Download step: only what was asked for, then the per-structure statuses and totals. */
int download_outputs(nep_cuda_model *m, const batch *b, nep_outputs *outputs, int *statuses)
{
    const nepcu_dims &dm = m->dims;
    const int S = b->num_structs;
    double *h_totals = (double *)malloc(sizeof(double) * 20 * S);
    int *h_flags = (int *)malloc(sizeof(int) * S);
    if (!h_totals || !h_flags) {
        free(h_totals);
        free(h_flags);
        return NEP_ERR_NOMEM;
    }
    cudaError_t err = cudaMemcpyAsync(h_totals, m->totals.p, sizeof(double) * 20 * S,
                                      cudaMemcpyDeviceToHost, m->stream);
    if (err == cudaSuccess)
        err = cudaMemcpyAsync(h_flags, m->struct_flags.p, sizeof(int) * S,
                              cudaMemcpyDeviceToHost, m->stream);
    for (int s = 0; err == cudaSuccess && s < S; ++s) {
        const nep_outputs &o = outputs[s];
        const size_t a = (size_t)b->info[s].atom_offset, n = (size_t)b->info[s].num_atoms;
        if (n == 0) continue;
        struct {
            double *dst;
            const void *src;
            size_t per_atom;
        } copies[] = {
            {o.energies, m->energy.p, 1},
            {o.forces, m->forces.p, 3},
            {o.virials, m->virials.p, 9},
            {o.descriptors, m->descriptors.p, (size_t)dm.dim},
            {o.latent, m->latent.p, (size_t)dm.num_neurons},
            {o.energies_zbl, m->energy_zbl.p, 1},
            {o.forces_zbl, m->forces_zbl.p, 3},
        };
        for (auto &c : copies) {
            if (!c.dst || err != cudaSuccess) continue;
            err = cudaMemcpyAsync(c.dst, (const double *)c.src + a * c.per_atom,
                                  sizeof(double) * n * c.per_atom, cudaMemcpyDeviceToHost,
                                  m->stream);
        }
    }
    if (err == cudaSuccess) err = cudaStreamSynchronize(m->stream);
    int result = NEP_OK;
    if (err != cudaSuccess) {
        m->list_valid = false;
        result = status_of(err, "evaluating");
    } else {
        for (int s = 0; s < S; ++s) {
            int code = NEP_OK;
            if (h_flags[s] & NEPCU_FLAG_OVERLAP) code = NEP_ERR_OVERLAP;
            if (h_flags[s] & NEPCU_FLAG_LIST) {
                code = NEP_ERR_CUDA;
                snprintf(last_error, sizeof(last_error), "inconsistent neighbour list");
                m->list_valid = false;
            }
            if (statuses) statuses[s] = code;
            if (code != NEP_OK && result == NEP_OK) result = code;
            const nep_outputs &o = outputs[s];
            const double *t = h_totals + 20 * s;
            if (o.energy) *o.energy = t[0];
            if (o.virial) memcpy(o.virial, t + 1, sizeof(double) * 9);
            if (o.energy_zbl) *o.energy_zbl = t[10];
            if (o.virial_zbl) memcpy(o.virial_zbl, t + 11, sizeof(double) * 9);
        }
    }
    free(h_totals);
    free(h_flags);
    return result;
}

#undef NEPCU_CHECK

} // namespace

extern "C" {

int nep_cuda_compute_batch(nep_cuda_model *m, int num_systems, const nep_system *systems,
                           nep_outputs *outputs, int *statuses)
{
    last_error[0] = '\0';
    if (!m || num_systems < 1 || !systems || !outputs) return NEP_ERR_ARGUMENT;
    /* the latent space is defined for one hidden layer (as in nep_core.c) */
    if (outputs[0].latent && m->dims.num_neurons2 > 0) return NEP_ERR_UNSUPPORTED;
    m->generation += 1; /* the buffers are about to be reused: resident views go stale */
    cudaError_t err = cudaSetDevice(m->device);
    if (err != cudaSuccess) {
        m->list_valid = false;
        return status_of(err, "cudaSetDevice");
    }

    /* check: every structure, before any device work */
    long total_atoms = 0;
    int local_status[1];
    int *st = statuses;
    if (!st) {
        st = num_systems == 1 ? local_status : (int *)malloc(sizeof(int) * num_systems);
        if (!st) return NEP_ERR_NOMEM;
    }
    const int first_bad = check_systems(m, num_systems, systems, st, &total_atoms);
    if (st != statuses && st != local_status) free(st);
    if (total_atoms > (1L << 30)) return NEP_ERR_ARGUMENT;
    if (first_bad != NEP_OK) return first_bad;

    batch b;
    b.num_structs = num_systems;
    b.num_atoms = (int)total_atoms;
    b.systems = systems;
    const double cutoff = m->list_cutoff_base + m->skin;
    int code = plan_bins(&b, cutoff, statuses);
    /* the layout is compared before the new positions are uploaded */
    const bool layout_unchanged = code == NEP_OK && same_layout(m, &b);
    if (code == NEP_OK) code = upload_positions(m, &b);
    if (code == NEP_OK) code = update_list(m, &b, layout_unchanged, cutoff);
    if (code == NEP_OK) code = evaluate_outputs(m, &b, outputs[0]);
    if (code == NEP_OK) code = download_outputs(m, &b, outputs, statuses);
    batch_free(&b);
    return code;
}

} /* extern "C" */

/* ================================================================== device-resident entry
 * For the device MD loop (nep_cuda_md.cu): one structure whose positions are a device array;
 * types and cell are checked by the caller once. Nothing is downloaded and nothing waits but
 * the Verlet check; the outputs stay in the model's device buffers (see nepcu_resident). */
int nepcu_compute_resident(nep_cuda_model *m, const nep_system *system, int want_virial,
                           nepcu_resident *out)
{
    last_error[0] = '\0';
    if (!m || !system || !out) return NEP_ERR_ARGUMENT;
    for (int k = 0; k < 9; ++k)
        if (!(fabs(system->cell[k]) <= 1e10)) return NEP_ERR_NONFINITE;
    if (m->dims.temperature && !isfinite(system->temperature)) return NEP_ERR_NONFINITE;
    m->generation += 1;
    cudaError_t err = cudaSetDevice(m->device);
    if (err != cudaSuccess) return status_of(err, "cudaSetDevice");
    /* A cell-less structure's binning lattice follows the atoms' extent, which make_bininfo
     * reads on the host: the device positions are fetched first (only for such cells; a
     * periodic or boxed structure never needs them on the host). */
    nep_system binned = *system;
    if (cell_is_singular(system->cell) && system->num_atoms > 0) {
        const int code = reserve_host_positions(m, system->num_atoms);
        if (code != NEP_OK) return code;
        err = cudaMemcpyAsync(m->h_pos, system->positions, sizeof(double) * 3 * system->num_atoms,
                              cudaMemcpyDeviceToHost, m->stream);
        if (err == cudaSuccess) err = cudaStreamSynchronize(m->stream);
        if (err != cudaSuccess) return status_of(err, "downloading positions");
        binned.positions = m->h_pos;
    }
    batch b;
    b.num_structs = 1;
    b.num_atoms = system->num_atoms;
    b.systems = &binned;
    const double cutoff = m->list_cutoff_base + m->skin;
    double energy = 0.0, virial[9];
    nep_outputs o;
    memset(&o, 0, sizeof(o));
    o.energy = &energy;
    o.forces = (double *)1; /* only tested for NULL by evaluate_outputs: forces wanted */
    o.virial = want_virial ? virial : nullptr;
    int code = plan_bins(&b, cutoff, nullptr);
    b.systems = system; /* the device positions, for upload_positions */
    const bool layout_unchanged = code == NEP_OK && same_layout(m, &b);
    if (code == NEP_OK) code = upload_positions(m, &b, true);
    if (code == NEP_OK) code = update_list(m, &b, layout_unchanged, cutoff);
    if (code == NEP_OK) code = evaluate_outputs(m, &b, o);
    batch_free(&b);
    if (code != NEP_OK) return code;
    out->num_atoms = system->num_atoms;
    out->max_neighbors = m->max_neighbors;
    out->list_cutoff = m->list_cutoff_base;
    out->pos = (const double *)m->pos.p;
    out->cell = (const double *)m->cells.p;
    out->types = (const int *)m->types.p;
    out->nbr = (const int4 *)m->nbr.p;
    out->nbr_count = (const int *)m->nbr_count.p;
    out->forces = (const double *)m->forces.p;
    out->energies = (const double *)m->energy.p;
    out->totals = (const double *)m->totals.p;
    out->flags = (const int *)m->struct_flags.p;
    out->stream = m->stream;
    out->generation = m->generation;
    return NEP_OK;
}

bool nepcu_resident_current(const nep_cuda_model *m, const nepcu_resident *out)
{
    return m && out && out->generation == m->generation;
}

int nepcu_model_enter(nep_cuda_model *m, cudaStream_t *stream)
{
    last_error[0] = '\0';
    if (!m) return NEP_ERR_ARGUMENT;
    const cudaError_t err = cudaSetDevice(m->device);
    if (err != cudaSuccess) return status_of(err, "cudaSetDevice");
    if (stream) *stream = m->stream;
    return NEP_OK;
}

int nepcu_resident_error(int code, const char *text)
{
    if (text) snprintf(last_error, sizeof(last_error), "%s", text);
    return code;
}
