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
#include <time.h>

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
        die_line(EXIT_USAGE, "option '%s' needs a value (see --help)", name);
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
    "  rfm           print recency, frequency, monetary and their scores per\n"
    "                customer, or the thresholds of the scores\n"
    "  import        import event and customer CSV files into a database file\n"
    "  eval          evaluate segment definitions: one CSV row per membership\n"
    "  report        sizes, revenue shares, overlap and coverage of segments\n"
    "  clv           fit a lifetime-value model and print each customer's\n"
    "                P(alive), expected purchases, spend and value\n"
    "  loyalty       loyalty points and tiers of a program, per customer\n"
    "  run           replay events through the journeys of definitions and\n"
    "                print the actions they send\n"
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
    "       segment customers --db FILE.db [--as-of TIME]\n"
    "\n"
    "Import events (and optionally customer attributes) into an in-memory\n"
    "database, or read a database file that 'segment import' wrote, and print\n"
    "one CSV row per customer to standard output, sorted by customer_id (byte\n"
    "order).  Nothing is written anywhere else.\n"
    "\n"
    "Options (each also accepted as --option=VALUE):\n"
    "  --db FILE.db      read this database file (read-only; it may be open for\n"
    "                    writing elsewhere at the same time) instead of CSV files\n"
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

/* Read all of a stream; `name` is for messages, `max` the largest size
 * accepted (dies beyond it). */
static char *read_stream(FILE *f, const char *name, size_t max, size_t *len_out)
{
    size_t cap = 1 << 14, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        die_line(EXIT_DATA, "out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= max)
                die_line(EXIT_DATA, "%s: too large (more than %zu bytes)", name, max);
            char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb)
                die_line(EXIT_DATA, "out of memory reading %s", name);
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                die_line(EXIT_DATA, "%s: read error: %s", name, strerror(errno));
            break;
        }
    }
    *len_out = len;
    return buf;
}

/* Read all of standard input (for "-"). */
static char *read_stdin(size_t *len_out)
{
    return read_stream(stdin, "<stdin>", SIZE_MAX, len_out);
}

/* Read a whole file (definitions, thresholds). */
static char *read_whole_file(const char *path, size_t max, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die_line(EXIT_DATA, "cannot open '%s': %s", path, strerror(errno));
    char *buf = read_stream(f, path, max, len_out);
    fclose(f);
    return buf;
}

/* ---- input: --db FILE or --events FILE ... ---- */

/* What a command reads: a database file, or CSV files imported into an
 * in-memory database (or into the file, for 'import'). */
typedef struct input_opts {
    const char *db_path;     /* --db */
    const char **events;     /* --events FILE and bare FILE arguments */
    size_t nevents;
    const char **customers;  /* --customers FILE */
    size_t ncustomers;
    int only_files;          /* after "--": every argument is an events file */
} input_opts;

static void input_init(input_opts *in, int argc)
{
    memset(in, 0, sizeof *in);
    in->events = calloc((size_t)argc + 1, sizeof *in->events);
    in->customers = calloc((size_t)argc + 1, sizeof *in->customers);
    if (!in->events || !in->customers)
        die_line(EXIT_DATA, "out of memory");
}

static void input_free(input_opts *in)
{
    free(in->events);
    free(in->customers);
}

/*
 * Take argv[*i] if it is an input option (--db, --events, --customers, "--")
 * or a bare FILE; returns 1 when taken.
 */
static int input_option(input_opts *in, char **argv, int argc, int *i)
{
    const char *a = argv[*i], *val;
    if (in->only_files || a[0] != '-' || strcmp(a, "-") == 0) {
        in->events[in->nevents++] = a;
    } else if (strcmp(a, "--") == 0) {
        in->only_files = 1;
    } else if (opt_value(argv, argc, i, "--events", &val)) {
        in->events[in->nevents++] = val;
    } else if (opt_value(argv, argc, i, "--customers", &val)) {
        in->customers[in->ncustomers++] = val;
    } else if (opt_value(argv, argc, i, "--db", &val)) {
        if (in->db_path)
            die_line(EXIT_USAGE, "--db given twice");
        if (!*val)
            die_line(EXIT_USAGE, "empty file name for --db");
        in->db_path = val;
    } else {
        return 0;
    }
    return 1;
}

/* Import one events file ('-': standard input) into db. */
static void import_events(seg_db *db, const char *path, seg_ingest_stats *st)
{
    int rc;
    if (strcmp(path, "-") == 0) {
        size_t len;
        char *data = read_stdin(&len);
        seg_csv_options copts = SEG_CSV_OPTIONS_INIT;
        copts.source_name = "<stdin>";
        rc = seg_event_import_csv(db, data, len, &copts, st);
        free(data);
    } else {
        rc = seg_event_import_csv_file(db, path, NULL, st);
    }
    if (rc != SEG_OK)
        die_db(db, rc);
}

/*
 * Open what the input options name and import the CSV files into it:
 * - write == 0: --db FILE.db alone, opened read-only; or --events files
 *   (at least one) and --customers files, imported into a new in-memory
 *   database;
 * - write == 1 ('import'): --db FILE.db (created if missing) and the files
 *   to import into it (at least one); one line per file is printed.
 * Dies with a usage error (status 2) when the options do not fit, and
 * with status 1 when a file cannot be opened or imported.
 */
static seg_db *open_input(const input_opts *in, const char *cmd, int write)
{
    for (size_t i = 0; i < in->nevents; i++)
        if (in->events[i][0] == '\0')
            die_line(EXIT_USAGE, "%s: empty file name for --events", cmd);
    for (size_t i = 0; i < in->ncustomers; i++)
        if (in->customers[i][0] == '\0')
            die_line(EXIT_USAGE, "%s: empty file name for --customers", cmd);
    if (write && !in->db_path)
        die_line(EXIT_USAGE, "%s: no database file given (--db FILE.db; see 'segment %s --help')",
                 cmd, cmd);
    if (write && in->nevents + in->ncustomers == 0)
        die_line(EXIT_USAGE, "%s: nothing to import (give events files and/or --customers "
                 "FILE; see 'segment %s --help')", cmd, cmd);
    if (!write && in->db_path && in->nevents + in->ncustomers)
        die_line(EXIT_USAGE, "%s: --db reads a database file, --events and --customers "
                 "import CSV files: give one or the other (add files to a database with "
                 "'segment import --db FILE.db FILES')", cmd);
    if (!write && !in->db_path && in->nevents == 0)
        die_line(EXIT_USAGE, "%s: no events file given (--events FILE, or --db FILE.db; see "
                 "'segment %s --help')", cmd, cmd);

    char errbuf[1024] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    opts.errbuf = errbuf;
    opts.errbuf_size = sizeof errbuf;
    if (in->db_path) {
        opts.storage = seg_storage_sqlite();
        opts.flags = write ? SEG_DB_CREATE : SEG_DB_READONLY;
    }
    seg_db *db = NULL;
    int rc = seg_db_open(&db, in->db_path ? in->db_path : ":memory:", &opts);
    if (rc != SEG_OK)
        die_line(EXIT_DATA, "%s", errbuf[0] ? errbuf : seg_errstr(rc));

    char line[2 * 4096];
    for (size_t i = 0; i < in->nevents; i++) {
        seg_ingest_stats st = SEG_INGEST_STATS_INIT;
        import_events(db, in->events[i], &st);
        if (write) {
            snprintf(line, sizeof line, "%s: %llu new events, %llu already stored\n",
                     strcmp(in->events[i], "-") == 0 ? "<stdin>" : in->events[i],
                     (unsigned long long)st.accepted, (unsigned long long)st.duplicates);
            out_str(line);
            out_flush(); /* the file is stored: say so now */
        }
    }
    for (size_t i = 0; i < in->ncustomers; i++) {
        rc = seg_customer_import_csv_file(db, in->customers[i]);
        if (rc != SEG_OK)
            die_db(db, rc);
        if (write) {
            snprintf(line, sizeof line, "%s: customers imported\n", in->customers[i]);
            out_str(line);
            out_flush();
        }
    }
    return db;
}

/* ---- segment import ---- */

static const char import_help[] =
    "Usage: segment import --db FILE.db [--events FILE ...] [FILE ...]\n"
    "                      [--customers FILE ...]\n"
    "\n"
    "Import event and customer CSV files into a database file (SQLite),\n"
    "creating it if it does not exist.  Other commands read it with --db.\n"
    "\n"
    "Options (each also accepted as --option=VALUE):\n"
    "  --db FILE.db      the database file.  Only one process may write it at a\n"
    "                    time: while another has it open for writing, import\n"
    "                    fails (status 1); readers are not affected.\n"
    "  --events FILE     an event CSV file; repeat for several files.  FILE\n"
    "                    arguments without an option (or after --) are event\n"
    "                    files too; '-' reads standard input.  Each file is one\n"
    "                    atomic batch: one bad row fails the command, and the\n"
    "                    files imported before it stay in the database.  Events\n"
    "                    already stored are skipped, so importing a file twice\n"
    "                    stores it once.\n"
    "  --customers FILE  a customer CSV file (header customer_id, then NAME:TYPE\n"
    "                    and consent:CHANNEL columns); read after the event\n"
    "                    files.  May be repeated.\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "The CSV formats are those of 'segment customers' (see its --help and\n"
    "doc/guide.md).  Once this command has printed a file's line, that file is\n"
    "durably stored: it survives a crash or a power loss.\n"
    "\n"
    "Output: one line per file, \"FILE: N new events, M already stored\" or\n"
    "\"FILE: customers imported\".\n"
    "\n"
    "Exit status: 0 on success, 1 on bad data, an unreadable file or a\n"
    "database that cannot be opened for writing, 2 on a usage error.\n"
    "\n"
    "Example:\n"
    "  segment import --db shop.db examples/data/sample_events.csv \\\n"
    "      --customers examples/data/sample_customers.csv\n"
    "  segment customers --db shop.db --as-of 2024-07-01\n";

static int cmd_import(int argc, char **argv)
{
    input_opts in;
    input_init(&in, argc);
    for (int i = 1; i < argc; i++) {
        if (!in.only_files && is_help(argv[i]))
            print_help(import_help);
        if (!input_option(&in, argv, argc, &i))
            die_line(EXIT_USAGE, "import: unknown option '%s' (see 'segment import --help')",
                     argv[i]);
    }
    seg_db *db = open_input(&in, "import", 1);
    out_finish();
    seg_db_close(db);
    input_free(&in);
    return 0;
}

static int cmd_customers(int argc, char **argv)
{
    input_opts in;
    const char *as_of_text = NULL, *val;

    input_init(&in, argc);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!in.only_files && is_help(a)) {
            print_help(customers_help);
        } else if (input_option(&in, argv, argc, &i)) {
            continue;
        } else if (opt_value(argv, argc, &i, "--as-of", &val)) {
            if (as_of_text)
                die_line(EXIT_USAGE, "--as-of given twice");
            as_of_text = val;
        } else {
            die_line(EXIT_USAGE, "customers: unknown option '%s' (see 'segment customers --help')", a);
        }
    }

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

    seg_db *db = open_input(&in, "customers", 0);
    int rc;
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
    input_free(&in);
    return 0;
}

/* ---- segment rfm ---- */

static const char rfm_help[] =
    "Usage: segment rfm --events FILE [--events FILE ...] [FILE ...]\n"
    "                   [--customers FILE] [--as-of TIME] [--window DURATION]\n"
    "                   [--bins N]\n"
    "                   [--monetary total|aov] [--use-thresholds FILE]\n"
    "                   [--thresholds] [--value] [--timings]\n"
    "       segment rfm --db FILE.db [OPTIONS]\n"
    "\n"
    "Import events into an in-memory database, compute recency, frequency and\n"
    "monetary value per customer, calibrate quantile bins on the customers and\n"
    "print one CSV row per customer to standard output, sorted by customer_id\n"
    "(byte order).  doc/rfm.md explains the definitions and the binning.\n"
    "\n"
    "Options (each also accepted as --option=VALUE):\n"
    "  --events FILE     an event CSV file; repeat for several files.  FILE\n"
    "                    arguments without an option (or after --) are event\n"
    "                    files too; '-' reads standard input.  Each file is one\n"
    "                    atomic batch; events already imported are skipped.\n"
    "  --customers FILE  a customer CSV file (customers without a purchase are\n"
    "                    listed as prospects); repeat for several files.\n"
    "  --db FILE.db      read a libsegment database file instead of CSV files\n"
    "                    (read-only; see 'segment import --help').\n"
    "  --as-of TIME      the reference time: only events with ts < TIME count,\n"
    "                    and recency is counted to the UTC date of TIME.\n"
    "                    Default: the start of the day after the last event\n"
    "                    (so a purchase on the last day has recency 1).  TIME\n"
    "                    is ISO-8601 UTC (2024-03-01, 2024-03-01T10:00:00Z, an\n"
    "                    optional +hh:mm offset) or seconds since the epoch.\n"
    "  --window DURATION only events in the DURATION before the reference time\n"
    "                    count for recency, frequency and monetary: a number\n"
    "                    and a unit, s, h, d or w (365d, 12w).  Default: none.\n"
    "  --bins N          scores per dimension, 2..20 (default 5).\n"
    "  --monetary M      total: net revenue in the window (default); aov: that\n"
    "                    divided by frequency (the average order value).\n"
    "  --use-thresholds FILE\n"
    "                    score with the thresholds in FILE (as printed by\n"
    "                    --thresholds, or written by hand) instead of\n"
    "                    calibrating on these customers; --bins, --monetary and\n"
    "                    --window then come from FILE.\n"
    "  --thresholds      print the thresholds (the cut-points of every score)\n"
    "                    instead of the customers.\n"
    "  --value           add the historic value columns (see below).\n"
    "  --timings         print the time of each phase on standard error, as\n"
    "                    lines 'phase NAME SECONDS'.\n"
    "  -h, --help        show this help and exit\n"
    "\n"
    "Output columns (header row first):\n"
    "  customer_id     quoted as in RFC 4180 when it holds a comma, a double\n"
    "                  quote, CR or LF\n"
    "  recency_days    UTC calendar days from the date of the last purchase (a\n"
    "                  line with a positive amount) in the window to the date\n"
    "                  of the reference time; empty when there is none\n"
    "  frequency       distinct orders with a purchase in the window\n"
    "  monetary        net revenue in the window (purchases plus refunds), or\n"
    "                  with --monetary aov the average order value\n"
    "  r, f, m         scores 1..N, higher is better (recent, frequent, high\n"
    "                  value); equal values always get equal scores.  Empty for\n"
    "                  customers with no purchase in the window (prospects and\n"
    "                  lapsed customers get no scores).\n"
    "With --value, also (every event before the reference time, whatever the\n"
    "window):\n"
    "  status          active (a purchase in the window), lapsed (purchases\n"
    "                  before the window only) or prospect (no purchase)\n"
    "  orders          distinct orders with a purchase\n"
    "  total_value     net revenue\n"
    "  average_order_value   total_value / orders; empty when orders is 0\n"
    "  tenure_days     days from the date of the first purchase to the date of\n"
    "                  the reference time; empty when orders is 0\n"
    "  purchase_rate   orders per 365 days of tenure; empty when orders is 0\n"
    "Money is printed with 2 decimals, without thousands separators.\n"
    "\n"
    "Exit status: 0 on success, 1 on bad data or an unreadable file (one line\n"
    "on standard error naming file:line:column), 2 on a usage error.\n"
    "\n"
    "Examples:\n"
    "  segment rfm --events examples/data/sample_events.csv\n"
    "  segment rfm --events events.csv --window 365d --thresholds > t.txt\n"
    "  segment rfm --events new.csv --window 365d --use-thresholds t.txt\n";

typedef struct rfm_args {
    input_opts in;          /* --events, --customers, --db */
    const char *as_of_text, *window_text, *bins_text, *monetary_text, *thresholds_path;
    int print_thresholds, value, timings;
} rfm_args;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void phase(const rfm_args *a, const char *name, double *t0)
{
    double t = now_seconds();
    if (a->timings) {
        fflush(stdout);
        fprintf(stderr, "phase %s %.3f\n", name, t - *t0);
    }
    *t0 = t;
}

/* "365d", "12w", "48h", "3600s" -> seconds */
static int64_t parse_duration(const char *text)
{
    const char *p = text;
    int64_t v = 0;
    if (*p < '0' || *p > '9')
        goto bad;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_C(1) << 40))
            die_line(EXIT_USAGE, "--window: too long: '%s'", text);
        v = v * 10 + (*p++ - '0');
    }
    int64_t unit;
    switch (*p++) {
    case 's': unit = 1; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: goto bad;
    }
    if (*p != '\0')
        goto bad;
    if (v == 0)
        die_line(EXIT_USAGE, "--window: must be longer than 0: '%s'", text);
    if (v > (SEG_TIME_MAX - SEG_TIME_MIN) / unit)
        die_line(EXIT_USAGE, "--window: too long: '%s'", text);
    return v * unit;
bad:
    die_line(EXIT_USAGE,
             "--window: not a duration: '%s' (a number and a unit s, h, d or w: 365d)", text);
}

static void rfm_parse_args(int argc, char **argv, rfm_args *a)
{
    const char *val;
    memset(a, 0, sizeof *a);
    input_init(&a->in, argc);
#define ONCE(field, name)                                        \
    do {                                                         \
        if (a->field)                                            \
            die_line(EXIT_USAGE, "rfm: %s given twice", name);   \
        a->field = val;                                          \
    } while (0)
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!a->in.only_files && is_help(s)) {
            print_help(rfm_help);
        } else if (input_option(&a->in, argv, argc, &i)) {
            continue;
        } else if (opt_value(argv, argc, &i, "--as-of", &val)) {
            ONCE(as_of_text, "--as-of");
        } else if (opt_value(argv, argc, &i, "--window", &val)) {
            ONCE(window_text, "--window");
        } else if (opt_value(argv, argc, &i, "--bins", &val)) {
            ONCE(bins_text, "--bins");
        } else if (opt_value(argv, argc, &i, "--monetary", &val)) {
            ONCE(monetary_text, "--monetary");
        } else if (opt_value(argv, argc, &i, "--use-thresholds", &val)) {
            ONCE(thresholds_path, "--use-thresholds");
        } else if (strcmp(s, "--thresholds") == 0) {
            a->print_thresholds = 1;
        } else if (strcmp(s, "--value") == 0) {
            a->value = 1;
        } else if (strcmp(s, "--timings") == 0) {
            a->timings = 1;
        } else {
            die_line(EXIT_USAGE, "rfm: unknown option '%s' (see 'segment rfm --help')", s);
        }
    }
#undef ONCE
    if (a->thresholds_path && (a->bins_text || a->monetary_text || a->window_text))
        die_line(EXIT_USAGE,
                 "rfm: --use-thresholds sets the bins, the monetary measure and the window: "
                 "not with --bins, --monetary or --window");
}

/* The options of the computation from the arguments (usage errors exit 2). */
static void rfm_options(const rfm_args *a, seg_rfm_options *o)
{
    seg_rfm_options d = SEG_RFM_OPTIONS_INIT;
    *o = d;
    if (a->as_of_text) {
        int rc = seg_time_parse(&o->as_of, a->as_of_text, strlen(a->as_of_text));
        if (rc == SEG_ERANGE)
            die_line(EXIT_USAGE, "--as-of: time out of range: '%s'", a->as_of_text);
        if (rc != SEG_OK)
            die_line(EXIT_USAGE,
                     "--as-of: not a time: '%s' (use 2024-03-01, 2024-03-01T10:00:00Z or epoch seconds)",
                     a->as_of_text);
    }
    if (a->window_text)
        o->window = parse_duration(a->window_text);
    if (a->bins_text) {
        const char *p = a->bins_text;
        long v = 0;
        while (*p >= '0' && *p <= '9' && v <= SEG_RFM_BINS_MAX)
            v = v * 10 + (*p++ - '0');
        if (p == a->bins_text || *p != '\0' || v < 2 || v > SEG_RFM_BINS_MAX)
            die_line(EXIT_USAGE, "--bins: must be a whole number from 2 to %d: '%s'",
                     SEG_RFM_BINS_MAX, a->bins_text);
        o->bins = (uint32_t)v;
    }
    if (a->monetary_text) {
        if (strcmp(a->monetary_text, "total") == 0)
            o->monetary = SEG_RFM_MONETARY_TOTAL;
        else if (strcmp(a->monetary_text, "aov") == 0)
            o->monetary = SEG_RFM_MONETARY_AOV;
        else
            die_line(EXIT_USAGE, "--monetary: must be 'total' or 'aov': '%s'", a->monetary_text);
    }
}

/* Open the database the command reads: the event files imported into a
 * memory database, or a database file (the shared input helper). */
static seg_db *rfm_open_input(const rfm_args *a)
{
    return open_input(&a->in, "rfm", 0);
}

typedef struct rfm_row_ctx {
    int exponent;
    int value;
    int failed;
    const rfm_args *args;
    double *t0;
    int started; /* the first row: the computation before it is done */
} rfm_row_ctx;

static int print_rfm_row(const seg_rfm_info *c, void *payload)
{
    rfm_row_ctx *ctx = payload;
    if (!ctx->started) {
        ctx->started = 1;
        phase(ctx->args, "rfm", ctx->t0);
    }
    char *p = out_reserve(OUT_ROW_MAX), *start = p;
    size_t n;
    int active = c->status == SEG_RFM_ACTIVE;

    p += fmt_csv_field(p, c->customer_id);
    *p++ = ',';
    if (active)
        p += fmt_u64(p, (uint64_t)c->recency_days);
    *p++ = ',';
    p += fmt_u64(p, c->frequency);
    *p++ = ',';
    if ((n = seg_money_format(p, SEG_MONEY_BUFSIZE, c->monetary, ctx->exponent)) == 0)
        goto bad;
    p += n;
    *p++ = ',';
    if (active)
        p += fmt_u64(p, c->r);
    *p++ = ',';
    if (active)
        p += fmt_u64(p, c->f);
    *p++ = ',';
    if (active)
        p += fmt_u64(p, c->m);
    if (ctx->value) {
        static const char *const st[] = { "", "active", "lapsed", "prospect" };
        const char *s = c->status <= SEG_RFM_PROSPECT ? st[c->status] : "";
        *p++ = ',';
        n = strlen(s);
        memcpy(p, s, n);
        p += n;
        *p++ = ',';
        p += fmt_u64(p, c->orders);
        *p++ = ',';
        if ((n = seg_money_format(p, SEG_MONEY_BUFSIZE, c->total_value, ctx->exponent)) == 0)
            goto bad;
        p += n;
        *p++ = ',';
        if (c->orders) {
            if ((n = seg_money_format(p, SEG_MONEY_BUFSIZE, c->average_order_value,
                                      ctx->exponent)) == 0)
                goto bad;
            p += n;
        }
        *p++ = ',';
        if (c->orders)
            p += fmt_u64(p, (uint64_t)c->tenure_days);
        *p++ = ',';
        if (c->orders) {
            int k = snprintf(p, 40, "%.3f", c->purchase_rate);
            if (k <= 0 || k >= 40)
                goto bad;
            p += k;
        }
    }
    *p++ = '\n';
    out_len += (size_t)(p - start);
    return 0;
bad:
    ctx->failed = 1;
    return 1;
}

static int cmd_rfm(int argc, char **argv)
{
    rfm_args a;
    rfm_parse_args(argc, argv, &a);
    seg_rfm_options opts;
    rfm_options(&a, &opts);

    double t0 = now_seconds();
    seg_db *db = rfm_open_input(&a);
    phase(&a, "import", &t0);

    seg_rfm_thresholds *given = NULL;
    if (a.thresholds_path) {
        size_t len;
        char *text = read_whole_file(a.thresholds_path, (size_t)1 << 24, &len);
        int rc = seg_rfm_thresholds_import(&given, db, text, len);
        free(text);
        if (rc != SEG_OK)
            die_line(EXIT_DATA, "%s: %s", a.thresholds_path, seg_errmsg(db));
        opts.thresholds = given;
    }

    int rc;
    if (a.print_thresholds) {
        seg_rfm_thresholds *t = NULL;
        rc = seg_rfm_calibrate(&t, db, &opts);
        if (rc != SEG_OK)
            die_db(db, rc);
        phase(&a, "rfm", &t0);
        char text[SEG_RFM_THRESHOLDS_TEXT_MAX];
        size_t n = seg_rfm_thresholds_export(text, sizeof text, t);
        if (n == 0 || n >= sizeof text)
            die_line(EXIT_DATA, "the thresholds could not be written");
        out_str(text);
        seg_rfm_thresholds_free(t);
    } else {
        rfm_row_ctx ctx = { seg_db_currency_exponent(db), a.value, 0, &a, &t0, 0 };
        out_str("customer_id,recency_days,frequency,monetary,r,f,m");
        if (a.value)
            out_str(",status,orders,total_value,average_order_value,tenure_days,purchase_rate");
        out_str("\n");
        rc = seg_rfm_foreach(NULL, db, &opts, SEG_RFM_SORTED, print_rfm_row, &ctx);
        if (rc != SEG_OK)
            die_db(db, rc);
        if (ctx.failed)
            die_line(EXIT_DATA, "an amount could not be formatted");
        if (!ctx.started)
            phase(&a, "rfm", &t0);
    }
    out_finish();
    phase(&a, "write", &t0);
    seg_rfm_thresholds_free(given);
    seg_db_close(db);
    input_free(&a.in);
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
    "  --db FILE.db      read a database file instead of CSV files (read-only;\n"
    "                    see 'segment import --help')\n"
    "  --clv FILE        the CLV model of p_alive, expected_purchases(...) and\n"
    "                    clv(...): a parameter file written by 'segment clv\n"
    "                    --params' (with the Gamma-Gamma lines for clv(...))\n"
    "  --discount RATE[/DURATION], --margin SHARE\n"
    "                    discounting and margin of clv(...), as for 'segment clv'\n"
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
    "       segment report DEFS.seg [...] --db FILE.db [--as-of TIME]\n"
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

/* --discount RATE[/DURATION] and --margin SHARE into vo (either may be NULL) */
static void clv_discount_margin(const char *cmd, const char *discount_text, const char *margin_text,
                                double unit_days, seg_clv_value_options *vo)
{
    if (discount_text) {
        const char *slash = strchr(discount_text, '/');
        size_t n = slash ? (size_t)(slash - discount_text) : strlen(discount_text);
        if (!clv_number(discount_text, n, &vo->discount_rate) || !(vo->discount_rate >= 0 && vo->discount_rate < 1e6))
            die_line(EXIT_USAGE, "%s: --discount: '%s' is not a rate >= 0 (0.1, or 0.1/52w for 10%% a year)", cmd, discount_text);
        if (slash && (!clv_duration(slash + 1, unit_days, &vo->discount_period) || !(vo->discount_period > 0)))
            die_line(EXIT_USAGE, "%s: --discount: '%s' is not a period > 0 with its unit (52w, 365d)", cmd, slash + 1);
    }
    if (margin_text) {
        if (!clv_number(margin_text, strlen(margin_text), &vo->margin) || !(vo->margin >= 0 && vo->margin <= 1))
            die_line(EXIT_USAGE, "%s: --margin: '%s' is not a share in 0..1", cmd, margin_text);
    }
}

/* A model from a parameter file written by 'segment clv --params': its
 * `model` and `unit` lines say which model to make. */
static seg_clv_model *clv_model_load(const char *cmd, const char *path)
{
    size_t n;
    char *text = read_whole_file(path, 1u << 20, &n);
    uint32_t kind = 0, unit = 0;
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && p[len - 1] == '\r')
            len--;
        if (len == 11 && memcmp(p, "model,bgnbd", 11) == 0) kind = SEG_CLV_BGNBD;
        else if (len == 12 && memcmp(p, "model,mbgnbd", 12) == 0) kind = SEG_CLV_MBGNBD;
        else if (len == 12 && memcmp(p, "model,pareto", 12) == 0) kind = SEG_CLV_PARETO;
        else if (len == 8 && memcmp(p, "unit,day", 8) == 0) unit = SEG_CLV_DAY;
        else if (len == 9 && memcmp(p, "unit,week", 9) == 0) unit = SEG_CLV_WEEK;
        p = e ? e + 1 : NULL;
    }
    if (!kind || !unit)
        die_line(EXIT_DATA, "%s: --clv %s: no 'model,bgnbd|mbgnbd|pareto' and 'unit,day|week' lines "
                 "(write the file with 'segment clv --params')", cmd, path);
    seg_clv_model *m = NULL;
    if (seg_clv_model_new(&m, kind, unit, NULL) != SEG_OK)
        die_line(EXIT_DATA, "out of memory");
    if (seg_clv_model_import(m, text, n) != SEG_OK)
        die_line(EXIT_DATA, "%s: --clv %s: %s", cmd, path, seg_clv_model_errmsg(m));
    free(text);
    return m;
}

typedef struct defs_cmd {
    const char *name;       /* "eval" or "report" */
    const char **defs, **events, **custs;
    size_t ndefs, nevents, ncusts;
    const char *as_of_text, *db_path;
    const char *clv_path, *discount_text, *margin_text; /* --clv, --discount, --margin */
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

/* defs_opt for an option given at most once: its value into *slot */
static int defs_once(char **argv, int argc, int *i, const char *cmd, const char *name,
                     const char **slot)
{
    const char *val;
    if (!defs_opt(argv, argc, i, cmd, name, &val))
        return 0;
    if (*slot)
        die_line(EXIT_USAGE, "%s given twice", name);
    *slot = val;
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
        } else if (defs_once(argv, argc, &i, c->name, "--as-of", &c->as_of_text) ||
                   defs_once(argv, argc, &i, c->name, "--db", &c->db_path) ||
                   defs_once(argv, argc, &i, c->name, "--clv", &c->clv_path) ||
                   defs_once(argv, argc, &i, c->name, "--discount", &c->discount_text) ||
                   defs_once(argv, argc, &i, c->name, "--margin", &c->margin_text)) {
            continue;
        } else {
            die_line(EXIT_USAGE, "%s: unknown option '%s' (see 'segment %s --help')", c->name, a,
                     c->name);
        }
    }
    if (c->ndefs == 0)
        die_line(EXIT_USAGE, "%s: no definition file given (see 'segment %s --help')", c->name,
                 c->name);
    if ((c->discount_text || c->margin_text) && !c->clv_path)
        die_line(EXIT_USAGE, "%s: --discount and --margin go with --clv", c->name);
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
        char *part = read_whole_file(c->defs[k], SIZE_MAX, &n);
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

    input_opts in; /* the shared input helper: CSV files or --db */
    memset(&in, 0, sizeof in);
    in.db_path = c->db_path;
    in.events = c->events;
    in.nevents = c->nevents;
    in.customers = c->custs;
    in.ncustomers = c->ncusts;
    seg_db *db = open_input(&in, c->name, 0);
    int rc;
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
    if (c->clv_path) {
        seg_clv_model *m = clv_model_load(c->name, c->clv_path);
        seg_clv_value_options vo = SEG_CLV_VALUE_OPTIONS_INIT;
        clv_discount_margin(c->name, c->discount_text, c->margin_text,
                            seg_clv_model_unit(m) == SEG_CLV_WEEK ? 7.0 : 1.0, &vo);
        if ((rc = seg_segdef_set_clv(def, m, &vo)) != SEG_OK)
            die_db(db, rc);
        seg_clv_model_free(m);
    }
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

/* ---- segment clv ---- */

static const char clv_help[] =
    "Usage: segment clv --events FILE [--events FILE ...] --model MODEL\n"
    "                   --calibration-end TIME --unit day|week --horizon DURATION\n"
    "                   [--discount RATE[/DURATION]] [--margin SHARE] [--params FILE]\n"
    "       segment clv --db FILE.db --model MODEL ... (the same options)\n"
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
    "  --db FILE.db      read a database file instead of CSV files (read-only;\n"
    "                    see 'segment import --help')\n"
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
        else if (clv_opt(argv, argc, &i, "--db", &val)) {
            if (db_path)
                die_line(EXIT_USAGE, "--db given twice");
            db_path = val;
        }
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
    if (db_path && nevents)
        die_line(EXIT_USAGE, "clv: --db reads a database file, --events imports CSV files: "
                 "give one or the other");
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
    clv_discount_margin("clv", discount_text, margin_text, unit_days, &vo);

    input_opts in; /* the shared input helper: CSV files or --db */
    memset(&in, 0, sizeof in);
    in.db_path = db_path;
    in.events = events;
    in.nevents = nevents;
    seg_db *db = open_input(&in, "clv", 0);
    int rc;

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

/* ---- segment run: replay events through the journeys ---- */

static const char run_help[] =
    "Usage: segment run DEFS.seg [DEFS.seg ...] (--events FILE.csv ... | --db FILE.db)\n"
    "                   [--customers FILE.csv] --until TIME\n"
    "\n"
    "Replays the events in time order through the journeys of the definitions\n"
    "(doc/journey.md), advancing time day by day up to TIME (timers fire at\n"
    "their own time), and prints every action sent, sorted by time:\n"
    "  time,customer_id,journey,state,action,params\n"
    "(actions of customers in a holdout group are not sent, nor printed).\n"
    "\n"
    "Options:\n"
    "  --events FILE.csv   events to replay (repeatable)\n"
    "  --customers FILE    customer attributes and consent (CSV), read first\n"
    "  --db FILE.db        an SQLite file (created if missing) that keeps the events,\n"
    "                      the journey states and the outbox: a later run goes on\n"
    "                      from there (events given again are not replayed twice)\n"
    "  --until TIME        the end of the run (2024-12-31, ISO-8601 or epoch seconds)\n"
    "\n"
    "Example:\n"
    "  segment run examples/definitions/journeys.seg --events examples/data/sample_events.csv \\\n"
    "      --customers examples/data/sample_customers.csv --until 2025-01-01\n";

typedef struct run_row {
    int64_t time;
    size_t seq;
    char *text;
} run_row;

typedef struct run_rows {
    run_row *v;
    size_t n, cap;
} run_rows;

static void run_action(const seg_journey_action *a, void *payload)
{
    run_rows *r = payload;
    if (a->outcome != SEG_JOURNEY_QUEUED && a->outcome != SEG_JOURNEY_SUPPRESSED)
        return;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        if (!r->v)
            die_line(EXIT_DATA, "out of memory");
    }
    char tbuf[40];
    seg_time_format(tbuf, sizeof tbuf, a->time);
    char *text = malloc(4 * 4096 + 256), *p = text;
    if (!text)
        die_line(EXIT_DATA, "out of memory");
    p += fmt_csv_field(p, tbuf);
    const char *cols[5] = { a->customer_id, a->journey, a->state, a->action, a->params };
    for (int k = 0; k < 5; k++) {
        *p++ = ',';
        p += fmt_csv_field(p, cols[k]);
    }
    *p++ = '\n';
    *p = '\0';
    r->v[r->n].time = a->time;
    r->v[r->n].seq = r->n;
    r->v[r->n].text = text;
    r->n++;
}

static int run_row_cmp(const void *a, const void *b)
{
    const run_row *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

typedef struct run_events {
    seg_event *v;
    size_t n, cap;
} run_events;

static char *run_dup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        die_line(EXIT_DATA, "out of memory");
    return d;
}

static int run_collect(const seg_event_info *e, void *payload)
{
    run_events *r = payload;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        if (!r->v)
            die_line(EXIT_DATA, "out of memory");
    }
    seg_event x = SEG_EVENT_INIT;
    x.kind = e->kind;
    x.quantity = e->quantity;
    x.event_id = run_dup(e->event_id);
    x.customer_id = run_dup(e->customer_id);
    x.ts = e->ts;
    x.amount = e->amount;
    x.order_id = run_dup(e->order_id);
    x.channel = run_dup(e->channel);
    x.category = run_dup(e->category);
    x.sku = run_dup(e->sku);
    x.refund_of = run_dup(e->refund_of);
    x.name = run_dup(e->name);
    r->v[r->n++] = x;
    return 0;
}

static int run_event_cmp(const void *a, const void *b)
{
    const seg_event *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void run_advance(seg_db *db, seg_journey *j, int64_t t)
{
    int rc = seg_journey_advance(j, t);
    if (rc != SEG_OK && rc != SEG_ERANGE) /* ERANGE: a stored run is further on */
        die_db(db, rc);
}

static int cmd_run(int argc, char **argv)
{
    defs_cmd c;
    memset(&c, 0, sizeof c);
    c.name = "run";
    const char *until_text = NULL;
    /* --until is ours; the rest as eval takes them */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest)
        die_line(EXIT_DATA, "out of memory");
    for (int i = 0; i < argc; i++) {
        if (i > 0 && defs_once(argv, argc, &i, "run", "--until", &until_text)) {
            continue;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    defs_parse(&c, nrest, rest, run_help);
    if (c.as_of_text)
        die_line(EXIT_USAGE, "run: unknown option '--as-of' (see 'segment run --help')");
    if (!until_text)
        die_line(EXIT_USAGE, "run: no --until TIME given (see 'segment run --help')");
    if (!c.nevents && !c.db_path)
        die_line(EXIT_USAGE, "run: no events given (--events FILE.csv or --db FILE.db; see "
                 "'segment run --help')");
    int64_t until;
    int rc = seg_time_parse(&until, until_text, strlen(until_text));
    if (rc != SEG_OK)
        die_line(EXIT_USAGE, "--until: not a time: '%s' (use 2024-03-01, 2024-03-01T10:00:00Z or "
                 "epoch seconds)", until_text);
    /* the events, in a scratch database, then in time order */
    run_events evs = { NULL, 0, 0 };
    if (c.nevents) {
        input_opts in;
        memset(&in, 0, sizeof in);
        in.events = c.events;
        in.nevents = c.nevents;
        seg_db *scratch = open_input(&in, "run", 0);
        if ((rc = seg_event_foreach(scratch, NULL, run_collect, &evs)) != SEG_OK)
            die_db(scratch, rc);
        seg_db_close(scratch);
        if (evs.n)
            qsort(evs.v, evs.n, sizeof *evs.v, run_event_cmp);
    }
    /* the database the journeys run on: customers first, then the definitions */
    char errbuf[1024] = "";
    seg_db_options opts = SEG_DB_OPTIONS_INIT;
    opts.errbuf = errbuf;
    opts.errbuf_size = sizeof errbuf;
    if (c.db_path) {
        opts.storage = seg_storage_sqlite();
        opts.flags = SEG_DB_CREATE;
    }
    seg_db *db = NULL;
    if ((rc = seg_db_open(&db, c.db_path ? c.db_path : ":memory:", &opts)) != SEG_OK)
        die_line(EXIT_DATA, "%s", errbuf[0] ? errbuf : seg_errstr(rc));
    for (size_t i = 0; i < c.ncusts; i++)
        if ((rc = seg_customer_import_csv_file(db, c.custs[i])) != SEG_OK)
            die_db(db, rc);
    /* compile the files as one text (a message names the file, as eval's do) */
    size_t tlen = 0, lines = 0;
    char *text = NULL;
    size_t *first_line = calloc(c.ndefs + 1, sizeof *first_line);
    if (!first_line)
        die_line(EXIT_DATA, "out of memory");
    for (size_t k = 0; k < c.ndefs; k++) {
        size_t n;
        char *part = read_whole_file(c.defs[k], SIZE_MAX, &n);
        text = realloc(text, tlen + n + 2);
        if (!text)
            die_line(EXIT_DATA, "out of memory");
        first_line[k] = lines + 1;
        memcpy(text + tlen, part, n);
        tlen += n;
        for (size_t q = 0; q < n; q++)
            lines += part[q] == '\n';
        if (n == 0 || part[n - 1] != '\n') {
            text[tlen++] = '\n';
            lines++;
        }
        free(part);
    }
    seg_segdef *def = NULL;
    if ((rc = seg_segdef_compile(&def, db, text, tlen)) != SEG_OK) {
        const char *msg = seg_errmsg(db);
        unsigned long line = strtoul(msg, NULL, 10);
        const char *colon = strchr(msg, ':');
        size_t k = 0;
        while (k + 1 < c.ndefs && first_line[k + 1] <= line)
            k++;
        if (line >= 1 && colon)
            die_line(EXIT_DATA, "%s:%lu%s", c.defs[k], line - first_line[k] + 1, colon);
        die_db(db, rc);
    }
    free(text);
    free(first_line);
    seg_journey *j = NULL;
    if ((rc = seg_journey_open(&j, def)) != SEG_OK)
        die_db(db, rc);
    run_rows rows = { NULL, 0, 0 };
    seg_journey_set_action_cb(j, run_action, &rows);
    /* day by day: advance to the day's start, then its events as one batch */
    const int64_t day = 86400;
    int64_t t = evs.n ? evs.v[0].ts - ((evs.v[0].ts % day) + day) % day : until;
    size_t k = 0;
    while (k < evs.n && evs.v[k].ts <= until) {
        int64_t end = t + day;
        run_advance(db, j, t);
        size_t k0 = k;
        while (k < evs.n && evs.v[k].ts < end && evs.v[k].ts <= until)
            k++;
        if (k > k0) {
            seg_ingest_options io = SEG_INGEST_OPTIONS_INIT;
            if ((rc = seg_event_ingest_batch(db, evs.v + k0, k - k0, &io, NULL)) != SEG_OK)
                die_db(db, rc);
        }
        t = end;
    }
    for (; t < until; t += day)
        run_advance(db, j, t);
    run_advance(db, j, until);
    if (rows.n)
        qsort(rows.v, rows.n, sizeof *rows.v, run_row_cmp);
    out_str("time,customer_id,journey,state,action,params\n");
    for (size_t i = 0; i < rows.n; i++) {
        out_str(rows.v[i].text);
        free(rows.v[i].text);
    }
    out_finish();
    free(rows.v);
    for (size_t i = 0; i < evs.n; i++) {
        seg_event *e = &evs.v[i];
        free((char *)e->event_id);
        free((char *)e->customer_id);
        free((char *)e->order_id);
        free((char *)e->channel);
        free((char *)e->category);
        free((char *)e->sku);
        free((char *)e->refund_of);
        free((char *)e->name);
    }
    free(evs.v);
    seg_journey_close(j);
    seg_segdef_free(def);
    seg_db_close(db);
    free(rest);
    free(c.defs);
    free(c.events);
    free(c.custs);
    return 0;
}

/* ---- main ---- */

/* ---- segment loyalty ---- */

static const char loyalty_help[] =
    "Usage: segment loyalty PROGRAM.seg --events FILE.csv [--events MORE.csv ...]\n"
    "                       [--as-of TIME] [--program NAME]\n"
    "       segment loyalty PROGRAM.seg --db FILE.db [--as-of TIME] [--program NAME]\n"
    "\n"
    "Compile a loyalty program (doc/loyalty.md), apply the purchases and refunds\n"
    "to its points ledger, and print one CSV row per customer with a purchase or\n"
    "refund before the as-of time, sorted by customer_id:\n"
    "\n"
    "  customer_id,tier,points,next_tier,spend_to_next_tier\n"
    "\n"
    "  tier                the tier held as of the as-of time\n"
    "  points              the points balance (negative: owed)\n"
    "  next_tier           the next tier up; empty at the top tier\n"
    "  spend_to_next_tier  money to spend to reach it; empty at the top tier and\n"
    "                      when orders qualify\n"
    "\n"
    "Options:\n"
    "  --events FILE       an events CSV file ('-' for standard input); repeatable\n"
    "  --db FILE.db        read a database file (segment import) instead: the\n"
    "                      ledger stored in it, with its redemptions, is used\n"
    "  --as-of TIME        ISO-8601 UTC or epoch seconds; default: one second after\n"
    "                      the latest event\n"
    "  --program NAME      the program to use when the file holds several\n"
    "  -h, --help          show this help\n";

static int print_loyalty_row(const seg_loyalty_status *s, void *payload)
{
    int exponent = *(const int *)payload;
    char *p = out_reserve(3 * SEG_ID_MAX + 64);
    p += fmt_csv_field(p, s->customer_id);
    *p++ = ',';
    p += fmt_csv_field(p, s->tier_name);
    out_len = (size_t)(p - out_buf);
    char num[48];
    snprintf(num, sizeof num, ",%lld,", (long long)s->points);
    out_str(num);
    if (s->next_tier_name) {
        p = out_reserve(2 * SEG_ID_MAX + 8);
        p += fmt_csv_field(p, s->next_tier_name);
        out_len = (size_t)(p - out_buf);
    }
    out_str(",");
    if (s->spend_to_next_tier >= 0)
        out_money(s->spend_to_next_tier, exponent);
    out_str("\n");
    return 0;
}

static int cmd_loyalty(int argc, char **argv)
{
    const char *prog_path = NULL, *db_path = NULL, *as_of_text = NULL, *name = NULL, *val;
    const char **events = calloc((size_t)argc + 1, sizeof *events);
    size_t nevents = 0;
    if (!events)
        die_line(EXIT_DATA, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            if (prog_path)
                die_line(EXIT_USAGE, "loyalty: one program file only ('%s' and '%s')",
                         prog_path, a);
            prog_path = a;
        } else if (is_help(a)) {
            print_help(loyalty_help);
        } else if (defs_opt(argv, argc, &i, "loyalty", "--events", &val)) {
            events[nevents++] = val;
        } else if (defs_once(argv, argc, &i, "loyalty", "--db", &db_path) ||
                   defs_once(argv, argc, &i, "loyalty", "--as-of", &as_of_text)) {
            continue;
        } else if (defs_opt(argv, argc, &i, "loyalty", "--program", &val)) {
            name = val;
        } else {
            die_line(EXIT_USAGE, "loyalty: unknown option '%s' (see 'segment loyalty --help')", a);
        }
    }
    if (!prog_path)
        die_line(EXIT_USAGE, "loyalty: no program file given (see 'segment loyalty --help')");
    int64_t now = 0;
    if (as_of_text) {
        int rc = seg_time_parse(&now, as_of_text, strlen(as_of_text));
        if (rc != SEG_OK)
            die_line(EXIT_USAGE, "--as-of: %s: '%s' (use 2024-03-01, 2024-03-01T10:00:00Z or "
                     "epoch seconds)", rc == SEG_ERANGE ? "time out of range" : "not a time",
                     as_of_text);
    }
    input_opts in;
    memset(&in, 0, sizeof in);
    in.db_path = db_path;
    in.events = events;
    in.nevents = nevents;
    size_t len;
    char *text = read_whole_file(prog_path, SIZE_MAX, &len);
    seg_db *db = open_input(&in, "loyalty", 0);
    char err[1024] = "";
    seg_loyalty_options o = SEG_LOYALTY_OPTIONS_INIT;
    o.currency_exponent = seg_db_currency_exponent(db);
    o.name = name;
    o.errbuf = err;
    o.errbuf_size = sizeof err;
    seg_loyalty *prog = NULL;
    if (seg_loyalty_compile(&prog, text, len, &o) != SEG_OK)
        die_line(EXIT_DATA, "%s:%s", prog_path, err);
    free(text);
    if (!as_of_text) {
        int64_t latest = INT64_MIN;
        int rc = seg_customer_foreach(db, 0, latest_event_cb, &latest);
        if (rc != SEG_OK)
            die_db(db, rc);
        now = latest == INT64_MIN ? 0 : latest + 1;
    }
    seg_loyalty_ledger *ledger = NULL;
    int rc = seg_loyalty_attach(&ledger, db, prog);
    if (rc != SEG_OK)
        die_db(db, rc);
    int exponent = seg_db_currency_exponent(db);
    out_str("customer_id,tier,points,next_tier,spend_to_next_tier\n");
    rc = seg_loyalty_foreach(ledger, now, SEG_LOYALTY_SORTED, print_loyalty_row, &exponent);
    if (rc != SEG_OK)
        die_db(db, rc);
    out_finish();
    seg_loyalty_ledger_free(ledger);
    seg_loyalty_free(prog);
    seg_db_close(db);
    free(events);
    return 0;
}

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
        if (strcmp(argv[2], "rfm") == 0)
            print_help(rfm_help);
        if (strcmp(argv[2], "import") == 0)
            print_help(import_help);
        if (strcmp(argv[2], "eval") == 0)
            print_help(eval_help);
        if (strcmp(argv[2], "report") == 0)
            print_help(report_help);
        if (strcmp(argv[2], "clv") == 0)
            print_help(clv_help);
        if (strcmp(argv[2], "run") == 0)
            print_help(run_help);
        if (strcmp(argv[2], "loyalty") == 0)
            print_help(loyalty_help);
        die_line(EXIT_USAGE, "help: unknown command '%s' (see 'segment --help')", argv[2]);
    }
    if (strcmp(cmd, "customers") == 0)
        return cmd_customers(argc - 1, argv + 1);
    if (strcmp(cmd, "rfm") == 0)
        return cmd_rfm(argc - 1, argv + 1);
    if (strcmp(cmd, "import") == 0)
        return cmd_import(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "clv") == 0)
        return cmd_clv(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "loyalty") == 0)
        return cmd_loyalty(argc - 1, argv + 1);
    if (cmd[0] == '-')
        die_line(EXIT_USAGE, "unknown option '%s' (see 'segment --help')", cmd);
    die_line(EXIT_USAGE, "unknown command '%s' (see 'segment --help')", cmd);
}
