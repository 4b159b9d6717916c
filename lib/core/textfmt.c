/*
 * Time and money as text: seg_time_parse/format, seg_money_parse/format.
 *
 * These sit on the CSV import's hot path (two calls per row), so they are
 * hand-written digit loops: no strtol, no sscanf, no locale.
 *
 * Dates are proleptic Gregorian.  Day numbers count from 1970-01-01.
 */
#include "segment-private.h"

/* value of a decimal digit, or > 9 for anything else */
#define DIGIT(ch) ((unsigned)(unsigned char)(ch) - (unsigned)'0')

#define SECS_PER_DAY INT64_C(86400)
/* 0001-01-01 .. 1970-01-01 */
#define DAYS_0001_TO_1970 INT64_C(719162)
/* one 400-year Gregorian cycle */
#define DAYS_PER_400Y INT64_C(146097)

static const uint16_t days_before_month[13] = {
    0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334
};

static inline bool is_leap(unsigned y)
{
    return (y % 4u == 0 && y % 100u != 0) || y % 400u == 0;
}

static inline unsigned month_days(unsigned y, unsigned m)
{
    static const uint8_t md[13] = { 0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29u : md[m];
}

/*
 * Day number (days since 1970-01-01) of a valid date, year 0..9999.
 * The days before year Y (Y >= 1), counted from 0001-01-01, are
 * 365(Y-1) + (Y-1)/4 - (Y-1)/100 + (Y-1)/400.  To make year 0 work with C's
 * truncating division, count for year y + 400 and take one 400-year cycle
 * off again.
 */
static int64_t day_number(unsigned y, unsigned m, unsigned d)
{
    int64_t p = (int64_t)y + 399; /* years before year y + 400 */
    int64_t days = 365 * p + p / 4 - p / 100 + p / 400 - DAYS_PER_400Y;
    days += days_before_month[m] + (m > 2 && is_leap(y)) + (int64_t)d - 1;
    return days - DAYS_0001_TO_1970;
}

/* Date of a day number (days since 1970-01-01) at or after 0001-01-01. */
static void civil_date(int64_t dn, unsigned *y_out, unsigned *m_out, unsigned *d_out)
{
    int64_t d = dn + DAYS_0001_TO_1970; /* days since 0001-01-01, >= 0 */
    int64_t c400 = d / DAYS_PER_400Y;
    d %= DAYS_PER_400Y;
    int64_t c100 = d / 36524; /* centuries within the cycle; 4 on its last day */
    if (c100 == 4)
        c100 = 3;
    d -= c100 * 36524;
    int64_t c4 = d / 1461; /* four-year groups within the century */
    d %= 1461;
    int64_t c1 = d / 365; /* years within the group; 4 on a leap year's last day */
    if (c1 == 4)
        c1 = 3;
    d -= c1 * 365; /* day of the year, 0-based */
    unsigned y = (unsigned)(400 * c400 + 100 * c100 + 4 * c4 + c1 + 1);
    unsigned leap = is_leap(y);
    unsigned m = 1;
    while (m < 12 && d >= (int64_t)(days_before_month[m + 1] + (m + 1 > 2 ? leap : 0)))
        m++;
    d -= days_before_month[m] + (m > 2 ? leap : 0);
    *y_out = y;
    *m_out = m;
    *d_out = (unsigned)d + 1;
}

/* two digits at p, or -1 */
static inline int two_digits(const char *p)
{
    unsigned a = DIGIT(p[0]), b = DIGIT(p[1]);
    return a > 9 || b > 9 ? -1 : (int)(a * 10 + b);
}

/* "YYYY-MM-DD" at p (10 bytes available): the day number, or SEG_EINVAL */
static int parse_date(const char *p, int64_t *day_out)
{
    unsigned y0 = DIGIT(p[0]), y1 = DIGIT(p[1]), y2 = DIGIT(p[2]), y3 = DIGIT(p[3]);
    int m = two_digits(p + 5), d = two_digits(p + 8);
    if (y0 > 9 || y1 > 9 || y2 > 9 || y3 > 9 || p[4] != '-' || p[7] != '-' || m < 1 || m > 12 || d < 1)
        return SEG_EINVAL;
    unsigned y = y0 * 1000 + y1 * 100 + y2 * 10 + y3;
    if ((unsigned)d > month_days(y, (unsigned)m))
        return SEG_EINVAL;
    *day_out = day_number(y, (unsigned)m, (unsigned)d);
    return SEG_OK;
}

static inline int parse_date_cached(seg__time_cache *c, const char *p, int64_t *day_out)
{
    if (c && c->date[0] && memcmp(c->date, p, 10) == 0) {
        *day_out = c->day;
        return SEG_OK;
    }
    int rc = parse_date(p, day_out);
    if (rc == SEG_OK && c) {
        memcpy(c->date, p, 10);
        c->day = *day_out;
    }
    return rc;
}

static inline int range_check(int64_t *out, int64_t t)
{
    if (t < SEG_TIME_MIN || t > SEG_TIME_MAX)
        return SEG_ERANGE;
    *out = t;
    return SEG_OK;
}

int seg__parse_int64(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (n && (p[0] == '-' || p[0] == '+')) {
        neg = p[0] == '-';
        i = 1;
    }
    if (i == n)
        return SEG_EINVAL;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool big = false;
    for (; i < n; i++) {
        unsigned dg = (unsigned)(unsigned char)p[i] - '0';
        if (dg > 9)
            return SEG_EINVAL;
        if (big || v > (lim - dg) / 10)
            big = true;
        else
            v = v * 10 + dg;
    }
    if (big)
        return SEG_ERANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return SEG_OK;
}

/* optional sign and decimal digits: epoch seconds */
static int parse_epoch(int64_t *out, const char *p, size_t n)
{
    int64_t v;
    int rc = seg__parse_int64(p, n, &v);
    return rc != SEG_OK ? rc : range_check(out, v);
}

/* ISO-8601 with a 10-byte date at p, n >= 10 */
static int parse_iso(seg__time_cache *c, int64_t *out, const char *p, size_t n)
{
    int64_t day;
    if (parse_date_cached(c, p, &day) != SEG_OK)
        return SEG_EINVAL;
    if (n == 10)
        return range_check(out, day * SECS_PER_DAY);
    if ((p[10] != 'T' && p[10] != 't' && p[10] != ' ') || n < 16 || p[13] != ':')
        return SEG_EINVAL;
    int hh = two_digits(p + 11), mi = two_digits(p + 14), ss = 0;
    if (hh < 0 || hh > 23 || mi < 0 || mi > 59)
        return SEG_EINVAL;
    size_t i = 16;
    if (i < n && p[i] == ':') {
        if (n - i < 3)
            return SEG_EINVAL;
        ss = two_digits(p + i + 1);
        if (ss < 0 || ss > 59) /* no leap seconds: 60 is not representable */
            return SEG_EINVAL;
        i += 3;
        if (i < n && (p[i] == '.' || p[i] == ',')) {
            /* a fraction of a second is dropped: with whole-minute offsets
             * that is the floor of the exact time, for negative times too */
            size_t start = ++i;
            while (i < n && DIGIT(p[i]) <= 9)
                i++;
            if (i == start)
                return SEG_EINVAL;
        }
    }
    int64_t off = 0;
    if (i < n) {
        if (p[i] == 'Z' || p[i] == 'z') {
            i++;
        } else if (p[i] == '+' || p[i] == '-') {
            bool neg = p[i] == '-';
            i++;
            if (n - i < 2)
                return SEG_EINVAL;
            int oh = two_digits(p + i), om = 0;
            i += 2;
            if (i < n && p[i] == ':') {
                if (n - i < 3)
                    return SEG_EINVAL;
                om = two_digits(p + i + 1);
                i += 3;
            } else if (n - i >= 2) {
                om = two_digits(p + i);
                i += 2;
            }
            if (oh < 0 || oh > 23 || om < 0 || om > 59)
                return SEG_EINVAL;
            off = (int64_t)oh * 3600 + (int64_t)om * 60;
            if (neg)
                off = -off;
        } else {
            return SEG_EINVAL;
        }
    }
    if (i != n)
        return SEG_EINVAL;
    return range_check(out, day * SECS_PER_DAY + hh * 3600 + mi * 60 + ss - off);
}

int seg__time_parse_cached(seg__time_cache *c, int64_t *out, const char *p, size_t n)
{
    int64_t t = 0;
    int rc;
    if (n == 20 && p[19] == 'Z' && p[10] == 'T' && p[13] == ':' && p[16] == ':') {
        /* the common export form YYYY-MM-DDTHH:MM:SSZ; the checks are
         * combined without branches */
        int64_t day;
        unsigned h1 = DIGIT(p[11]), h2 = DIGIT(p[12]), m1 = DIGIT(p[14]), m2 = DIGIT(p[15]);
        unsigned s1 = DIGIT(p[17]), s2 = DIGIT(p[18]);
        unsigned hh = h1 * 10 + h2, mi = m1 * 10 + m2, ss = s1 * 10 + s2;
        unsigned bad = (h1 > 9) | (h2 > 9) | (m1 > 9) | (m2 > 9) | (s1 > 9) | (s2 > 9) |
                       (hh > 23) | (mi > 59) | (ss > 59);
        if (bad || parse_date_cached(c, p, &day) != SEG_OK) {
            rc = SEG_EINVAL;
        } else {
            t = day * SECS_PER_DAY + (int64_t)(hh * 3600 + mi * 60 + ss);
            rc = t < SEG_TIME_MIN ? SEG_ERANGE : SEG_OK; /* only year 0 */
        }
    } else if (n >= 10 && p[4] == '-' && DIGIT(p[0]) <= 9) {
        rc = parse_iso(c, &t, p, n);
    } else {
        rc = parse_epoch(&t, p, n);
    }
    *out = rc == SEG_OK ? t : 0;
    return rc;
}

SEG_API int seg_time_parse(int64_t *out, const char *text, size_t len)
{
    if (!out)
        return SEG_EINVAL;
    if (!text) {
        *out = 0;
        return SEG_EINVAL;
    }
    return seg__time_parse_cached(NULL, out, text, len);
}

static inline void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

SEG_API size_t seg_time_format(char *buf, size_t size, int64_t t)
{
    if (!buf || size < 21)
        return 0;
    if (t < SEG_TIME_MIN || t > SEG_TIME_MAX) {
        buf[0] = '\0';
        return 0;
    }
    int64_t day = seg__day_of(t);
    unsigned sod = (unsigned)(t - day * SECS_PER_DAY);
    unsigned y, m, d;
    civil_date(day, &y, &m, &d);
    put2(buf, y / 100);
    put2(buf + 2, y % 100);
    buf[4] = '-';
    put2(buf + 5, m);
    buf[7] = '-';
    put2(buf + 8, d);
    buf[10] = 'T';
    put2(buf + 11, sod / 3600);
    buf[13] = ':';
    put2(buf + 14, sod / 60 % 60);
    buf[16] = ':';
    put2(buf + 17, sod % 60);
    buf[19] = 'Z';
    buf[20] = '\0';
    return 20;
}

SEG_API int seg_money_parse(int64_t *out, const char *text, size_t len, int exponent)
{
    if (!out)
        return SEG_EINVAL;
    *out = 0;
    if ((!text && len) || exponent < 0 || exponent > 6 || len == 0)
        return SEG_EINVAL;
    const char *p = text, *end = text + len;
    bool neg = false;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    unsigned dg;
    if (SEG_LIKELY(len <= 12)) {
        /* at most 12 integer digits and 6 decimals: no overflow before the
         * final range check */
        static const uint32_t pow10[7] = { 1, 10, 100, 1000, 10000, 100000, 1000000 };
        const char *s = p;
        uint64_t v = 0;
        while (p < end && (dg = DIGIT(*p)) <= 9) {
            v = v * 10 + dg;
            p++;
        }
        size_t digits = (size_t)(p - s);
        int frac = 0;
        if (p < end && *p == '.') {
            s = ++p;
            while (p < end && (dg = DIGIT(*p)) <= 9) {
                if (frac < exponent) {
                    v = v * 10 + dg;
                    frac++;
                } else if (dg) {
                    return SEG_EINVAL; /* more decimals than the currency has */
                }
                p++;
            }
            digits += (size_t)(p - s);
        }
        if (p != end || digits == 0)
            return SEG_EINVAL;
        v *= pow10[exponent - frac];
        if (v > (uint64_t)SEG_AMOUNT_MAX)
            return SEG_ERANGE;
        *out = neg ? -(int64_t)v : (int64_t)v;
        return SEG_OK;
    }
    /* v stays <= SEG_AMOUNT_MAX while accumulating; once past it, big is set
     * and the rest is only checked for syntax */
    uint64_t v = 0;
    bool big = false;
    size_t digits = 0;
    for (; p < end && (dg = DIGIT(*p)) <= 9; p++, digits++) {
        if (!big) {
            v = v * 10 + dg;
            big = v > (uint64_t)SEG_AMOUNT_MAX;
        }
    }
    int frac = 0;
    if (p < end && *p == '.') {
        p++;
        for (; p < end && (dg = DIGIT(*p)) <= 9; p++, digits++) {
            if (frac < exponent) {
                frac++;
                if (!big) {
                    v = v * 10 + dg;
                    big = v > (uint64_t)SEG_AMOUNT_MAX;
                }
            } else if (dg != 0) {
                return SEG_EINVAL; /* more decimals than the currency has */
            }
        }
    }
    if (p != end || digits == 0)
        return SEG_EINVAL;
    for (; frac < exponent && !big; frac++) {
        v *= 10;
        big = v > (uint64_t)SEG_AMOUNT_MAX;
    }
    if (big)
        return SEG_ERANGE;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return SEG_OK;
}

SEG_API size_t seg_money_format(char *buf, size_t size, int64_t amount, int exponent)
{
    if (!buf || exponent < 0 || exponent > 6)
        return 0;
    uint64_t mag = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    char rev[32]; /* digits, least significant first */
    size_t k = 0;
    do {
        rev[k++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag || k < (size_t)exponent + 1);
    size_t n = (amount < 0) + k + (exponent > 0);
    if (n + 1 > size) {
        if (size)
            buf[0] = '\0';
        return 0;
    }
    char *w = buf;
    if (amount < 0)
        *w++ = '-';
    for (size_t i = k; i > (size_t)exponent; i--)
        *w++ = rev[i - 1];
    if (exponent > 0) {
        *w++ = '.';
        for (size_t i = (size_t)exponent; i > 0; i--)
            *w++ = rev[i - 1];
    }
    *w = '\0';
    return n;
}
