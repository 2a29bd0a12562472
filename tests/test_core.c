/* Core utilities: fp16, Q8_0, RNG streams, arena alignment, JSON, atomic files. */
#include "core/core.h"
#include "test.h"

#include <fcntl.h>
#include <unistd.h>

static void test_fp16(void)
{
    /* Every finite half round-trips exactly through float. */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        float f = lrgd_fp16_to_fp32((uint16_t)h);
        if (lrgd_fp32_to_fp16(f) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d halves do not round-trip", bad);
    CHECK(lrgd_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(lrgd_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(lrgd_fp16_to_fp32(0x0001) == 0x1.0p-24f);
    CHECK(lrgd_fp32_to_fp16(65520.0f) == 0x7c00); /* rounds to +inf */
    CHECK(lrgd_fp32_to_fp16(1.0f + 0x1.0p-11f) == 0x3c00); /* tie to even */
}

static void test_q8(void)
{
    lrgd_rng r;
    lrgd_rng_seed(&r, 1, 0);
    float x[256], y[256];
    lrgd_block_q8_0 q[8];
    for (int i = 0; i < 256; i++) x[i] = (float)lrgd_rng_normal(&r) * (i < 32 ? 100.0f : 1.0f);
    lrgd_quantize_q8_0(x, q, 256);
    lrgd_dequantize(LRGD_Q8_0, q, y, 256);
    for (int b = 0; b < 8; b++) {
        float amax = 0;
        for (int k = 0; k < 32; k++) amax = fmaxf(amax, fabsf(x[b * 32 + k]));
        /* half a quantization step, plus the fp16 rounding of the scale */
        float bound = amax / 127.0f * 0.5f + amax * 0x1.0p-11f;
        for (int k = 0; k < 32; k++) CHECK(fabsf(x[b * 32 + k] - y[b * 32 + k]) <= bound * 1.0001f);
    }
}

static void test_rng(void)
{
    lrgd_rng a, b, c;
    lrgd_rng_seed(&a, 7, 3);
    lrgd_rng_seed(&b, 7, 3);
    lrgd_rng_seed(&c, 7, 4);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = lrgd_rng_u64(&a), y = lrgd_rng_u64(&b), z = lrgd_rng_u64(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same);
    CHECK(diff == 100);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) counts[lrgd_rng_below(&a, 10)]++;
    for (int i = 0; i < 10; i++) CHECK(counts[i] > 9500 && counts[i] < 10500);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) { double v = lrgd_rng_normal(&a); s += v; s2 += v * v; }
    CHECK_NEAR(s / 100000, 0.0, 0.02);
    CHECK_NEAR(s2 / 100000, 1.0, 0.03);
}

static void test_arena(void)
{
    lrgd_arena a;
    CHECK_OK(lrgd_arena_init(&a, 1000));
    void *p = lrgd_arena_alloc(&a, 3), *q = lrgd_arena_alloc(&a, 5);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0 && q != p);
    CHECK(lrgd_arena_alloc(&a, 2000) == NULL);
    CHECK(lrgd_arena_alloc(&a, SIZE_MAX) == NULL);
    lrgd_arena_reset(&a);
    CHECK(lrgd_arena_alloc(&a, 900) == p);
    lrgd_arena_free(&a);
    CHECK(lrgd_alloc_n(SIZE_MAX / 2, 4) == NULL);
}

static void test_atomic(void)
{
    char path[] = "/tmp/lrgd_test_atomicXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(lrgd_write_file_atomic(path, "hello", 5));
    char *buf;
    size_t n;
    CHECK_OK(lrgd_read_file(path, &buf, &n));
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    lrgd_free(buf);
    /* An aborted write leaves the old content and no temp file behind. */
    lrgd_afile af;
    CHECK_OK(lrgd_afile_open(&af, path));
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", af.tmp);
    fputs("garbage", af.f);
    lrgd_afile_abort(&af);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_OK(lrgd_read_file(path, &buf, &n));
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    lrgd_free(buf);
    unlink(path);
    CHECK(lrgd_read_file("/nonexistent/x", &buf, &n) == LRGD_E_IO);
    CHECK(strstr(lrgd_last_error(), "/nonexistent/x") != NULL);
    /* An output that cannot be created is a write failure (a runtime failure, exit 1), unlike an
     * input that cannot be read (exit 2). A path under a regular file fails even for root. */
    char under[600];
    snprintf(under, sizeof under, "%s/x", path);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    close(fd);
    CHECK(lrgd_write_file_atomic(under, "x", 1) == LRGD_E_WRITE);
    CHECK(strstr(lrgd_last_error(), under) != NULL && strstr(lrgd_last_error(), "cannot create") != NULL);
    unlink(path);
    CHECK(lrgd_exit_code(LRGD_E_WRITE) == 1 && lrgd_exit_code(LRGD_E_IO) == 2);
    CHECK(!strcmp(lrgd_status_name(LRGD_E_WRITE), "write"));
}

static void test_json(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    lrgd_json j;
    lrgd_json_init(&j, f, 0);
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "a", "x\"y\n");
    lrgd_json_key(&j, "b");
    lrgd_json_arr_begin(&j);
    lrgd_json_num(&j, 1.5);
    lrgd_json_num(&j, NAN);
    lrgd_json_int(&j, -3);
    lrgd_json_arr_end(&j);
    lrgd_json_key(&j, "c");
    lrgd_json_obj_begin(&j);
    lrgd_json_obj_end(&j);
    lrgd_json_obj_end(&j);
    fclose(f);
    CHECK_MSG(strcmp(buf, "{\"a\":\"x\\\"y\\n\",\"b\":[1.5,null,-3],\"c\":{}}") == 0, "got %s", buf);
    free(buf);
}

static void test_matmul(void)
{
    /* y = x W^T against a double loop, F32 and Q8_0 (on dequantized values). */
    enum { N = 3, R = 5, C = 64 };
    float x[N * C], w[R * C], y[N * R], wd[R * C];
    lrgd_rng r;
    lrgd_rng_seed(&r, 2, 0);
    for (int i = 0; i < N * C; i++) x[i] = (float)lrgd_rng_normal(&r);
    for (int i = 0; i < R * C; i++) w[i] = (float)lrgd_rng_normal(&r);
    lrgd_block_q8_0 q[R * C / 32];
    lrgd_quantize_q8_0(w, q, R * C);
    lrgd_dequantize(LRGD_Q8_0, q, wd, R * C);
    for (int t = 0; t < 2; t++) {
        lrgd_weight W = {t ? LRGD_Q8_0 : LRGD_F32, t ? (const void *)q : (const void *)w, R, C};
        const float *ref = t ? wd : w;
        for (int n = 1; n <= N; n += 2) {
            lrgd_matmul(y, x, &W, n, 0);
            for (int i = 0; i < n; i++)
                for (int o = 0; o < R; o++) {
                    double s = 0;
                    for (int c = 0; c < C; c++) s += (double)x[i * C + c] * ref[o * C + c];
                    CHECK_NEAR(y[i * R + o], s, 1e-4 * (1 + fabs(s)));
                }
        }
    }
}

int main(void)
{
    test_fp16();
    test_q8();
    test_rng();
    test_arena();
    test_atomic();
    test_json();
    test_matmul();
    return t_finish("test_core");
}
