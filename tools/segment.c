/*
 * segment: the libsegment command-line tool.
 *
 * Built on the public API only (<segment.h>, the shared library), so it is
 * also a worked example of using that API from C.
 *
 * Exit status: 0 success, 1 bad data or I/O error, 2 usage error.  Every
 * error is exactly one line on stderr, starting "segment: ".
 */
#include <segment.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_DATA 1
#define EXIT_USAGE 2

/* ---- errors ---- */

static void die_line(int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3), noreturn))
#endif
    ;

/* Print "segment: MESSAGE" as exactly one line and exit. */
static void die_line(int status, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fflush(stdout);
    fprintf(stderr, "segment: %s\n", msg);
    exit(status);
}

/* A failed library call on db: the handle's message names file:line:col. */
static void die_db(const seg_db *db, int code)
{
    const char *msg = seg_errmsg(db);
    die_line(EXIT_DATA, "%s", msg && *msg ? msg : seg_errstr(code));
}

/* ---- buffered standard output ---- */

#define OUT_CAP (1u << 20)
#define OUT_ROW_MAX 1024 /* longest row: a quoted 256-byte id is at most 514 bytes */

static char out_buf[OUT_CAP];
static size_t out_len;

static void out_flush(void)
{
    if (out_len && fwrite(out_buf, 1, out_len, stdout) != out_len)
        die_line(EXIT_DATA, "write error: %s", strerror(errno));
    out_len = 0;
}

static void out_finish(void)
{
    out_flush();
    if (fflush(stdout) != 0 || ferror(stdout))
        die_line(EXIT_DATA, "write error: %s", strerror(errno));
}

/* Room for n more bytes (n <= OUT_CAP). */
static char *out_reserve(size_t n)
{
    if (OUT_CAP - out_len < n)
        out_flush();
    return out_buf + out_len;
}

static void out_str(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        size_t room = OUT_CAP - out_len, k = n < room ? n : room;
        memcpy(out_buf + out_len, s, k);
        out_len += k;
        s += k;
        n -= k;
        if (n)
            out_flush();
    }
}

/* Decimal digits of v into p; returns the length. */
static size_t fmt_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* A CSV field, quoted per RFC 4180 when it holds a comma, quote, CR or LF. */
static size_t fmt_csv_field(char *p, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        size_t n = strlen(s);
        memcpy(p, s, n);
        return n;
    }
    char *q = p;
    *q++ = '"';
    for (; *s; s++) {
        if (*s == '"')
            *q++ = '"';
        *q++ = *s;
    }
    *q++ = '"';
    return (size_t)(q - p);
}

/* ---- option parsing ---- */

/*
 * Does argv[*i] name option `name` ("--events FILE" or "--events=FILE")?
 * Returns 1 and sets *val (advancing *i past a separate value), or 0.
 */
static int opt_value(char **argv, int argc, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        die_line(EXIT_USAGE, "option '%s' needs a value (see 'segment customers --help')", name);
    *val = argv[++*i];
    return 1;
}

static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* ---- help ---- */

static const char main_help[] =
    "Usage: segment COMMAND [OPTIONS]\n"
    "       segment --help | --version\n"
    "\n"
    "The command-line tool of libsegment, customer segmentation as a C library.\n"
    "\n"
    "Commands:\n"
    "  customers     print one CSV row of purchase aggregates per customer\n"
    "  clv           fit a lifetime-value model and print each customer's\n"
    "                P(alive), expected purchases, spend and value\n"
    "  help [COMMAND]\n"
    "                show this help, or the help of COMMAND\n"
    "\n"
    "Options:\n"
    "  -h, --help    show this help and exit\n"
    "  --version     show the versions of the tool and of the loaded library\n"
    "\n"
    "Run 'segment COMMAND --help' for the options of a command.\n"
    "\n"
    "Exit status: 0 on success, 1 when the input data or a file is bad (the\n"
    "message names the file, line and column), 2 on a usage error.  Errors are\n"
    "one line on standard error, starting with \"segment: \".\n";

static const char customers_help[] =
    "Usage: segment customers --events FILE [--events FILE ...] [FILE ...]\n"
    "                         [--customers FILE] [--as-of TIME]\n"
    "\n"
    "Import events (and optionally customer attributes) into an in-memory\n"
    "database and print one CSV row per customer to standard output, sorted by\n"
    "customer_id (byte order).  Nothing is written anywhere else.\n"
    "\n"
    "Options (each also accepted as --option=VALUE):\n"
    "  --events FILE     an event CSV file; repeat for several files.  FILE\n"
    "                    arguments without an option (or after --) are event\n"
    "                    files too; '-' reads standard input.  Each file is\n"
    "                    imported as one atomic batch: one bad row fails the\n"
    "                    command.  Events already imported (same event_id and\n"
    "                    content, or the same derived id) are skipped, so a\n"
    "                    file given twice counts once.\n"
    "  --customers FILE  a customer CSV file (header customer_id, then NAME:TYPE\n"
    "                    and consent:CHANNEL columns).  Every customer it names\n"
    "                    is listed, with zero orders when it has no purchase.\n"
    "                    May be repeated; read after all event files.\n"
    "  --as-of TIME      compute every column as of TIME: only events with\n"
    "                    ts < TIME count (an event at exactly TIME does not).\n"
    "                    Customers whose events all come at or after TIME are\n"
    "                    left out; customers with no events at all (from\n"
    "                    --customers) are listed.  TIME is ISO-8601 UTC\n"
    "                    (2024-03-01, 2024-03-01T10:00:00Z, an optional\n"
    "                    +hh:mm offset) or integer seconds since the epoch.\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Event CSV: a header row naming the columns, in any order.  Required:\n"
    "customer_id, ts, amount.  Optional: event_id, type (purchase, refund,\n"
    "engagement), order_id, quantity, channel, category, sku, refund_of, name.\n"
    "A row is one order line; lines sharing an order_id form one order.  A\n"
    "negative amount is a refund; refund_of names the refunded order.  Amounts\n"
    "are decimal strings (12.50) with at most 2 decimals.  See doc/guide.md.\n"
    "\n"
    "Output columns (header row first):\n"
    "  customer_id     the customer's id, quoted as in RFC 4180 when it holds\n"
    "                  a comma, a double quote, CR or LF\n"
    "  orders          distinct orders with at least one line of positive amount\n"
    "  purchase_days   distinct UTC calendar days with such a purchase\n"
    "  first_purchase  time of the first purchase, YYYY-MM-DDTHH:MM:SSZ (UTC);\n"
    "                  empty when orders is 0\n"
    "  last_purchase   time of the last purchase; empty when orders is 0\n"
    "  revenue         sum of the positive purchase amounts (gross)\n"
    "  net_revenue     revenue plus refunds (refunds are negative amounts)\n"
    "Money is printed with 2 decimals, without thousands separators.\n"
    "\n"
    "Exit status: 0 on success, 1 on bad data or an unreadable file (one line\n"
    "on standard error naming file:line:column), 2 on a usage error.\n"
    "\n"
    "Example:\n"
    "  segment customers --events examples/data/sample_events.csv \\\n"
    "      --customers examples/data/sample_customers.csv --as-of 2024-07-01\n";

static void print_help(const char *text)
{
    out_str(text);
    out_finish();
    exit(0);
}

/* ---- segment customers ---- */

typedef struct row_ctx {
    int exponent;
    int failed; /* a formatter refused a value */
} row_ctx;

static int print_customer(const seg_customer_info *c, void *payload)
{
    row_ctx *ctx = payload;
    char *p = out_reserve(OUT_ROW_MAX), *start = p;
    size_t n;

    p += fmt_csv_field(p, c->customer_id);
    *p++ = ',';
    p += fmt_u64(p, c->orders);
    *p++ = ',';
    p += fmt_u64(p, c->purchase_days);
    *p++ = ',';
    if (c->orders) {
        if ((n = seg_time_format(p, 21, c->first_purchase)) == 0)
            goto bad;
        p += n;
        *p++ = ',';
        if ((n = seg_time_format(p, 21, c->last_purchase)) == 0)
            goto bad;
        p += n;
        *p++ = ',';
    } else {
        *p++ = ','; /* empty first_purchase and last_purchase */
        *p++ = ',';
    }
    if ((n = seg_money_format(p, 40, c->revenue, ctx->exponent)) == 0)
        goto bad;
    p += n;
    *p++ = ',';
    if ((n = seg_money_format(p, 40, c->net_revenue, ctx->exponent)) == 0)
        goto bad;
    p += n;
    *p++ = '\n';
    out_len += (size_t)(p - start);
    return 0;
bad:
    ctx->failed = 1;
    return 1;
}

/* Read all of standard input (for "-"). */
static char *read_stdin(size_t *len_out)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        die_line(EXIT_DATA, "out of memory");
    for (;;) {
        if (len == cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb)
                die_line(EXIT_DATA, "out of memory reading standard input");
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin))
                die_line(EXIT_DATA, "<stdin>: read error: %s", strerror(errno));
            break;
        }
    }
    *len_out = len;
    return buf;
}

static int cmd_customers(int argc, char **argv)
{
    const char **events = calloc((size_t)argc + 1, sizeof *events);
    const char **custs = calloc((size_t)argc + 1, sizeof *custs);
    size_t nevents = 0, ncusts = 0;
    const char *as_of_text = NULL, *val;
    int only_files = 0;

    if (!events || !custs)
        die_line(EXIT_DATA, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || strcmp(a, "-") == 0) {
            events[nevents++] = a;
        } else if (strcmp(a, "--") == 0) {
            only_files = 1;
        } else if (is_help(a)) {
            print_help(customers_help);
        } else if (opt_value(argv, argc, &i, "--events", &val)) {
            events[nevents++] = val;
        } else if (opt_value(argv, argc, &i, "--customers", &val)) {
            custs[ncusts++] = val;
        } else if (opt_value(argv, argc, &i, "--as-of", &val)) {
            if (as_of_text)
                die_line(EXIT_USAGE, "--as-of given twice");
            as_of_text = val;
        } else {
            die_line(EXIT_USAGE, "customers: unknown option '%s' (see 'segment customers --help')", a);
        }
    }
    if (nevents == 0)
        die_line(EXIT_USAGE, "customers: no events file given (--events FILE; see 'segment customers --help')");
    for (size_t i = 0; i < nevents; i++)
        if (events[i][0] == '\0')
            die_line(EXIT_USAGE, "customers: empty file name for --events");
    for (size_t i = 0; i < ncusts; i++)
        if (custs[i][0] == '\0')
            die_line(EXIT_USAGE, "customers: empty file name for --customers");

    int64_t as_of = 0;
    if (as_of_text) {
        int rc = seg_time_parse(&as_of, as_of_text, strlen(as_of_text));
        if (rc == SEG_ERANGE)
            die_line(EXIT_USAGE, "--as-of: time out of range: '%s'", as_of_text);
        if (rc != SEG_OK)
            die_line(EXIT_USAGE,
                     "--as-of: not a time: '%s' (use 2024-03-01, 2024-03-01T10:00:00Z or epoch seconds)",
                     as_of_text);
    }

    char errbuf[512] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    opts.errbuf = errbuf;
    opts.errbuf_size = sizeof errbuf;
    seg_db *db = NULL;
    int rc = seg_db_open(&db, ":memory:", &opts);
    if (rc != SEG_OK)
        die_line(EXIT_DATA, "%s", errbuf[0] ? errbuf : seg_errstr(rc));

    for (size_t i = 0; i < nevents; i++) {
        if (strcmp(events[i], "-") == 0) {
            size_t len;
            char *data = read_stdin(&len);
            seg_csv_options copts = SEG_CSV_OPTIONS_INIT;
            copts.source_name = "<stdin>";
            rc = seg_event_import_csv(db, data, len, &copts, NULL);
            free(data);
        } else {
            rc = seg_event_import_csv_file(db, events[i], NULL, NULL);
        }
        if (rc != SEG_OK)
            die_db(db, rc);
    }
    for (size_t i = 0; i < ncusts; i++) {
        rc = seg_customer_import_csv_file(db, custs[i]);
        if (rc != SEG_OK)
            die_db(db, rc);
    }

    row_ctx ctx = { seg_db_currency_exponent(db), 0 };
    out_str("customer_id,orders,purchase_days,first_purchase,last_purchase,revenue,net_revenue\n");
    if (as_of_text)
        rc = seg_customer_foreach_as_of(db, as_of, SEG_CUSTOMER_SORTED, print_customer, &ctx);
    else
        rc = seg_customer_foreach(db, SEG_CUSTOMER_SORTED, print_customer, &ctx);
    if (rc != SEG_OK)
        die_db(db, rc);
    if (ctx.failed)
        die_line(EXIT_DATA, "a time or amount could not be formatted");
    out_finish();
    seg_db_close(db);
    free(events);
    free(custs);
    return 0;
}

/* ---- segment clv ---- */

static const char clv_help[] =
    "Usage: segment clv --events FILE [--events FILE ...] --model MODEL\n"
    "                   --calibration-end TIME --unit day|week --horizon DURATION\n"
    "                   [--discount RATE[/DURATION]] [--margin SHARE] [--params FILE]\n"
    "\n"
    "Fit a lifetime-value model to the purchases up to the calibration end and\n"
    "print, for every customer, the probability of being active, the expected\n"
    "purchases and spend, and the discounted value over a horizon, one CSV row\n"
    "per customer sorted by customer_id (byte order).  A summary of the fit,\n"
    "with its log-likelihood, goes to standard error.\n"
    "\n"
    "Options (each also accepted as --option=VALUE):\n"
    "  --events FILE     an event CSV file (as for 'segment customers'); repeat\n"
    "                    for several; '-' reads standard input\n"
    "  --db FILE         a SQLite database: not available yet\n"
    "  --model MODEL     bgnbd (BG/NBD), mbgnbd (MBG/NBD) or pareto (Pareto/NBD);\n"
    "                    a Gamma-Gamma spend model is fitted alongside whenever\n"
    "                    repeat purchases have amounts\n"
    "  --calibration-end TIME\n"
    "                    the last day of the calibration period (2024-03-01, or\n"
    "                    any time in that UTC day).  Only purchases up to that\n"
    "                    day are used to fit and to summarize; later ones are\n"
    "                    the holdout.  Customers whose first purchase comes\n"
    "                    later are left out (and counted in the summary).\n"
    "  --unit day|week   the model's time unit: recency, T, the horizon and the\n"
    "                    discount period are in it, and so are the parameters\n"
    "                    alpha and beta written to --params\n"
    "  --horizon DURATION\n"
    "                    how far ahead expected purchases and value run: a\n"
    "                    number with its unit, 'd' or 'w' (52w, 365d, 4.5w)\n"
    "  --discount RATE[/DURATION]\n"
    "                    discount rate per period: 0.1/52w is 10% a year; a bare\n"
    "                    RATE is per --unit (0.002 with --unit week is 0.2% a\n"
    "                    week).  A purchase u after the calibration end counts\n"
    "                    1 / (1 + RATE)^(u / period).  Default 0: none.\n"
    "  --margin SHARE    share of spend that is value, 0..1 (default 1)\n"
    "  --params FILE     write the fitted parameters there as 'param,value'\n"
    "                    lines (model, unit, r,alpha,a,b or r,alpha,s,beta, and\n"
    "                    p,q,gamma for spend), with 17 significant digits\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Definitions: a transaction is a purchase event (any amount >= 0); all of a\n"
    "customer's purchases on one UTC day count as one.  frequency = repeat\n"
    "purchase days in the calibration period, recency = last one minus first\n"
    "purchase, T = calibration end minus first purchase, in --unit.\n"
    "\n"
    "Output columns (header row first):\n"
    "  customer_id         quoted as in RFC 4180 when needed\n"
    "  frequency           repeat purchase days up to the calibration end\n"
    "  recency, T          in --unit\n"
    "  p_alive             probability the customer is still active\n"
    "  expected_purchases  expected purchase days within the horizon\n"
    "  expected_spend      expected amount per purchase (Gamma-Gamma)\n"
    "  clv                 margin x expected spend x discounted expected purchases\n"
    "expected_spend and clv are empty when no spend model could be fitted.\n"
    "\n"
    "Exit status: 0 on success, 1 on bad data, an unreadable file or a fit that\n"
    "fails (the message says why), 2 on a usage error.\n"
    "\n"
    "Example (the CDNOW sample, weekly, one year ahead, 10% a year):\n"
    "  segment clv --events cdnow.csv --model bgnbd --calibration-end 1997-09-30 \\\n"
    "      --unit week --horizon 52w --discount 0.1/52w --params params.csv\n";

/* As opt_value(), with the command named in the error. */
static int clv_opt(char **argv, int argc, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || (a[n] != '=' && a[n] != '\0'))
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
    } else {
        if (*i + 1 >= argc)
            die_line(EXIT_USAGE, "option '%s' needs a value (see 'segment clv --help')", name);
        *val = argv[++*i];
    }
    return 1;
}

/* A decimal number, all of the text. */
static int clv_number(const char *s, size_t n, double *out)
{
    char buf[64], *end;
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (!strchr("0123456789.+-", buf[0]))
        return 0;
    errno = 0;
    *out = strtod(buf, &end);
    return *end == '\0' && errno == 0;
}

/* "52w" / "365d" in model units (days per unit: 1 or 7); 0 when malformed. */
static int clv_duration(const char *s, double unit_days, double *out)
{
    size_t n = strlen(s);
    double v;
    if (n < 2 || (s[n - 1] != 'd' && s[n - 1] != 'w') || !clv_number(s, n - 1, &v))
        return 0;
    *out = v * (s[n - 1] == 'w' ? 7.0 : 1.0) / unit_days;
    return 1;
}

typedef struct clv_rows {
    size_t n, cap;
    char **id;
    double *x, *tx, *T, *m;
    int has_amounts; /* some repeat purchase has an amount > 0 */
} clv_rows;

static int clv_collect(const seg_clv_summary *s, void *payload)
{
    clv_rows *r = payload;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        char **id = realloc(r->id, cap * sizeof *id);
        if (id)
            r->id = id;
        double *x = realloc(r->x, cap * sizeof *x);
        if (x)
            r->x = x;
        double *tx = realloc(r->tx, cap * sizeof *tx);
        if (tx)
            r->tx = tx;
        double *T = realloc(r->T, cap * sizeof *T);
        if (T)
            r->T = T;
        double *m = realloc(r->m, cap * sizeof *m);
        if (m)
            r->m = m;
        if (!id || !x || !tx || !T || !m)
            die_line(EXIT_DATA, "out of memory");
        r->cap = cap;
    }
    size_t len = strlen(s->customer_id);
    r->id[r->n] = malloc(len + 1);
    if (!r->id[r->n])
        die_line(EXIT_DATA, "out of memory");
    memcpy(r->id[r->n], s->customer_id, len + 1);
    r->x[r->n] = s->frequency;
    r->tx[r->n] = s->recency;
    r->T[r->n] = s->age;
    r->m[r->n] = s->monetary;
    if (s->frequency > 0 && s->monetary > 0)
        r->has_amounts = 1;
    r->n++;
    return 0;
}

static void clv_warnings(const char *what, const seg_clv_fit_report *r)
{
    if (r->warnings & SEG_CLV_WARN_STARTS_DISAGREE)
        fprintf(stderr, "segment clv: warning: %s: starting points reached different optima; the best is kept\n", what);
    if (r->warnings & SEG_CLV_WARN_WEAK)
        fprintf(stderr, "segment clv: warning: %s: a parameter is weakly determined by the data (standard error of its log > 1)\n", what);
    if (r->warnings & SEG_CLV_WARN_FEW_REPEAT)
        fprintf(stderr, "segment clv: warning: %s: only %.0f repeat buyers\n", what, r->repeat_buyers);
    if (r->warnings & SEG_CLV_WARN_BOUNDARY_START)
        fprintf(stderr, "segment clv: warning: %s: a starting point ran off to a boundary and was discarded\n", what);
}

/* A double for the CSV: up to 10 significant digits. */
static size_t fmt_num(char *p, double v)
{
    int n = snprintf(p, 32, "%.10g", v);
    return n > 0 ? (size_t)n : 0;
}

static int cmd_clv(int argc, char **argv)
{
    const char **events = calloc((size_t)argc + 1, sizeof *events);
    size_t nevents = 0;
    const char *model_text = NULL, *cal_text = NULL, *unit_text = NULL, *horizon_text = NULL,
               *discount_text = NULL, *margin_text = NULL, *params_path = NULL, *db_path = NULL, *val;
    if (!events)
        die_line(EXIT_DATA, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_help(a))
            print_help(clv_help);
        else if (strcmp(a, "-") == 0 || a[0] != '-')
            die_line(EXIT_USAGE, "clv: unexpected argument '%s' (event files go after --events)", a);
        else if (clv_opt(argv, argc, &i, "--events", &val))
            events[nevents++] = val;
        else if (clv_opt(argv, argc, &i, "--db", &val))
            db_path = val;
#define CLV_ONCE(opt, var)                                                        \
        else if (clv_opt(argv, argc, &i, opt, &val)) {                            \
            if (var)                                                              \
                die_line(EXIT_USAGE, "clv: %s given twice", opt);                 \
            var = val;                                                            \
        }
        CLV_ONCE("--model", model_text)
        CLV_ONCE("--calibration-end", cal_text)
        CLV_ONCE("--unit", unit_text)
        CLV_ONCE("--horizon", horizon_text)
        CLV_ONCE("--discount", discount_text)
        CLV_ONCE("--margin", margin_text)
        CLV_ONCE("--params", params_path)
#undef CLV_ONCE
        else
            die_line(EXIT_USAGE, "clv: unknown option '%s' (see 'segment clv --help')", a);
    }
    if (db_path)
        die_line(EXIT_USAGE, "clv: --db: SQLite databases are not available yet; use --events FILE.csv");
    if (nevents == 0)
        die_line(EXIT_USAGE, "clv: no events file given (--events FILE; see 'segment clv --help')");
    for (size_t i = 0; i < nevents; i++)
        if (events[i][0] == '\0')
            die_line(EXIT_USAGE, "clv: empty file name for --events");
    if (!model_text)
        die_line(EXIT_USAGE, "clv: --model is required (bgnbd, mbgnbd or pareto)");
    uint32_t kind = strcmp(model_text, "bgnbd") == 0    ? SEG_CLV_BGNBD
                    : strcmp(model_text, "mbgnbd") == 0 ? SEG_CLV_MBGNBD
                    : strcmp(model_text, "pareto") == 0 ? SEG_CLV_PARETO
                                                        : 0;
    if (!kind)
        die_line(EXIT_USAGE, "clv: --model: unknown model '%s' (bgnbd, mbgnbd or pareto)", model_text);
    if (!unit_text)
        die_line(EXIT_USAGE, "clv: --unit is required (day or week)");
    uint32_t unit = strcmp(unit_text, "day") == 0 ? SEG_CLV_DAY : strcmp(unit_text, "week") == 0 ? SEG_CLV_WEEK : 0;
    if (!unit)
        die_line(EXIT_USAGE, "clv: --unit: '%s' is not day or week", unit_text);
    double unit_days = unit == SEG_CLV_WEEK ? 7.0 : 1.0;
    if (!cal_text)
        die_line(EXIT_USAGE, "clv: --calibration-end is required");
    int64_t cal_end;
    if (seg_time_parse(&cal_end, cal_text, strlen(cal_text)) != SEG_OK)
        die_line(EXIT_USAGE, "clv: --calibration-end: not a time: '%s' (use 2024-03-01 or 2024-03-01T10:00:00Z)", cal_text);
    if (!horizon_text)
        die_line(EXIT_USAGE, "clv: --horizon is required (52w, 365d ...)");
    seg_clv_value_options vo = SEG_CLV_VALUE_OPTIONS_INIT;
    if (!clv_duration(horizon_text, unit_days, &vo.horizon) || !(vo.horizon > 0 && vo.horizon <= 1e6))
        die_line(EXIT_USAGE, "clv: --horizon: '%s' is not a duration > 0 with its unit (52w, 365d)", horizon_text);
    if (discount_text) {
        const char *slash = strchr(discount_text, '/');
        size_t n = slash ? (size_t)(slash - discount_text) : strlen(discount_text);
        if (!clv_number(discount_text, n, &vo.discount_rate) || !(vo.discount_rate >= 0 && vo.discount_rate < 1e6))
            die_line(EXIT_USAGE, "clv: --discount: '%s' is not a rate >= 0 (0.1, or 0.1/52w for 10%% a year)", discount_text);
        if (slash && (!clv_duration(slash + 1, unit_days, &vo.discount_period) || !(vo.discount_period > 0)))
            die_line(EXIT_USAGE, "clv: --discount: '%s' is not a period > 0 with its unit (52w, 365d)", slash + 1);
    }
    if (margin_text) {
        if (!clv_number(margin_text, strlen(margin_text), &vo.margin) || !(vo.margin >= 0 && vo.margin <= 1))
            die_line(EXIT_USAGE, "clv: --margin: '%s' is not a share in 0..1", margin_text);
    }

    char errbuf[512] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    opts.errbuf = errbuf;
    opts.errbuf_size = sizeof errbuf;
    seg_db *db = NULL;
    int rc = seg_db_open(&db, ":memory:", &opts);
    if (rc != SEG_OK)
        die_line(EXIT_DATA, "%s", errbuf[0] ? errbuf : seg_errstr(rc));
    for (size_t i = 0; i < nevents; i++) {
        if (strcmp(events[i], "-") == 0) {
            size_t len;
            char *data = read_stdin(&len);
            seg_csv_options copts = SEG_CSV_OPTIONS_INIT;
            copts.source_name = "<stdin>";
            rc = seg_event_import_csv(db, data, len, &copts, NULL);
            free(data);
        } else {
            rc = seg_event_import_csv_file(db, events[i], NULL, NULL);
        }
        if (rc != SEG_OK)
            die_db(db, rc);
    }

    /* summaries as of the calibration end, sorted by customer_id */
    clv_rows rows;
    memset(&rows, 0, sizeof rows);
    seg_clv_summary_options so = SEG_CLV_SUMMARY_OPTIONS_INIT;
    so.unit = unit;
    so.flags = SEG_CUSTOMER_SORTED;
    so.calibration_end = cal_end;
    seg_clv_summary_stats st = SEG_CLV_SUMMARY_STATS_INIT;
    rc = seg_clv_summary_foreach(db, &so, clv_collect, &rows, &st);
    if (rc != SEG_OK)
        die_db(db, rc);
    seg_db_close(db);

    seg_clv_model *m = NULL;
    if (seg_clv_model_new(&m, kind, unit, NULL) != SEG_OK)
        die_line(EXIT_DATA, "out of memory");
    seg_clv_columns cols = SEG_CLV_COLUMNS_INIT;
    cols.n = rows.n;
    cols.frequency = rows.x;
    cols.recency = rows.tx;
    cols.age = rows.T;
    cols.monetary = rows.m;
    seg_clv_fit_report rep = SEG_CLV_FIT_REPORT_INIT;
    rc = seg_clv_fit(m, &cols, NULL, &rep);
    if (rc != SEG_OK)
        die_line(EXIT_DATA, "clv: %s fit on %llu customers (%llu repeat buyers): %s", model_text,
                 (unsigned long long)st.customers, (unsigned long long)st.repeat_buyers,
                 seg_clv_model_errmsg(m));
    int spend_ok = 0;
    seg_clv_fit_report srep = SEG_CLV_FIT_REPORT_INIT;
    char spend_msg[600] = "no repeat purchase has an amount";
    if (rows.has_amounts) {
        if (seg_clv_fit_spend(m, &cols, NULL, &srep) == SEG_OK)
            spend_ok = 1;
        else
            snprintf(spend_msg, sizeof spend_msg, "%s", seg_clv_model_errmsg(m));
    }

    /* the summary */
    static const char *const names[2][4] = { { "r", "alpha", "a", "b" }, { "r", "alpha", "s", "beta" } };
    const char *const *pn = names[kind == SEG_CLV_PARETO];
    char cal_day[32];
    if (seg_time_format(cal_day, sizeof cal_day, cal_end) == 0)
        snprintf(cal_day, sizeof cal_day, "%lld", (long long)cal_end);
    cal_day[10] = '\0';
    fprintf(stderr, "segment clv: %s, unit %s, calibration period to %s (inclusive), horizon %g %ss\n",
            model_text, unit_text, cal_day, vo.horizon, unit_text);
    fprintf(stderr, "segment clv: %llu customers fitted (%llu repeat buyers, %llu distinct summaries); "
            "left out: %llu first buying after the calibration end, %llu without purchases\n",
            (unsigned long long)st.customers, (unsigned long long)st.repeat_buyers,
            (unsigned long long)rep.groups, (unsigned long long)st.late, (unsigned long long)st.no_purchase);
    fprintf(stderr, "segment clv: %s: %s=%.6g %s=%.6g %s=%.6g %s=%.6g, log-likelihood %.4f "
            "(converged in %u iterations, gradient %.2g)\n", model_text, pn[0], rep.params[0], pn[1],
            rep.params[1], pn[2], rep.params[2], pn[3], rep.params[3], rep.log_likelihood,
            (unsigned)rep.iterations, rep.gradient_norm);
    clv_warnings(model_text, &rep);
    if (spend_ok) {
        fprintf(stderr, "segment clv: gamma-gamma: p=%.6g q=%.6g gamma=%.6g, log-likelihood %.4f on %.0f repeat buyers "
                "(converged in %u iterations)\n", srep.params[0], srep.params[1], srep.params[2],
                srep.log_likelihood, srep.customers, (unsigned)srep.iterations);
        clv_warnings("gamma-gamma", &srep);
    } else {
        fprintf(stderr, "segment clv: no spend model (%s): expected_spend and clv are empty\n", spend_msg);
    }
    if (spend_ok && srep.params[1] <= 1)
        fprintf(stderr, "segment clv: warning: gamma-gamma q <= 1: the expected spend of customers without repeat purchases is infinite (left empty)\n");

    if (params_path) {
        char *text = NULL;
        if (seg_clv_model_export(&text, m) != SEG_OK)
            die_line(EXIT_DATA, "clv: %s", seg_clv_model_errmsg(m));
        FILE *f = fopen(params_path, "w");
        if (!f)
            die_line(EXIT_DATA, "clv: cannot write '%s': %s", params_path, strerror(errno));
        size_t len = strlen(text);
        if (fwrite(text, 1, len, f) != len || fclose(f) != 0)
            die_line(EXIT_DATA, "clv: cannot write '%s': %s", params_path, strerror(errno));
        seg_free(text);
    }

    /* scores */
    double *pa = malloc((rows.n + 1) * sizeof *pa), *ep = malloc((rows.n + 1) * sizeof *ep);
    double *sp = malloc((rows.n + 1) * sizeof *sp), *cl = malloc((rows.n + 1) * sizeof *cl);
    if (!pa || !ep || !sp || !cl)
        die_line(EXIT_DATA, "out of memory");
    if (seg_clv_predict(pa, ep, NULL, NULL, m, &cols, &vo) != SEG_OK)
        die_line(EXIT_DATA, "clv: %s", seg_clv_model_errmsg(m));
    for (size_t i = 0; i < rows.n; i++)
        sp[i] = cl[i] = NAN;
    if (spend_ok) {
        for (size_t i = 0; i < rows.n; i++) {
            if (seg_clv_expected_spend(&sp[i], m, rows.x[i], rows.m[i]) != SEG_OK) {
                sp[i] = NAN; /* q <= 1 and no repeat purchase */
                continue;
            }
            if (seg_clv_value(&cl[i], m, rows.x[i], rows.tx[i], rows.T[i], rows.m[i], &vo) != SEG_OK)
                cl[i] = NAN;
        }
    }
    out_str("customer_id,frequency,recency,T,p_alive,expected_purchases,expected_spend,clv\n");
    for (size_t i = 0; i < rows.n; i++) {
        char *p = out_reserve(OUT_ROW_MAX), *start = p;
        p += fmt_csv_field(p, rows.id[i]);
        *p++ = ',';
        p += fmt_u64(p, (uint64_t)rows.x[i]);
        *p++ = ',';
        p += fmt_num(p, rows.tx[i]);
        *p++ = ',';
        p += fmt_num(p, rows.T[i]);
        *p++ = ',';
        p += fmt_num(p, pa[i]);
        *p++ = ',';
        p += fmt_num(p, ep[i]);
        *p++ = ',';
        if (!isnan(sp[i]))
            p += fmt_num(p, sp[i]);
        *p++ = ',';
        if (!isnan(cl[i]))
            p += fmt_num(p, cl[i]);
        *p++ = '\n';
        out_len += (size_t)(p - start);
        free(rows.id[i]);
    }
    out_finish();
    free(pa);
    free(ep);
    free(sp);
    free(cl);
    free(rows.id);
    free(rows.x);
    free(rows.tx);
    free(rows.T);
    free(rows.m);
    seg_clv_model_free(m);
    free(events);
    return 0;
}

/* ---- main ---- */

static void print_version(void)
{
    char line[128];
    snprintf(line, sizeof line, "segment %s (libsegment %s)\n", SEG_VERSION_STRING,
             seg_version_string());
    out_str(line);
    out_finish();
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die_line(EXIT_USAGE, "no command given (see 'segment --help')");
    const char *cmd = argv[1];
    if (is_help(cmd))
        print_help(main_help);
    if (strcmp(cmd, "--version") == 0)
        print_version();
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3)
            print_help(main_help);
        if (strcmp(argv[2], "customers") == 0)
            print_help(customers_help);
        if (strcmp(argv[2], "clv") == 0)
            print_help(clv_help);
        die_line(EXIT_USAGE, "help: unknown command '%s' (see 'segment --help')", argv[2]);
    }
    if (strcmp(cmd, "customers") == 0)
        return cmd_customers(argc - 1, argv + 1);
    if (strcmp(cmd, "clv") == 0)
        return cmd_clv(argc - 1, argv + 1);
    if (cmd[0] == '-')
        die_line(EXIT_USAGE, "unknown option '%s' (see 'segment --help')", cmd);
    die_line(EXIT_USAGE, "unknown command '%s' (see 'segment --help')", cmd);
}
