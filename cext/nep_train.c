/*
 * Exact parameter gradients of a linear functional of NEP(-ZBL) predictions; see
 * nep_train.h for the interface and the method. The per-atom maths (two passes over the
 * neighbours around the network and its adjoints) is nep_train_atom.h, shared with the CUDA
 * training kernels; this file holds the CPU scheduling around it. Neighbours come from
 * nep_neighbors.h (the engine's cell list), one list per structure.
 */
#include "nep_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nep_internal.h"
#include "nep_neighbors.h"
#include "nep_train_atom.h"

#if NEP_TRAIN_MAX_BASIS < NEP_MAX_BASIS
#error "nep_train_atom.h: NEP_TRAIN_MAX_BASIS is below the engine's NEP_MAX_BASIS"
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    const nep_model_spec *spec;
    nep_layout layout;          /* sizes and offsets (header fields are read from spec) */
    nep_train_atom_model atom;  /* the header as the per-atom maths reads it */
    double rc_max;
    double rc_list[NEP_MAX_TYPES * NEP_MAX_TYPES]; /* max(radial, angular) pair cutoff */
} train_model;

typedef struct {
    /* per-atom work arrays (NEP_TRAIN_WORK_* order, nep_train_atom.h), in one padded slab per
     * thread (see workspace_carve) */
    double *work[NEP_TRAIN_NUM_WORK];
} train_workspace;

size_t nep_train_num_parameters(const nep_model_spec *spec)
{
    return nep_model_spec_num_parameters(spec);
}

/* The engine's checks (nep_model_spec_check) and sizes (nep_spec_layout), so that a spec the
 * engine accepts is one the gradient accepts, with the same error otherwise. */
static int model_init(const nep_model_spec *spec, train_model *m)
{
    const int status = nep_model_spec_check(spec);
    if (status != NEP_OK) return status;
    memset(m, 0, sizeof(*m));
    nep_spec_layout(spec, &m->layout);
    m->spec = spec;
    nep_train_atom_model_fill(spec, &m->atom);
    double rc_max = 0.0;
    for (int k = 0; k < spec->num_types * spec->num_types; ++k) {
        m->rc_list[k] = fmax(spec->rc_radial[k], spec->rc_angular[k]);
        if (m->rc_list[k] > rc_max) rc_max = m->rc_list[k];
    }
    m->rc_max = rc_max;
    return NEP_OK;
}

/* Doubles of padding around every per-thread and per-block array: two cache lines, so that
 * no two threads ever write into the same line (false sharing). */
#define NEP_TRAIN_PAD 16

static size_t padded(size_t count)
{
    return (count + 7) / 8 * 8 + NEP_TRAIN_PAD;
}

/* Doubles of one thread's work arrays (see workspace_carve). */
static size_t workspace_doubles(const train_model *m)
{
    size_t total = NEP_TRAIN_PAD;
    for (int k = 0; k < NEP_TRAIN_NUM_WORK; ++k) total += padded(nep_train_work_length(&m->atom, k));
    return total;
}

/* Points the work arrays of `ws` into `slab` (workspace_doubles(m) doubles). */
static void workspace_carve(const train_model *m, double *slab, train_workspace *ws)
{
    double *next = slab + NEP_TRAIN_PAD;
    for (int k = 0; k < NEP_TRAIN_NUM_WORK; ++k) {
        ws->work[k] = next;
        next += padded(nep_train_work_length(&m->atom, k));
    }
}

/* Atoms atom_begin .. atom_end - 1 of one structure whose neighbour list is `list`
 * (nep_train_atom, nep_train_atom.h): the gradient contributions are added to `grad` (NULL:
 * none), each atom's energy (its network energy and half of its ZBL pair energies) goes to
 * atom_energy[i] and each pair's v = dU_i/dr_ij to pair_v[3 p] (the caller turns them into
 * forces and virials; pair_v NULL: a gradient alone, no forces' terms formed). */
static void compute_structure(const train_model *m, const nep_system *sys,
                              const nep_neighbor_list *list, int atom_begin, int atom_end,
                              double alpha, const double *fadj, const double *vadj,
                              train_workspace *ws, double *grad, double *atom_energy,
                              double *pair_v)
{
    const nep_model_spec *spec = m->spec;
    for (int i = atom_begin; i < atom_end; ++i)
        atom_energy[i] = nep_train_atom(&m->atom, spec->parameters, spec->q_scaler, spec->zbl,
                                        sys->types[i], list->offset[i],
                                        list->offset[i] + (size_t)list->num_angular[i],
                                        list->offset[i + 1],
                                        list->neighbor, list->r, sys->types, sys->temperature,
                                        fadj ? fadj + 3 * i : NULL, fadj, vadj, alpha, ws->work,
                                        1, grad, 1, pair_v, NULL);
}

/* The work of one call is split in waves of consecutive structures of about
 * NEP_TRAIN_WAVE_ATOMS atoms (the neighbour lists and per-pair values of one wave are held at
 * a time, which bounds the memory of a full-batch call on a large set). Within a wave:
 *   1. neighbour lists, one structure per thread at a time (dynamic schedule);
 *   2. the atoms of the wave, concatenated, in up to NEP_TRAIN_MAX_BLOCKS contiguous blocks
 *      (a block may span structures), dynamically scheduled: each block adds its parameter
 *      gradient into its own buffer and writes per-atom energies and per-pair dU_i/dr_ij,
 *      so no two threads write the same memory and a slow thread holds up no other;
 *   3. per structure: forces, virial and energy from the per-pair and per-atom values, in
 *      the order of the serial code (bitwise the same forces and virials as one thread).
 * At the end the block buffers are summed in block order (in parallel over parameters). The
 * blocks depend only on the atom counts, never on the thread count, so the gradient is
 * bitwise the same for any number of threads and any schedule. */
#define NEP_TRAIN_WAVE_ATOMS 8192
#define NEP_TRAIN_MAX_BLOCKS 64
#define NEP_TRAIN_MIN_BLOCK_ATOMS 8
/* At most this many doubles of block gradient buffers (fewer blocks for huge models). */
#define NEP_TRAIN_MAX_BUFFER_DOUBLES ((size_t)1 << 23)

/* Checks structure `sys` and builds its neighbour list: NEP_OK or the structure's error. */
static int structure_list(const train_model *m, const nep_system *sys, nep_neighbor_list *list)
{
    const nep_model_spec *spec = m->spec;
    const int N = sys->num_atoms;
    memset(list, 0, sizeof(*list));
    if (N < 0 || (N > 0 && (!sys->types || !sys->positions))) return NEP_ERR_ARGUMENT;
    for (int i = 0; i < N; ++i) {
        if (sys->types[i] < 0 || sys->types[i] >= spec->num_types) return NEP_ERR_TYPE;
        for (int c = 0; c < 3; ++c)
            if (!isfinite(sys->positions[3 * i + c])) return NEP_ERR_NONFINITE;
    }
    const int status = nep_neighbor_build(sys, spec->num_types, m->rc_list, spec->rc_angular,
                                          m->rc_max, 1, list);
    if (status) memset(list, 0, sizeof(*list));
    return status;
}

/* Forces, virial and energy of one structure from its per-pair v = dU_i/dr_ij and per-atom
 * energies, summed in the serial code's order. */
static void structure_totals(const nep_neighbor_list *list, const double *pair_v,
                             const double *atom_energy, double *energy, double *forces,
                             double *virial)
{
    const int N = list->num_atoms;
    if (energy) {
        double e = 0.0;
        for (int i = 0; i < N; ++i) e += atom_energy[i];
        *energy = e;
    }
    if (forces) memset(forces, 0, sizeof(double) * 3 * (size_t)N);
    double w[9] = {0};
    for (int i = 0; i < N; ++i) {
        for (size_t p = list->offset[i]; p < list->offset[i + 1]; ++p) {
            const double *v = pair_v + 3 * p, *r = list->r + 3 * p;
            if (forces) {
                const int j = list->neighbor[p];
                for (int c = 0; c < 3; ++c) {
                    forces[3 * i + c] += v[c];
                    forces[3 * j + c] -= v[c];
                }
            }
            for (int a = 0; a < 3; ++a)
                for (int b = 0; b < 3; ++b) w[3 * a + b] -= r[a] * v[b];
        }
    }
    if (virial) memcpy(virial, w, sizeof(w));
}

/* Work arrays kept in a cache between calls, grown as needed. */
enum {
    SLOT_OFFSETS,
    SLOT_WAVE_FIRST,
    SLOT_STATUS,
    SLOT_LOCAL_LISTS,
    SLOT_LIST_PTR,
    SLOT_BUILDER,
    SLOT_PAIR_BASE,
    SLOT_ATOM_ENERGY,
    SLOT_BLOCK_GRADIENT,
    SLOT_PAIR_V,
    SLOT_WS_SLAB,
    SLOT_WS,
    NUM_SLOTS
};

struct nep_train_cache {
    int busy;
    /* kept neighbour lists by structure id, valid for the key below */
    int num_ids;
    nep_neighbor_list *kept;
    unsigned char *is_kept;
    int key_types;
    double key_rc_list[NEP_MAX_TYPES * NEP_MAX_TYPES];
    double key_rc_angular[NEP_MAX_TYPES * NEP_MAX_TYPES];
    void *slot[NUM_SLOTS];
    size_t slot_bytes[NUM_SLOTS];
};

nep_train_cache *nep_train_cache_create(void)
{
    return calloc(1, sizeof(nep_train_cache));
}

static void cache_drop_lists(nep_train_cache *c)
{
    for (int k = 0; k < c->num_ids; ++k)
        if (c->is_kept[k]) nep_neighbor_free(&c->kept[k]);
    free(c->kept);
    free(c->is_kept);
    c->kept = NULL;
    c->is_kept = NULL;
    c->num_ids = 0;
}

void nep_train_cache_free(nep_train_cache *cache)
{
    if (!cache) return;
    cache_drop_lists(cache);
    for (int k = 0; k < NUM_SLOTS; ++k) free(cache->slot[k]);
    free(cache);
}

/* At least `bytes` of slot `k` (contents undefined), or NULL. */
static void *cache_slot(nep_train_cache *c, int k, size_t bytes)
{
    if (bytes == 0) bytes = sizeof(double);
    if (c->slot_bytes[k] < bytes) {
        free(c->slot[k]);
        c->slot[k] = malloc(bytes);
        c->slot_bytes[k] = c->slot[k] ? bytes : 0;
    }
    return c->slot[k];
}

/* Makes room for ids 0 .. max_id and drops the kept lists if the cutoffs changed. */
static int cache_prepare_lists(nep_train_cache *c, const train_model *m, int max_id)
{
    const int T = m->spec->num_types;
    const size_t TT = (size_t)T * T;
    if (c->key_types != T || memcmp(c->key_rc_list, m->rc_list, TT * sizeof(double)) ||
        memcmp(c->key_rc_angular, m->spec->rc_angular, TT * sizeof(double))) {
        cache_drop_lists(c);
        c->key_types = T;
        memcpy(c->key_rc_list, m->rc_list, TT * sizeof(double));
        memcpy(c->key_rc_angular, m->spec->rc_angular, TT * sizeof(double));
    }
    if (max_id < c->num_ids) return NEP_OK;
    const int want = max_id + 1 + max_id / 2;
    nep_neighbor_list *kept = realloc(c->kept, sizeof(nep_neighbor_list) * (size_t)want);
    if (!kept) return NEP_ERR_NOMEM;
    c->kept = kept;
    unsigned char *is_kept = realloc(c->is_kept, (size_t)want);
    if (!is_kept) return NEP_ERR_NOMEM;
    c->is_kept = is_kept;
    memset(c->is_kept + c->num_ids, 0, (size_t)(want - c->num_ids));
    c->num_ids = want;
    return NEP_OK;
}

static int train_run(nep_train_cache *cache, const int *ids, const nep_model_spec *spec,
                     int num_systems, const nep_system *systems, const double *alpha,
                     const double *force_adjoint, const double *virial_adjoint,
                     double *gradient, double *energy, double *forces, double *virials,
                     int *statuses, int num_threads)
{
    train_model model;
    int status = model_init(spec, &model);
    if (status) return status;
    /* a temperature model reads each structure's temperature on every call (a cache keeps
     * only the neighbour lists), so it is checked here, not with the lists */
    for (int s = 0; spec->temperature && s < num_systems; ++s) {
        if (isfinite(systems[s].temperature)) continue;
        for (int k = 0; statuses && k < num_systems; ++k)
            statuses[k] = k == s ? NEP_ERR_NONFINITE : NEP_OK;
        return NEP_ERR_NONFINITE;
    }
    const size_t P = model.layout.num_parameters, stride = padded(P);
    /* a gradient alone (no energy, forces or virials asked): the per-atom pass forms none of
     * the forces' terms (nep_train_atom with pair_v NULL), for a caller that predicted first */
    const int predictions = energy || forces || virials || !gradient;
    int num_blocks = NEP_TRAIN_MAX_BLOCKS;
    while (gradient && num_blocks > 1 && (size_t)num_blocks * stride > NEP_TRAIN_MAX_BUFFER_DOUBLES)
        num_blocks /= 2;
    const size_t S1 = (size_t)num_systems + 1;

    /* atom offsets, waves, and the largest wave's sizes */
    size_t *offsets = cache_slot(cache, SLOT_OFFSETS, sizeof(size_t) * S1);
    int *wave_first = cache_slot(cache, SLOT_WAVE_FIRST, sizeof(int) * S1);
    int *local_status = cache_slot(cache, SLOT_STATUS, sizeof(int) * S1);
    if (!offsets || !wave_first || !local_status) return NEP_ERR_NOMEM;
    offsets[0] = 0;
    int num_waves = 0, max_wave_systems = 1, max_id = -1;
    size_t max_wave_atoms = 1;
    for (int s = 0; s < num_systems; ++s) {
        if (systems[s].num_atoms < 0 || (ids && ids[s] < 0)) return NEP_ERR_ARGUMENT;
        if (ids && ids[s] > max_id) max_id = ids[s];
        local_status[s] = NEP_OK;
        offsets[s + 1] = offsets[s] + (size_t)systems[s].num_atoms;
        if (num_waves == 0 || offsets[s] - offsets[wave_first[num_waves - 1]] >= NEP_TRAIN_WAVE_ATOMS)
            wave_first[num_waves++] = s;
    }
    wave_first[num_waves] = num_systems;
    for (int w = 0; w < num_waves; ++w) {
        const int ns = wave_first[w + 1] - wave_first[w];
        const size_t na = offsets[wave_first[w + 1]] - offsets[wave_first[w]];
        if (ns > max_wave_systems) max_wave_systems = ns;
        if (na > max_wave_atoms) max_wave_atoms = na;
    }
    if (ids && (status = cache_prepare_lists(cache, &model, max_id))) return status;
    int work_items = (int)((max_wave_atoms + NEP_TRAIN_MIN_BLOCK_ATOMS - 1) / NEP_TRAIN_MIN_BLOCK_ATOMS);
    if (work_items > num_blocks) work_items = num_blocks;
    if (work_items < max_wave_systems) work_items = max_wave_systems;
    const int threads = nep_resolve_threads(num_threads, work_items);

    const size_t ws_doubles = workspace_doubles(&model);
    const size_t MW = (size_t)max_wave_systems;
    nep_neighbor_list *lists = cache_slot(cache, SLOT_LOCAL_LISTS, sizeof(nep_neighbor_list) * MW);
    nep_neighbor_list **list_of = cache_slot(cache, SLOT_LIST_PTR, sizeof(nep_neighbor_list *) * MW);
    int *builder = cache_slot(cache, SLOT_BUILDER, sizeof(int) * MW);
    size_t *pair_base = cache_slot(cache, SLOT_PAIR_BASE, sizeof(size_t) * (MW + 1));
    double *atom_energy = cache_slot(cache, SLOT_ATOM_ENERGY, sizeof(double) * max_wave_atoms);
    double *block_gradient =
        gradient ? cache_slot(cache, SLOT_BLOCK_GRADIENT, sizeof(double) * (size_t)num_blocks * stride) : NULL;
    double *ws_slab = cache_slot(cache, SLOT_WS_SLAB, sizeof(double) * ws_doubles * (size_t)threads);
    train_workspace *ws = cache_slot(cache, SLOT_WS, sizeof(train_workspace) * (size_t)threads);
    if (!lists || !list_of || !builder || !pair_base || !atom_energy || (gradient && !block_gradient) ||
        !ws_slab || !ws)
        return NEP_ERR_NOMEM;
    for (int t = 0; t < threads; ++t) workspace_carve(&model, ws_slab + (size_t)t * ws_doubles, &ws[t]);
    if (block_gradient) {
        const int nbz = num_blocks;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && (size_t)nbz * stride >= ((size_t)1 << 18))
#endif
        for (int b = 0; b < nbz; ++b) memset(block_gradient + (size_t)b * stride, 0, sizeof(double) * stride);
    }

    for (int w = 0; w < num_waves && status != NEP_ERR_NOMEM; ++w) {
        const int s0 = wave_first[w], ns = wave_first[w + 1] - s0;
        const size_t a0 = offsets[s0], na = offsets[s0 + ns] - a0;
        int nb = (int)((na + NEP_TRAIN_MIN_BLOCK_ATOMS - 1) / NEP_TRAIN_MIN_BLOCK_ATOMS);
        if (nb > num_blocks) nb = num_blocks;
        if (nb < 1) nb = 1;
        /* which list each structure uses, and who builds it: builder[k] = k (this structure),
         * -1 (kept from an earlier call) or the first structure of this wave with the same id */
        for (int k = 0; k < ns; ++k) {
            builder[k] = k;
            list_of[k] = &lists[k];
            memset(&lists[k], 0, sizeof(lists[k]));
            if (!ids) continue;
            const int id = ids[s0 + k];
            list_of[k] = &cache->kept[id];
            if (cache->is_kept[id]) {
                builder[k] = -1;
            } else {
                for (int k2 = 0; k2 < k; ++k2)
                    if (ids[s0 + k2] == id) {
                        builder[k] = k2;
                        break;
                    }
            }
        }
        int wave_ok = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
        {
            const int t = nep_thread_id();
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (int k = 0; k < ns; ++k)
                if (builder[k] == k) local_status[s0 + k] = structure_list(&model, &systems[s0 + k], list_of[k]);
#ifdef _OPENMP
#pragma omp single
#endif
            {
                /* a failed structure stops the computation (its statuses are still filled) */
                pair_base[0] = 0;
                for (int k = 0; k < ns; ++k) {
                    if (builder[k] >= 0 && builder[k] != k) local_status[s0 + k] = local_status[s0 + builder[k]];
                    if (ids && builder[k] == k && local_status[s0 + k] == NEP_OK) cache->is_kept[ids[s0 + k]] = 1;
                    if (local_status[s0 + k] || status) wave_ok = 0;
                    pair_base[k + 1] = pair_base[k] + list_of[k]->num_pairs;
                }
                double *pair_v = wave_ok && predictions ? cache_slot(cache, SLOT_PAIR_V, sizeof(double) * 3 * pair_base[ns]) : NULL;
                if (wave_ok && predictions && !pair_v) {
                    wave_ok = 0;
                    status = NEP_ERR_NOMEM;
                }
            }
            double *pair_v = predictions ? cache->slot[SLOT_PAIR_V] : NULL;
            if (wave_ok) {
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (int b = 0; b < nb; ++b) {
                    const size_t begin = na * (size_t)b / (size_t)nb, end = na * (size_t)(b + 1) / (size_t)nb;
                    double *grad = block_gradient ? block_gradient + (size_t)b * stride + NEP_TRAIN_PAD / 2 : NULL;
                    /* the structures this block overlaps, each for its atoms in the block */
                    for (int k = 0; k < ns && begin < end; ++k) {
                        const size_t first = offsets[s0 + k] - a0, last = offsets[s0 + k + 1] - a0;
                        if (last <= begin || first >= end) continue;
                        const int i0 = (int)((begin > first ? begin : first) - first);
                        const int i1 = (int)((end < last ? end : last) - first);
                        const size_t off = offsets[s0 + k];
                        compute_structure(&model, &systems[s0 + k], list_of[k], i0, i1,
                                          alpha ? alpha[s0 + k] : 0.0,
                                          force_adjoint ? force_adjoint + 3 * off : NULL,
                                          virial_adjoint ? virial_adjoint + 9 * (size_t)(s0 + k) : NULL,
                                          &ws[t], grad, atom_energy + (off - a0),
                                          pair_v ? pair_v + 3 * pair_base[k] : NULL);
                    }
                }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (int k = 0; k < (predictions ? ns : 0); ++k) {
                    const size_t off = offsets[s0 + k];
                    structure_totals(list_of[k], pair_v + 3 * pair_base[k], atom_energy + (off - a0),
                                     energy ? energy + s0 + k : NULL, forces ? forces + 3 * off : NULL,
                                     virials ? virials + 9 * (size_t)(s0 + k) : NULL);
                }
            }
        }
        if (!ids)
            for (int k = 0; k < ns; ++k) nep_neighbor_free(&lists[k]);
        if (!wave_ok && status == NEP_OK) status = -1; /* a structure failed: see below */
    }
    if (status == NEP_ERR_NOMEM) return status;
    if (gradient) {
        const long long num_parameters = (long long)P;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && (size_t)num_blocks * stride >= ((size_t)1 << 18))
#endif
        for (long long k = 0; k < num_parameters; ++k) {
            double sum = 0.0;
            for (int b = 0; b < num_blocks; ++b)
                sum += block_gradient[(size_t)b * stride + NEP_TRAIN_PAD / 2 + (size_t)k];
            gradient[k] = sum;
        }
    }
    status = NEP_OK;
    for (int s = 0; s < num_systems; ++s) {
        if (statuses) statuses[s] = local_status[s];
        if (!status && local_status[s]) status = local_status[s];
    }
    return status;
}

int nep_train_gradient_cached(nep_train_cache *cache, const int *structure_ids,
                              const nep_model_spec *spec, int num_systems,
                              const nep_system *systems, const double *alpha,
                              const double *force_adjoint, const double *virial_adjoint,
                              double *gradient, double *energy, double *forces,
                              double *virials, int *statuses, int num_threads)
{
    if (!spec || num_systems < 0 || (num_systems > 0 && !systems)) return NEP_ERR_ARGUMENT;
    nep_train_cache *own = NULL;
    int held = 0;
#if defined(__GNUC__) || defined(__clang__)
    if (cache && __sync_lock_test_and_set(&cache->busy, 1) == 0) held = 1;
#endif
    if (!held) {
        /* no cache, or one in use by another call: a private one for this call */
        own = nep_train_cache_create();
        if (!own) return NEP_ERR_NOMEM;
        cache = own;
        structure_ids = NULL;
    }
    const int status = train_run(cache, structure_ids, spec, num_systems, systems, alpha,
                                 force_adjoint, virial_adjoint, gradient, energy, forces,
                                 virials, statuses, num_threads);
    if (own) nep_train_cache_free(own);
#if defined(__GNUC__) || defined(__clang__)
    if (held) __sync_lock_release(&cache->busy);
#endif
    return status;
}

int nep_train_gradient(const nep_model_spec *spec, int num_systems, const nep_system *systems,
                       const double *alpha, const double *force_adjoint,
                       const double *virial_adjoint, double *gradient, double *energy,
                       double *forces, double *virials, int *statuses, int num_threads)
{
    return nep_train_gradient_cached(NULL, NULL, spec, num_systems, systems, alpha, force_adjoint,
                                     virial_adjoint, gradient, energy, forces, virials, statuses,
                                     num_threads);
}

int nep_train_loss(const nep_loss_set *L, const double *energy, const double *virials,
                   const double *forces, const double *z, double *work, double *record,
                   double *alpha, double *force_adjoint, double *virial_adjoint,
                   double *regularisation_gradient)
{
    if (!L || !record || (L->num_selected > 0 && (!L->selected || !energy || !virials || !forces ||
                                                  !work)) ||
        (L->num_parameters > 0 && !z))
        return NEP_ERR_ARGUMENT;
    const int S = L->num_selected, T = L->T;
    long long first = 0;
    for (int j = 0; j < S; ++j) {
        nep_loss_selected(L, j, first, energy, virials, forces, work);
        const int s = L->selected[j];
        first += L->structure_offset[s + 1] - L->structure_offset[s];
    }
    for (int t = 0; t <= T; ++t) nep_loss_type(L, work, z, t, record);
    const double *scalars = record + NEP_LOSS_SCALAR(T, 0);
    if (alpha || virial_adjoint) {
        for (int j = 0; j < S; ++j) {
            const int s = L->selected[j];
            const double *q = work + (size_t)j * NEP_LOSS_STRUCTURE_LENGTH;
            const double n = (double)(L->structure_offset[s + 1] - L->structure_offset[s]);
            if (alpha)
                alpha[j] = nep_loss_energy_adjoint(q[NEP_LOSS_S_DELTA], L->energy_weight[s],
                                                   L->weight[s], n, S, scalars, L->lambda_e);
            if (virial_adjoint)
                nep_loss_virial_adjoint(q + NEP_LOSS_S_WBAR, L->has_virial[s], L->weight[s], n,
                                        scalars, L->lambda_v, L->lambda_shear,
                                        virial_adjoint + 9 * (size_t)j);
        }
    }
    if (force_adjoint) {
        const double k = nep_loss_force_adjoint_factor(scalars, L->lambda_f);
        size_t t = 0;
        for (int j = 0; j < S; ++j) {
            const int s = L->selected[j];
            for (long long i = L->structure_offset[s]; i < L->structure_offset[s + 1]; ++i, ++t)
                for (int c = 0; c < 3; ++c)
                    force_adjoint[3 * t + c] =
                        k * L->force_weight[i] * (forces[3 * t + c] - L->ref_forces[3 * i + c]);
        }
    }
    if (regularisation_gradient) {
        const double norm = scalars[NEP_LOSS_NORM];
        for (size_t p = 0; p < L->num_parameters; ++p)
            regularisation_gradient[p] = nep_loss_regularisation_gradient(
                z[p], L->global_mask[p], norm, (double)L->num_parameters, L->lambda_1,
                L->lambda_2);
    }
    return NEP_OK;
}
