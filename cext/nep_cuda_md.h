/*
 * nepzbl device MD loop: velocity Verlet with positions, velocities, forces and the neighbour
 * list on the GPU (nep_cuda_md.cu). It mirrors the array MD engine of the Python package
 * (nepzbl_plugin/md/dynamics.py) step for step: half kick, half drift, [Langevin O step],
 * half drift, forces, half kick, then [Bussi or Berendsen velocity scaling], [Berendsen or
 * stochastic-cell-rescaling barostat]. Units are ASE's: Angstrom, eV, amu, ASE time units.
 *
 * Random numbers are Philox-4x32-10 keyed by the seed and counted by atom and step
 * (nep_cuda_rng.cuh), so a run is reproducible bit for bit on the same device and build.
 * Reductions (kinetic energy, mean square displacements) run in a fixed order; observers use
 * integer atomics only (histogram counts) or an order-free minimum, so results never depend on
 * thread scheduling.
 *
 * Every entry point returns an enum nep_status value; nep_cuda_strerror() describes it.
 */
#ifndef NEPZBL_NEP_CUDA_MD_H
#define NEPZBL_NEP_CUDA_MD_H

#include "nep.h"
#include "nep_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

enum nep_md_thermostat { NEP_MD_NONE = 0, NEP_MD_LANGEVIN = 1, NEP_MD_BUSSI = 2, NEP_MD_BERENDSEN = 3 };
enum nep_md_barostat { NEP_MD_NO_BAROSTAT = 0, NEP_MD_BARO_BERENDSEN = 1, NEP_MD_BARO_SCR = 2 };

typedef struct nep_cuda_md_settings {
    double dt;                 /* time step, ASE time units */
    int thermostat;            /* enum nep_md_thermostat */
    int barostat;              /* enum nep_md_barostat (needs pbc in all directions) */
    int anisotropic;           /* barostat: the three axes independently */
    int dof;                   /* degrees of freedom of the temperature */
    double dt_over_tau_t;      /* thermostat coupling (Langevin: friction x dt) */
    double dt_over_tau_p;      /* barostat coupling */
    double beta;               /* compressibility, Angstrom^3 / eV */
    double target_pressure[3]; /* eV / Angstrom^3 */
    double boltzmann;          /* eV / K */
    unsigned long long seed;
    /* Temperature models (nep4_temperature): their temperature input (K) at creation. After
     * that every step takes its target temperature, as GPUMD's runs do; without targets the
     * input stays at this value. */
    double model_temperature;
} nep_cuda_md_settings;

typedef struct nep_cuda_md nep_cuda_md;

/* A run of num_atoms atoms on `model` (which it uses exclusively while it lives; the model
 * must outlive it). Velocities in ASE units. Evaluates the starting forces. */
int nep_cuda_md_create(nep_cuda_model *model, int num_atoms, const int *types,
                       const double *masses, const double *positions, const double *velocities,
                       const double cell[9], const int pbc[3], const nep_cuda_md_settings *settings,
                       nep_cuda_md **out);
void nep_cuda_md_free(nep_cuda_md *md);

/* `steps` steps; targets[k] is the target temperature (K) of step done + k + 1 (ignored without
 * a thermostat, except by temperature models, whose temperature input it is; NULL keeps the
 * input where it was). The virial is evaluated on the last step (and every step with a barostat).
 * A non-finite energy or overlapping atoms end the call with an error status and *done the
 * steps completed. */
int nep_cuda_md_run(nep_cuda_md *md, int steps, const double *targets, int *done);

/* The state now (any pointer may be NULL): positions [N][3], velocities [N][3], cell [9],
 * potential energy, virial [9] (of the last step that evaluated one), the kinetic tensor
 * sum_i m_i v_ia v_ib [9] and the step count. */
int nep_cuda_md_state(nep_cuda_md *md, double *positions, double *velocities, double *cell,
                      double *energy, double *virial, double *kinetic, long *step);

/* Shortest distance per ordered type pair [T*T] among pairs closer than `search` (at most the
 * model's largest cutoff); pairs with none get +inf. */
int nep_cuda_md_min_distances(nep_cuda_md *md, double search, double *out);

/* Partial RDF counts: rdf_setup clears a [T*T][bins] histogram of ordered pair distances below
 * r_max (at most the model's largest cutoff); rdf_sample adds the current frame; rdf_counts
 * downloads the histogram (as doubles) and the number of frames sampled. */
int nep_cuda_md_rdf_setup(nep_cuda_md *md, double r_max, int bins);
int nep_cuda_md_rdf_sample(nep_cuda_md *md);
int nep_cuda_md_rdf_counts(nep_cuda_md *md, double *counts, int *frames);

/* Mean square displacement per type and axis [T][3] (Angstrom^2) from the positions at
 * msd_origin (the start, by default), positions unwrapped. */
int nep_cuda_md_msd_origin(nep_cuda_md *md);
int nep_cuda_md_msd(nep_cuda_md *md, double *out);

#ifdef __cplusplus
}
#endif
#endif
