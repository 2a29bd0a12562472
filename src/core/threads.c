/* Threads: one OpenMP pool does all of lrgd's parallel work. OpenBLAS is kept
 * single-threaded and lrgd_sgemm / lrgd_matmul split their GEMMs over the
 * OpenMP threads themselves (linalg.c): with both pools active, OpenBLAS's
 * pthreads and the OpenMP workers spun against each other and 2 threads ran
 * slower than 1 (bench/NOTES.md). */
#include "core/core.h"
#include "core/kernels.h"

#include <cblas.h>
#include <omp.h>

static int g_threads;

/* An OpenMP build of OpenBLAS forwards openblas_set_num_threads to
 * omp_set_num_threads: keep the OpenMP count as it was. */
void lrgd_blas_single_thread(void)
{
    int omp = omp_get_max_threads();
    openblas_set_num_threads(1);
    if (omp_get_max_threads() != omp) omp_set_num_threads(omp);
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
