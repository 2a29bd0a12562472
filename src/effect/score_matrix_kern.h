/* The kernel of lrgd_effect_score_matrix (score_matrix.c), included once per
 * instruction set with
 *   EFM_ATTR  the function attributes (target ISA, fp-contract),
 *   EFM_FN(x) the clone's name for x,
 *   EFM_NT4   1 to score four tokens per pass (AVX-512: 16 accumulators of
 *             one register each); 0: two (AVX2: a 16-lane vector is two
 *             registers, and 16 registers in all).
 * No vector crosses a function boundary (arguments and results are
 * pointers and scalars): every clone is safe to call from code built for
 * any target. */

EFM_ATTR static void EFM_FN(entry)(const lrgd_store *s, const efm_pack *k, int id, float *scratch, double *lane_acc)
{
    const int hd = k->hd, len = s->len[id], L = k->L, KVH = k->KVH, nb = k->nb;
    const float scale = 1.0f / sqrtf((float)hd);
    efm_v *S = (efm_v *)(void *)scratch, *T = S + len;
    const float *blk = s->kv + (size_t)s->off[id] * s->L * 2 * s->KV;
    for (int i = 0; i < nb * EFM_W; i++) lane_acc[i] = 0;
    for (int l = 0; l < L; l++)
        for (int kh = 0; kh < KVH; kh++) {
            const float *Kt = blk + (((size_t)l * 2 + 0) * KVH + kh) * hd * len;
            const float *Vt = blk + (((size_t)l * 2 + 1) * KVH + kh) * hd * len;
            for (int b = 0; b < nb; b++) {
                size_t pb = ((size_t)b * L + l) * KVH + kh;
                const float *qb = k->q + pb * hd * EFM_W, *gb = k->g + pb * hd * EFM_W;
                /* S[t] = scale * K_t . q (lanes: query vectors), T[t] = V_t . g */
                int t = 0;
#if EFM_NT4
                for (; t + 4 <= len; t += 4) {
                    efm_v s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0};
                    for (int d = 0; d < hd; d++) {
                        efm_v qv, gv;
                        memcpy(&qv, qb + (size_t)d * EFM_W, sizeof qv);
                        memcpy(&gv, gb + (size_t)d * EFM_W, sizeof gv);
                        const float *kr = Kt + (size_t)d * len + t, *vr = Vt + (size_t)d * len + t;
                        s0 += kr[0] * qv;
                        s1 += kr[1] * qv;
                        s2 += kr[2] * qv;
                        s3 += kr[3] * qv;
                        t0 += vr[0] * gv;
                        t1 += vr[1] * gv;
                        t2 += vr[2] * gv;
                        t3 += vr[3] * gv;
                    }
                    S[t] = s0 * scale;
                    S[t + 1] = s1 * scale;
                    S[t + 2] = s2 * scale;
                    S[t + 3] = s3 * scale;
                    T[t] = t0;
                    T[t + 1] = t1;
                    T[t + 2] = t2;
                    T[t + 3] = t3;
                }
#endif
                for (; t + 2 <= len; t += 2) {
                    efm_v s0 = {0}, s1 = {0}, t0 = {0}, t1 = {0};
                    for (int d = 0; d < hd; d++) {
                        efm_v qv, gv;
                        memcpy(&qv, qb + (size_t)d * EFM_W, sizeof qv);
                        memcpy(&gv, gb + (size_t)d * EFM_W, sizeof gv);
                        const float *kr = Kt + (size_t)d * len + t, *vr = Vt + (size_t)d * len + t;
                        s0 += kr[0] * qv;
                        s1 += kr[1] * qv;
                        t0 += vr[0] * gv;
                        t1 += vr[1] * gv;
                    }
                    S[t] = s0 * scale;
                    S[t + 1] = s1 * scale;
                    T[t] = t0;
                    T[t + 1] = t1;
                }
                if (t < len) {
                    efm_v s0 = {0}, s1 = {0}, t0 = {0}, t1 = {0};
                    int d = 0;
                    for (; d + 2 <= hd; d += 2) {
                        efm_v qv, gv, qw, gw;
                        memcpy(&qv, qb + (size_t)d * EFM_W, sizeof qv);
                        memcpy(&gv, gb + (size_t)d * EFM_W, sizeof gv);
                        memcpy(&qw, qb + (size_t)(d + 1) * EFM_W, sizeof qw);
                        memcpy(&gw, gb + (size_t)(d + 1) * EFM_W, sizeof gw);
                        s0 += Kt[(size_t)d * len + t] * qv;
                        s1 += Kt[(size_t)(d + 1) * len + t] * qw;
                        t0 += Vt[(size_t)d * len + t] * gv;
                        t1 += Vt[(size_t)(d + 1) * len + t] * gw;
                    }
                    if (d < hd) {
                        efm_v qv, gv;
                        memcpy(&qv, qb + (size_t)d * EFM_W, sizeof qv);
                        memcpy(&gv, gb + (size_t)d * EFM_W, sizeof gv);
                        s0 += Kt[(size_t)d * len + t] * qv;
                        t0 += Vt[(size_t)d * len + t] * gv;
                    }
                    S[t] = (s0 + s1) * scale;
                    T[t] = t0 + t1;
                }
                /* the per-lane combination, as score_fast does it per query vector */
                efm_v acc;
                if (k->linear) {
                    acc = S[0] * T[0];
                    for (int i = 1; i < len; i++) acc += S[i] * T[i];
                } else {
                    /* sum_i e_i (t_i - g.o) / (1 + sum_i e_i), e_i = exp(s_i - log Z), scaled by
                     * exp(-max(0, max_i(s_i - log Z))) so that nothing overflows */
                    efm_v lse, go, mx = {0}, num = {0}, den = {0}, e, x;
                    memcpy(&lse, k->lse + pb * EFM_W, sizeof lse);
                    memcpy(&go, k->go + pb * EFM_W, sizeof go);
                    for (int i = 0; i < len; i++) {
                        x = S[i] - lse;
                        EFM_SEL(mx, x > mx, x, mx);
                    }
                    for (int i = 0; i < len; i++) {
                        x = (S[i] - lse) - mx;
                        EFM_EXP(e, x);
                        num += e * (T[i] - go);
                        den += e;
                    }
                    x = -mx;
                    EFM_EXP(e, x);
                    acc = num / (den + e);
                }
                double *la = lane_acc + (size_t)b * EFM_W;
                float av[EFM_W];
                memcpy(av, &acc, sizeof av);
                for (int w = 0; w < EFM_W; w++) la[w] -= av[w];
            }
        }
}

EFM_ATTR static void EFM_FN(run)(const lrgd_store *s, const efm_pack *k, const int *ids, int i0, int i1,
                                  int n_ids, double *effect, double *per_token, float *scratch, double *lane_acc,
                                  int *bad)
{
    for (int i = i0; i < i1; i++) {
        if (i + 1 < i1) { /* the next entry's block: a jump the hardware prefetcher cannot foresee */
            const char *nb = (const char *)(s->kv + (size_t)s->off[ids[i + 1]] * s->L * 2 * s->KV);
            size_t bytes = (size_t)s->len[ids[i + 1]] * s->L * 2 * s->KV * sizeof(float);
            for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(nb + o);
        }
        EFM_FN(entry)(s, k, ids[i], scratch, lane_acc);
        int len = s->len[ids[i]];
        for (int u = 0; u < k->n_probes; u++) {
            const double *la = lane_acc + k->lane0[u];
            double v = 0;
            for (int j = 0; j < k->nlanes[u]; j++) v += la[j];
            effect[(size_t)u * n_ids + i] = v;
            if (per_token) per_token[(size_t)u * n_ids + i] = v / len;
            *bad |= !isfinite(v);
        }
    }
}
