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

#include <new>
#include <vector>

#include "nep_layout.h"
#include "nep_train_cuda_internal.cuh"

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

/* Largest gradient-row buffer (bytes) one call uses; it bounds the atoms per tile. */
const size_t ROWS_BUDGET = (size_t)1 << 29;

__global__ void forces_kernel(int count, const int *selected_atoms, const long long *pair_offset,
                              const long long *in_offset, const long long *in_pair,
                              const double *v_pair, double *forces)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= count) return;
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

__global__ void totals_kernel(int count, const int *selected, const long long *structure_offset,
                              const double *e_atom, const double *w_atom, double *energy,
                              double *virials)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= count) return;
    const int s = selected[t];
    double e = 0.0, w[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (long long i = structure_offset[s]; i < structure_offset[s + 1]; ++i) {
        e += e_atom[i];
        for (int k = 0; k < 9; ++k) w[k] += w_atom[9 * i + k];
    }
    energy[t] = e;
    for (int k = 0; k < 9; ++k) virials[9 * (size_t)t + k] = w[k];
}

/* gradient[k] += sum_t rows[t][k], t in order. */
__global__ void columns_kernel(size_t num_parameters, int count, const double *rows,
                               double *gradient)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= num_parameters) return;
    double sum = gradient[k];
    for (int t = 0; t < count; ++t) sum += rows[(size_t)t * num_parameters + k];
    gradient[k] = sum;
}

template <typename T> struct dvec {
    T *p = nullptr;
    size_t n = 0;
};

} // namespace

struct nep_train_cuda {
    int use_float64 = 0;
    size_t real = 8;
    nepct_args args{};
    int num_systems = 0;
    size_t num_atoms = 0, num_pairs = 0, bytes = 0;
    std::vector<long long> structure_offset; /* host copy */
    std::vector<void *> owned;               /* every device allocation */
    /* device buffers the calls fill */
    int *d_selected_atoms = nullptr, *d_selected = nullptr;
    long long *d_structure_offset = nullptr;
    double *d_alpha = nullptr, *d_fadj = nullptr, *d_vadj = nullptr;
    double *d_forces = nullptr, *d_energy = nullptr, *d_virials = nullptr, *d_gradient = nullptr;
    void *d_parameters = nullptr;
    int tile = 0;
    cudaStream_t stream = nullptr;
    /* grow-only buffers of nep_train_cuda_predict_population */
    void *pop_parameters = nullptr;
    double *pop_out = nullptr;
    size_t pop_parameters_bytes = 0, pop_out_bytes = 0;
    /* host staging */
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

int upload(nep_train_cuda *h, void **p, const void *host, size_t bytes, const char *what)
{
    int status = dalloc(h, p, bytes, what);
    if (status) return status;
    if (bytes) status = cuda_status(cudaMemcpy(*p, host, bytes, cudaMemcpyHostToDevice), what);
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

int create(const nep_model_spec *spec, int num_systems, const nep_system *systems,
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
    nep_layout layout;
    nep_layout_compute(spec->version, spec->num_types, spec->n_max_radial, spec->n_max_angular,
                       spec->basis_radial, spec->basis_angular, spec->l_max, spec->flags,
                       spec->num_neurons, &layout);
    const int T = spec->num_types;
    nepct_args &a = h->args;
    nep_train_atom_model_fill(spec, &a.model);
    size_t scratch_len = 0;
    for (int k = 0; k < NEP_TRAIN_NUM_WORK; ++k) scratch_len += nep_train_work_length(&a.model, k);
    a.scratch_len = (int)scratch_len;
    h->real = h->use_float64 ? nepct_f64::real_size() : nepct_f32::real_size();

    /* neighbour lists, once, on the host (the C engine's own builder and order) */
    std::vector<double> rc_list((size_t)T * T);
    double rc_max = 0.0;
    for (int k = 0; k < T * T; ++k) {
        rc_list[k] = fmax(spec->rc_radial[k], spec->rc_angular[k]);
        rc_max = fmax(rc_max, rc_list[k]);
    }
    std::vector<int> types, atom_structure, neighbor;
    std::vector<long long> pair_offset(1, 0);
    std::vector<double> r;
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
        nep_neighbor_list list;
        status = nep_neighbor_build(sys, T, rc_list.data(), spec->rc_angular, rc_max, 1, &list);
        if (status) {
            if (bad_system) *bad_system = s;
            return status;
        }
        for (int i = 0; i < sys->num_atoms; ++i) {
            types.push_back(sys->types[i]);
            atom_structure.push_back(s);
            for (size_t p = list.offset[i]; p < list.offset[i + 1]; ++p) {
                neighbor.push_back((int)(base + list.neighbor[p]));
                for (int c = 0; c < 3; ++c) r.push_back(list.r[3 * p + c]);
            }
            pair_offset.push_back((long long)neighbor.size());
        }
        nep_neighbor_free(&list);
        h->structure_offset.push_back((long long)types.size());
    }
    const size_t A = types.size(), P = neighbor.size();
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
#define UP(field, type, host, n)                                                               \
    do {                                                                                       \
        status = upload(h, &d, (host), sizeof(type) * (n), #field);                            \
        if (status) return status;                                                             \
        a.field = (const type *)d;                                                             \
    } while (0)
    UP(model.rc_radial, double, spec->rc_radial, (size_t)T * T);
    UP(model.rc_angular, double, spec->rc_angular, (size_t)T * T);
    UP(model.atomic_numbers, int, spec->atomic_numbers, (size_t)T);
    UP(types, int, types.data(), A);
    UP(atom_structure, int, atom_structure.data(), A);
    UP(pair_offset, long long, pair_offset.data(), A + 1);
    UP(in_offset, long long, in_offset.data(), A + 1);
    UP(in_pair, long long, in_pair.data(), P);
    UP(neighbor, int, neighbor.data(), P);
    UP(r, double, r.data(), 3 * P);
#undef UP
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
#define ALLOC(ptr, type, n)                                                                    \
    do {                                                                                       \
        status = dalloc(h, &d, sizeof(type) * (n), #ptr);                                      \
        if (status) return status;                                                             \
        ptr = (type *)d;                                                                       \
    } while (0)
    ALLOC(h->d_selected_atoms, int, A);
    ALLOC(h->d_selected, int, S);
    ALLOC(h->d_alpha, double, S);
    ALLOC(h->d_fadj, double, 3 * A);
    ALLOC(h->d_vadj, double, 9 * S);
    ALLOC(h->d_forces, double, 3 * A);
    ALLOC(h->d_energy, double, S);
    ALLOC(h->d_virials, double, 9 * S);
    ALLOC(h->d_gradient, double, a.model.num_parameters);
    ALLOC(a.e_atom, double, A);
    ALLOC(a.w_atom, double, 9 * A);
    ALLOC(a.v_pair, double, 3 * P);
    status = dalloc(h, &h->d_parameters, h->real * a.model.num_parameters, "parameters");
    if (status) return status;
    a.parameters = h->d_parameters;
    size_t tile = ROWS_BUDGET / (sizeof(double) * (a.model.num_parameters ? a.model.num_parameters : 1));
    if (tile < 32) tile = 32;
    if (tile > A) tile = A > 0 ? A : 1;
    h->tile = (int)tile;
    ALLOC(a.rows, double, tile * a.model.num_parameters);
    status = dalloc(h, &a.scratch, h->real * tile * (size_t)a.scratch_len, "scratch");
    if (status) return status;
#undef ALLOC
    a.selected_atoms = h->d_selected_atoms;
    return cuda_status(cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking), "stream");
}

} // namespace

extern "C" {

int nep_train_cuda_create(const nep_model_spec *spec, int num_systems, const nep_system *systems,
                          int use_float64, nep_train_cuda **out, int *bad_system)
{
    if (!out || !spec || num_systems < 0 || (num_systems > 0 && !systems)) return NEP_ERR_ARGUMENT;
    *out = nullptr;
    train_error[0] = '\0';
    nep_train_cuda *h = new (std::nothrow) nep_train_cuda();
    if (!h) return NEP_ERR_NOMEM;
    h->use_float64 = use_float64 != 0;
    const int status = create(spec, num_systems, systems, h, bad_system);
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
    for (int k = 0; k < num_selected; ++k) {
        const int s = selected[k];
        if (s < 0 || s >= h->num_systems) return NEP_ERR_ARGUMENT;
        for (long long i = h->structure_offset[s]; i < h->structure_offset[s + 1]; ++i)
            h->selected_atoms.push_back((int)i);
    }
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
    CHECK(cudaMemcpyAsync(h->d_selected_atoms, h->selected_atoms.data(),
                          sizeof(int) * h->selected_atoms.size(), cudaMemcpyHostToDevice, st),
          "selection");
    CHECK(cudaMemcpyAsync(h->d_selected, selected, sizeof(int) * num_selected,
                          cudaMemcpyHostToDevice, st), "selection");
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
    for (int first = 0; first < count; first += h->tile) {
        const int n = count - first < h->tile ? count - first : h->tile;
        if (gradient) CHECK(cudaMemsetAsync(a.rows, 0, sizeof(double) * P * (size_t)n, st), "rows");
        if (h->use_float64) nepct_f64::launch_atoms(a, first, n, st);
        else nepct_f32::launch_atoms(a, first, n, st);
        CHECK(cudaGetLastError(), "training kernel");
        if (gradient) {
            const int threads = 128;
            NEPCU_LAUNCH(columns_kernel, (unsigned)((P + threads - 1) / threads), threads, st, P, n,
                         (const double *)a.rows, h->d_gradient);
        }
    }
    const int threads = 128;
    if (count > 0)
        NEPCU_LAUNCH(forces_kernel, (count + threads - 1) / threads, threads, st, count,
                     (const int *)h->d_selected_atoms, a.pair_offset, a.in_offset, a.in_pair,
                     (const double *)a.v_pair, h->d_forces);
    if (num_selected > 0)
        NEPCU_LAUNCH(totals_kernel, (num_selected + threads - 1) / threads, threads, st,
                     num_selected, (const int *)h->d_selected, (const long long *)h->d_structure_offset,
                     (const double *)a.e_atom, (const double *)a.w_atom, h->d_energy, h->d_virials);
    CHECK(cudaGetLastError(), "training kernels");
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

int nep_train_cuda_predict_population(nep_train_cuda *h, int population,
                                      const double *parameters, int num_selected,
                                      const int *selected, double *energy, double *forces,
                                      double *virials)
{
    if (!h || population < 0 || (population > 0 && !parameters) || num_selected < 0 ||
        (num_selected > 0 && !selected) || !energy || !forces || !virials)
        return NEP_ERR_ARGUMENT;
    nepct_args a = h->args;
    const size_t P = a.model.num_parameters;
    int status = select_atoms(h, parameters, P * (size_t)population, num_selected, selected);
    if (status) return status;
    const int count = (int)h->selected_atoms.size();
    const size_t per = 3 * (size_t)count + 10 * (size_t)num_selected; /* forces, energy, virials */
    cudaStream_t st = h->stream;
    /* grow the population buffers when needed (all work on the stream is finished here) */
    const size_t pbytes = h->real * P * (size_t)population, obytes = sizeof(double) * per * population;
    if (pbytes > h->pop_parameters_bytes) {
        if (h->pop_parameters) cudaFree(h->pop_parameters);
        h->pop_parameters = nullptr;
        h->pop_parameters_bytes = 0;
        CHECK(cudaMalloc(&h->pop_parameters, pbytes), "population parameters");
        h->pop_parameters_bytes = pbytes;
    }
    if (obytes > h->pop_out_bytes) {
        if (h->pop_out) cudaFree(h->pop_out);
        h->pop_out = nullptr;
        h->pop_out_bytes = 0;
        void *d = nullptr;
        CHECK(cudaMalloc(&d, obytes), "population outputs");
        h->pop_out = (double *)d;
        h->pop_out_bytes = obytes;
    }
    status = upload_inputs(h, h->pop_parameters, parameters, P * (size_t)population, num_selected,
                           selected);
    if (status) return status;
    a.alpha = a.force_adjoint = a.virial_adjoint = nullptr;
    a.rows = nullptr;
    const int threads = 128;
    /* one launch sequence for the whole population, one synchronisation at the end */
    for (int k = 0; k < population; ++k) {
        a.parameters = (const char *)h->pop_parameters + h->real * P * (size_t)k;
        double *out = h->pop_out + per * (size_t)k;
        for (int first = 0; first < count; first += h->tile) {
            const int n = count - first < h->tile ? count - first : h->tile;
            if (h->use_float64) nepct_f64::launch_atoms(a, first, n, st);
            else nepct_f32::launch_atoms(a, first, n, st);
        }
        if (count > 0)
            NEPCU_LAUNCH(forces_kernel, (count + threads - 1) / threads, threads, st, count,
                         (const int *)h->d_selected_atoms, a.pair_offset, a.in_offset, a.in_pair,
                         (const double *)a.v_pair, out);
        if (num_selected > 0)
            NEPCU_LAUNCH(totals_kernel, (num_selected + threads - 1) / threads, threads, st,
                         num_selected, (const int *)h->d_selected,
                         (const long long *)h->d_structure_offset, (const double *)a.e_atom,
                         (const double *)a.w_atom, out + 3 * (size_t)count,
                         out + 3 * (size_t)count + num_selected);
    }
    CHECK(cudaGetLastError(), "training kernels");
    std::vector<double> &host = h->staging;
    host.resize(per * (size_t)population);
    CHECK(cudaMemcpyAsync(host.data(), h->pop_out, obytes, cudaMemcpyDeviceToHost, st), "outputs");
    CHECK(cudaStreamSynchronize(st), "synchronize");
#undef CHECK
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

size_t nep_train_cuda_device_bytes(const nep_train_cuda *h)
{
    return h ? h->bytes + h->pop_parameters_bytes + h->pop_out_bytes : 0;
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
    for (void *p : h->owned) cudaFree(p);
    delete h;
}

} /* extern "C" */
