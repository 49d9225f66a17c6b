/*
 * nepzbl: cell-list neighbour search (see nep_neighbors.h).
 *
 * Method. Positions are expressed in fractional coordinates of an "effective" basis: the
 * periodic cell rows, completed by orthonormal vectors for the open directions (an open
 * direction's cell row is irrelevant and may be zero). Periodic coordinates are wrapped into
 * [0, 1). Along each direction the bins are at least rc wide measured perpendicular to the
 * lattice planes, so every neighbour lies within m bins, m = 1 except for a periodic direction
 * thinner than rc (then m = ceil(rc / thickness) and the bin is the whole cell). Stepping over
 * bin offsets -m..m with periodic wrap-around visits every image exactly once, which covers
 * small cells (several images of the same atom, self-images) with the same code.
 */
#include "nep_neighbors.h"
#include "nep_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Bins are at least rc / NEP_BINS_PER_CUTOFF wide, so that NEP_BINS_PER_CUTOFF shells of bins
 * cover the cutoff sphere with less wasted volume than one shell of rc-wide bins. */
#define NEP_BINS_PER_CUTOFF 2
/* A periodic direction needing more than this many image shells is refused (NEP_ERR_CELL). */
#define NEP_MAX_IMAGE_SHELLS 200
/* Largest accepted |coordinate| or cell component, Angstrom (1 m): far beyond any structure,
 * far below where differences and squares overflow. */
#define NEP_MAX_COORDINATE 1e10

typedef struct {
    int *neighbor;
    double *r;
    size_t size, capacity;
} pair_buffer;

static int buffer_reserve(pair_buffer *b, size_t need)
{
    if (need <= b->capacity) return NEP_OK;
    size_t cap = b->capacity ? b->capacity : 1024;
    while (cap < need) cap *= 2;
    int *nb = (int *)realloc(b->neighbor, cap * sizeof(int));
    if (!nb) return NEP_ERR_NOMEM;
    b->neighbor = nb;
    double *rr = (double *)realloc(b->r, cap * 3 * sizeof(double));
    if (!rr) return NEP_ERR_NOMEM;
    b->r = rr;
    b->capacity = cap;
    return NEP_OK;
}

static void buffer_free(pair_buffer *b)
{
    free(b->neighbor);
    free(b->r);
    b->neighbor = NULL;
    b->r = NULL;
    b->size = b->capacity = 0;
}

static double dot3(const double *a, const double *b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

static void cross3(const double *a, const double *b, double *c)
{
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
}

static int normalize3(double *a)
{
    double n = sqrt(dot3(a, a));
    if (!(n > 0.0)) return 0;
    a[0] /= n;
    a[1] /= n;
    a[2] /= n;
    return 1;
}

/* Rows of the effective basis H: periodic rows from the cell, open rows orthonormal to them. */
static int effective_basis(const double *cell, const int *pbc, double H[3][3])
{
    int periodic[3], np = 0;
    for (int k = 0; k < 3; ++k) {
        periodic[k] = pbc[k] != 0;
        np += periodic[k];
        for (int c = 0; c < 3; ++c) H[k][c] = cell[3 * k + c];
    }
    if (np == 0) {
        for (int k = 0; k < 3; ++k)
            for (int c = 0; c < 3; ++c) H[k][c] = (k == c) ? 1.0 : 0.0;
    } else if (np == 1) {
        int a = periodic[0] ? 0 : (periodic[1] ? 1 : 2);
        int o1 = (a + 1) % 3, o2 = (a + 2) % 3;
        double e[3] = {H[a][0], H[a][1], H[a][2]};
        if (!normalize3(e)) return NEP_ERR_CELL;
        /* helper axis: the Cartesian axis least aligned with the periodic row */
        int ax = 0;
        for (int c = 1; c < 3; ++c)
            if (fabs(e[c]) < fabs(e[ax])) ax = c;
        double u[3] = {0.0, 0.0, 0.0};
        u[ax] = 1.0;
        double p = dot3(u, e);
        for (int c = 0; c < 3; ++c) u[c] -= p * e[c];
        if (!normalize3(u)) return NEP_ERR_CELL;
        double w[3];
        cross3(e, u, w);
        for (int c = 0; c < 3; ++c) {
            H[o1][c] = u[c];
            H[o2][c] = w[c];
        }
    } else if (np == 2) {
        int o = !periodic[0] ? 0 : (!periodic[1] ? 1 : 2);
        int a = (o + 1) % 3, b = (o + 2) % 3;
        double n[3];
        cross3(H[a], H[b], n);
        double scale = sqrt(dot3(H[a], H[a]) * dot3(H[b], H[b]));
        if (!(sqrt(dot3(n, n)) > 1e-12 * scale)) return NEP_ERR_CELL;
        normalize3(n);
        for (int c = 0; c < 3; ++c) H[o][c] = n[c];
    }
    double x[3];
    cross3(H[1], H[2], x);
    double det = dot3(H[0], x);
    double scale = sqrt(dot3(H[0], H[0]) * dot3(H[1], H[1]) * dot3(H[2], H[2]));
    if (!(fabs(det) > 1e-12 * scale) || !(scale > 0.0)) return NEP_ERR_CELL;
    return NEP_OK;
}

/* Inverse of the row-basis H: f = x Hinv (row vectors). */
static void invert3(const double H[3][3], double Hinv[3][3])
{
    double c0[3], c1[3], c2[3];
    cross3(H[1], H[2], c0);
    cross3(H[2], H[0], c1);
    cross3(H[0], H[1], c2);
    double det = dot3(H[0], c0);
    for (int r = 0; r < 3; ++r) {
        Hinv[r][0] = c0[r] / det;
        Hinv[r][1] = c1[r] / det;
        Hinv[r][2] = c2[r] / det;
    }
}

static int floor_div(int a, int n)
{
    int q = a / n;
    if ((a % n != 0) && ((a < 0) != (n < 0))) --q;
    return q;
}

int nep_neighbor_build(const nep_system *system, int num_types, const double *rc_list,
                       const double *rc_angular, double rc_max, int num_threads,
                       nep_neighbor_list *out)
{
    memset(out, 0, sizeof(*out));
    const int N = system->num_atoms;
    out->num_atoms = N;
    if (N < 0) return NEP_ERR_ARGUMENT;
    /* Finite is not enough: beyond NEP_MAX_COORDINATE a span of positions or a cell product can
     * overflow to inf, and inf / inf gives NaN bin indices. */
    for (int k = 0; k < 9; ++k)
        if (!(fabs(system->cell[k]) <= NEP_MAX_COORDINATE)) return NEP_ERR_NONFINITE;
    for (long k = 0; k < 3L * N; ++k)
        if (!(fabs(system->positions[k]) <= NEP_MAX_COORDINATE)) return NEP_ERR_NONFINITE;
    if (!(rc_max > 0.0) || !isfinite(rc_max)) return NEP_ERR_ARGUMENT;

    out->offset = (size_t *)calloc((size_t)N + 1, sizeof(size_t));
    out->angular_offset = (size_t *)calloc((size_t)N + 1, sizeof(size_t));
    out->num_angular = (int *)calloc((size_t)N + 1, sizeof(int));
    if (!out->offset || !out->angular_offset || !out->num_angular) {
        nep_neighbor_free(out);
        return NEP_ERR_NOMEM;
    }
    if (N == 0) return NEP_OK;

    double H[3][3], Hinv[3][3];
    int periodic[3];
    for (int k = 0; k < 3; ++k) periodic[k] = system->pbc[k] != 0;
    int status = effective_basis(system->cell, system->pbc, H);
    if (status != NEP_OK) {
        nep_neighbor_free(out);
        return status;
    }
    invert3(H, Hinv);

    /* Scratch arrays, all freed at `cleanup`; on an error `out` is freed there too. */
    double *xw = NULL, *fr = NULL, *xb = NULL;
    int *bin_of = NULL, *bin_start = NULL, *bin_atoms = NULL, *tb = NULL, *chunk_start = NULL;
    int (*bcoord)[3] = NULL;
    pair_buffer *buffers = NULL;
    int shared_status = NEP_OK;

    /* wrapped positions and fractional coordinates */
    xw = (double *)malloc((size_t)N * 3 * sizeof(double));
    fr = (double *)malloc((size_t)N * 3 * sizeof(double));
    bin_of = (int *)malloc((size_t)N * sizeof(int));
    if (!xw || !fr || !bin_of) {
        shared_status = NEP_ERR_NOMEM;
        goto cleanup;
    }
    double fmin[3] = {0, 0, 0}, fmax[3] = {0, 0, 0};
    for (int i = 0; i < N; ++i) {
        const double *x = system->positions + 3 * i;
        double f[3];
        for (int k = 0; k < 3; ++k) f[k] = x[0] * Hinv[0][k] + x[1] * Hinv[1][k] + x[2] * Hinv[2][k];
        double xi[3] = {x[0], x[1], x[2]};
        for (int k = 0; k < 3; ++k) {
            if (periodic[k]) {
                double n = floor(f[k]);
                if (n != 0.0) {
                    for (int c = 0; c < 3; ++c) xi[c] -= n * H[k][c];
                    f[k] -= n;
                }
            }
        }
        for (int k = 0; k < 3; ++k) {
            xw[3 * i + k] = xi[k];
            fr[3 * i + k] = f[k];
            if (i == 0 || f[k] < fmin[k]) fmin[k] = f[k];
            if (i == 0 || f[k] > fmax[k]) fmax[k] = f[k];
        }
    }

    /* bins */
    int nbin[3], shells[3];
    double width[3], origin[3];
    /* expected neighbours per atom (to size the pair buffers once): density times the volume
     * of the cutoff sphere; open directions count their extent, at least rc */
    double volume = 1.0;
    {
        double x[3];
        cross3(H[1], H[2], x);
        volume = fabs(dot3(H[0], x));
    }
    for (int k = 0; k < 3; ++k) {
        double colnorm = sqrt(Hinv[0][k] * Hinv[0][k] + Hinv[1][k] * Hinv[1][k] + Hinv[2][k] * Hinv[2][k]);
        double thickness = 1.0 / colnorm; /* Angstrom per unit of fractional coordinate */
        if (periodic[k]) {
            double nb = floor(NEP_BINS_PER_CUTOFF * thickness / rc_max);
            nbin[k] = nb < 1.0 ? 1 : (nb > 1e6 ? 1000000 : (int)nb);
            shells[k] = NEP_BINS_PER_CUTOFF;
            if (nbin[k] < NEP_BINS_PER_CUTOFF) {
                double m = ceil(rc_max * nbin[k] / thickness);
                if (!(m <= NEP_MAX_IMAGE_SHELLS)) {
                    shared_status = NEP_ERR_CELL;
                    goto cleanup;
                }
                shells[k] = (int)m;
            }
            origin[k] = 0.0;
            width[k] = 1.0 / nbin[k];
        } else {
            double extent = (fmax[k] - fmin[k]) * thickness;
            volume *= (extent > rc_max ? extent : rc_max) / thickness;
            double nb = floor(NEP_BINS_PER_CUTOFF * extent / rc_max);
            nbin[k] = nb < 1.0 ? 1 : (nb > 1e6 ? 1000000 : (int)nb);
            shells[k] = NEP_BINS_PER_CUTOFF;
            origin[k] = fmin[k];
            width[k] = (fmax[k] - fmin[k]) / nbin[k];
        }
    }
    /* keep the grid O(N): merging bins only widens them, so the shells stay enough */
    const double max_bins = 2.0 * N + 64.0;
    while ((double)nbin[0] * nbin[1] * nbin[2] > max_bins) {
        int k = 0;
        for (int c = 1; c < 3; ++c)
            if (nbin[c] > nbin[k]) k = c;
        nbin[k] = (nbin[k] + 1) / 2;
        width[k] = periodic[k] ? 1.0 / nbin[k] : (fmax[k] - fmin[k]) / nbin[k];
    }
    const int total_bins = nbin[0] * nbin[1] * nbin[2];
    bin_start = (int *)calloc((size_t)total_bins + 1, sizeof(int));
    bin_atoms = (int *)malloc((size_t)N * sizeof(int));
    /* positions and types in bin order, so that the candidate loop streams through memory */
    xb = (double *)malloc((size_t)N * 3 * sizeof(double));
    tb = (int *)malloc((size_t)N * sizeof(int));
    bcoord = (int (*)[3])malloc((size_t)N * sizeof(*bcoord));
    if (!bin_start || !bin_atoms || !xb || !tb || !bcoord) {
        shared_status = NEP_ERR_NOMEM;
        goto cleanup;
    }
    for (int i = 0; i < N; ++i) {
        for (int k = 0; k < 3; ++k) {
            int b = 0;
            if (nbin[k] > 1 && width[k] > 0.0) {
                double u = (fr[3 * i + k] - origin[k]) / width[k];
                /* written so that a NaN u (never expected) still lands in bin 0 */
                b = u > 0.0 ? (u < (double)nbin[k] ? (int)u : nbin[k] - 1) : 0;
            }
            bcoord[i][k] = b;
        }
        bin_of[i] = (bcoord[i][0] * nbin[1] + bcoord[i][1]) * nbin[2] + bcoord[i][2];
        bin_start[bin_of[i] + 1]++;
    }
    for (int b = 0; b < total_bins; ++b) bin_start[b + 1] += bin_start[b];
    {
        int *fill = (int *)malloc((size_t)total_bins * sizeof(int));
        if (!fill) {
            shared_status = NEP_ERR_NOMEM;
            goto cleanup;
        }
        memcpy(fill, bin_start, (size_t)total_bins * sizeof(int));
        for (int i = 0; i < N; ++i) bin_atoms[fill[bin_of[i]]++] = i;
        free(fill);
        for (int q = 0; q < N; ++q) {
            const int j = bin_atoms[q];
            memcpy(xb + 3 * q, xw + 3 * j, 3 * sizeof(double));
            tb[q] = system->types[j];
        }
    }

    const int T = num_types;
    const double overlap2 = NEP_OVERLAP_DISTANCE * NEP_OVERLAP_DISTANCE;
    const double rc_max2 = rc_max * rc_max;
    size_t *count = out->offset + 1; /* count[i] = entries of atom i, prefix-summed later */
    int nthreads_used = 1;

    const int nt = nep_resolve_threads(num_threads, N);
    buffers = (pair_buffer *)calloc((size_t)nt, sizeof(pair_buffer));
    chunk_start = (int *)calloc((size_t)nt + 1, sizeof(int));
    if (!buffers || !chunk_start) {
        shared_status = NEP_ERR_NOMEM;
        goto cleanup;
    }

#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0, ntr = 1;
#ifdef _OPENMP
        tid = omp_get_thread_num();
        ntr = omp_get_num_threads();
#endif
#ifdef _OPENMP
#pragma omp single
#endif
        {
            nthreads_used = ntr;
            for (int t = 0; t <= ntr; ++t) chunk_start[t] = (int)(((long long)N * t) / ntr);
        }
        const int a0 = chunk_start[tid], a1 = chunk_start[tid + 1];
        pair_buffer *buf = &buffers[tid];
        /* scratch for one atom's non-angular entries, appended after its angular ones */
        pair_buffer rest = {NULL, NULL, 0, 0};
        int my_status = NEP_OK;
        {
            double expected = 1.25 * (4.0 / 3.0) * 3.141592653589793 * rc_max * rc_max * rc_max *
                              N / volume + 16.0;
            if (expected > 4.0 * N + 64.0) expected = 4.0 * N + 64.0;
            if (buffer_reserve(buf, (size_t)((a1 - a0) * expected)) != NEP_OK) my_status = NEP_ERR_NOMEM;
        }
        for (int i = a0; i < a1 && my_status == NEP_OK; ++i) {
            const int ti = system->types[i];
            const double *xi = xw + 3 * i;
            size_t start = buf->size;
            rest.size = 0;
            int nang = 0;
            for (int ox = -shells[0]; ox <= shells[0] && my_status == NEP_OK; ++ox) {
                int cx = bcoord[i][0] + ox, sx = 0;
                if (periodic[0]) {
                    sx = floor_div(cx, nbin[0]);
                    cx -= sx * nbin[0];
                } else if (cx < 0 || cx >= nbin[0]) {
                    continue;
                }
                for (int oy = -shells[1]; oy <= shells[1] && my_status == NEP_OK; ++oy) {
                    int cy = bcoord[i][1] + oy, sy = 0;
                    if (periodic[1]) {
                        sy = floor_div(cy, nbin[1]);
                        cy -= sy * nbin[1];
                    } else if (cy < 0 || cy >= nbin[1]) {
                        continue;
                    }
                    /* z bins of one (x, y) column are contiguous in the cell list: walk
                     * them in runs of consecutive bins sharing one image shift */
                    int oz = -shells[2];
                    while (oz <= shells[2] && my_status == NEP_OK) {
                        int cz, sz = 0, run;
                        if (periodic[2]) {
                            cz = bcoord[i][2] + oz;
                            sz = floor_div(cz, nbin[2]);
                            cz -= sz * nbin[2];
                            run = nbin[2] - cz;
                            if (run > shells[2] - oz + 1) run = shells[2] - oz + 1;
                        } else {
                            int lo = bcoord[i][2] - shells[2], hi = bcoord[i][2] + shells[2];
                            if (lo < 0) lo = 0;
                            if (hi > nbin[2] - 1) hi = nbin[2] - 1;
                            cz = lo;
                            run = hi - lo + 1;
                            oz = shells[2] + 1 - run; /* this is the only run */
                        }
                        oz += run;
                        double shift[3];
                        for (int c = 0; c < 3; ++c)
                            shift[c] = sx * H[0][c] + sy * H[1][c] + sz * H[2][c];
                        const int zero_shift = (sx == 0 && sy == 0 && sz == 0);
                        const int b = (cx * nbin[1] + cy) * nbin[2] + cz;
                        for (int q = bin_start[b]; q < bin_start[b + run]; ++q) {
                            const double *xj = xb + 3 * q;
                            double r[3];
                            r[0] = (xj[0] - xi[0]) + shift[0];
                            r[1] = (xj[1] - xi[1]) + shift[1];
                            r[2] = (xj[2] - xi[2]) + shift[2];
                            const double d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
                            if (!(d2 < rc_max2)) continue;
                            const int j = bin_atoms[q];
                            if (j == i && zero_shift) continue;
                            const int tj = tb[q];
                            const double rcl = rc_list[ti * T + tj];
                            if (!(d2 < rcl * rcl)) continue;
                            if (d2 < overlap2) {
                                my_status = NEP_ERR_OVERLAP;
                                break;
                            }
                            const double rca = rc_angular[ti * T + tj];
                            pair_buffer *dst = (d2 < rca * rca) ? buf : &rest;
                            if (buffer_reserve(dst, dst->size + 1) != NEP_OK) {
                                my_status = NEP_ERR_NOMEM;
                                break;
                            }
                            dst->neighbor[dst->size] = j;
                            memcpy(dst->r + 3 * dst->size, r, 3 * sizeof(double));
                            dst->size++;
                            if (dst == buf) ++nang;
                        }
                    }
                }
            }
            if (my_status != NEP_OK) break;
            if (buffer_reserve(buf, buf->size + rest.size) != NEP_OK) {
                my_status = NEP_ERR_NOMEM;
                break;
            }
            if (rest.size) {
                memcpy(buf->neighbor + buf->size, rest.neighbor, rest.size * sizeof(int));
                memcpy(buf->r + 3 * buf->size, rest.r, rest.size * 3 * sizeof(double));
                buf->size += rest.size;
            }
            count[i] = buf->size - start;
            out->num_angular[i] = nang;
        }
        buffer_free(&rest);
        if (my_status != NEP_OK) {
#ifdef _OPENMP
#pragma omp critical(nep_neighbor_status)
#endif
            {
                if (shared_status == NEP_OK) shared_status = my_status;
            }
        }
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
        {
            if (shared_status == NEP_OK) {
                /* prefix sums; count aliases offset + 1 */
                out->offset[0] = 0;
                for (int i = 0; i < N; ++i) out->offset[i + 1] += out->offset[i];
                out->angular_offset[0] = 0;
                for (int i = 0; i < N; ++i)
                    out->angular_offset[i + 1] = out->angular_offset[i] + (size_t)out->num_angular[i];
                out->num_pairs = out->offset[N];
                out->num_angular_pairs = out->angular_offset[N];
                size_t P = out->num_pairs ? out->num_pairs : 1;
                out->neighbor = (int *)malloc(P * sizeof(int));
                out->r = (double *)malloc(P * 3 * sizeof(double));
                if (!out->neighbor || !out->r) shared_status = NEP_ERR_NOMEM;
            }
        }
        if (shared_status == NEP_OK && a1 > a0) {
            size_t at = out->offset[a0];
            memcpy(out->neighbor + at, buf->neighbor, buf->size * sizeof(int));
            memcpy(out->r + 3 * at, buf->r, buf->size * 3 * sizeof(double));
        }
        buffer_free(buf);
    }
    (void)nthreads_used;

cleanup:
    free(buffers);
    free(chunk_start);
    free(xw);
    free(fr);
    free(bin_of);
    free(bin_start);
    free(bin_atoms);
    free(bcoord);
    free(xb);
    free(tb);
    if (shared_status != NEP_OK) nep_neighbor_free(out);
    return shared_status;
}

void nep_neighbor_free(nep_neighbor_list *list)
{
    if (!list) return;
    free(list->offset);
    free(list->angular_offset);
    free(list->num_angular);
    free(list->neighbor);
    free(list->r);
    memset(list, 0, sizeof(*list));
}

int nep_neighbor_counts(const nep_system *system, int num_types, const double *rc_radial,
                        const double *rc_angular, int *radial, int *angular)
{
    if (!system || num_types < 1 || !rc_radial || !rc_angular || system->num_atoms < 0
        || (system->num_atoms > 0 && (!system->types || !system->positions || !radial
                                      || !angular)) || !system->cell)
        return NEP_ERR_ARGUMENT;
    const int T = num_types, N = system->num_atoms;
    for (int i = 0; i < N; ++i)
        if (system->types[i] < 0 || system->types[i] >= T) return NEP_ERR_ARGUMENT;
    /* the list holds every pair within the larger of a type pair's two cutoffs */
    double *rc_list = (double *)malloc(sizeof(double) * (size_t)T * (size_t)T);
    if (!rc_list) return NEP_ERR_NOMEM;
    double rc_max = 0.0;
    for (int k = 0; k < T * T; ++k) {
        if (!(rc_radial[k] > 0.0) || !(rc_angular[k] > 0.0) || !isfinite(rc_radial[k])
            || !isfinite(rc_angular[k])) {
            free(rc_list);
            return NEP_ERR_ARGUMENT;
        }
        rc_list[k] = rc_radial[k] > rc_angular[k] ? rc_radial[k] : rc_angular[k];
        if (rc_list[k] > rc_max) rc_max = rc_list[k];
    }
    nep_system periodic = *system;
    periodic.pbc[0] = periodic.pbc[1] = periodic.pbc[2] = 1;
    nep_neighbor_list nl;
    const int status = nep_neighbor_build(&periodic, T, rc_list, rc_angular, rc_max, 1, &nl);
    free(rc_list);
    if (status != NEP_OK) return status;
    /* each pair against both cutoffs squared, as nepzbl_plugin.neighbours counts them */
    for (int i = 0; i < N; ++i) {
        const int ti = system->types[i];
        int nr = 0, na = 0;
        for (size_t p = nl.offset[i]; p < nl.offset[i + 1]; ++p) {
            const double *r = nl.r + 3 * p;
            const double d2 = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
            const int pair = ti * T + system->types[nl.neighbor[p]];
            nr += d2 < rc_radial[pair] * rc_radial[pair];
            na += d2 < rc_angular[pair] * rc_angular[pair];
        }
        radial[i] = nr;
        angular[i] = na;
    }
    nep_neighbor_free(&nl);
    return NEP_OK;
}
