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
    "  eval          evaluate segment definitions: one CSV row per membership\n"
    "  report        sizes, revenue shares, overlap and coverage of segments\n"
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

/* ---- segment eval, segment report: definition files ---- */

static const char eval_help[] =
    "Usage: segment eval DEFS.seg [DEFS.seg ...] --events FILE [--events FILE ...]\n"
    "                    [--customers FILE] [--as-of TIME]\n"
    "       segment eval DEFS.seg [...] --db FILE.db [--as-of TIME]\n"
    "\n"
    "Compile segment definitions (the language of doc/segdef.md), evaluate them\n"
    "over the customers of the events and print one CSV row per membership:\n"
    "\n"
    "  customer_id,segment\n"
    "\n"
    "A customer in several segments has several rows; a segment set gives each\n"
    "customer one row with its label.  Rows are sorted by customer_id (byte\n"
    "order), then in the order the segments are defined.  Customers in no\n"
    "segment have no row.\n"
    "\n"
    "Options (each also accepted as --option=VALUE):\n"
    "  DEFS.seg          definition files, compiled as one text in the order\n"
    "                    given (so in(x) may name a segment of another file);\n"
    "                    errors name the file, line and column\n"
    "  --events FILE     an event CSV file (as for 'segment customers'); repeat\n"
    "                    for several; '-' reads standard input\n"
    "  --customers FILE  a customer CSV file: attributes (attr(\"name\")) and\n"
    "                    consent (consent(\"channel\")); may be repeated\n"
    "  --as-of TIME      evaluate as of TIME: only events with ts < TIME count,\n"
    "                    windows such as spend(30d) end at TIME.  Default: one\n"
    "                    second after the latest event, so every event counts\n"
    "                    and the output does not depend on the clock.\n"
    "                    ISO-8601 UTC or epoch seconds.\n"
    "  --db FILE.db      read a database file instead of CSV (not available in\n"
    "                    this build yet)\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Exit status: 0 on success, 1 on bad data, a bad definition or an\n"
    "unreadable file (one line on standard error naming file:line:column), 2 on\n"
    "a usage error.\n"
    "\n"
    "Example:\n"
    "  segment eval examples/definitions/journeys.seg \\\n"
    "      --events examples/data/sample_events.csv --as-of 2025-01-01\n";

static const char report_help[] =
    "Usage: segment report DEFS.seg [DEFS.seg ...] --events FILE [--events FILE ...]\n"
    "                      [--customers FILE] [--as-of TIME]\n"
    "\n"
    "Evaluate segment definitions as 'segment eval' does and print, as CSV\n"
    "sections separated by blank lines:\n"
    "\n"
    "  1. totals: customers, customers in none of the plain segments,\n"
    "     customers in several plain segments (set labels are exclusive and\n"
    "     exhaustive by construction, so they are left out of these two), and\n"
    "     the net revenue of all customers;\n"
    "  2. one row per segment: its set (empty for a plain segment), size,\n"
    "     share of the customers, net revenue of its members and share of the\n"
    "     total net revenue;\n"
    "  3. the overlap matrix: customers in both the row's and the column's\n"
    "     segment (the diagonal is the size).\n"
    "\n"
    "Shares are percentages with one decimal.  Options as for 'segment eval'\n"
    "(see 'segment eval --help').\n"
    "\n"
    "Example:\n"
    "  segment report examples/definitions/journeys.seg \\\n"
    "      --events examples/data/sample_events.csv --as-of 2025-01-01\n";

typedef struct defs_cmd {
    const char *name;       /* "eval" or "report" */
    const char **defs, **events, **custs;
    size_t ndefs, nevents, ncusts;
    const char *as_of_text, *db_path;
} defs_cmd;

static int defs_opt(char **argv, int argc, int *i, const char *cmd, const char *name,
                    const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || (a[n] != '=' && a[n] != '\0'))
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
    } else {
        if (*i + 1 >= argc)
            die_line(EXIT_USAGE, "option '%s' needs a value (see 'segment %s --help')", name, cmd);
        *val = argv[++*i];
    }
    if (!**val)
        die_line(EXIT_USAGE, "%s: empty value for %s", cmd, name);
    return 1;
}

static void defs_parse(defs_cmd *c, int argc, char **argv, const char *help)
{
    c->defs = calloc((size_t)argc + 1, sizeof *c->defs);
    c->events = calloc((size_t)argc + 1, sizeof *c->events);
    c->custs = calloc((size_t)argc + 1, sizeof *c->custs);
    if (!c->defs || !c->events || !c->custs)
        die_line(EXIT_DATA, "out of memory");
    int only_files = 0;
    const char *val;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-') {
            c->defs[c->ndefs++] = a;
        } else if (strcmp(a, "--") == 0) {
            only_files = 1;
        } else if (is_help(a)) {
            print_help(help);
        } else if (defs_opt(argv, argc, &i, c->name, "--events", &val)) {
            c->events[c->nevents++] = val;
        } else if (defs_opt(argv, argc, &i, c->name, "--customers", &val)) {
            c->custs[c->ncusts++] = val;
        } else if (defs_opt(argv, argc, &i, c->name, "--as-of", &val)) {
            if (c->as_of_text)
                die_line(EXIT_USAGE, "--as-of given twice");
            c->as_of_text = val;
        } else if (defs_opt(argv, argc, &i, c->name, "--db", &val)) {
            if (c->db_path)
                die_line(EXIT_USAGE, "--db given twice");
            c->db_path = val;
        } else {
            die_line(EXIT_USAGE, "%s: unknown option '%s' (see 'segment %s --help')", c->name, a,
                     c->name);
        }
    }
    if (c->ndefs == 0)
        die_line(EXIT_USAGE, "%s: no definition file given (see 'segment %s --help')", c->name,
                 c->name);
    if (c->db_path)
        die_line(EXIT_USAGE, "--db %s: reading a database file is not available in this build "
                 "yet; load the events with --events FILE.csv", c->db_path);
    if (c->nevents == 0)
        die_line(EXIT_USAGE, "%s: no events file given (--events FILE; see 'segment %s --help')",
                 c->name, c->name);
}

static char *read_whole_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die_line(EXIT_DATA, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 14, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        die_line(EXIT_DATA, "out of memory");
    for (;;) {
        if (len == cap) {
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb)
                die_line(EXIT_DATA, "out of memory reading '%s'", path);
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                die_line(EXIT_DATA, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    *len_out = len;
    return buf;
}

static int latest_event_cb(const seg_customer_info *c, void *payload)
{
    int64_t *t = payload;
    if (c->events && c->last_seen > *t)
        *t = c->last_seen;
    return 0;
}

/* Load the data and compile the definitions; *now_out is the evaluation time. */
static seg_segdef *defs_load(const defs_cmd *c, seg_db **db_out, int64_t *now_out)
{
    int64_t now = 0;
    if (c->as_of_text) {
        int rc = seg_time_parse(&now, c->as_of_text, strlen(c->as_of_text));
        if (rc == SEG_ERANGE)
            die_line(EXIT_USAGE, "--as-of: time out of range: '%s'", c->as_of_text);
        if (rc != SEG_OK)
            die_line(EXIT_USAGE,
                     "--as-of: not a time: '%s' (use 2024-03-01, 2024-03-01T10:00:00Z or epoch seconds)",
                     c->as_of_text);
    }
    /* the definition files, as one text; remember where each starts */
    size_t *first_line = calloc(c->ndefs + 1, sizeof *first_line);
    char *text = NULL;
    size_t tlen = 0, lines = 0;
    if (!first_line)
        die_line(EXIT_DATA, "out of memory");
    for (size_t k = 0; k < c->ndefs; k++) {
        size_t n;
        char *part = read_whole_file(c->defs[k], &n);
        char *nt = realloc(text, tlen + n + 2);
        if (!nt)
            die_line(EXIT_DATA, "out of memory");
        text = nt;
        first_line[k] = lines + 1;
        memcpy(text + tlen, part, n);
        tlen += n;
        if (n == 0 || part[n - 1] != '\n')
            text[tlen++] = '\n';
        for (size_t j = 0; j < n; j++)
            lines += part[j] == '\n';
        if (n == 0 || part[n - 1] != '\n')
            lines++;
        free(part);
    }

    char errbuf[512] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    opts.errbuf = errbuf;
    opts.errbuf_size = sizeof errbuf;
    seg_db *db = NULL;
    int rc = seg_db_open(&db, ":memory:", &opts);
    if (rc != SEG_OK)
        die_line(EXIT_DATA, "%s", errbuf[0] ? errbuf : seg_errstr(rc));
    for (size_t i = 0; i < c->nevents; i++) {
        if (strcmp(c->events[i], "-") == 0) {
            size_t len;
            char *data = read_stdin(&len);
            seg_csv_options copts = SEG_CSV_OPTIONS_INIT;
            copts.source_name = "<stdin>";
            rc = seg_event_import_csv(db, data, len, &copts, NULL);
            free(data);
        } else {
            rc = seg_event_import_csv_file(db, c->events[i], NULL, NULL);
        }
        if (rc != SEG_OK)
            die_db(db, rc);
    }
    for (size_t i = 0; i < c->ncusts; i++)
        if ((rc = seg_customer_import_csv_file(db, c->custs[i])) != SEG_OK)
            die_db(db, rc);
    if (!c->as_of_text) {
        int64_t latest = INT64_MIN;
        if ((rc = seg_customer_foreach(db, 0, latest_event_cb, &latest)) != SEG_OK)
            die_db(db, rc);
        now = latest == INT64_MIN ? 0 : latest + 1;
    }

    seg_segdef *def = NULL;
    rc = seg_segdef_compile(&def, db, text, tlen);
    if (rc != SEG_OK) {
        /* "LINE:COL: message" of the joined text -> "FILE:LINE:COL: message" */
        const char *msg = seg_errmsg(db);
        unsigned long line = strtoul(msg, NULL, 10);
        const char *rest = strchr(msg, ':');
        size_t k = 0;
        while (k + 1 < c->ndefs && first_line[k + 1] <= line)
            k++;
        if (line >= 1 && rest)
            die_line(EXIT_DATA, "%s:%lu%s", c->defs[k], line - first_line[k] + 1, rest);
        die_db(db, rc);
    }
    free(text);
    free(first_line);
    *db_out = db;
    *now_out = now;
    return def;
}

typedef struct eval_ctx {
    seg_segdef *def;
} eval_ctx;

static int print_members(const char *customer_id, const unsigned char *member, size_t n,
                         void *payload)
{
    eval_ctx *ctx = payload;
    for (size_t i = 0; i < n; i++) {
        if (!member[i])
            continue;
        char *p = out_reserve(OUT_ROW_MAX), *start = p;
        p += fmt_csv_field(p, customer_id);
        *p++ = ',';
        const char *name = seg_segdef_segment_name(ctx->def, i);
        size_t nl = strlen(name); /* a name is at most 256 bytes, never quoted */
        memcpy(p, name, nl);
        p += nl;
        *p++ = '\n';
        out_len += (size_t)(p - start);
    }
    return 0;
}

static int cmd_eval(int argc, char **argv)
{
    defs_cmd c;
    memset(&c, 0, sizeof c);
    c.name = "eval";
    defs_parse(&c, argc, argv, eval_help);
    seg_db *db;
    int64_t now;
    seg_segdef *def = defs_load(&c, &db, &now);
    eval_ctx ctx = { def };
    out_str("customer_id,segment\n");
    int rc = seg_segdef_eval(def, now, SEG_SEGDEF_SORTED, print_members, &ctx);
    if (rc != SEG_OK)
        die_db(db, rc);
    out_finish();
    seg_segdef_free(def);
    seg_db_close(db);
    free(c.defs);
    free(c.events);
    free(c.custs);
    return 0;
}

/* "12.3%" of part / whole, or "" when whole is 0 */
static void fmt_share(char *buf, size_t size, double part, double whole)
{
    if (whole == 0)
        buf[0] = '\0';
    else
        snprintf(buf, size, "%.1f%%", 100.0 * part / whole);
}

static void out_money(int64_t v, int exponent)
{
    char m[SEG_MONEY_BUFSIZE];
    if (seg_money_format(m, sizeof m, v, exponent) == 0)
        die_line(EXIT_DATA, "an amount could not be formatted");
    out_str(m);
}

static void out_u64(uint64_t v)
{
    char b[24];
    b[fmt_u64(b, v)] = '\0';
    out_str(b);
}

static int cmd_report(int argc, char **argv)
{
    defs_cmd c;
    memset(&c, 0, sizeof c);
    c.name = "report";
    defs_parse(&c, argc, argv, report_help);
    seg_db *db;
    int64_t now;
    seg_segdef *def = defs_load(&c, &db, &now);
    seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
    int rc = seg_segdef_report_get(&r, def, now);
    if (rc != SEG_OK)
        die_db(db, rc);
    int exp = seg_db_currency_exponent(db);
    char t[32], share[32];
    if (seg_time_format(t, sizeof t, now) == 0)
        snprintf(t, sizeof t, "%lld", (long long)now);
    out_str("# segment report as of ");
    out_str(t);
    out_str("\ncustomers,in_none,in_several,net_revenue\n");
    out_u64(r.customers);
    out_str(",");
    out_u64(r.in_none);
    out_str(",");
    out_u64(r.in_several);
    out_str(",");
    out_money(r.net_revenue, exp);
    out_str("\n\nsegment,set,size,customer_share,net_revenue,revenue_share\n");
    for (size_t i = 0; i < r.segments; i++) {
        const char *set = seg_segdef_segment_set(def, i);
        out_str(seg_segdef_segment_name(def, i));
        out_str(",");
        out_str(set ? set : "");
        out_str(",");
        out_u64(r.size[i]);
        out_str(",");
        fmt_share(share, sizeof share, (double)r.size[i], (double)r.customers);
        out_str(share);
        out_str(",");
        out_money(r.revenue[i], exp);
        out_str(",");
        fmt_share(share, sizeof share, (double)r.revenue[i], (double)r.net_revenue);
        out_str(share);
        out_str("\n");
    }
    out_str("\noverlap");
    for (size_t j = 0; j < r.segments; j++) {
        out_str(",");
        out_str(seg_segdef_segment_name(def, j));
    }
    out_str("\n");
    for (size_t i = 0; i < r.segments; i++) {
        out_str(seg_segdef_segment_name(def, i));
        for (size_t j = 0; j < r.segments; j++) {
            out_str(",");
            out_u64(r.overlap[i * r.segments + j]);
        }
        out_str("\n");
    }
    out_finish();
    seg_segdef_free(def);
    seg_db_close(db);
    free(c.defs);
    free(c.events);
    free(c.custs);
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
        if (strcmp(argv[2], "eval") == 0)
            print_help(eval_help);
        if (strcmp(argv[2], "report") == 0)
            print_help(report_help);
        die_line(EXIT_USAGE, "help: unknown command '%s' (see 'segment --help')", argv[2]);
    }
    if (strcmp(cmd, "customers") == 0)
        return cmd_customers(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (cmd[0] == '-')
        die_line(EXIT_USAGE, "unknown option '%s' (see 'segment --help')", cmd);
    die_line(EXIT_USAGE, "unknown command '%s' (see 'segment --help')", cmd);
}
