/*
 * libFuzzer target: the RFM thresholds text (seg_rfm_thresholds_import).
 *
 * The first input byte picks the currency exponent (0..6); the rest is the
 * text.  Whatever imports must export, import again and export to the same
 * text, and score monotonically: a better value never scores lower.  See
 * tests/fuzz/README.md.
 */
#include <segment.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_rfm: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.currency_exponent = data[0] % 7;
    seg_db *db = NULL;
    if (seg_db_open(&db, ":memory:", &o) != SEG_OK)
        fail("seg_db_open", NULL);
    seg_rfm_thresholds *t = NULL;
    int rc = seg_rfm_thresholds_import(&t, db, (const char *)data + 1, size - 1);
    if (rc > 0)
        fail("positive status", NULL);
    if (rc != SEG_OK) {
        if (t)
            fail("failed import left an object", NULL);
        if (!*seg_errmsg(db))
            fail("failed import without a message", seg_errstr(rc));
        seg_db_close(db);
        return 0;
    }
    static char a[SEG_RFM_THRESHOLDS_TEXT_MAX], b[SEG_RFM_THRESHOLDS_TEXT_MAX];
    size_t na = seg_rfm_thresholds_export(a, sizeof a, t);
    if (na == 0 || na >= sizeof a)
        fail("export", "too long or empty");
    seg_rfm_thresholds *t2 = NULL;
    if (seg_rfm_thresholds_import(&t2, db, a, na) != SEG_OK)
        fail("the exported text does not import", seg_errmsg(db));
    size_t nb = seg_rfm_thresholds_export(b, sizeof b, t2);
    if (na != nb || memcmp(a, b, na) != 0)
        fail("export, import, export changed the text", a);
    uint32_t bins = seg_rfm_thresholds_bins(t);
    static const int64_t probes[] = { INT64_MIN, -100000, -1, 0, 1, 2, 3, 10, 30, 99, 1000,
                                      1000000, INT64_MAX };
    for (uint32_t dim = 0; dim < 3; dim++) {
        uint32_t prev = 0;
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            /* recency: fewer days is better, so walk it from the top */
            int64_t v = dim == SEG_RFM_R ? probes[sizeof probes / sizeof probes[0] - 1 - k]
                                         : probes[k];
            uint32_t s = seg_rfm_score(t, dim, v);
            if (s < 1 || s > bins)
                fail("score out of 1..bins", NULL);
            if (s < prev)
                fail("a better value scored lower", NULL);
            prev = s;
        }
    }
    seg_rfm_thresholds_free(t);
    seg_rfm_thresholds_free(t2);
    seg_db_close(db);
    return 0;
}
