/*
 * rfm-peer: the SQL peer of the RFM benchmark (../shared/bench/peers/
 * rfm_sqlite.sh), reimplemented on the sqlite3 C API so the correctness
 * test runs anywhere libsqlite3 is installed.
 *
 *   rfm-peer IN.csv OUT.csv
 *
 * Writes customer_id,recency_days,frequency,monetary sorted by customer_id,
 * computed by the peer's query on an in-memory table of the CSV rows:
 *   reference date = the date of the last event in the file + 1 day
 *   recency_days   = reference date - date of the customer's last row with
 *                    amount > 0 (empty when there is none)
 *   frequency      = count(DISTINCT order_id) over the rows with amount > 0
 *   monetary       = sum(amount) over every row, refunds included
 * Differences from the shell peer, none of which changes a result on its
 * input: columns are found by their header name (the peer assumes
 * customer_id,ts,amount,order_id first), amounts are summed as integer
 * cents (the peer sums REAL and rounds to 2 decimals), and an empty amount
 * (an engagement event, which the peer's files do not have) is NULL rather
 * than the text ''.  ts must be ISO-8601 (SQLite's date() reads it).
 * The scores (the peer's NTILE) are not computed: libsegment's binning is
 * different by design (doc/rfm.md).
 */
#include <sqlite3.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "rfm-peer: WHAT ARG" and exit 1 */
static void die(const char *what, const char *arg)
{
    fprintf(stderr, "rfm-peer: %s %s\n", what, arg);
    exit(1);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open", path);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf)
            die("out of memory reading", path);
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap + 1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* One RFC 4180 row: fields unescaped in place (the buffer is modified).
 * Returns the number of fields, 0 at the end of the input. */
#define MAXF 64
static int next_row(char **pp, char *end, char **fields)
{
    char *p = *pp;
    if (p >= end)
        return 0;
    int nf = 0;
    for (;;) {
        char *out = p, *start = p;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p >= end)
                    die("unterminated quote in", "the input");
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *out++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *out++ = *p++;
            }
        } else {
            while (p < end && *p != ',' && *p != '\n' && *p != '\r')
                p++;
            out = p;
        }
        char term = p < end ? *p : '\n';
        *out = '\0';
        if (nf < MAXF)
            fields[nf++] = start;
        if (term == ',') {
            p++;
            continue;
        }
        if (term == '\r')
            p++;
        if (p < end && *p == '\n')
            p++;
        break;
    }
    *pp = p;
    return nf;
}

/* "12.50" -> 1250; returns 0 on a bad amount */
static int cents(const char *s, sqlite3_int64 *out)
{
    int neg = 0;
    sqlite3_int64 v = 0;
    int dec = -1;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s == '.' && dec < 0) {
            dec = 0;
            continue;
        }
        if (*s < '0' || *s > '9' || (dec >= 0 && ++dec > 2))
            return 0;
        v = v * 10 + (*s - '0');
    }
    for (int k = dec < 0 ? 0 : dec; k < 2; k++)
        v *= 10;
    *out = neg ? -v : v;
    return 1;
}

static void check(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "rfm-peer: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char query[] =
    "WITH per_customer AS (\n"
    "  SELECT customer_id,\n"
    "         date(max(CASE WHEN amount > 0 THEN ts END))            AS last_day,\n"
    "         date(max(ts))                                          AS last_event_day,\n"
    "         count(DISTINCT CASE WHEN amount > 0 THEN order_id END) AS frequency,\n"
    "         sum(coalesce(amount, 0))                               AS monetary\n"
    "  FROM events\n"
    "  GROUP BY customer_id),\n"
    "with_recency AS (\n"
    "  SELECT customer_id,\n"
    "         CAST(julianday(max(last_event_day) OVER ()) - julianday(last_day) AS INTEGER) + 1 AS recency_days,\n"
    "         frequency, monetary\n"
    "  FROM per_customer)\n"
    "SELECT customer_id, recency_days, frequency, monetary\n"
    "FROM with_recency\n"
    "ORDER BY customer_id;\n";

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: rfm-peer IN.csv OUT.csv\n");
        return 2;
    }
    size_t len;
    char *buf = read_all(argv[1], &len), *p = buf, *end = buf + len;
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        p += 3;
    char *f[MAXF];
    int nf = next_row(&p, end, f);
    int ccust = -1, cts = -1, camt = -1, cord = -1;
    for (int i = 0; i < nf; i++) {
        if (!strcmp(f[i], "customer_id")) ccust = i;
        else if (!strcmp(f[i], "ts")) cts = i;
        else if (!strcmp(f[i], "amount")) camt = i;
        else if (!strcmp(f[i], "order_id")) cord = i;
    }
    if (ccust < 0 || cts < 0 || camt < 0)
        die("the header needs customer_id, ts and amount:", argv[1]);

    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        die("cannot open", "an in-memory database");
    check(db, sqlite3_exec(db,
                           "PRAGMA temp_store = MEMORY;"
                           "CREATE TABLE events(customer_id TEXT, ts TEXT, amount INTEGER, order_id TEXT);"
                           "BEGIN;",
                           NULL, NULL, NULL), "create");
    sqlite3_stmt *ins;
    check(db, sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?1, ?2, ?3, ?4)", -1, &ins, NULL),
          "prepare");
    while ((nf = next_row(&p, end, f)) > 0) {
        if (nf == 1 && f[0][0] == '\0')
            continue; /* an empty line */
        if (nf <= ccust || nf <= cts || nf <= camt || (cord >= 0 && nf <= cord))
            die("a row with too few fields in", argv[1]);
        sqlite3_bind_text(ins, 1, f[ccust], -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, f[cts], -1, SQLITE_STATIC);
        sqlite3_int64 c;
        if (f[camt][0] == '\0')
            sqlite3_bind_null(ins, 3);
        else if (cents(f[camt], &c))
            sqlite3_bind_int64(ins, 3, c);
        else
            die("bad amount", f[camt]);
        if (cord >= 0 && f[cord][0])
            sqlite3_bind_text(ins, 4, f[cord], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(ins, 4);
        check(db, sqlite3_step(ins), "insert");
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    check(db, sqlite3_exec(db, "COMMIT;", NULL, NULL, NULL), "commit");

    FILE *out = fopen(argv[2], "w");
    if (!out)
        die("cannot write", argv[2]);
    fputs("customer_id,recency_days,frequency,monetary\n", out);
    sqlite3_stmt *q;
    check(db, sqlite3_prepare_v2(db, query, -1, &q, NULL), "query");
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        put_field(out, (const char *)sqlite3_column_text(q, 0));
        fputc(',', out);
        if (sqlite3_column_type(q, 1) != SQLITE_NULL)
            fprintf(out, "%lld", (long long)sqlite3_column_int64(q, 1));
        sqlite3_int64 m = sqlite3_column_int64(q, 3);
        sqlite3_uint64 mag = m < 0 ? (sqlite3_uint64)0 - (sqlite3_uint64)m : (sqlite3_uint64)m;
        fprintf(out, ",%lld,%s%llu.%02llu\n", (long long)sqlite3_column_int64(q, 2), m < 0 ? "-" : "",
                (unsigned long long)(mag / 100), (unsigned long long)(mag % 100));
    }
    check(db, rc, "step");
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (fclose(out) != 0)
        die("cannot write", argv[2]);
    free(buf);
    return 0;
}
