#include "core/core.h"

#include <cblas.h>
#include <omp.h>

static int g_threads;

lrgd_status lrgd_set_threads(int n)
{
    if (n > 1024) return lrgd_fail(LRGD_E_INVALID, "threads: %d is more than the 1024 supported", n);
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return LRGD_OK;
}

int lrgd_get_threads(void)
{
    if (g_threads <= 0) lrgd_set_threads(0);
    return g_threads;
}
