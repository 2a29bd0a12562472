/* Shared pieces of stage 1, stage 2 and the replay (src/effect/stage1.c). */
#ifndef LRGD_EFFECT_STAGE_H
#define LRGD_EFFECT_STAGE_H

#include "effect/effect_impl.h"

lrgd_status st_check_opts(const lrgd_opt_opts *o);
/* M: perturbed copies per candidate (0 when perturbation is off). */
int st_n_copies(const lrgd_opt_opts *o);
/* Encode demonstration d (its most recent demo_hist items) into st; m > 0
 * encodes perturbed copy m, keyed by (seed, user, key, m). */
lrgd_status st_encode(lrgd_effect *e, lrgd_store *st, const lrgd_demo *d, int demo_hist, int user, int key, int m,
                      const lrgd_perturb *pt, const lrgd_popdist *pop, uint64_t seed, int *id);
/* Encode every candidate and its M copies: ids[c*(M+1) + m]. keys: the
 * perturbation key of each candidate (NULL: its index). */
lrgd_status st_prepare(lrgd_effect *e, lrgd_store *st, const lrgd_demo *cand, const int32_t *keys, int n, int user,
                       const lrgd_popdist *pop, const lrgd_opt_opts *o, int *ids);
/* The greedy choice (see stage1.c). forced: n_forced candidate indices in
 * prompt order to take instead of choosing. chosen: prompt order. w0_out:
 * |W_0|^2 of the query (may be NULL). */
lrgd_status st_greedy(lrgd_effect *e, lrgd_store *st, const int *ids, int n, const int *qtok, int nq, int32_t y,
                      const lrgd_opt_opts *o, const int *forced, int n_forced, int *chosen, int *n_chosen,
                      double *obj_out, double *w0_out);

#endif
