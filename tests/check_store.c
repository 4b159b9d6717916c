/*
 * tests/check_store.c: white-box tests of the store's building blocks: the
 * Robin Hood hash table (against a plain reference, with wrap-around), the
 * hash function and the inline byte comparison.
 */
#include "testutil.h"
#include "event/event-private.h"

Suite *store_suite(void);

static const seg__alloc *alloc(void)
{
    return &seg__default_alloc;
}

/* splitmix64 */
static uint64_t rng;
static uint64_t rnd(void)
{
    uint64_t z = (rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* the reference: key k (0..NKEYS) present or not, with its tag */
#define NKEYS 4000
static uint32_t tags[NKEYS];
static bool present[NKEYS];

static bool eq_index(const void *ctx, uint32_t i)
{
    return *(const uint32_t *)ctx == i;
}

static void check_all(const seg__htab *t)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < NKEYS; k++) {
        uint32_t got = seg__htab_find(t, tags[k], eq_index, &k);
        ck_assert_uint_eq(got, present[k] ? k : SEG__NONE);
        n += present[k];
    }
    ck_assert_uint_eq(t->count, n);
    /* the Robin Hood order: along the table, every entry is at most one
     * slot further from its home than the entry before it */
    for (uint32_t i = 0; i < t->cap; i++) {
        uint64_t s = t->slots[i];
        uint64_t prev = t->slots[i ? i - 1 : t->cap - 1];
        if (!s)
            continue;
        uint32_t h = (uint32_t)(((uint64_t)(uint32_t)(s >> 32) * t->cap) >> 32);
        uint32_t d = i >= h ? i - h : i + t->cap - h;
        if (d > 0) {
            ck_assert_msg(prev != 0, "slot %u: entry away from home after an empty slot", i);
            uint32_t ph = (uint32_t)(((uint64_t)(uint32_t)(prev >> 32) * t->cap) >> 32);
            uint32_t pi = i ? i - 1 : t->cap - 1;
            uint32_t pd = pi >= ph ? pi - ph : pi + t->cap - ph;
            ck_assert_msg(pd + 1 >= d, "slot %u: distance %u after %u", i, d, pd);
        }
    }
}

static void random_ops(uint32_t tag_mask, uint32_t tag_base)
{
    seg__htab t;
    memset(&t, 0, sizeof t);
    memset(present, 0, sizeof present);
    for (uint32_t k = 0; k < NKEYS; k++)
        tags[k] = tag_base + ((uint32_t)rnd() & tag_mask);
    for (int round = 0; round < 20000; round++) {
        uint32_t k = (uint32_t)(rnd() % NKEYS);
        if (!present[k]) {
            ck_assert_int_eq(seg__htab_reserve(alloc(), &t, 1), SEG_OK);
            seg__htab_insert(&t, tags[k], k);
            present[k] = true;
        } else if (rnd() % 3 == 0) {
            seg__htab_remove(&t, tags[k], k);
            present[k] = false;
        }
        if (round % 2500 == 0)
            check_all(&t);
    }
    check_all(&t);
    seg__htab_free(alloc(), &t);
}

START_TEST(htab_random)
{
    rng = 1;
    random_ops(UINT32_MAX, 0);
}
END_TEST

/* tags crowded at the top of the range: runs wrap around the table's end */
START_TEST(htab_wraparound)
{
    rng = 2;
    random_ops(0x00ffffffu, 0xff000000u);
}
END_TEST

/* many equal tags: lookups must compare the items, not only the tags */
START_TEST(htab_equal_tags)
{
    rng = 3;
    random_ops(0x7u, 0x80000000u);
}
END_TEST

START_TEST(hash_every_length)
{
    /* every length 0..64 and every byte position matter; results differ
     * by seed; the same input gives the same hash wherever it sits */
    uint8_t buf[80], other[96];
    for (int k = 0; k < 80; k++)
        buf[k] = (uint8_t)(k * 37 + 11);
    for (size_t n = 0; n <= 64; n++) {
        uint64_t h = seg__hash(buf, n, 1);
        ck_assert(h != seg__hash(buf, n, 2));
        if (n < 64)
            ck_assert(h != seg__hash(buf, n + 1, 1));
        memcpy(other + 7, buf, n);
        ck_assert(h == seg__hash(other + 7, n, 1));
        for (size_t i = 0; i < n; i++) {
            buf[i] ^= 0x01;
            ck_assert_msg(seg__hash(buf, n, 1) != h, "length %zu: byte %zu ignored", n, i);
            buf[i] ^= 0x01;
        }
    }
}
END_TEST

START_TEST(mem_eq_every_length)
{
    char a[40], b[40];
    for (int k = 0; k < 40; k++)
        a[k] = b[k] = (char)('a' + k % 26);
    for (size_t n = 0; n <= 40; n++) {
        ck_assert(seg__mem_eq(a, b, n));
        for (size_t i = 0; i < n; i++) {
            b[i] = '#';
            ck_assert_msg(!seg__mem_eq(a, b, n), "length %zu: byte %zu ignored", n, i);
            b[i] = a[i];
        }
    }
}
END_TEST

Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("htab");
    tcase_add_test(tc, htab_random);
    tcase_add_test(tc, htab_wraparound);
    tcase_add_test(tc, htab_equal_tags);
    suite_add_tcase(s, tc);
    tc = tcase_create("bytes");
    tcase_add_test(tc, hash_every_length);
    tcase_add_test(tc, mem_eq_every_length);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    int failures;
    srunner_run_all(sr, CK_ENV);
    failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures ? 1 : 0;
}
