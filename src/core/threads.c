/* Threads: one OpenMP pool does all of lrgd's parallel work. OpenBLAS is kept
 * single-threaded and lrgd_sgemm / lrgd_matmul split their GEMMs over the
 * OpenMP threads themselves (linalg.c): with both pools active, OpenBLAS's
 * pthreads and the OpenMP workers spun against each other and 2 threads ran
 * slower than 1 (bench/NOTES.md). */
#include "core/core.h"
#include "core/kernels.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

static int g_threads;

/* An OpenMP build of OpenBLAS forwards openblas_set_num_threads to
 * omp_set_num_threads: keep the OpenMP count as it was. */
void lrgd_blas_single_thread(void)
{
    int omp = omp_get_max_threads();
    openblas_set_num_threads(1);
    if (omp_get_max_threads() != omp) omp_set_num_threads(omp);
}

/* libgomp reads its waiting policy once, at load. Its default spins at every
 * barrier for a long time, and when a teammate is descheduled (a loaded
 * machine, ctest running tests side by side) the spinners starve it: `lrgd
 * eval --threads 2` on Sports took 18.5 s instead of 0.5 s. Passive waiting
 * alone sleeps at once, and then each of a decoded token's ~65 short parallel
 * regions pays a futex wake-up: d512 Q8_0 decoding at 2 threads ran at 0.50x
 * of 1 thread on an idle machine. A short spin before sleeping
 * (GOMP_SPINCOUNT=1000) bridges the gaps between regions: 1.81x idle, and no
 * worse than none under load (bench/NOTES.md section 8). */
void lrgd_wait_policy_exec(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("LRGD_NO_REEXEC")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    if (!getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "1000", 1);
    setenv("LRGD_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
}

lrgd_status lrgd_set_threads(int n)
{
    if (n > 1024) return lrgd_fail(LRGD_E_INVALID, "threads: %d is more than the 1024 supported", n);
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n;
    lrgd_blas_single_thread();
    omp_set_num_threads(n);
    return LRGD_OK;
}

int lrgd_get_threads(void)
{
    if (g_threads <= 0) lrgd_set_threads(0);
    return g_threads;
}
