/* Internal to src/rec: the dataset and split structs and the id maps behind
 * them. Everything outside src/rec goes through include/lrgd/data.h. */
#ifndef LRGD_REC_H
#define LRGD_REC_H

#include "core/core.h"
#include "lrgd/data.h"
#include "lrgd/eval.h"

/* Open-addressing map from a non-negative int64 key to an int32 id. */
typedef struct rec_intmap {
    int64_t *keys; /* -1: empty slot */
    int32_t *vals;
    size_t cap, count; /* cap is a power of two */
} rec_intmap;

/* Open-addressing map from a string (held elsewhere, by id) to its id. The
 * strings live in a growable buffer addressed by offsets, so the map stores
 * only ids and hashes. */
typedef struct rec_strmap {
    int32_t *slot; /* id, -1: empty */
    uint64_t *hash;
    size_t cap, count;
} rec_strmap;

/* Names as one buffer of NUL-terminated strings; off[id] is where id's starts. */
typedef struct rec_names {
    char *buf;
    size_t len, cap;
    int64_t *off;
    size_t n, ncap;
} rec_names;

struct lrgd_dataset {
    lrgd_data_format fmt;
    char *source;
    int n_users, n_items;
    int64_t n_inter;
    int64_t *offsets; /* [n_users + 1] */
    int32_t *items;   /* [n_inter] */
    int64_t *user_ext, *item_ext;
    rec_names user_names, item_names;
    /* Lookup by external id: Amazon (integer ids) uses the int maps,
     * RecBole and from_sequences the string maps. */
    rec_intmap user_imap, item_imap;
    rec_strmap user_smap, item_smap;
    int by_int;
    /* Item text: text_off[i] into text_buf, -1 when none. */
    char *text_buf;
    int64_t *text_off;
    int n_text;
    lrgd_data_stats stats;
};

struct lrgd_split {
    const lrgd_dataset *ds;
    int s, loo;
    int n_users, n_skipped;
    int32_t *users;    /* ascending ids of users that take part */
    uint8_t *member;   /* [ds->n_users] */
    int64_t *n_train;  /* [s] */
};

/* maps */
lrgd_status rec_intmap_init(rec_intmap *m, size_t expect);
void rec_intmap_free(rec_intmap *m);
/* Returns the existing id of key, or inserts val and returns -1. -2 on OOM. */
int32_t rec_intmap_put(rec_intmap *m, int64_t key, int32_t val);
int32_t rec_intmap_get(const rec_intmap *m, int64_t key);

uint64_t rec_hash_bytes(const char *s, size_t len);
lrgd_status rec_strmap_init(rec_strmap *m, size_t expect);
void rec_strmap_free(rec_strmap *m);
/* Find s in the map (strings by id in names); -1 if absent. */
int32_t rec_strmap_get(const rec_strmap *m, const rec_names *names, const char *s, size_t len, uint64_t h);
/* Insert id (whose string is already in names) under hash h. */
lrgd_status rec_strmap_add(rec_strmap *m, const rec_names *names, int32_t id, uint64_t h);

lrgd_status rec_names_push(rec_names *n, const char *s, size_t len);
void rec_names_free(rec_names *n);
static inline const char *rec_name(const rec_names *n, int64_t id) { return n->buf + n->off[id]; }

/* Parse a whole token as an id: digits only, < 10^18. Returns the value, or
 * -1 (not a non-negative integer) / -2 (negative number) / -3 (too large). */
int64_t rec_parse_id(const char *s, size_t len);

/* Negative sampling with caller scratch: mark is a zeroed byte array of
 * n_items, returned zeroed. */
lrgd_status rec_sample_negatives(const lrgd_dataset *ds, int u, int n_neg, uint64_t seed, int32_t *out,
                                 uint8_t *mark);

#endif
