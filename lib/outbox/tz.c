/* Time zones: a reader of the system's TZif files (RFC 8536) with the POSIX
 * TZ rule of their footer, for times after the last transition.  Never uses
 * the process's TZ or localtime (global state); never bundles zone data. */
#include "outbox/outbox-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* A date of a POSIX rule: Jn (1..365, no Feb 29), n (0..365) or Mm.w.d. */
typedef struct tz_rdate {
    char kind;      /* 'J', 'D' or 'M' */
    int n, m, w, d;
    int32_t secs;   /* local time of day of the change, -167h..167h */
} tz_rdate;

typedef struct tz_rule {
    bool dst;               /* has a daylight-saving part */
    int32_t std_off, dst_off; /* seconds east of UTC */
    tz_rdate start, end;
} tz_rule;

struct seg__tz {
    uint32_t n;        /* transitions */
    int64_t *times;    /* ascending */
    uint8_t *idx;      /* type of each transition */
    uint32_t ntypes;
    int32_t *offs;     /* utoff of each type */
    bool has_rule;
    tz_rule rule;
};

#define TZ_MAX_FILE (1u << 20)
#define TZ_MAX_TIMES 200000u
#define TZ_OFF_MIN (-89999)   /* RFC 8536 recommends -24:59:59 .. 25:59:59 */
#define TZ_OFF_MAX 93599

/* ---- calendar ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t year_of_day(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return (int64_t)yoe + era * 400 + (m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Local seconds (since the epoch, as if local time were UTC) of rule date r
 * in year y. */
static int64_t rdate_local(const tz_rdate *r, int64_t y)
{
    int64_t day;
    if (r->kind == 'J') {
        day = days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60);
    } else if (r->kind == 'D') {
        day = days_from_civil(y, 1, 1) + r->n;
    } else {
        static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int64_t first = days_from_civil(y, (unsigned)r->m, 1);
        int64_t wd = ((first + 4) % 7 + 7) % 7; /* 1970-01-01 was a Thursday */
        day = first + ((r->d - wd) % 7 + 7) % 7 + 7 * (r->w - 1);
        int len = mdays[r->m - 1] + (r->m == 2 && is_leap(y));
        while (day >= first + len)
            day -= 7;
    }
    return day * 86400 + r->secs;
}

/* The rule's offset at t and its next change. */
static int32_t rule_offset(const tz_rule *r, int64_t t, int64_t *next)
{
    if (!r->dst) {
        *next = INT64_MAX;
        return r->std_off;
    }
    int64_t y = year_of_day(floor_div(t + r->std_off, 86400));
    /* the changes of years y-1 .. y+1, in time order (at the same instant
     * an end comes before a start, so a DST-all-year rule stays DST) */
    int64_t at[6];
    int32_t off[6];
    int n = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t e = rdate_local(&r->end, yy) - r->dst_off;
        int64_t s = rdate_local(&r->start, yy) - r->std_off;
        at[n] = e; off[n++] = r->std_off;
        at[n] = s; off[n++] = r->dst_off;
    }
    for (int i = 1; i < n; i++) /* insertion sort, stable */
        for (int j = i; j > 0 && at[j - 1] > at[j]; j--) {
            int64_t ta = at[j]; at[j] = at[j - 1]; at[j - 1] = ta;
            int32_t to = off[j]; off[j] = off[j - 1]; off[j - 1] = to;
        }
    int32_t cur = off[0];
    int i = 0;
    if (at[0] > t) {
        /* (cannot happen: year y-1's changes are before t) */
        *next = at[0];
        return cur;
    }
    for (; i < n && at[i] <= t; i++)
        cur = off[i];
    *next = i < n ? at[i] : t + 86400;
    for (int k = i; k < n; k++)
        if (off[k] != cur) {
            *next = at[k];
            break;
        }
    if (*next <= t)
        *next = t + 1;
    return cur;
}

int32_t seg__tz_offset(const seg__tz *z, int64_t t, int64_t *next_out)
{
    int64_t next;
    int32_t off;
    if (!z) {
        off = 0;
        next = INT64_MAX;
    } else if (z->n == 0 || t >= z->times[z->n - 1]) {
        if (z->has_rule) {
            off = rule_offset(&z->rule, t, &next);
        } else {
            off = z->n ? z->offs[z->idx[z->n - 1]] : z->offs[0];
            next = INT64_MAX;
        }
    } else if (t < z->times[0]) {
        off = z->offs[0];
        next = z->times[0];
    } else {
        uint32_t lo = 0, hi = z->n - 1; /* times[lo] <= t < times[hi] */
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (z->times[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        off = z->offs[z->idx[lo]];
        next = z->times[hi];
    }
    if (next_out)
        *next_out = next;
    return off;
}

/* ---- the POSIX TZ string of the footer ---- */

typedef struct tzs {
    const char *p, *e;
} tzs;

static bool ts_name(tzs *s)
{
    if (s->p < s->e && *s->p == '<') {
        const char *q = ++s->p;
        while (s->p < s->e && *s->p != '>') {
            char c = *s->p;
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '-'))
                return false;
            s->p++;
        }
        if (s->p == s->e || s->p - q < 3)
            return false;
        s->p++;
        return true;
    }
    const char *q = s->p;
    while (s->p < s->e && ((*s->p >= 'A' && *s->p <= 'Z') || (*s->p >= 'a' && *s->p <= 'z')))
        s->p++;
    return s->p - q >= 3;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, in seconds */
static bool ts_hms(tzs *s, int maxh, int32_t *out)
{
    int sign = 1;
    if (s->p < s->e && (*s->p == '+' || *s->p == '-'))
        sign = *s->p++ == '-' ? -1 : 1;
    int32_t v[3] = { 0, 0, 0 };
    for (int part = 0; part < 3; part++) {
        if (part > 0) {
            if (s->p == s->e || *s->p != ':')
                break;
            s->p++;
        }
        int digits = 0, x = 0;
        while (s->p < s->e && *s->p >= '0' && *s->p <= '9' && digits < 3) {
            x = x * 10 + (*s->p++ - '0');
            digits++;
        }
        if (!digits || (part > 0 && (digits != 2 || x > 59)))
            return false;
        v[part] = x;
    }
    if (v[0] > maxh)
        return false;
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return true;
}

static bool ts_num(tzs *s, int lo, int hi, int *out)
{
    int x = 0, digits = 0;
    while (s->p < s->e && *s->p >= '0' && *s->p <= '9' && digits < 4) {
        x = x * 10 + (*s->p++ - '0');
        digits++;
    }
    if (!digits || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static bool ts_rdate(tzs *s, tz_rdate *r)
{
    memset(r, 0, sizeof *r);
    if (s->p < s->e && *s->p == 'J') {
        s->p++;
        r->kind = 'J';
        if (!ts_num(s, 1, 365, &r->n))
            return false;
    } else if (s->p < s->e && *s->p == 'M') {
        s->p++;
        r->kind = 'M';
        if (!ts_num(s, 1, 12, &r->m) || s->p == s->e || *s->p++ != '.' ||
            !ts_num(s, 1, 5, &r->w) || s->p == s->e || *s->p++ != '.' ||
            !ts_num(s, 0, 6, &r->d))
            return false;
    } else {
        r->kind = 'D';
        if (!ts_num(s, 0, 365, &r->n))
            return false;
    }
    r->secs = 7200;
    if (s->p < s->e && *s->p == '/') {
        s->p++;
        if (!ts_hms(s, 167, &r->secs)) /* RFC 8536 3.3.1: -167..167 hours */
            return false;
    }
    return true;
}

/* Parse a POSIX TZ string ("EST5EDT,M3.2.0,M11.1.0", "<+0530>-5:30"). */
static bool parse_rule(const char *p, size_t n, tz_rule *r)
{
    tzs s = { p, p + n };
    int32_t o;
    memset(r, 0, sizeof *r);
    if (!ts_name(&s) || !ts_hms(&s, 24, &o))
        return false;
    r->std_off = -o;
    if (s.p == s.e)
        return true;
    if (!ts_name(&s))
        return false;
    r->dst = true;
    r->dst_off = r->std_off + 3600;
    if (s.p < s.e && *s.p != ',') {
        if (!ts_hms(&s, 24, &o))
            return false;
        r->dst_off = -o;
    }
    if (s.p == s.e) {
        /* no rule: POSIX leaves it to the implementation; the US rule */
        tz_rdate st = { 'M', 0, 3, 2, 0, 7200 }, en = { 'M', 0, 11, 1, 0, 7200 };
        r->start = st;
        r->end = en;
        return true;
    }
    if (*s.p++ != ',' || !ts_rdate(&s, &r->start) || s.p == s.e || *s.p++ != ',' ||
        !ts_rdate(&s, &r->end))
        return false;
    return s.p == s.e;
}

/* ---- TZif ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzhdr {
    char version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzhdr;

static int tz_err(char *err, size_t errsize, const char *fmt, ...) SEG_PRINTF(3, 4);
static int tz_err(char *err, size_t errsize, const char *fmt, ...)
{
    if (err && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return SEG_EPARSE;
}

/* Read a header at p (len bytes left); the size of the data block that
 * follows, for times of tsize bytes, in *block. */
static int read_header(const uint8_t *p, size_t len, tzhdr *h, size_t tsize, size_t *block,
                       char *err, size_t errsize)
{
    /* the 32-bit block of a version 2+ file is only skipped: its counts
     * need not be meaningful, only within the file */
    bool skip = tsize == 4 && len >= 5 && p[4] >= '2';
    if (len < 4 || memcmp(p, "TZif", 4) != 0)
        return tz_err(err, errsize, "not a TZif file (no magic)");
    if (len < 44)
        return tz_err(err, errsize, "truncated header (%lu bytes)", (unsigned long)len);
    h->version = (char)p[4];
    if (h->version != 0 && (h->version < '2' || h->version > '9'))
        return tz_err(err, errsize, "unknown TZif version byte 0x%02lx", (unsigned long)p[4]);
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (!skip && (h->typecnt == 0 || h->typecnt > 256))
        return tz_err(err, errsize, "bad number of local time types (%lu)",
                      (unsigned long)h->typecnt);
    if (!skip && (h->charcnt == 0 || h->charcnt > 65536))
        return tz_err(err, errsize, "bad designation size (%lu)", (unsigned long)h->charcnt);
    if (!skip && ((h->isutcnt && h->isutcnt != h->typecnt) ||
                  (h->isstdcnt && h->isstdcnt != h->typecnt)))
        return tz_err(err, errsize, "bad indicator counts");
    if (h->timecnt > TZ_MAX_TIMES || h->leapcnt > 100000 || h->typecnt > 65536 ||
        h->charcnt > 65536 || h->isutcnt > 65536 || h->isstdcnt > 65536)
        return tz_err(err, errsize, "too many transitions or types (%lu)",
                      (unsigned long)h->timecnt);
    *block = (size_t)h->timecnt * tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
             (size_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
    if (*block > len - 44)
        return tz_err(err, errsize, "truncated data block (%lu bytes missing)",
                      (unsigned long)(*block - (len - 44)));
    return SEG_OK;
}

int seg__tz_parse(seg__tz **out, const seg__alloc *a, const void *data, size_t len, char *err,
                  size_t errsize)
{
    *out = NULL;
    if (err && errsize)
        err[0] = '\0';
    const uint8_t *p = data;
    tzhdr h;
    size_t block;
    int rc = read_header(p, len, &h, 4, &block, err, errsize);
    if (rc != SEG_OK)
        return rc;
    size_t tsize = 4;
    const uint8_t *d = p + 44;
    const uint8_t *end = p + len;
    if (h.version >= '2') {
        /* skip the 32-bit block: the second header and block follow */
        const uint8_t *h2 = d + block;
        rc = read_header(h2, (size_t)(end - h2), &h, 8, &block, err, errsize);
        if (rc != SEG_OK)
            return rc;
        tsize = 8;
        d = h2 + 44;
    }
    if (h.leapcnt)
        return tz_err(err, errsize,
                      "leap-second zones (%lu leap records) are not supported",
                      (unsigned long)h.leapcnt);
    const uint8_t *times = d, *idx = d + (size_t)h.timecnt * tsize;
    const uint8_t *types = idx + h.timecnt;
    const uint8_t *after = d + block;
    /* the footer: "\n" TZ string "\n" (version 2 and later) */
    const uint8_t *foot = NULL;
    size_t footn = 0;
    if (h.version >= '2') {
        if (after >= end || *after != '\n')
            return tz_err(err, errsize, "missing footer");
        const uint8_t *q = after + 1;
        while (q < end && *q != '\n')
            q++;
        if (q == end)
            return tz_err(err, errsize, "unterminated footer");
        foot = after + 1;
        footn = (size_t)(q - foot);
    }
    seg__tz *z = seg__calloc(a, 1, sizeof *z);
    if (!z)
        return SEG_ENOMEM;
    z->n = h.timecnt;
    z->ntypes = h.typecnt;
    z->times = seg__calloc(a, h.timecnt ? h.timecnt : 1, sizeof *z->times);
    z->idx = seg__calloc(a, h.timecnt ? h.timecnt : 1, 1);
    z->offs = seg__calloc(a, h.typecnt, sizeof *z->offs);
    if (!z->times || !z->idx || !z->offs) {
        seg__tz_free(a, z);
        return SEG_ENOMEM;
    }
    for (uint32_t k = 0; k < h.typecnt; k++) {
        int32_t off = (int32_t)be32(types + 6 * k);
        if (off < TZ_OFF_MIN || off > TZ_OFF_MAX) {
            seg__tz_free(a, z);
            return tz_err(err, errsize, "local time type %lu: UTC offset out of range",
                          (unsigned long)k);
        }
        if (types[6 * k + 4] > 1 || types[6 * k + 5] >= h.charcnt) {
            seg__tz_free(a, z);
            return tz_err(err, errsize, "local time type %lu: bad flags or designation",
                          (unsigned long)k);
        }
        z->offs[k] = off;
    }
    for (uint32_t k = 0; k < h.timecnt; k++) {
        int64_t t = tsize == 8 ? be64(times + 8 * k) : (int64_t)(int32_t)be32(times + 4 * k);
        if (k && t <= z->times[k - 1]) {
            seg__tz_free(a, z);
            return tz_err(err, errsize, "transition %lu is not after the one before",
                          (unsigned long)k);
        }
        if (idx[k] >= h.typecnt) {
            seg__tz_free(a, z);
            return tz_err(err, errsize, "transition %lu: unknown local time type",
                          (unsigned long)k);
        }
        z->times[k] = t;
        z->idx[k] = idx[k];
    }
    if (footn) {
        if (!parse_rule((const char *)foot, footn, &z->rule)) {
            seg__tz_free(a, z);
            return tz_err(err, errsize, "bad POSIX TZ string in the footer");
        }
        if (z->rule.std_off < TZ_OFF_MIN || z->rule.std_off > TZ_OFF_MAX ||
            z->rule.dst_off < TZ_OFF_MIN || z->rule.dst_off > TZ_OFF_MAX) {
            seg__tz_free(a, z);
            return tz_err(err, errsize, "footer: UTC offset out of range");
        }
        z->has_rule = true;
    }
    *out = z;
    return SEG_OK;
}

void seg__tz_free(const seg__alloc *a, seg__tz *z)
{
    if (!z)
        return;
    seg__free(a, z->times);
    seg__free(a, z->idx);
    seg__free(a, z->offs);
    seg__free(a, z);
}

const char *seg__tz_dir(void)
{
    const char *d = getenv("TZDIR");
    return d && *d ? d : "/usr/share/zoneinfo";
}

/* A zone name: A-Z a-z 0-9 and "/_+-.", components not starting with '.'. */
static bool zone_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255 || name[0] == '/')
        return false;
    for (size_t k = 0; k < n; k++) {
        char c = name[k];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '/' || c == '_' || c == '+' || c == '-' || c == '.';
        if (!ok || (c == '.' && (k == 0 || name[k - 1] == '/')) ||
            (c == '/' && (k + 1 == n || name[k + 1] == '/')))
            return false;
    }
    return true;
}

int seg__tz_load(seg__tz **out, seg_db *db, const char *name)
{
    *out = NULL;
    if (!name || !zone_name_ok(name))
        return seg__error(db, SEG_EINVAL, "time zone '%s': not a zone name", name ? name : "");
    const char *dir = seg__tz_dir();
    size_t dn = strlen(dir), nn = strlen(name);
    const seg__alloc *a = seg__db_alloc(db);
    char *path = seg__malloc(a, dn + nn + 2);
    if (!path)
        return seg__error(db, SEG_ENOMEM, "out of memory");
    memcpy(path, dir, dn);
    path[dn] = '/';
    memcpy(path + dn + 1, name, nn + 1);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        int rc = seg__error(db, e == ENOENT || e == ENOTDIR ? SEG_ENOTFOUND : SEG_EIO,
                            "time zone '%s': %s: %s", name, path, strerror(e));
        seg__free(a, path);
        return rc;
    }
    uint8_t *buf = seg__malloc(a, TZ_MAX_FILE + 1);
    size_t len = buf ? fread(buf, 1, TZ_MAX_FILE + 1, f) : 0;
    bool bad = buf && ferror(f);
    int rerr = errno;
    fclose(f);
    int rc;
    if (!buf) {
        rc = seg__error(db, SEG_ENOMEM, "out of memory");
    } else if (bad) {
        rc = seg__error(db, SEG_EIO, "time zone '%s': cannot read %s: %s", name, path,
                        strerror(rerr));
    } else if (len > TZ_MAX_FILE) {
        rc = seg__error(db, SEG_EPARSE, "time zone '%s': %s: larger than %u bytes", name, path,
                        TZ_MAX_FILE);
    } else {
        char err[160];
        rc = seg__tz_parse(out, a, buf, len, err, sizeof err);
        if (rc == SEG_ENOMEM)
            seg__error(db, rc, "out of memory");
        else if (rc != SEG_OK)
            seg__error(db, rc, "time zone '%s': %s: %s", name, path, err);
    }
    seg__free(a, buf);
    seg__free(a, path);
    return rc;
}

/* ---- send windows ---- */

static bool in_window(int64_t local, int start_min, int end_min)
{
    int64_t s = local - floor_div(local, 86400) * 86400;
    int64_t a = (int64_t)start_min * 60, b = (int64_t)end_min * 60;
    return a < b ? s >= a && s < b : s >= a || s < b;
}

int64_t seg__tz_window_due(const seg__tz *z, int64_t t, int start_min, int end_min)
{
    int64_t u = t;
    /* each turn either finds the opening or moves to the next change of
     * the offset; a few hundred turns cover any real zone */
    for (int turn = 0; turn < 1000; turn++) {
        int64_t next;
        int32_t off = seg__tz_offset(z, u, &next);
        int64_t local = u + off;
        if (in_window(local, start_min, end_min))
            return u;
        int64_t s = local - floor_div(local, 86400) * 86400;
        int64_t wait = (int64_t)start_min * 60 - s;
        if (wait <= 0)
            wait += 86400;
        if (u > INT64_MAX - wait)
            return t;
        if (u + wait < next)
            return u + wait; /* the offset holds until then: the opening */
        u = next;            /* the offset changes first: look again from there */
    }
    return t;
}
