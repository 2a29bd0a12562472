#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double lrgd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lrgd_status lrgd_map_file(const char *path, lrgd_mapped *m)
{
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lrgd_fail(LRGD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return lrgd_fail(LRGD_E_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        m->data = lrgd_alloc(1);
        if (!m->data) return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", path);
        m->size = 0;
        return LRGD_OK;
    }
    /* mapped bytes count against --max-memory like allocated ones */
    lrgd_status rs = lrgd_mem_reserve((size_t)st.st_size, "mapping the file");
    if (rs != LRGD_OK) {
        close(fd);
        return lrgd_fail_wrap(rs, "%s", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        lrgd_mem_release((size_t)st.st_size);
        return lrgd_fail(LRGD_E_IO, "%s: mmap failed: %s", path, strerror(errno));
    }
    m->data = p;
    m->size = (size_t)st.st_size;
    m->mapped = 1;
    return LRGD_OK;
}

void lrgd_unmap_file(lrgd_mapped *m)
{
    if (!m->data) return;
    if (m->mapped) {
        munmap((void *)m->data, m->size);
        lrgd_mem_release(m->size);
    }
    else lrgd_free((void *)m->data);
    memset(m, 0, sizeof *m);
}

lrgd_status lrgd_read_file(const char *path, char **out, size_t *size)
{
    *out = NULL;
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lrgd_fail(LRGD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (cap - n < 2) {
            if (cap > ((size_t)1 << 40)) { free(buf); fclose(f); return lrgd_fail(LRGD_E_NOMEM, "%s: file too large", path); }
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", path); }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return lrgd_fail(LRGD_E_IO, "%s: read error", path); }
    buf[n] = 0;
    /* lrgd_free is free(): a malloc'd buffer is fine to hand out. */
    *out = buf;
    if (size) *size = n;
    return LRGD_OK;
}

lrgd_status lrgd_afile_open(lrgd_afile *af, const char *path)
{
    memset(af, 0, sizeof *af);
    size_t len = strlen(path) + 32;
    af->path = strdup(path);
    af->tmp = malloc(len);
    if (!af->path || !af->tmp) { lrgd_afile_abort(af); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    snprintf(af->tmp, len, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        lrgd_status s = lrgd_fail(LRGD_E_WRITE, "%s: cannot create: %s", path, strerror(errno));
        lrgd_afile_abort(af);
        return s;
    }
    return LRGD_OK;
}

lrgd_status lrgd_afile_commit(lrgd_afile *af)
{
    lrgd_status s = LRGD_OK;
    if (!af->f) return lrgd_fail(LRGD_E_WRITE, "atomic file not open");
    if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0)
        s = lrgd_fail(LRGD_E_WRITE, "%s: write failed: %s", af->tmp, strerror(errno));
    if (fclose(af->f) != 0 && s == LRGD_OK) s = lrgd_fail(LRGD_E_WRITE, "%s: close failed: %s", af->tmp, strerror(errno));
    af->f = NULL;
    if (s == LRGD_OK && rename(af->tmp, af->path) != 0)
        s = lrgd_fail(LRGD_E_WRITE, "%s: rename to %s failed: %s", af->tmp, af->path, strerror(errno));
    if (s == LRGD_OK) {
        /* Make the rename itself durable. */
        char *dir = strdup(af->path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = ".";
            if (slash) { *slash = 0; d = slash == dir ? "/" : dir; }
            int fd = open(d, O_RDONLY | O_DIRECTORY);
            if (fd >= 0) { fsync(fd); close(fd); }
            free(dir);
        }
    } else {
        unlink(af->tmp);
    }
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    return s;
}

void lrgd_afile_abort(lrgd_afile *af)
{
    if (af->f) { fclose(af->f); af->f = NULL; }
    if (af->tmp) unlink(af->tmp);
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
}

lrgd_status lrgd_write_file_atomic(const char *path, const void *data, size_t size)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    if (size && fwrite(data, 1, size, af.f) != size) {
        lrgd_afile_abort(&af);
        return lrgd_fail(LRGD_E_WRITE, "%s: write failed", path);
    }
    return lrgd_afile_commit(&af);
}
