#include "core/core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void lrgd_rng_seed(lrgd_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull) ^ 0x6A09E667F3BCC909ull;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lrgd_rng_u64(lrgd_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t lrgd_rng_below(lrgd_rng *r, uint32_t n)
{
    if (n == 0) return 0;
    /* Lemire's multiply-shift with rejection: exact uniformity. */
    uint64_t m = (uint64_t)(uint32_t)(lrgd_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (lo < thresh) {
            m = (uint64_t)(uint32_t)(lrgd_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double lrgd_rng_uniform(lrgd_rng *r) { return (double)(lrgd_rng_u64(r) >> 11) * 0x1.0p-53; }

double lrgd_rng_normal(lrgd_rng *r)
{
    /* Box-Muller; one value per call keeps the stream position simple. */
    double u1 = lrgd_rng_uniform(r), u2 = lrgd_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void lrgd_rng_draw_i32(lrgd_rng *r, int32_t *a, int n, int k)
{
    for (int i = 0; i < k; i++) {
        int j = i + (int)lrgd_rng_below(r, (uint32_t)(n - i));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
