/*
 * libFuzzer target: seg_time_parse / seg_money_parse and their formatters.
 *
 * The first input byte picks the money exponent (0..6); the rest is the
 * text.  Whatever parses must format and parse back to the same value.
 * See tests/fuzz/README.md.
 */
#include <segment.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text, size_t len, int64_t v)
{
    fprintf(stderr, "fuzz_time_money: %s: '%.*s' -> %" PRId64 "\n", what, (int)len, text, v);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int exponent = data[0] % 7;
    /* a copy of exactly len bytes, so that reading past the end is caught */
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    if (!text)
        return 0;
    memcpy(text, data + 1, len);

    int64_t t = 12345, t2 = 0;
    int rc = seg_time_parse(&t, text, len);
    if (rc != SEG_OK && rc != SEG_EINVAL && rc != SEG_ERANGE)
        fail("seg_time_parse: unexpected status", text, len, rc);
    if (rc != SEG_OK && t != 0)
        fail("seg_time_parse: *out not 0 on failure", text, len, t);
    if (rc == SEG_OK) {
        char buf[32];
        if (t < SEG_TIME_MIN || t > SEG_TIME_MAX)
            fail("seg_time_parse: accepted a time out of range", text, len, t);
        size_t n = seg_time_format(buf, sizeof buf, t);
        if (n != 20 || strlen(buf) != 20)
            fail("seg_time_format: bad length", text, len, t);
        if (seg_time_parse(&t2, buf, n) != SEG_OK || t2 != t)
            fail("time does not round-trip", buf, n, t);
    }

    int64_t m = 12345, m2 = 0;
    rc = seg_money_parse(&m, text, len, exponent);
    if (rc != SEG_OK && rc != SEG_EINVAL && rc != SEG_ERANGE)
        fail("seg_money_parse: unexpected status", text, len, rc);
    if (rc != SEG_OK && m != 0)
        fail("seg_money_parse: *out not 0 on failure", text, len, m);
    if (rc == SEG_OK) {
        char buf[SEG_MONEY_BUFSIZE];
        if (m > SEG_AMOUNT_MAX || m < -SEG_AMOUNT_MAX)
            fail("seg_money_parse: accepted an amount out of range", text, len, m);
        size_t n = seg_money_format(buf, sizeof buf, m, exponent);
        if (n == 0 || n != strlen(buf))
            fail("seg_money_format: bad length", text, len, m);
        if (seg_money_parse(&m2, buf, n, exponent) != SEG_OK || m2 != m)
            fail("money does not round-trip", buf, n, m);
    }
    free(text);
    return 0;
}
