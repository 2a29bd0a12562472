/* Recommendation data: interaction datasets, item text, and the splits that
 * decide what a method may learn from and what it is judged on.
 *
 * Ownership: lrgd_dataset_load / _parse / _from_sequences return a dataset
 * the caller owns (lrgd_dataset_free). A split borrows its dataset, which
 * must outlive it. Pointers returned by accessors point into the dataset and
 * stay valid until it is freed. Datasets and splits are read-only after
 * construction (except lrgd_dataset_load_item_text), so any number of
 * threads may read them at once. */
#ifndef LRGD_DATA_H
#define LRGD_DATA_H

#include "lrgd/lrgd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- datasets ------------------------------------------------------------
 *
 * Internal ids are dense: users 0..n_users-1, items 0..n_items-1. Each
 * user's items are in time order (oldest first), stored as one CSR array.
 * External ids (the ids in the file) are kept for output.
 *
 * Formats
 *  - LRGD_DATA_AMAZON: one line per user, "user_id item_id item_id ...",
 *    items in time order (the S3-Rec/ICLRec files). Ids are non-negative
 *    decimal integers (< 10^18) separated by spaces or tabs; CRLF endings
 *    are accepted. A line holding only a user id is a user with no
 *    interactions: skipped and counted (stats.skipped_no_items).
 *    Users get internal ids in file order; items in ascending external id
 *    order (the Amazon files' item k becomes internal id k-1).
 *  - LRGD_DATA_RECBOLE: a RecBole atomic .inter file. First line is a header
 *    of tab-separated "name:type" fields in any order; user_id and item_id
 *    (any type) are required, timestamp (:float) is optional, other columns
 *    are ignored. Each user's items are sorted by timestamp, stably (ties
 *    and a missing timestamp column keep file order). Tokens are arbitrary
 *    non-empty strings without tabs. Users and items get internal ids in
 *    order of first appearance.
 *  - LRGD_DATA_AUTO: RecBole when the first line contains "user_id:" and a
 *    tab, Amazon otherwise.
 *
 * Strictness (each is LRGD_E_FORMAT with "FILE:LINE: what was expected"):
 * an empty or blank line anywhere (the formats have no blank lines, and a
 * blank line usually means a truncated or concatenated file), a
 * non-numeric or negative Amazon id, an id >= 10^18, a user that appears on
 * two lines (Amazon), a row with too few fields (RecBole), a timestamp that
 * is not a finite number, a file with no users at all. A missing or
 * unreadable file is LRGD_E_IO naming the file. Repeated items within one
 * user's sequence are allowed (repeat consumption) and counted. */

typedef struct lrgd_dataset lrgd_dataset;

typedef enum lrgd_data_format {
    LRGD_DATA_AUTO = 0,
    LRGD_DATA_AMAZON = 1,
    LRGD_DATA_RECBOLE = 2
} lrgd_data_format;

/* Counts filled in by loading. */
typedef struct lrgd_data_stats {
    int64_t n_users;          /* users kept (with >= 1 interaction) */
    int64_t n_items;          /* distinct items */
    int64_t n_interactions;   /* total items over all sequences */
    int64_t n_lines;          /* data lines read (Amazon: users; RecBole: rows, header excluded) */
    int64_t skipped_no_items; /* Amazon lines with a user id and no items (not kept) */
    int64_t n_repeats;        /* interactions whose item already occurs earlier in the same sequence */
    int64_t n_short;          /* kept users with < 3 interactions (the leave-one-out split skips them) */
    int min_len, max_len;     /* shortest / longest sequence among kept users */
    double load_seconds;      /* wall time of parsing + building */
} lrgd_data_stats;

/* Load a dataset file. fmt LRGD_DATA_AUTO sniffs the format (see above). */
lrgd_status lrgd_dataset_load(const char *path, lrgd_data_format fmt, lrgd_dataset **out);
/* Same from a buffer; name is used in error messages ("name:LINE: ..."). */
lrgd_status lrgd_dataset_parse(const char *buf, size_t len, const char *name, lrgd_data_format fmt,
                               lrgd_dataset **out);
/* Build from memory: n_users sequences, user u's items are
 * items[offsets[u] .. offsets[u+1]) with internal ids in [0, n_items).
 * External ids become "u"/"i" decimal numbers equal to the internal ids.
 * Every user needs >= 1 item. Arrays are copied. */
lrgd_status lrgd_dataset_from_sequences(int n_users, const int64_t *offsets, const int32_t *items, int n_items,
                                        lrgd_dataset **out);
void lrgd_dataset_free(lrgd_dataset *ds);

int lrgd_dataset_n_users(const lrgd_dataset *ds);
int lrgd_dataset_n_items(const lrgd_dataset *ds);
int64_t lrgd_dataset_n_interactions(const lrgd_dataset *ds);
const lrgd_data_stats *lrgd_dataset_stats(const lrgd_dataset *ds);
lrgd_data_format lrgd_dataset_format(const lrgd_dataset *ds);
/* Path or name the dataset came from ("" for from_sequences). */
const char *lrgd_dataset_source(const lrgd_dataset *ds);

/* User u's whole sequence (time order), *len >= 1. This includes held-out
 * items: methods must read their inputs through a split instead. */
void lrgd_dataset_user_items(const lrgd_dataset *ds, int u, const int32_t **items, int *len);
/* The CSR arrays: offsets[n_users + 1], items[n_interactions]. */
const int64_t *lrgd_dataset_offsets(const lrgd_dataset *ds);
const int32_t *lrgd_dataset_items(const lrgd_dataset *ds);

/* External ids. _name: the id as text (Amazon: canonical decimal; RecBole:
 * the token). _ext: the id as an integer, or -1 when the token is not a
 * non-negative decimal integer below 10^18. */
const char *lrgd_dataset_user_name(const lrgd_dataset *ds, int u);
const char *lrgd_dataset_item_name(const lrgd_dataset *ds, int i);
int64_t lrgd_dataset_user_ext(const lrgd_dataset *ds, int u);
int64_t lrgd_dataset_item_ext(const lrgd_dataset *ds, int i);
/* External id text (len bytes, need not be NUL-terminated) to internal id;
 * -1 if unknown. Amazon datasets compare numerically ("007" finds 7). */
int lrgd_dataset_find_item(const lrgd_dataset *ds, const char *name, size_t len);
int lrgd_dataset_find_user(const lrgd_dataset *ds, const char *name, size_t len);

/* ---- item text ------------------------------------------------------------
 *
 * Attach a title per item (used for text prompts). Accepted files:
 *  - a header row whose fields (names before any ":type") include item_id
 *    and one of title / keywords (searched in that order). If a brand field
 *    is present and the brand is non-empty and not already inside the
 *    title, the text is "TITLE (BRAND)". This covers RecBole .item files and
 *    the shared NAME.items.tsv files (title+brand for Beauty/Toys, keywords
 *    for Sports).
 *  - no header (first field of line 1 is not "item_id"): "item_id<TAB>title".
 * Errors (LRGD_E_FORMAT, naming FILE:LINE): an item id unknown to the
 * dataset, an item listed twice, a row with too few fields, an empty line, a
 * header without item_id or without a text field. Items the file does not
 * list have no text (lrgd_dataset_item_text returns NULL); an empty field is
 * an empty text "". Loading again replaces the previous text. Not safe to
 * call while other threads read the dataset. */
lrgd_status lrgd_dataset_load_item_text(lrgd_dataset *ds, const char *path);
lrgd_status lrgd_dataset_parse_item_text(lrgd_dataset *ds, const char *buf, size_t len, const char *name);
/* NULL when no text is attached for item i. */
const char *lrgd_dataset_item_text(const lrgd_dataset *ds, int i);
/* Number of items with text attached (0 if none loaded). */
int lrgd_dataset_n_item_text(const lrgd_dataset *ds);

/* ---- splits ---------------------------------------------------------------
 *
 * A split holds back the last s items of every user and reveals them one
 * step at a time. For a user with n items, let base = n - s. At step
 * r = 0..s-1:
 *   - the known prefix is items[0 .. base+r-1] (length base+r);
 *   - the target is items[base+r];
 *   - items[base+r ..] of EVERY user are held out: nothing used to fit a
 *     method or to build demonstrations at step r may read them.
 * Steps advance all users together (the files carry no global time).
 * A user takes part only if n >= s + 1 (at least one known item at step 0);
 * shorter users are skipped at every step: they are never targets and their
 * items are not training data either.
 *
 * Leave-one-out (LRGD.md §5) is the split with s = 2:
 *   step LRGD_STEP_VALID (0): input = all but the last two, target = the
 *       second last (validation item);
 *   step LRGD_STEP_TEST (1): input = all but the last, target = the last
 *       (test item). Training data at this step is train + validation items
 *       of every user (the usual practice for test evaluation: the
 *       validation item is also in every test input); test items never are.
 *   Users with fewer than 3 interactions are skipped.
 *
 * Inputs and training data are the same prefix: a query user's input at
 * step r is exactly what every other method may learn from that user at
 * step r. They have separate accessors so call sites say which they mean. */

typedef struct lrgd_split lrgd_split;

enum { LRGD_STEP_VALID = 0, LRGD_STEP_TEST = 1 };

/* Leave-one-out (s = 2). */
lrgd_status lrgd_split_loo(const lrgd_dataset *ds, lrgd_split **out);
/* Replay split with s >= 1 held-back items per user. */
lrgd_status lrgd_split_replay(const lrgd_dataset *ds, int s, lrgd_split **out);
void lrgd_split_free(lrgd_split *sp);

const lrgd_dataset *lrgd_split_dataset(const lrgd_split *sp);
/* Number of steps s (2 for leave-one-out). */
int lrgd_split_n_steps(const lrgd_split *sp);
/* 1 if created by lrgd_split_loo. */
int lrgd_split_is_loo(const lrgd_split *sp);
/* Users that take part (the same at every step), ascending ids. */
int lrgd_split_n_users(const lrgd_split *sp);
const int32_t *lrgd_split_users(const lrgd_split *sp);
/* Users skipped for having fewer than s + 1 interactions. */
int lrgd_split_n_skipped(const lrgd_split *sp);
/* 1 if user u takes part. */
int lrgd_split_has_user(const lrgd_split *sp, int u);

/* The query input of user u at step: the known prefix. len 0 and NULL for a
 * skipped user or an out-of-range step. */
void lrgd_split_history(const lrgd_split *sp, int step, int u, const int32_t **items, int *len);
/* The target of user u at step; -1 for a skipped user or a bad step. */
int32_t lrgd_split_target(const lrgd_split *sp, int step, int u);
/* What fitting and demonstration pools may use from user u at step: the
 * same known prefix (len 0 for skipped users). Demonstrations built from it
 * take (items[0..j-1], items[j]) for j < len: never a held-out item. */
void lrgd_split_train_items(const lrgd_split *sp, int step, int u, const int32_t **items, int *len);
/* Total training interactions at step (sum of train_items lengths). */
int64_t lrgd_split_n_train(const lrgd_split *sp, int step);

#ifdef __cplusplus
}
#endif

#endif
