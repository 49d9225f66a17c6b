/*
 * Host side of the CUDA training objective (nep_train_cuda.h): the training set on the
 * device, the per-call uploads, and the precision-independent kernels (force gather,
 * per-structure sums, gradient column sums), all in double and in a fixed order.
 * The per-atom maths is in nep_train_cuda_kernels.cu.
 */
#include "nep_train_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <new>
#include <vector>

#include "nep_layout.h"
#include "nep_train_cuda_internal.cuh"
#include "nep_train_loss.h"

extern "C" {
#include "nep_neighbors.h"
}

namespace {

thread_local char train_error[512];

int cuda_status(cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return NEP_OK;
    snprintf(train_error, sizeof(train_error), "%s: %s (%s)", what, cudaGetErrorString(err),
             cudaGetErrorName(err));
    cudaGetLastError();
    return err == cudaErrorMemoryAllocation ? NEP_ERR_NOMEM : NEP_ERR_CUDA;
}

/* Gradient-row buffer (bytes) a tile may always use. A tile is made at least as large as
 * the atoms one launch of the gradient kernel keeps resident on the device (a wave: 67,584 on
 * an H200 for the 16-warp kernel, the largest; 33,792 at the 8 warps per SM the first H200
 * run had), if a quarter of the free device memory holds their rows: a smaller tile leaves
 * SMs idle while its launch lasts as long as a full wave's, which is what that run measured
 * (a tile of 9,800 LLZO atoms, the old fixed 512 MiB, was 29 % of its wave). */
const size_t ROWS_BUDGET = (size_t)1 << 29;
/* Default of the per-candidate work one population launch may hold (bytes); it bounds the
 * candidates a launch evaluates side by side (nep_train_cuda_set_population_budget). */
const size_t POPULATION_BUDGET = (size_t)1 << 30;

/* Thread (k, t): the force on the t-th selected atom for candidate k, gathered in a fixed
 * order from candidate k's pair derivatives (v_pair + k * v_stride) into
 * forces + k * f_stride. */
__global__ void forces_kernel(int count, int candidates, const int *selected_atoms,
                              const long long *pair_offset, const long long *in_offset,
                              const long long *in_pair, const double *v_pair_all, size_t v_stride,
                              double *forces_all, size_t f_stride)
{
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (long long)count * candidates) return;
    const int k = (int)(g / count), t = (int)(g % count);
    const double *v_pair = v_pair_all + (size_t)k * v_stride;
    double *forces = forces_all + (size_t)k * f_stride;
    const int i = selected_atoms[t];
    double f[3] = {0.0, 0.0, 0.0};
    for (long long p = pair_offset[i]; p < pair_offset[i + 1]; ++p)
        for (int c = 0; c < 3; ++c) f[c] += v_pair[3 * p + c];
    for (long long k = in_offset[i]; k < in_offset[i + 1]; ++k) {
        const long long p = in_pair[k];
        for (int c = 0; c < 3; ++c) f[c] -= v_pair[3 * p + c];
    }
    for (int c = 0; c < 3; ++c) forces[3 * (size_t)t + c] = f[c];
}

/* Thread (k, t): energy and virial of the t-th selected structure for candidate k, summed in
 * atom order from e_atom + k * atoms, w_atom + 9 k * atoms into energy + k * stride,
 * virials + k * stride. */
__global__ void totals_kernel(int count, int candidates, const int *selected,
                              const long long *structure_offset, const double *e_atom_all,
                              const double *w_atom_all, size_t atoms, double *energy_all,
                              double *virials_all, size_t stride)
{
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (long long)count * candidates) return;
    const int k = (int)(g / count), t = (int)(g % count);
    const double *e_atom = e_atom_all + (size_t)k * atoms;
    const double *w_atom = w_atom_all + 9 * (size_t)k * atoms;
    double *energy = energy_all + (size_t)k * stride;
    double *virials = virials_all + (size_t)k * stride;
    const int s = selected[t];
    double e = 0.0, w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (long long i = structure_offset[s]; i < structure_offset[s + 1]; ++i) {
        e += e_atom[i];
        for (int k = 0; k < 9; ++k) w[k] += w_atom[9 * i + k];
    }
    energy[t] = e;
    for (int k = 0; k < 9; ++k) virials[9 * (size_t)t + k] = w[k];
}

/* gradient[k] += sum_t rows[t][k], t in order (rows one after the other: the layout of the
 * A/B against interleaving). */
__global__ void columns_kernel(size_t num_parameters, int count, const double *rows,
                               double *gradient)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= num_parameters) return;
    double sum = gradient[k];
    for (int t = 0; t < count; ++t) sum += rows[(size_t)t * num_parameters + k];
    gradient[k] = sum;
}

/* Lanes per parameter in the reduction of interleaved rows. */
const int ROW_LANES = 32;

/* Interleaved rows (parameter k of atom t at rows[k count + t]), first half of the sum:
 * lane l of parameter k sums t = l, l + ROW_LANES, ... in order into partial[k][l]. A warp
 * reads 32 consecutive atoms' entries at once, and every parameter has a warp of its own,
 * so the reduction runs at the device's bandwidth; columns_kernel gives one thread a
 * parameter, few enough threads (one per parameter) that its strided reads of about 1.6 GB
 * for a filled LLZO batch take several milliseconds of a 34 ms call (an estimate: about
 * 200 KB in flight on 47 SMs). */
__global__ void row_partials_kernel(size_t num_parameters, int count, const double *rows,
                                    double *partial)
{
    const size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t k = g / ROW_LANES;
    const int lane = (int)(g % ROW_LANES);
    if (k >= num_parameters) return;
    const double *row = rows + k * (size_t)count;
    double sum = 0.0;
    for (int t = lane; t < count; t += ROW_LANES) sum += row[t];
    partial[g] = sum;
}

/* The second half: gradient[k] += partial[k][0] + ... + partial[k][ROW_LANES - 1], in order
 * (a fixed order for a given tile, so a call is reproducible bit for bit). */
__global__ void partials_kernel(size_t num_parameters, const double *partial, double *gradient)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= num_parameters) return;
    double sum = gradient[k];
    for (int l = 0; l < ROW_LANES; ++l) sum += partial[k * ROW_LANES + l];
    gradient[k] = sum;
}

/* Where a loss evaluation finds its inputs: the labels, weights and batch (set), and the
 * predictions of `count` candidates (energy, forces and virials of candidate k at
 * k * stride) with their parameters z [count][P] (double). */
struct loss_args {
    nep_loss_set set;
    int count;
    size_t stride;
    const double *energy, *forces, *virials, *z;
    const int *selected_atoms;
    const long long *selection_offset;
    double *per_structure; /* [count][num_selected][NEP_LOSS_STRUCTURE_LENGTH] */
    double *records;       /* [count][NEP_LOSS_LENGTH(T)] */
};

/* Thread (k, j): the per-structure quantities of selected structure j for candidate k. */
__global__ void loss_structures_kernel(const loss_args a)
{
    const int S = a.set.num_selected;
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)a.count * S) return;
    const int k = (int)(t / S), j = (int)(t % S);
    const size_t off = (size_t)k * a.stride;
    nep_loss_selected(&a.set, j, a.selection_offset[j], a.energy + off, a.virials + off,
                      a.forces + off, a.per_structure + (size_t)k * S * NEP_LOSS_STRUCTURE_LENGTH);
}

/* Thread (k, t): every term of type t for candidate k (nep_loss_type). */
__global__ void loss_types_kernel(const loss_args a)
{
    const int types = a.set.T + 1, S = a.set.num_selected;
    const long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (long long)a.count * types) return;
    const int k = (int)(id / types), t = (int)(id % types);
    nep_loss_type(&a.set, a.per_structure + (size_t)k * S * NEP_LOSS_STRUCTURE_LENGTH,
                  a.z + (size_t)k * a.set.num_parameters, t,
                  a.records + (size_t)k * NEP_LOSS_LENGTH(a.set.T));
}

/* Thread j: dL(T)/dE and dL(T)/dW of selected structure j (candidate 0), stored by global
 * structure index, where the gradient kernel reads them. */
__global__ void adjoint_structures_kernel(const loss_args a, double *alpha, double *virial_adjoint)
{
    const nep_loss_set &L = a.set;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= L.num_selected) return;
    const int s = L.selected[j];
    const double *qs = a.per_structure + (size_t)j * NEP_LOSS_STRUCTURE_LENGTH;
    const double *scalars = a.records + NEP_LOSS_SCALAR(L.T, 0);
    const double n = (double)(L.structure_offset[s + 1] - L.structure_offset[s]);
    alpha[s] = nep_loss_energy_adjoint(qs[NEP_LOSS_S_DELTA], L.energy_weight[s], L.weight[s], n,
                                       L.num_selected, scalars, L.lambda_e);
    nep_loss_virial_adjoint(qs + NEP_LOSS_S_WBAR, L.has_virial[s], L.weight[s], n, scalars,
                            L.lambda_v, L.lambda_shear, virial_adjoint + 9 * (size_t)s);
}

/* Thread t: dL(T)/dF of the t-th selected atom (candidate 0), stored by global atom index. */
__global__ void adjoint_atoms_kernel(const loss_args a, int num_atoms, double *force_adjoint)
{
    const nep_loss_set &L = a.set;
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= num_atoms) return;
    const int i = a.selected_atoms[t];
    const double k = nep_loss_force_adjoint_factor(a.records + NEP_LOSS_SCALAR(L.T, 0), L.lambda_f);
    for (int c = 0; c < 3; ++c)
        force_adjoint[3 * (size_t)i + c] =
            k * L.force_weight[i] * (a.forces[3 * (size_t)t + c] - L.ref_forces[3 * (size_t)i + c]);
}

/* Thread p: adds the regularisation's gradient to gradient[p]; raises *bad when the loss or
 * the gradient is not finite. */
__global__ void regularisation_kernel(const loss_args a, double *gradient, int *bad)
{
    const nep_loss_set &L = a.set;
    const size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= L.num_parameters) return;
    const double *rec = a.records;
    const double g = gradient[p] + nep_loss_regularisation_gradient(
        a.z[p], L.global_mask[p], rec[NEP_LOSS_SCALAR(L.T, NEP_LOSS_NORM)],
        (double)L.num_parameters, L.lambda_1, L.lambda_2);
    gradient[p] = g;
    if (!isfinite(g) || (p == 0 && !isfinite(rec[NEP_LOSS_BLOCK(L.T, NEP_LOSS_TOTAL, L.T)])))
        atomicOr(bad, 1);
}

/* Thread p: one Adam (AdamW) update of z[p] with gradient[p], unless *bad. The scalars are the
 * host optimiser's (nepzbl_plugin/train/optimizers.py), in its order of operations. */
__global__ void adam_kernel(size_t num_parameters, const double *gradient, const int *bad,
                            const unsigned char *decay, double *z, double *m, double *v,
                            double learning_rate, double beta1, double beta2, double eps,
                            double weight_decay, double bias1, double bias2)
{
    const size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= num_parameters || *bad) return;
    const double g = gradient[p];
    const double mp = m[p] * beta1 + (1.0 - beta1) * g;
    const double vp = v[p] * beta2 + (1.0 - beta2) * g * g;
    m[p] = mp;
    v[p] = vp;
    double zp = z[p];
    if (weight_decay > 0.0 && decay[p]) zp *= 1.0 - learning_rate * weight_decay;
    z[p] = zp - learning_rate * (mp / bias1) / (sqrt(vp / bias2) + eps);
}

/* The double parameter vector in the kernels' precision. */
__global__ void to_real_kernel(size_t n, const double *z, void *out, int use_float64)
{
    const size_t p = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    if (use_float64) ((double *)out)[p] = z[p];
    else ((float *)out)[p] = (float)z[p];
}

} // namespace

struct nep_train_cuda {
    int use_float64 = 0;
    size_t real = 8;
    nepct_args args{};
    int num_systems = 0;
    size_t num_atoms = 0, num_pairs = 0, bytes = 0;
    std::vector<long long> structure_offset; /* host copy */
    std::vector<int> types;                  /* host copy, every atom */
    std::vector<void *> owned;               /* every device allocation */
    /* device buffers the calls fill */
    int *d_selected_atoms = nullptr, *d_selected = nullptr;
    long long *d_structure_offset = nullptr;
    double *d_alpha = nullptr, *d_fadj = nullptr, *d_vadj = nullptr;
    double *d_forces = nullptr, *d_energy = nullptr, *d_virials = nullptr, *d_gradient = nullptr;
    double *d_row_partials = nullptr; /* [num_parameters][ROW_LANES] */
    void *d_parameters = nullptr;
    int tile = 0, tile_allocated = 0; /* atoms a launch takes; the most the buffers hold */
    cudaStream_t stream = nullptr;
    /* grow-only buffers of nep_train_cuda_predict_population */
    void *pop_parameters = nullptr;
    double *pop_out = nullptr;
    size_t pop_parameters_bytes = 0, pop_out_bytes = 0;
    /* the loss on the device (nep_train_cuda_set_loss): labels by global structure / atom */
    int has_loss = 0;
    loss_args loss{};
    long long *d_selection_offset = nullptr; /* [S + 1] first atom of each selected structure */
    double *d_z = nullptr, *d_z_call = nullptr; /* resident (Adam) and per-call parameters */
    double *d_m = nullptr, *d_v = nullptr;
    unsigned char *d_decay = nullptr;
    int *d_bad = nullptr;
    /* grow-only buffers of the loss: per-structure quantities, records, population z */
    double *loss_scratch = nullptr, *loss_records = nullptr, *pop_z = nullptr;
    size_t loss_scratch_bytes = 0, loss_records_bytes = 0, pop_z_bytes = 0;
    void *pop_work = nullptr; /* a population launch's per-atom/per-pair outputs and work */
    size_t pop_work_bytes = 0, pop_budget = POPULATION_BUDGET;
    /* host staging */
    std::vector<long long> selection_offset;
    std::vector<int> selected_atoms;
    std::vector<double> staging, params_real_d;
    std::vector<float> params_real_f;
};

namespace {

int dalloc(nep_train_cuda *h, void **p, size_t bytes, const char *what)
{
    *p = nullptr;
    if (bytes == 0) bytes = 8;
    const int status = cuda_status(cudaMalloc(p, bytes), what);
    if (status) return status;
    h->owned.push_back(*p);
    h->bytes += bytes;
    return NEP_OK;
}

/* On the handle's stream, then synchronised: a plain cudaMemcpy runs on the legacy stream,
 * which does not order the handle's non-blocking stream, and from pageable memory it may return
 * before its DMA has landed, so the first kernels could read the buffer half written. */
int upload(nep_train_cuda *h, void **p, const void *host, size_t bytes, const char *what)
{
    int status = dalloc(h, p, bytes, what);
    if (status) return status;
    if (bytes)
        status = cuda_status(cudaMemcpyAsync(*p, host, bytes, cudaMemcpyHostToDevice, h->stream),
                             what);
    if (!status) status = cuda_status(cudaStreamSynchronize(h->stream), what);
    return status;
}

/* A double array converted to the kernels' precision and uploaded. */
int upload_real(nep_train_cuda *h, const void **p, const double *host, size_t n, const char *what)
{
    void *d = nullptr;
    int status;
    if (h->use_float64) {
        status = upload(h, &d, host, n * sizeof(double), what);
    } else {
        std::vector<float> f(n);
        for (size_t k = 0; k < n; ++k) f[k] = (float)host[k];
        status = upload(h, &d, f.data(), n * sizeof(float), what);
    }
    *p = d;
    return status;
}

/* ALLOC(ptr, type, n): n values of `type` on the device for h, into ptr (through the local
 * `void *d`); returns the status from the enclosing function on failure. */
#define ALLOC(ptr, type, n)                                                                    \
    do {                                                                                       \
        status = dalloc(h, &d, sizeof(type) * (n), #ptr);                                      \
        if (status) return status;                                                             \
        ptr = (type *)d;                                                                       \
    } while (0)

/* UPLOAD(dst, type, host, n): n values of `type` copied from host to the device for h, the
 * device pointer into dst (through the local `void *d`); returns the status from the
 * enclosing function on failure. */
#define UPLOAD(dst, type, host, n)                                                             \
    do {                                                                                       \
        status = upload(h, &d, (host), sizeof(type) * (n), #dst);                              \
        if (status) return status;                                                             \
        dst = (const type *)d;                                                                 \
    } while (0)

int create(const nep_model_spec *spec, int num_systems, const nep_system *systems, bool by_type,
           nep_train_cuda *h, int *bad_system)
{
    int status = nep_model_spec_check(spec);
    if (status) return status;
    if (spec->basis_radial + 1 > 32 || spec->basis_angular + 1 > 32) return NEP_ERR_UNSUPPORTED;
    int count = 0;
    status = cuda_status(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (status || count < 1) {
        if (!status) snprintf(train_error, sizeof(train_error), "no CUDA device is available");
        return NEP_ERR_CUDA;
    }
    status = cuda_status(cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking), "stream");
    if (status) return status;
    nep_layout layout;
    nep_layout_compute(spec->version, spec->num_types, spec->n_max_radial, spec->n_max_angular,
                       spec->basis_radial, spec->basis_angular, spec->l_max, spec->flags,
                       spec->num_neurons, spec->temperature, spec->num_neurons_second,
                       &layout);
    const int T = spec->num_types;
    nepct_args &a = h->args;
    nep_train_atom_model_fill(spec, &a.model);
    size_t scratch_len = 0;
    for (int k = 0; k < NEP_TRAIN_NUM_WORK; ++k) scratch_len += nep_train_work_length(&a.model, k);
    a.scratch_len = (int)scratch_len;
    a.interleave = 1;
    a.kernels = NEPCT_KERNEL_PREDICT;
    h->real = h->use_float64 ? nepct_f64::real_size() : nepct_f32::real_size();

    /* neighbour lists, once, on the host (the C engine's own builder and order) */
    std::vector<double> rc_list((size_t)T * T);
    double rc_max = 0.0;
    for (int k = 0; k < T * T; ++k) {
        rc_list[k] = fmax(spec->rc_radial[k], spec->rc_angular[k]);
        rc_max = fmax(rc_max, rc_list[k]);
    }
    std::vector<int> types, atom_structure, neighbor, num_angular;
    std::vector<size_t> order; /* one atom's pairs, in upload order */
    std::vector<long long> pair_offset(1, 0);
    std::vector<double> r, temperature;
    h->structure_offset.assign(1, 0);
    for (int s = 0; s < num_systems; ++s) {
        const nep_system *sys = &systems[s];
        const long long base = (long long)types.size();
        for (int i = 0; i < sys->num_atoms; ++i) {
            if (sys->types[i] < 0 || sys->types[i] >= T) {
                if (bad_system) *bad_system = s;
                return NEP_ERR_TYPE;
            }
        }
        if (spec->temperature && !isfinite(sys->temperature)) {
            if (bad_system) *bad_system = s;
            return NEP_ERR_NONFINITE;
        }
        temperature.push_back(sys->temperature);
        nep_neighbor_list list;
        status = nep_neighbor_build(sys, T, rc_list.data(), spec->rc_angular, rc_max, 1, &list);
        if (status) {
            if (bad_system) *bad_system = s;
            return status;
        }
        for (int i = 0; i < sys->num_atoms; ++i) {
            types.push_back(sys->types[i]);
            atom_structure.push_back(s);
            /* the list's angular pairs, then the others; each part stably in neighbour-type
             * order unless asked for the list's own order */
            const size_t first = list.offset[i], angular_end = first + list.num_angular[i];
            order.clear();
            for (size_t p = first; p < list.offset[i + 1]; ++p) order.push_back(p);
            if (by_type) {
                const auto by_neighbour_type = [&](size_t a, size_t b) {
                    return sys->types[list.neighbor[a]] < sys->types[list.neighbor[b]];
                };
                const auto angular = order.begin() + (ptrdiff_t)(angular_end - first);
                std::stable_sort(order.begin(), angular, by_neighbour_type);
                std::stable_sort(angular, order.end(), by_neighbour_type);
            }
            for (size_t p : order) {
                neighbor.push_back((int)(base + list.neighbor[p]));
                for (int c = 0; c < 3; ++c) r.push_back(list.r[3 * p + c]);
            }
            pair_offset.push_back((long long)neighbor.size());
            num_angular.push_back(list.num_angular[i]);
        }
        nep_neighbor_free(&list);
        h->structure_offset.push_back((long long)types.size());
    }
    const size_t A = types.size(), P = neighbor.size();
    h->types = types;
    h->num_systems = num_systems;
    h->num_atoms = A;
    h->num_pairs = P;
    /* incoming pairs: for each atom, the pairs that name it as the neighbour, in pair order */
    std::vector<long long> in_offset(A + 1, 0), in_pair(P);
    for (size_t p = 0; p < P; ++p) ++in_offset[(size_t)neighbor[p] + 1];
    for (size_t i = 0; i < A; ++i) in_offset[i + 1] += in_offset[i];
    {
        std::vector<long long> fill(in_offset.begin(), in_offset.end() - 1);
        for (size_t p = 0; p < P; ++p) in_pair[(size_t)fill[(size_t)neighbor[p]]++] = (long long)p;
    }

    void *d;
    UPLOAD(a.model.rc_radial, double, spec->rc_radial, (size_t)T * T);
    UPLOAD(a.model.rc_angular, double, spec->rc_angular, (size_t)T * T);
    UPLOAD(a.model.atomic_numbers, int, spec->atomic_numbers, (size_t)T);
    UPLOAD(a.types, int, types.data(), A);
    UPLOAD(a.atom_structure, int, atom_structure.data(), A);
    UPLOAD(a.pair_offset, long long, pair_offset.data(), A + 1);
    UPLOAD(a.num_angular, int, num_angular.data(), A);
    UPLOAD(a.in_offset, long long, in_offset.data(), A + 1);
    UPLOAD(a.in_pair, long long, in_pair.data(), P);
    UPLOAD(a.neighbor, int, neighbor.data(), P);
    UPLOAD(a.r, double, r.data(), 3 * P);
    a.temperature = nullptr;
    if (spec->temperature) UPLOAD(a.temperature, double, temperature.data(), (size_t)num_systems);
    status = upload_real(h, &a.q_scaler, spec->q_scaler, (size_t)layout.dim, "q_scaler");
    if (status) return status;
    a.zbl = nullptr;
    if (spec->use_zbl && spec->zbl) {
        status = upload_real(h, &a.zbl, spec->zbl, (size_t)T * T * 10, "zbl");
        if (status) return status;
    }
    status = upload(h, &d, h->structure_offset.data(), sizeof(long long) * (num_systems + 1),
                    "structure offsets");
    if (status) return status;
    h->d_structure_offset = (long long *)d;

    /* per-call buffers, sized for the whole set */
    const size_t S = (size_t)num_systems;
    ALLOC(h->d_selected_atoms, int, A);
    ALLOC(h->d_selected, int, S);
    ALLOC(h->d_selection_offset, long long, S + 1);
    ALLOC(h->d_alpha, double, S);
    ALLOC(h->d_fadj, double, 3 * A);
    ALLOC(h->d_vadj, double, 9 * S);
    ALLOC(h->d_forces, double, 3 * A);
    ALLOC(h->d_energy, double, S);
    ALLOC(h->d_virials, double, 9 * S);
    ALLOC(h->d_gradient, double, a.model.num_parameters);
    ALLOC(h->d_row_partials, double, a.model.num_parameters * ROW_LANES);
    ALLOC(a.e_atom, double, A);
    ALLOC(a.w_atom, double, 9 * A);
    ALLOC(a.v_pair, double, 3 * P);
    status = dalloc(h, &h->d_parameters, h->real * a.model.num_parameters, "parameters");
    if (status) return status;
    a.parameters = h->d_parameters;
    const size_t row_bytes = sizeof(double) * (a.model.num_parameters ? a.model.num_parameters : 1);
    size_t tile = ROWS_BUDGET / row_bytes;
    const size_t wave = h->use_float64 ? nepct_f64::resident_atoms() : nepct_f32::resident_atoms();
    if (wave > tile && A > tile) {
        size_t free_bytes = 0, total_bytes = 0;
        if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
            const size_t fits = free_bytes / 4 / row_bytes;
            tile = wave < fits ? wave : (fits > tile ? fits : tile);
        } else {
            cudaGetLastError();
        }
    }
    if (tile < 32) tile = 32;
    if (tile > A) tile = A > 0 ? A : 1;
    h->tile = h->tile_allocated = (int)tile;
    ALLOC(a.rows, double, tile * a.model.num_parameters);
    status = dalloc(h, &a.scratch, h->real * tile * (size_t)a.scratch_len, "scratch");
    if (status) return status;
    a.selected_atoms = h->d_selected_atoms;
    return NEP_OK;
}

} // namespace

extern "C" {

int nep_train_cuda_create(const nep_model_spec *spec, int num_systems, const nep_system *systems,
                          int use_float64, int pair_order, nep_train_cuda **out, int *bad_system)
{
    if (!out || !spec || num_systems < 0 || (num_systems > 0 && !systems)) return NEP_ERR_ARGUMENT;
    if (pair_order != NEP_TRAIN_CUDA_PAIRS_BY_TYPE && pair_order != NEP_TRAIN_CUDA_PAIRS_AS_LISTED)
        return NEP_ERR_ARGUMENT;
    *out = nullptr;
    train_error[0] = '\0';
    nep_train_cuda *h = new (std::nothrow) nep_train_cuda();
    if (!h) return NEP_ERR_NOMEM;
    h->use_float64 = use_float64 != 0;
    const int status = create(spec, num_systems, systems,
                              pair_order == NEP_TRAIN_CUDA_PAIRS_BY_TYPE, h, bad_system);
    if (status) {
        nep_train_cuda_free(h);
        return status;
    }
    *out = h;
    return NEP_OK;
}

/* A CUDA runtime call of the functions below: on failure, its error (cuda_status) is returned. */
#define CHECK(call, what)                                                                      \
    do {                                                                                       \
        status = cuda_status((call), what);                                                    \
        if (status) return status;                                                             \
    } while (0)

/* Checks the num_values parameter values (NEP_ERR_NONFINITE) and the selected structures
 * (NEP_ERR_ARGUMENT), and lists the atoms of the selected structures, in order, in
 * h->selected_atoms (global indices). */
static int select_atoms(nep_train_cuda *h, const double *parameters, size_t num_values,
                        int num_selected, const int *selected)
{
    for (size_t k = 0; k < num_values; ++k)
        if (!isfinite(parameters[k])) return NEP_ERR_NONFINITE;
    h->selected_atoms.clear();
    h->selection_offset.assign(1, 0);
    for (int k = 0; k < num_selected; ++k) {
        const int s = selected[k];
        if (s < 0 || s >= h->num_systems) return NEP_ERR_ARGUMENT;
        for (long long i = h->structure_offset[s]; i < h->structure_offset[s + 1]; ++i)
            h->selected_atoms.push_back((int)i);
        h->selection_offset.push_back((long long)h->selected_atoms.size());
    }
    return NEP_OK;
}

/* The per-call device buffers hold the last call's values: the host emulation poisons them at
 * the start of a call (NEPCU_EMU_POISON; nothing on a device), so that a kernel reading an
 * entry this call never wrote (an atom or structure outside the selection) fails the tests. */
static void poison_call_buffers(nep_train_cuda *h)
{
    const size_t S = (size_t)h->num_systems, A = h->num_atoms, NP = h->num_pairs;
    (void)S, (void)A, (void)NP;
    NEPCU_EMU_POISON(h->d_forces, sizeof(double) * 3 * A);
    NEPCU_EMU_POISON(h->d_energy, sizeof(double) * S);
    NEPCU_EMU_POISON(h->d_virials, sizeof(double) * 9 * S);
    NEPCU_EMU_POISON(h->d_alpha, sizeof(double) * S);
    NEPCU_EMU_POISON(h->d_fadj, sizeof(double) * 3 * A);
    NEPCU_EMU_POISON(h->d_vadj, sizeof(double) * 9 * S);
    NEPCU_EMU_POISON(h->args.e_atom, sizeof(double) * A);
    NEPCU_EMU_POISON(h->args.w_atom, sizeof(double) * 9 * A);
    NEPCU_EMU_POISON(h->args.v_pair, sizeof(double) * 3 * NP);
    NEPCU_EMU_POISON(h->args.scratch, h->real * (size_t)h->tile * (size_t)h->args.scratch_len);
}

/* Uploads the selection of select_atoms: its atoms, the structures and their atom offsets. */
static int upload_selection(nep_train_cuda *h, int num_selected, const int *selected)
{
    int status;
    cudaStream_t st = h->stream;
    CHECK(cudaMemcpyAsync(h->d_selected_atoms, h->selected_atoms.data(),
                          sizeof(int) * h->selected_atoms.size(), cudaMemcpyHostToDevice, st),
          "selection");
    CHECK(cudaMemcpyAsync(h->d_selected, selected, sizeof(int) * num_selected,
                          cudaMemcpyHostToDevice, st), "selection");
    CHECK(cudaMemcpyAsync(h->d_selection_offset, h->selection_offset.data(),
                          sizeof(long long) * (num_selected + 1), cudaMemcpyHostToDevice, st),
          "selection");
    return NEP_OK;
}

/* Uploads num_values parameter values to dst in the handle's precision, then the selection
 * (h->selected_atoms from select_atoms, and the selected structures), on h->stream. */
static int upload_inputs(nep_train_cuda *h, void *dst, const double *parameters,
                         size_t num_values, int num_selected, const int *selected)
{
    int status;
    cudaStream_t st = h->stream;
    if (h->use_float64) {
        CHECK(cudaMemcpyAsync(dst, parameters, sizeof(double) * num_values, cudaMemcpyHostToDevice,
                              st), "parameters");
    } else {
        h->params_real_f.resize(num_values);
        for (size_t k = 0; k < num_values; ++k) h->params_real_f[k] = (float)parameters[k];
        CHECK(cudaMemcpyAsync(dst, h->params_real_f.data(), sizeof(float) * num_values,
                              cudaMemcpyHostToDevice, st), "parameters");
    }
    return upload_selection(h, num_selected, selected);
}

/* Whether the warp gradient kernel can take this model: one hidden layer (its network pass
 * is nep_train_network1's), and an atom's state within the 48 KB of shared memory a block
 * may have without asking. */
static bool warp_kernel_fits(const nep_train_cuda *h, const nepct_args &a)
{
    const size_t bytes = h->use_float64 ? nepct_f64::warp_shared_bytes(a)
                                        : nepct_f32::warp_shared_bytes(a);
    return a.model.num_neurons_second == 0 && bytes <= 48 * 1024;
}

/* The warp kernels' pass over the h->selected_atoms (count): persistent blocks, with a
 * gradient a row each (at most a tile's rows), summed in block order into h->d_gradient. */
static int warp_pass(nep_train_cuda *h, const nepct_args &a, int count)
{
    int status;
    cudaStream_t st = h->stream;
    const size_t P = a.model.num_parameters;
    const int threads = 128;
    int blocks = h->use_float64 ? nepct_f64::warp_blocks(a) : nepct_f32::warp_blocks(a);
    if (blocks <= 0) blocks = 1;
    if (blocks > count) blocks = count;
    if (blocks > h->tile) blocks = h->tile;
    if (count <= 0) return NEP_OK;
    if (a.rows) CHECK(cudaMemsetAsync(a.rows, 0, sizeof(double) * P * (size_t)blocks, st), "rows");
    if (h->use_float64) nepct_f64::launch_warp(a, 0, count, blocks, st);
    else nepct_f32::launch_warp(a, 0, count, blocks, st);
    CHECK(cudaGetLastError(), "warp kernel");
    if (a.rows)
        NEPCU_LAUNCH(columns_kernel, (unsigned)((P + threads - 1) / threads), threads, st, P,
                     blocks, (const double *)a.rows, h->d_gradient);
    return NEP_OK;
}

/* The thread-per-atom kernels' pass over the h->selected_atoms (count), tile by tile, each
 * tile's gradient rows summed into h->d_gradient. */
static int thread_pass(nep_train_cuda *h, const nepct_args &a, int count)
{
    int status;
    cudaStream_t st = h->stream;
    const size_t P = a.model.num_parameters;
    const int threads = 128;
    for (int first = 0; first < count; first += h->tile) {
        const int n = count - first < h->tile ? count - first : h->tile;
        if (a.rows) CHECK(cudaMemsetAsync(a.rows, 0, sizeof(double) * P * (size_t)n, st), "rows");
        if (h->use_float64) nepct_f64::launch_atoms(a, first, n, st);
        else nepct_f32::launch_atoms(a, first, n, st);
        CHECK(cudaGetLastError(), "training kernel");
        if (a.rows && a.interleave) {
            const size_t lanes = P * ROW_LANES;
            NEPCU_LAUNCH(row_partials_kernel, (unsigned)((lanes + threads - 1) / threads), threads,
                         st, P, n, (const double *)a.rows, h->d_row_partials);
            NEPCU_LAUNCH(partials_kernel, (unsigned)((P + threads - 1) / threads), threads, st, P,
                         (const double *)h->d_row_partials, h->d_gradient);
        } else if (a.rows) {
            NEPCU_LAUNCH(columns_kernel, (unsigned)((P + threads - 1) / threads), threads, st, P, n,
                         (const double *)a.rows, h->d_gradient);
        }
    }
    return NEP_OK;
}

/* One pass of the per-atom kernels over the h->selected_atoms (count) on the stream: with
 * a.rows set the gradient is added to h->d_gradient (zeroed by the caller). The warp kernel
 * takes the gradient pass when chosen, and a prediction pass too when predictions are to run
 * in the gradient kernel (predict_kernel off). Then the forces, the energies and the virials
 * of the selection into the given device arrays (forces NULL: not formed, for a gradient pass
 * whose predictions are already known). */
static int atoms_pass(nep_train_cuda *h, nepct_args a, int count, int num_selected,
                      double *forces, double *energy, double *virials)
{
    cudaStream_t st = h->stream;
    const int threads = 128;
    const bool warp = (a.kernels & NEPCT_KERNEL_WARP_GRADIENT)
                      && (a.rows || !(a.kernels & NEPCT_KERNEL_PREDICT)) && warp_kernel_fits(h, a);
    /* a gradient pass whose predictions are known: the kernels form none of the forces'
     * terms (nep_train_atom with pair_v NULL), so pass 2 skips the radial-only pairs */
    if (a.rows && !forces && !energy && !virials) a.v_pair = nullptr;
    int status = warp ? warp_pass(h, a, count) : thread_pass(h, a, count);
    if (status) return status;
    if (forces && count > 0)
        NEPCU_LAUNCH(forces_kernel, (count + threads - 1) / threads, threads, st, count, 1,
                     (const int *)h->d_selected_atoms, a.pair_offset, a.in_offset, a.in_pair,
                     (const double *)a.v_pair, (size_t)0, forces, (size_t)0);
    if (energy && num_selected > 0)
        NEPCU_LAUNCH(totals_kernel, (num_selected + threads - 1) / threads, threads, st,
                     num_selected, 1, (const int *)h->d_selected,
                     (const long long *)h->d_structure_offset, (const double *)a.e_atom,
                     (const double *)a.w_atom, (size_t)0, energy, virials, (size_t)0);
    CHECK(cudaGetLastError(), "training kernels");
    return NEP_OK;
}

int nep_train_cuda_run(nep_train_cuda *h, const double *parameters, int num_selected,
                       const int *selected, const double *alpha, const double *force_adjoint,
                       const double *virial_adjoint, double *gradient, double *energy,
                       double *forces, double *virials)
{
    if (!h || !parameters || num_selected < 0 || (num_selected > 0 && !selected))
        return NEP_ERR_ARGUMENT;
    nepct_args a = h->args;
    const size_t P = a.model.num_parameters;
    int status = select_atoms(h, parameters, P, num_selected, selected);
    if (status) return status;
    const int count = (int)h->selected_atoms.size();
    cudaStream_t st = h->stream;
    poison_call_buffers(h);
    status = upload_inputs(h, h->d_parameters, parameters, P, num_selected, selected);
    if (status) return status;
    std::vector<double> &stage = h->staging;
    a.alpha = a.force_adjoint = a.virial_adjoint = nullptr;
    const size_t S = (size_t)h->num_systems;
    /* one staging vector for the three adjoints: [alpha S][vadj 9S][fadj 3A] */
    stage.assign(S + 9 * S + 3 * h->num_atoms, 0.0);
    if (alpha) {
        for (int k = 0; k < num_selected; ++k) stage[selected[k]] = alpha[k];
        CHECK(cudaMemcpyAsync(h->d_alpha, stage.data(), sizeof(double) * S, cudaMemcpyHostToDevice, st),
              "alpha");
        a.alpha = h->d_alpha;
    }
    if (virial_adjoint) {
        double *v = stage.data() + S;
        for (int k = 0; k < num_selected; ++k)
            memcpy(v + 9 * (size_t)selected[k], virial_adjoint + 9 * (size_t)k, 9 * sizeof(double));
        CHECK(cudaMemcpyAsync(h->d_vadj, v, sizeof(double) * 9 * S, cudaMemcpyHostToDevice, st),
              "virial adjoint");
        a.virial_adjoint = h->d_vadj;
    }
    if (force_adjoint) {
        double *f = stage.data() + 10 * S;
        for (int t = 0; t < count; ++t)
            memcpy(f + 3 * (size_t)h->selected_atoms[t], force_adjoint + 3 * (size_t)t,
                   3 * sizeof(double));
        CHECK(cudaMemcpyAsync(h->d_fadj, f, sizeof(double) * 3 * h->num_atoms,
                              cudaMemcpyHostToDevice, st), "force adjoint");
        a.force_adjoint = h->d_fadj;
    }
    if (gradient) CHECK(cudaMemsetAsync(h->d_gradient, 0, sizeof(double) * P, st), "gradient");
    else a.rows = nullptr;
    /* a gradient alone: a pass without the forces' terms (atoms_pass) */
    const bool predictions = energy || forces || virials || !gradient;
    status = atoms_pass(h, a, count, num_selected, predictions ? h->d_forces : nullptr,
                        predictions ? h->d_energy : nullptr,
                        predictions ? h->d_virials : nullptr);
    if (status) return status;
    if (gradient)
        CHECK(cudaMemcpyAsync(gradient, h->d_gradient, sizeof(double) * P, cudaMemcpyDeviceToHost, st),
              "gradient");
    if (forces)
        CHECK(cudaMemcpyAsync(forces, h->d_forces, sizeof(double) * 3 * count,
                              cudaMemcpyDeviceToHost, st), "forces");
    if (energy)
        CHECK(cudaMemcpyAsync(energy, h->d_energy, sizeof(double) * num_selected,
                              cudaMemcpyDeviceToHost, st), "energy");
    if (virials)
        CHECK(cudaMemcpyAsync(virials, h->d_virials, sizeof(double) * 9 * num_selected,
                              cudaMemcpyDeviceToHost, st), "virials");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    return NEP_OK;
}

/* A grow-only device buffer: *p holds at least `bytes` afterwards. The old buffer may still be
 * read by work queued on the stream: cudaFree waits for the device before it frees. */
static int grow(void **p, size_t *have, size_t bytes, const char *what)
{
    if (bytes <= *have) {
        if (*p) NEPCU_EMU_POISON(*p, *have); /* every caller rewrites what it grows */
        return NEP_OK;
    }
    if (*p) cudaFree(*p);
    *p = nullptr;
    *have = 0;
    const int status = cuda_status(cudaMalloc(p, bytes), what);
    if (status) {
        *p = nullptr; /* never a pointer nep_train_cuda_free would free */
        return status;
    }
    *have = bytes;
    return NEP_OK;
}

/* The predictions of a whole population, launched on the stream (no synchronisation): candidate
 * k's forces, energies and virials at h->pop_out + k * (*per), in that order. The population's
 * parameters (double, [population][P]) are checked and uploaded in the kernels' precision. */
static int population_pass(nep_train_cuda *h, int population, const double *parameters,
                           int num_selected, const int *selected, int *count_out, size_t *per_out)
{
    nepct_args a = h->args;
    const size_t P = a.model.num_parameters;
    int status = select_atoms(h, parameters, P * (size_t)population, num_selected, selected);
    if (status) return status;
    const int count = (int)h->selected_atoms.size();
    const size_t per = 3 * (size_t)count + 10 * (size_t)num_selected; /* forces, energy, virials */
    CHECK(cudaStreamSynchronize(h->stream), "synchronize");
    status = grow(&h->pop_parameters, &h->pop_parameters_bytes, h->real * P * (size_t)population,
                  "population parameters");
    if (status) return status;
    status = grow((void **)&h->pop_out, &h->pop_out_bytes, sizeof(double) * per * population,
                  "population outputs");
    if (status) return status;
    /* candidates per launch: as many as h->pop_budget bytes of per-candidate outputs and
     * work arrays allow (the whole population for a small set, one for a very large one) */
    const size_t A = h->num_atoms, NP = h->num_pairs;
    const size_t per_candidate = sizeof(double) * (10 * A + 3 * NP) +
                                 h->real * (size_t)count * (size_t)a.scratch_len;
    size_t chunk = h->pop_budget / (per_candidate ? per_candidate : 1);
    if (chunk < 1) chunk = 1;
    if (chunk > (size_t)population) chunk = (size_t)population;
    status = grow(&h->pop_work, &h->pop_work_bytes, per_candidate * chunk, "population work");
    if (status) return status;
    status = upload_inputs(h, h->pop_parameters, parameters, P * (size_t)population, num_selected,
                           selected);
    if (status) return status;
    a.alpha = a.force_adjoint = a.virial_adjoint = nullptr;
    a.rows = nullptr;
    nepct_population pop;
    pop.e_atom = (double *)h->pop_work;
    pop.w_atom = pop.e_atom + chunk * A;
    pop.v_pair = pop.w_atom + 9 * chunk * A;
    pop.scratch = pop.v_pair + 3 * chunk * NP;
    pop.atoms = A;
    pop.pairs = NP;
    const int threads = 128;
    /* one launch sequence for the whole population: each chunk of candidates in one grid */
    for (size_t first = 0; first < (size_t)population; first += chunk) {
        const int n = (int)((size_t)population - first < chunk ? (size_t)population - first : chunk);
        pop.parameters = (const char *)h->pop_parameters + h->real * P * first;
        if (h->use_float64) nepct_f64::launch_population(a, count, n, pop, h->stream);
        else nepct_f32::launch_population(a, count, n, pop, h->stream);
        CHECK(cudaGetLastError(), "training kernel");
        double *out = h->pop_out + per * first;
        const long long nf = (long long)count * n, nt = (long long)num_selected * n;
        if (nf > 0)
            NEPCU_LAUNCH(forces_kernel, (unsigned)((nf + threads - 1) / threads), threads, h->stream,
                         count, n, (const int *)h->d_selected_atoms, a.pair_offset, a.in_offset,
                         a.in_pair, (const double *)pop.v_pair, 3 * NP, out, per);
        if (nt > 0)
            NEPCU_LAUNCH(totals_kernel, (unsigned)((nt + threads - 1) / threads), threads, h->stream,
                         num_selected, n, (const int *)h->d_selected,
                         (const long long *)h->d_structure_offset, (const double *)pop.e_atom,
                         (const double *)pop.w_atom, A, out + 3 * (size_t)count,
                         out + 3 * (size_t)count + num_selected, per);
        CHECK(cudaGetLastError(), "training kernels");
    }
    *count_out = count;
    *per_out = per;
    return NEP_OK;
}

int nep_train_cuda_predict_population(nep_train_cuda *h, int population,
                                      const double *parameters, int num_selected,
                                      const int *selected, double *energy, double *forces,
                                      double *virials)
{
    if (!h || population < 0 || (population > 0 && !parameters) || num_selected < 0 ||
        (num_selected > 0 && !selected) || !energy || !forces || !virials)
        return NEP_ERR_ARGUMENT;
    int count = 0;
    size_t per = 0;
    int status = population_pass(h, population, parameters, num_selected, selected, &count, &per);
    if (status) return status;
    cudaStream_t st = h->stream;
    std::vector<double> &host = h->staging;
    host.resize(per * (size_t)population);
    CHECK(cudaMemcpyAsync(host.data(), h->pop_out, sizeof(double) * per * population,
                          cudaMemcpyDeviceToHost, st), "outputs");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    for (int k = 0; k < population; ++k) {
        const double *out = host.data() + per * (size_t)k;
        memcpy(forces + 3 * (size_t)count * k, out, sizeof(double) * 3 * count);
        memcpy(energy + (size_t)num_selected * k, out + 3 * (size_t)count,
               sizeof(double) * num_selected);
        memcpy(virials + 9 * (size_t)num_selected * k, out + 3 * (size_t)count + num_selected,
               sizeof(double) * 9 * num_selected);
    }
    return NEP_OK;
}

/* ---------------------------------------------------------------- the loss on the device */

int nep_train_cuda_set_loss(nep_train_cuda *h, const nep_train_cuda_labels *L)
{
    if (!h || !L || h->has_loss) return NEP_ERR_ARGUMENT;
    const size_t S = (size_t)h->num_systems, A = h->num_atoms;
    const size_t P = h->args.model.num_parameters;
    const int T = h->args.model.num_types;
    if ((S && (!L->energy || !L->virial || !L->has_virial || !L->weight || !L->energy_weight)) ||
        (A && !L->forces) || !L->type_weight || (P && (!L->parameter_types || !L->global_mask)))
        return NEP_ERR_ARGUMENT;
    for (size_t p = 0; p < P; ++p)
        if (L->parameter_types[p] < 0 || L->parameter_types[p] > T) return NEP_ERR_ARGUMENT;
    nep_loss_set &l = h->loss.set;
    l.T = T;
    l.lambda_e = L->lambda_e;
    l.lambda_f = L->lambda_f;
    l.lambda_v = L->lambda_v;
    l.lambda_shear = L->lambda_shear;
    l.lambda_1 = L->lambda_1;
    l.lambda_2 = L->lambda_2;
    l.num_parameters = P;
    /* force weights and which types each structure contains: once, on the host */
    std::vector<double> c(A);
    std::vector<unsigned char> contains(S * (T + 1));
    if (nep_loss_set_tables(T, (int)S, h->structure_offset.data(), h->types.data(), L->weight,
                            L->type_weight, L->forces, L->force_delta, contains.data(),
                            c.data()) >= 0)
        return NEP_ERR_TYPE; /* create checked the types: not reached */
    void *d;
    int status;
    UPLOAD(l.ref_energy, double, L->energy, S);
    UPLOAD(l.ref_virial, double, L->virial, 6 * S);
    UPLOAD(l.has_virial, int, L->has_virial, S);
    UPLOAD(l.weight, double, L->weight, S);
    UPLOAD(l.energy_weight, double, L->energy_weight, S);
    UPLOAD(l.ref_forces, double, L->forces, 3 * A);
    UPLOAD(l.force_weight, double, c.data(), A);
    UPLOAD(l.contains, unsigned char, contains.data(), S * (T + 1));
    UPLOAD(l.parameter_types, int, L->parameter_types, P);
    UPLOAD(l.global_mask, unsigned char, L->global_mask, P);
    ALLOC(h->d_z, double, P);
    ALLOC(h->d_z_call, double, P);
    ALLOC(h->d_m, double, P);
    ALLOC(h->d_v, double, P);
    ALLOC(h->d_decay, unsigned char, P);
    ALLOC(h->d_bad, int, 1);
    l.structure_offset = h->d_structure_offset;
    l.selected = h->d_selected;
    h->loss.selected_atoms = h->d_selected_atoms;
    h->loss.selection_offset = h->d_selection_offset;
    h->has_loss = 1;
    return NEP_OK;
}

size_t nep_train_cuda_loss_length(const nep_train_cuda *h)
{
    return h ? (size_t)NEP_LOSS_LENGTH(h->args.model.num_types) : 0;
}

/* The loss of `count` candidates whose predictions are on the device (energy, forces, virials
 * of candidate k at k * stride) and whose parameters are z [count][P] (double): launched on the
 * stream, the records in h->loss_records. Returns the arguments for the adjoint kernels. */
static int launch_loss(nep_train_cuda *h, int count, int num_selected, size_t stride,
                       const double *energy, const double *forces, const double *virials,
                       const double *z, loss_args *out)
{
    int status;
    loss_args l = h->loss;
    l.count = count;
    l.set.num_selected = num_selected;
    l.stride = stride;
    l.energy = energy;
    l.forces = forces;
    l.virials = virials;
    l.z = z;
    const size_t R = (size_t)NEP_LOSS_LENGTH(l.set.T);
    status = grow((void **)&h->loss_scratch, &h->loss_scratch_bytes,
                  sizeof(double) * NEP_LOSS_STRUCTURE_LENGTH * (size_t)count * (num_selected + 1),
                  "loss work");
    if (status) return status;
    status = grow((void **)&h->loss_records, &h->loss_records_bytes,
                  sizeof(double) * R * (size_t)count, "loss records");
    if (status) return status;
    l.per_structure = h->loss_scratch;
    l.records = h->loss_records;
    const int threads = 64;
    const long long n1 = (long long)count * num_selected, n2 = (long long)count * (l.set.T + 1);
    if (n1 > 0) NEPCU_LAUNCH(loss_structures_kernel, (unsigned)((n1 + threads - 1) / threads), threads, h->stream, l);
    NEPCU_LAUNCH(loss_types_kernel, (unsigned)((n2 + threads - 1) / threads), threads, h->stream, l);
    CHECK(cudaGetLastError(), "loss kernels");
    *out = l;
    return NEP_OK;
}

/* Predictions, loss and (gradient) its exact gradient dL(T)/dz for the parameters d_z (double,
 * on the device) and the selection of select_atoms (uploaded here), all on the stream: the
 * record in h->loss_records, the gradient in h->d_gradient, *h->d_bad raised when the loss or
 * the gradient is not finite. */
static int loss_and_gradient(nep_train_cuda *h, const double *d_z, int num_selected,
                             const int *selected, bool gradient)
{
    int status;
    cudaStream_t st = h->stream;
    nepct_args a = h->args;
    const size_t P = a.model.num_parameters;
    const int count = (int)h->selected_atoms.size();
    const int threads = 128;
    poison_call_buffers(h);
    status = upload_selection(h, num_selected, selected);
    if (status) return status;
    if (P) NEPCU_LAUNCH(to_real_kernel, (unsigned)((P + threads - 1) / threads), threads, st, P, d_z,
                        h->d_parameters, h->use_float64);
    a.alpha = a.force_adjoint = a.virial_adjoint = nullptr;
    a.rows = nullptr;
    status = atoms_pass(h, a, count, num_selected, h->d_forces, h->d_energy, h->d_virials);
    if (status) return status;
    loss_args l;
    status = launch_loss(h, 1, num_selected, 0, h->d_energy, h->d_forces, h->d_virials, d_z, &l);
    if (status) return status;
    if (!gradient) return NEP_OK;
    if (num_selected > 0)
        NEPCU_LAUNCH(adjoint_structures_kernel, (num_selected + threads - 1) / threads, threads, st, l,
                     h->d_alpha, h->d_vadj);
    if (count > 0)
        NEPCU_LAUNCH(adjoint_atoms_kernel, (count + threads - 1) / threads, threads, st, l, count,
                     h->d_fadj);
    a = h->args;
    a.alpha = h->d_alpha;
    a.force_adjoint = h->d_fadj;
    a.virial_adjoint = h->d_vadj;
    CHECK(cudaMemsetAsync(h->d_gradient, 0, sizeof(double) * P, st), "gradient");
    CHECK(cudaMemsetAsync(h->d_bad, 0, sizeof(int), st), "flag");
    /* the gradient pass; its predictions are the first pass's, which the loss already has */
    status = atoms_pass(h, a, count, num_selected, nullptr, nullptr, nullptr);
    if (status) return status;
    if (P) NEPCU_LAUNCH(regularisation_kernel, (unsigned)((P + threads - 1) / threads), threads, st, l,
                        h->d_gradient, h->d_bad);
    CHECK(cudaGetLastError(), "gradient kernels");
    return NEP_OK;
}

int nep_train_cuda_loss_gradient(nep_train_cuda *h, const double *parameters, int num_selected,
                                 const int *selected, double *record, double *gradient)
{
    if (!h || !h->has_loss || !parameters || !record || num_selected < 0 ||
        (num_selected > 0 && !selected))
        return NEP_ERR_ARGUMENT;
    const size_t P = h->args.model.num_parameters;
    int status = select_atoms(h, parameters, P, num_selected, selected);
    if (status) return status;
    cudaStream_t st = h->stream;
    CHECK(cudaMemcpyAsync(h->d_z_call, parameters, sizeof(double) * P, cudaMemcpyHostToDevice, st),
          "parameters");
    status = loss_and_gradient(h, h->d_z_call, num_selected, selected, gradient != nullptr);
    if (status) return status;
    CHECK(cudaMemcpyAsync(record, h->loss_records, sizeof(double) * nep_train_cuda_loss_length(h),
                          cudaMemcpyDeviceToHost, st), "loss");
    if (gradient)
        CHECK(cudaMemcpyAsync(gradient, h->d_gradient, sizeof(double) * P, cudaMemcpyDeviceToHost, st),
              "gradient");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    return NEP_OK;
}

int nep_train_cuda_population_loss(nep_train_cuda *h, int population, const double *parameters,
                                   int num_selected, const int *selected, double *records)
{
    if (!h || !h->has_loss || population < 0 || (population > 0 && !parameters) ||
        num_selected < 0 || (num_selected > 0 && !selected) || (population > 0 && !records))
        return NEP_ERR_ARGUMENT;
    if (population == 0) return NEP_OK;
    const size_t P = h->args.model.num_parameters;
    cudaStream_t st = h->stream;
    /* the candidates in double for the regularisation, before any launch (the stream is idle,
     * so growing needs no synchronisation) */
    int status = grow((void **)&h->pop_z, &h->pop_z_bytes,
                      sizeof(double) * P * (size_t)population, "population parameters");
    if (status) return status;
    CHECK(cudaMemcpyAsync(h->pop_z, parameters, sizeof(double) * P * (size_t)population,
                          cudaMemcpyHostToDevice, st), "population parameters");
    int count = 0;
    size_t per = 0;
    status = population_pass(h, population, parameters, num_selected, selected, &count, &per);
    if (status) return status;
    loss_args l;
    status = launch_loss(h, population, num_selected, per, h->pop_out + 3 * (size_t)count,
                         h->pop_out, h->pop_out + 3 * (size_t)count + num_selected, h->pop_z, &l);
    if (status) return status;
    CHECK(cudaMemcpyAsync(records, h->loss_records,
                          sizeof(double) * nep_train_cuda_loss_length(h) * (size_t)population,
                          cudaMemcpyDeviceToHost, st), "losses");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    return NEP_OK;
}

int nep_train_cuda_adam_start(nep_train_cuda *h, const double *parameters, const double *m,
                              const double *v, const unsigned char *decay_mask)
{
    if (!h || !h->has_loss || !parameters || !m || !v || !decay_mask) return NEP_ERR_ARGUMENT;
    const size_t P = h->args.model.num_parameters;
    for (size_t p = 0; p < P; ++p)
        if (!isfinite(parameters[p]) || !isfinite(m[p]) || !isfinite(v[p])) return NEP_ERR_NONFINITE;
    int status;
    cudaStream_t st = h->stream;
    CHECK(cudaMemcpyAsync(h->d_z, parameters, sizeof(double) * P, cudaMemcpyHostToDevice, st), "parameters");
    CHECK(cudaMemcpyAsync(h->d_m, m, sizeof(double) * P, cudaMemcpyHostToDevice, st), "adam m");
    CHECK(cudaMemcpyAsync(h->d_v, v, sizeof(double) * P, cudaMemcpyHostToDevice, st), "adam v");
    CHECK(cudaMemcpyAsync(h->d_decay, decay_mask, P, cudaMemcpyHostToDevice, st), "decay mask");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    return NEP_OK;
}

int nep_train_cuda_adam_step(nep_train_cuda *h, int num_selected, const int *selected,
                             const nep_train_cuda_adam *adam, double *record, int *updated)
{
    if (!h || !h->has_loss || !adam || !record || !updated || num_selected < 0 ||
        (num_selected > 0 && !selected))
        return NEP_ERR_ARGUMENT;
    const size_t P = h->args.model.num_parameters;
    int status = select_atoms(h, nullptr, 0, num_selected, selected);
    if (status) return status;
    status = loss_and_gradient(h, h->d_z, num_selected, selected, true);
    if (status) return status;
    cudaStream_t st = h->stream;
    const int threads = 128;
    if (P)
        NEPCU_LAUNCH(adam_kernel, (unsigned)((P + threads - 1) / threads), threads, st, P,
                     (const double *)h->d_gradient, (const int *)h->d_bad,
                     (const unsigned char *)h->d_decay, h->d_z, h->d_m, h->d_v,
                     adam->learning_rate, adam->beta1, adam->beta2, adam->eps, adam->weight_decay,
                     adam->bias1, adam->bias2);
    CHECK(cudaGetLastError(), "adam kernel");
    int bad = 0;
    CHECK(cudaMemcpyAsync(record, h->loss_records, sizeof(double) * nep_train_cuda_loss_length(h),
                          cudaMemcpyDeviceToHost, st), "loss");
    CHECK(cudaMemcpyAsync(&bad, h->d_bad, sizeof(int), cudaMemcpyDeviceToHost, st), "flag");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    *updated = !bad;
    return NEP_OK;
}

int nep_train_cuda_adam_state(nep_train_cuda *h, double *parameters, double *m, double *v)
{
    if (!h || !h->has_loss) return NEP_ERR_ARGUMENT;
    const size_t P = h->args.model.num_parameters;
    int status;
    cudaStream_t st = h->stream;
    if (parameters)
        CHECK(cudaMemcpyAsync(parameters, h->d_z, sizeof(double) * P, cudaMemcpyDeviceToHost, st), "parameters");
    if (m) CHECK(cudaMemcpyAsync(m, h->d_m, sizeof(double) * P, cudaMemcpyDeviceToHost, st), "adam m");
    if (v) CHECK(cudaMemcpyAsync(v, h->d_v, sizeof(double) * P, cudaMemcpyDeviceToHost, st), "adam v");
    CHECK(cudaStreamSynchronize(st), "synchronize");
    return NEP_OK;
}
#undef CHECK

void nep_train_cuda_set_population_budget(nep_train_cuda *h, size_t bytes)
{
    if (h) h->pop_budget = bytes;
}

void nep_train_cuda_set_tile(nep_train_cuda *h, int atoms)
{
    if (!h) return;
    h->tile = atoms < 1 ? 1 : atoms > h->tile_allocated ? h->tile_allocated : atoms;
}

void nep_train_cuda_set_interleaved(nep_train_cuda *h, int interleaved)
{
    if (h) h->args.interleave = interleaved != 0;
}

void nep_train_cuda_set_kernels(nep_train_cuda *h, int predict_kernel, int gradient_kernel)
{
    if (h)
        h->args.kernels =
            (predict_kernel ? NEPCT_KERNEL_PREDICT : 0)
            | (gradient_kernel == NEP_TRAIN_CUDA_GRADIENT_WIDE ? NEPCT_KERNEL_WIDE_GRADIENT : 0)
            | (gradient_kernel == NEP_TRAIN_CUDA_GRADIENT_UNBOUNDED
                   ? NEPCT_KERNEL_UNBOUNDED_GRADIENT : 0)
            | (gradient_kernel == NEP_TRAIN_CUDA_GRADIENT_WARP ? NEPCT_KERNEL_WARP_GRADIENT : 0);
}

size_t nep_train_cuda_device_bytes(const nep_train_cuda *h)
{
    return h ? h->bytes + h->pop_parameters_bytes + h->pop_out_bytes + h->loss_scratch_bytes +
                   h->loss_records_bytes + h->pop_z_bytes + h->pop_work_bytes
             : 0;
}
size_t nep_train_cuda_num_parameters(const nep_train_cuda *h) { return h ? h->args.model.num_parameters : 0; }
size_t nep_train_cuda_num_pairs(const nep_train_cuda *h) { return h ? h->num_pairs : 0; }
const char *nep_train_cuda_last_error(void) { return train_error; }

void nep_train_cuda_free(nep_train_cuda *h)
{
    if (!h) return;
    if (h->stream) cudaStreamDestroy(h->stream);
    if (h->pop_parameters) cudaFree(h->pop_parameters);
    if (h->pop_out) cudaFree(h->pop_out);
    if (h->loss_scratch) cudaFree(h->loss_scratch);
    if (h->loss_records) cudaFree(h->loss_records);
    if (h->pop_z) cudaFree(h->pop_z);
    if (h->pop_work) cudaFree(h->pop_work);
    for (void *p : h->owned) cudaFree(p);
    delete h;
}

} /* extern "C" */
