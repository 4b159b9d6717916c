/*
 * tests/check_segdef.c: the definition language: parsing and its errors,
 * types, the canonical printer (round trips on the bundled definitions and
 * on random ASTs), evaluation (values, null semantics, arithmetic, sets,
 * windowed measures against a reference computed here, as-of views, scan
 * against walk), membership deltas, reports, the RFM grid analysis, the
 * malformed-input corpus, allocation behaviour.
 *
 * White-box: links the internal library and includes the private header
 * for the parser, the printer, the AST comparison, the analysis and the
 * evaluation run.
 */
#include "testutil.h"
#include "segdef/segdef-private.h"

#include <dirent.h>
#include <math.h>

#ifndef SEG_SRCDIR
#error "SEG_SRCDIR must name the source tree"
#endif

Suite *segdef_suite(void);

static seg_db *db;
static seg_segdef *def;

static void setup(void)
{
    db = NULL;
    def = NULL;
    ck_assert_int_eq(seg_db_open(&db, ":memory:", NULL), SEG_OK);
}

static void teardown(void)
{
    seg_segdef_free(def);
    def = NULL;
    seg_db_close(db);
    db = NULL;
}

/* ---- helpers ------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static seg_segdef *compile_ok(seg_db *d, const char *src)
{
    seg_segdef *x = NULL;
    int rc = seg_segdef_compile(&x, d, src, strlen(src));
    ck_assert_msg(rc == SEG_OK, "compile failed (%d: %s) for:\n%s", rc, seg_errmsg(d), src);
    ck_assert_ptr_nonnull(x);
    return x;
}

/* compile must fail with `code` and a message starting with `pos` ("L:C:")
 * and containing `frag` */
static void compile_err(seg_db *d, const char *src, int code, const char *pos, const char *frag)
{
    seg_segdef *x = (seg_segdef *)&x; /* must be reset to NULL */
    int rc = seg_segdef_compile(&x, d, src, strlen(src));
    const char *m = seg_errmsg(d);
    ck_assert_msg(rc == code, "'%s': returned %d, expected %d (%s)", src, rc, code, m);
    ck_assert_ptr_null(x);
    /* "L:C:" must match exactly; "L:" only the line */
    bool line_only = strchr(pos, ':') == pos + strlen(pos) - 1;
    ck_assert_msg(strncmp(m, pos, strlen(pos)) == 0 && (line_only || m[strlen(pos)] == ' '),
                  "'%s': message '%s' does not start with '%s '", src, m, pos);
    ck_assert_msg(strstr(m, frag) != NULL, "'%s': message '%s' lacks '%s'", src, m, frag);
}

static size_t seg_index(seg_segdef *x, const char *name)
{
    size_t i;
    ck_assert_msg(seg_segdef_find(&i, x, name) == SEG_OK, "no segment %s", name);
    return i;
}

/* membership of every customer, collected by seg_segdef_eval */
#define MAXC 4096
typedef struct members {
    size_t n;                 /* customers visited */
    size_t nseg;
    char ids[MAXC][24];
    unsigned char m[MAXC][64];
} members;

static int collect_cb(const char *id, const unsigned char *m, size_t n, void *payload)
{
    members *ms = payload;
    ck_assert_uint_lt(ms->n, MAXC);
    ck_assert_uint_le(n, 64);
    ck_assert_uint_lt(strlen(id), sizeof ms->ids[0]);
    strcpy(ms->ids[ms->n], id);
    memcpy(ms->m[ms->n], m, n);
    ms->nseg = n;
    ms->n++;
    return 0;
}

static members *eval_all(seg_segdef *x, int64_t now, uint32_t flags)
{
    members *ms = calloc(1, sizeof *ms);
    ck_assert_ptr_nonnull(ms);
    int rc = seg_segdef_eval(x, now, flags, collect_cb, ms);
    ck_assert_msg(rc == SEG_OK, "eval: %d %s", rc, seg_errmsg(x->db));
    return ms;
}

static int find_id(const members *ms, const char *id)
{
    for (size_t k = 0; k < ms->n; k++)
        if (strcmp(ms->ids[k], id) == 0)
            return (int)k;
    return -1;
}

/* is customer `id` in segment `name` (evaluated as of now)? */
static int in_seg(seg_segdef *x, const char *id, const char *name, int64_t now)
{
    unsigned char m[64];
    size_t n = seg_segdef_segment_count(x);
    ck_assert_uint_le(n, 64);
    int rc = seg_segdef_eval_customer(m, n, x, id, now);
    ck_assert_msg(rc == SEG_OK, "eval_customer %s: %d %s", id, rc, seg_errmsg(x->db));
    return m[seg_index(x, name)];
}

static void ingest(seg_db *d, seg_event e)
{
    int rc = seg_event_ingest(d, &e);
    ck_assert_msg(rc == SEG_OK, "ingest: %d %s", rc, seg_errmsg(d));
}

static void set_str(seg_db *d, const char *cust, const char *name, const char *v)
{
    seg_value val;
    memset(&val, 0, sizeof val);
    val.type = SEG_TYPE_STRING;
    val.s = v;
    TU_OK(d, seg_customer_set_attr(d, cust, name, &val));
}

static void set_int(seg_db *d, const char *cust, const char *name, uint32_t type, int64_t v)
{
    seg_value val;
    memset(&val, 0, sizeof val);
    val.type = type;
    val.i = v;
    TU_OK(d, seg_customer_set_attr(d, cust, name, &val));
}

static void set_num(seg_db *d, const char *cust, const char *name, double v)
{
    seg_value val;
    memset(&val, 0, sizeof val);
    val.type = SEG_TYPE_NUMBER;
    val.d = v;
    TU_OK(d, seg_customer_set_attr(d, cust, name, &val));
}

/* deltas reported by seg_segdef_refresh, applied to a membership table */
typedef struct deltas {
    members *ms;              /* NULL: only count */
    unsigned long enters, exits, calls;
    long stop_after;          /* < 0: never stop */
} deltas;

static int delta_cb(const char *id, size_t seg, int entered, void *payload)
{
    deltas *d = payload;
    if (!d)
        return 0;
    d->calls++;
    if (d->stop_after >= 0 && d->calls > (unsigned long)d->stop_after)
        return 1;
    if (entered) d->enters++; else d->exits++;
    if (d->ms) {
        int k = find_id(d->ms, id);
        if (k < 0) {
            k = (int)d->ms->n++;
            ck_assert_uint_lt(d->ms->n, MAXC);
            strcpy(d->ms->ids[k], id);
        }
        ck_assert_int_eq(d->ms->m[k][seg], !entered); /* a change from what we knew */
        d->ms->m[k][seg] = (unsigned char)entered;
    }
    return 0;
}

#define NOW TU_DAYN(100)

/* A small world: four customers with known histories.
 *   a: 3 orders (days 10, 50, 95), 2 lines in the first; web/store; books
 *   b: 1 order on day 99 of 250.00, a refund of 50.00 on day 99
 *   c: a prospect with engagement events only
 *   d: one order on day 20 and one after NOW (day 120)
 */
static void small_world(seg_db *d)
{
    seg_event e;
    e = tu_purchase("a1", "a", TU_DAYN(10), 1000, "oa1");
    e.category = "books"; e.channel = "web";
    ingest(d, e);
    e = tu_purchase("a2", "a", TU_DAYN(10), 2500, "oa1");
    e.category = "toys"; e.channel = "web";
    ingest(d, e);
    e = tu_purchase("a3", "a", TU_DAYN(50), 4000, "oa2");
    e.category = "books"; e.channel = "store";
    ingest(d, e);
    e = tu_purchase("a4", "a", TU_DAYN(95), 1500, "oa3");
    e.category = "books"; e.channel = "web";
    ingest(d, e);
    ingest(d, tu_purchase("b1", "b", TU_DAYN(99), 25000, "ob1"));
    ingest(d, tu_refund("b2", "b", TU_DAYN(99) + 60, -5000, "ob1"));
    ingest(d, tu_engagement("c1", "c", TU_DAYN(80), "email_open"));
    ingest(d, tu_engagement("c2", "c", TU_DAYN(90), "email_open"));
    ingest(d, tu_engagement("c3", "c", TU_DAYN(40), "email_open"));
    ingest(d, tu_engagement("c4", "c", TU_DAYN(90), "store_visit"));
    ingest(d, tu_purchase("d1", "d", TU_DAYN(20), 700, "od1"));
    ingest(d, tu_purchase("d2", "d", TU_DAYN(120), 90000, "od2"));
}

/* ======================================================================== */
/* syntax                                                                    */
/* ======================================================================== */

START_TEST(parse_every_construct)
{
    TU_OK(db, seg_attr_declare(db, "country", SEG_TYPE_STRING));
    TU_OK(db, seg_attr_declare(db, "age", SEG_TYPE_INT));
    TU_OK(db, seg_attr_declare(db, "score", SEG_TYPE_NUMBER));
    TU_OK(db, seg_attr_declare(db, "verified", SEG_TYPE_BOOL));
    TU_OK(db, seg_attr_declare(db, "signup", SEG_TYPE_TIME));
    const char *src =
        "# a comment\n"
        "segment vip: spend(365d) >= 1000.00 and days_since_last_purchase <= 60 and orders >= 5;\n"
        "segment set status {\n"
        "  prospect: orders == 0;   # trailing comment\n"
        "  else customer;\n"
        "}\n"
        "segment everything: (orders between 1 and 3 or orders not between 4 and 5)\n"
        "  and attr(\"country\") in [\"US\", \"CA\"] and attr(\"country\") not in [\"DE\"]\n"
        "  and attr(\"age\") is not null and attr(\"score\") is null\n"
        "  and not attr(\"verified\") and attr(\"signup\") >= date(\"2024-01-01\")\n"
        "  and starts_with(attr(\"country\"), \"U\") and ends_with(attr(\"country\"), \"S\")\n"
        "  and contains(attr(\"country\"), \"S\") and coalesce(attr(\"age\"), 0) > -1\n"
        "  and revenue - refunds * 2 / 1.5 > 10 and tenure >= 2w + 12h - 30min + 5s\n"
        "  and count(\"email_open\", 30d) >= 1 and count(\"store_visit\") == 0\n"
        "  and spend(30d, channel: \"web\", category: \"books\") > 0 and net_spend(90d) > 0\n"
        "  and orders(90d, category: \"toys\") >= 1 and consent(\"email\") and in(vip)\n"
        "  and not in(prospect) and in(customer) and now > first_purchase\n"
        "  and last_purchase != last_seen and first_seen <= now and units >= 0\n"
        "  and events > engagements and purchase_days >= 1 and net_revenue > 0\n"
        "  and average_order_value < 500 and days_since_first_purchase > 0 and true != false;\n";
    def = compile_ok(db, src);
    ck_assert_uint_eq(seg_segdef_segment_count(def), 4);
    ck_assert_str_eq(seg_segdef_segment_name(def, 0), "vip");
    ck_assert_str_eq(seg_segdef_segment_name(def, 1), "prospect");
    ck_assert_str_eq(seg_segdef_segment_name(def, 2), "customer");
    ck_assert_str_eq(seg_segdef_segment_name(def, 3), "everything");
    ck_assert_ptr_null(seg_segdef_segment_name(def, 4));
    ck_assert_ptr_null(seg_segdef_segment_set(def, 0));
    ck_assert_str_eq(seg_segdef_segment_set(def, 1), "status");
    ck_assert_str_eq(seg_segdef_segment_set(def, 2), "status");
    ck_assert_ptr_null(seg_segdef_segment_set(def, 3));
    ck_assert_ptr_null(seg_segdef_segment_set(def, 9));
    size_t i = 99;
    TU_RC(db, seg_segdef_find(&i, def, "status"), SEG_ENOTFOUND);
    ck_assert_uint_eq(i, 0);
    TU_MSG_HAS(db, "status");
    ck_assert_uint_eq(seg_index(def, "customer"), 2);
    /* the canonical text compiles to the same text */
    char *t1 = NULL, *t2 = NULL;
    TU_OK(db, seg_segdef_print(&t1, def));
    seg_segdef *d2 = compile_ok(db, t1);
    TU_OK(db, seg_segdef_print(&t2, d2));
    ck_assert_str_eq(t1, t2);
    ck_assert_ptr_null(strstr(t1, "#"));
    TU_STR_HAS(t1, "spend(30d, category: \"books\", channel: \"web\")");
    TU_STR_HAS(t1, "segment set status {\n  prospect: orders == 0;\n  else customer;\n}\n");
    ck_assert(seg__sd_ast_equal(&def->ast, &d2->ast));
    seg_free(t1);
    seg_free(t2);
    seg_segdef_free(d2);
}
END_TEST

START_TEST(empty_definition)
{
    def = compile_ok(db, "  # nothing but a comment\n");
    ck_assert_uint_eq(seg_segdef_segment_count(def), 0);
    char *t = NULL;
    TU_OK(db, seg_segdef_print(&t, def));
    ck_assert_str_eq(t, "");
    seg_free(t);
    seg_segdef_free(def);
    def = NULL;
    TU_OK(db, seg_segdef_compile(&def, db, NULL, 0));
    ck_assert_uint_eq(seg_segdef_segment_count(def), 0);
}
END_TEST

typedef struct bad_case {
    const char *src;
    int code;
    const char *pos;
    const char *frag;
} bad_case;

static const bad_case syntax_cases[] = {
    { "segment x: orders >", SEG_EPARSE, "1:20:", "expected a value, found the end of the text" },
    { "segment x orders > 1;", SEG_EPARSE, "1:11:", "expected ':' after the segment's name 'x'" },
    { "segment x: orders > 1", SEG_EPARSE, "1:22:", "expected ';' after the condition of segment 'x'" },
    { "segment x: orders > 1 orders;", SEG_EPARSE, "1:23:", "found 'orders'" },
    { "segment set s { a: true; }", SEG_EPARSE, "1:26:", "set 's' has no 'else' rule" },
    { "segment set s { }", SEG_EPARSE, "1:17:", "no 'else' rule" },
    { "segment set s { else a; b: true; }", SEG_EPARSE, "1:25:", "must be the last rule of set 's'" },
    { "segment set s { else ; }", SEG_EPARSE, "1:22:", "a label after 'else'" },
    { "segment set s { a true; else b; }", SEG_EPARSE, "1:19:", "':' after the label 'a'" },
    { "segment set { else b; }", SEG_EPARSE, "1:13:", "the set's name" },
    { "segment set s else b;", SEG_EPARSE, "1:15:", "'{' after the name of set 's'" },
    { "segment x: 1 < 2 < 3;", SEG_EPARSE, "1:18:", "do not chain" },
    { "segment x: orders == 1 not in [1];", SEG_EPARSE, "1:24:", "do not chain" },
    { "journey j { }", SEG_EINVAL, "1:1:", "journey 'j' has no entry rule" },
    { "campaign p { }", SEG_EPARSE, "1:1:", "unknown item 'campaign'" },
    { "; segment x: true;", SEG_EPARSE, "1:1:", "expected 'segment' at the start of an item" },
    { "segment x: \"abc", SEG_EPARSE, "1:12:", "unterminated string" },
    { "segment x: \"ab\nc\" == \"\";", SEG_EPARSE, "1:12:", "unterminated string" },
    { "segment x: 3m > 1;", SEG_EPARSE, "1:13:", "unknown duration unit 'm'" },
    { "segment x: 3y > 1;", SEG_EPARSE, "1:13:", "write 30d or 365d" },
    { "segment x: orders = 1;", SEG_EPARSE, "1:19:", "'=' is not an operator" },
    { "segment x: orders > 1 && true;", SEG_EPARSE, "1:23:", "use 'and' or 'or'" },
    { "segment x: !true;", SEG_EPARSE, "1:12:", "use 'not'" },
    { "segment x: 'a' == \"a\";", SEG_EPARSE, "1:12:", "double quotes" },
    { "\n\n   segment x: (orders > 1;", SEG_EPARSE, "3:26:", "expected ')'" },
    { "segment x: null;", SEG_EPARSE, "1:12:", "null is not a value" },
    { "segment x: in x;", SEG_EPARSE, "1:15:", "expected '(' after 'in'" },
    { "segment x: in();", SEG_EPARSE, "1:15:", "a segment's name in in(...)" },
    { "segment x: in(a b);", SEG_EPARSE, "1:17:", "')' after the segment's name" },
    { "segment x: orders in (1, 2);", SEG_EPARSE, "1:22:", "expected '[' after 'in'" },
    { "segment x: orders in [];", SEG_EPARSE, "1:23:", "empty list" },
    { "segment x: orders in [1 2];", SEG_EPARSE, "1:25:", "',' or ']'" },
    { "segment x: orders between 1, 2;", SEG_EPARSE, "1:28:", "expected 'and' between the bounds" },
    { "segment x: orders is 1;", SEG_EPARSE, "1:22:", "'null' after 'is'" },
    { "segment x: 1.5d > 1;", SEG_EPARSE, "1:15:", "whole number of a unit" },
    { "segment x: 1.5.2 > 1;", SEG_EPARSE, "1:15:", "at most one decimal point" },
    { "segment x: 99999999999999999999 > 1;", SEG_ERANGE, "1:12:", "number too large" },
    { "segment x: 1.1234567890123456789 > 1;", SEG_ERANGE, "1:12:", "too many digits" },
    { "segment x: 99999999999999999w > 1;", SEG_ERANGE, "1:12:", "duration too long" },
    { "segment x: 1. > 1;", SEG_EPARSE, "1:13:", "decimal point must be followed" },
    { "segment x: spend(30d, category: \"a\", category: \"b\") > 1;", SEG_EPARSE, "1:38:",
      "argument 'category' given twice" },
    { "segment x: spend(category: \"a\", 30d) > 1;", SEG_EPARSE, "1:33:", "come before named" },
    { "segment x: spend(30d > 1;", SEG_EPARSE, "1:25:", "',' or ')' in the arguments of spend" },
    { "segment x: \"a\\q\" == \"b\";", SEG_EPARSE, "1:14:", "unknown escape" },
    { "segment x: \"\\x00\" == \"b\";", SEG_EPARSE, "1:13:", "only \\x01..\\x7F" },
    { "segment x: \"\\x4\" == \"b\";", SEG_EPARSE, "1:13:", "two hex digits" },
    { "segment x: \"\xff\" == \"b\";", SEG_EPARSE, "1:12:", "not valid UTF-8" },
    { "segment x: \"\x01\" == \"b\";", SEG_EPARSE, "1:13:", "control character 0x01" },
    { "segment x: orders > 1; segment", SEG_EPARSE, "1:31:", "the segment's name after 'segment'" },
    { "segment x: orders > 1 not 3;", SEG_EPARSE, "1:23:", "'not' after a value" },
    { "segment x: \x01;", SEG_EPARSE, "1:12:", "unexpected character byte 0x01" },
    { "segment x: \xc3\xa9;", SEG_EPARSE, "1:12:", "unexpected character '\xc3\xa9'" },
    { "segment x: \"\xc3\xa9\xc3\xa9\" $ 1;", SEG_EPARSE, "1:17:", "unexpected character '$'" },
    { "segment x: \"\xc3\xa9\xc3\xa9\" == \xe2\x82\xac;", SEG_EPARSE, "1:20:",
      "unexpected character '\xe2\x82\xac'" },
    { "segment set: true;", SEG_EPARSE, "1:12:", "the set's name after 'segment set'" },
    { "segment and: true;", SEG_EPARSE, "1:9:", "the segment's name after 'segment'" },
};

START_TEST(syntax_errors)
{
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    for (size_t k = 0; k < sizeof syntax_cases / sizeof syntax_cases[0]; k++) {
        const bad_case *c = &syntax_cases[k];
        compile_err(db, c->src, c->code, c->pos, c->frag);
    }
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
}
END_TEST

START_TEST(limits)
{
    /* nesting through parentheses, through 'not', through a long chain of
     * arithmetic; a name too long; many items are fine */
    size_t n = 5000;
    char *src = malloc(n * 12 + 200);
    ck_assert_ptr_nonnull(src);
    size_t len = (size_t)sprintf(src, "segment x: ");
    for (size_t k = 0; k < 300; k++)
        src[len++] = '(';
    strcpy(src + len, "true");
    len += 4;
    for (size_t k = 0; k < 300; k++)
        src[len++] = ')';
    strcpy(src + len, ";");
    compile_err(db, src, SEG_ELIMIT, "1:", "nested too deeply");
    len = (size_t)sprintf(src, "segment x: ");
    for (size_t k = 0; k < 300; k++)
        len += (size_t)sprintf(src + len, "not ");
    strcpy(src + len, "true;");
    compile_err(db, src, SEG_ELIMIT, "1:", "nested too deeply");
    len = (size_t)sprintf(src, "segment x: orders");
    for (size_t k = 0; k < 300; k++)
        len += (size_t)sprintf(src + len, " + 1");
    strcpy(src + len, " > 1;");
    compile_err(db, src, SEG_ELIMIT, "1:", "nested too deeply");
    /* but a long 'and' chain is one level */
    len = (size_t)sprintf(src, "segment x: orders > 1");
    for (size_t k = 0; k < 3000; k++)
        len += (size_t)sprintf(src + len, " and true");
    strcpy(src + len, ";");
    def = compile_ok(db, src);
    seg_segdef_free(def);
    def = NULL;
    char *name = tu_repeat('a', SEG_ID_MAX + 1);
    sprintf(src, "segment %s: true;", name);
    compile_err(db, src, SEG_ELIMIT, "1:9:", "name longer than 256 bytes");
    name[SEG_ID_MAX] = '\0';
    sprintf(src, "segment %s: true;", name);
    def = compile_ok(db, src);
    ck_assert_str_eq(seg_segdef_segment_name(def, 0), name);
    free(name);
    free(src);
}
END_TEST

START_TEST(positions_count_characters)
{
    /* columns count UTF-8 characters, lines count from 1 */
    compile_err(db, "segment x:\n  \"\xc3\xa9\xc3\xa9\xc3\xa9\" == orders;", SEG_EINVAL, "2:9:",
                "cannot compare string with int");
    compile_err(db, "segment x: true;\r\nsegment y: \"\xe2\x82\xac\" == 1;", SEG_EINVAL, "2:19:",
                "is a number, not a string");
}
END_TEST

/* ======================================================================== */
/* types and names                                                           */
/* ======================================================================== */

static const bad_case type_cases[] = {
    { "segment x: revenue > \"a\";", SEG_EINVAL, "1:20:", "cannot compare money with string" },
    { "segment x: orders + \"a\" > 1;", SEG_EINVAL, "1:19:", "cannot compute int + string" },
    { "segment x: revenue > 10.001;", SEG_EINVAL, "1:22:", "money 10.001 has more decimals than the currency (2)" },
    { "segment x: revenue > 99999999999999999;", SEG_ERANGE, "1:22:", "out of range" },
    { "segment x: tenure > 5;", SEG_EINVAL, "1:21:", "5 is a number, not a duration" },
    { "segment x: first_purchase > 5;", SEG_EINVAL, "1:29:", "not a time" },
    { "segment x: orders and true;", SEG_EINVAL, "1:12:", "'and' needs a condition (a bool), not a int" },
    { "segment x: not orders;", SEG_EINVAL, "1:16:", "'not' needs a condition" },
    { "segment x: orders;", SEG_EINVAL, "1:12:", "a segment needs a condition" },
    { "segment set s { a: revenue; else b; }", SEG_EINVAL, "1:20:", "a set's rule needs a condition" },
    { "segment x: attr(\"nope\") == 1;", SEG_EINVAL, "1:17:", "attribute 'nope' has no type" },
    { "segment x: in(x);", SEG_EINVAL, "1:15:", "'x' refers to itself through in(x)" },
    { "segment x: in(y); segment y: in(z); segment z: in(x);", SEG_EINVAL, "1:51:",
      "cycle between segments: x -> y -> z -> x" },
    { "segment set s { a: in(b); else b; }", SEG_EINVAL, "1:23:", "'s' refers to itself" },
    { "segment x: in(nope);", SEG_EINVAL, "1:15:", "unknown segment 'nope'" },
    { "segment set s { a: true; else b; } segment x: in(s);", SEG_EINVAL, "1:50:", "'s' is a segment set" },
    { "segment x: vip;", SEG_EINVAL, "1:12:", "unknown value 'vip'" },
    { "segment y: true; segment x: y;", SEG_EINVAL, "1:29:", "'y' is a segment: test membership with in(y)" },
    { "segment x: foo(1);", SEG_EINVAL, "1:12:", "unknown function 'foo'" },
    { "segment x: date > now;", SEG_EINVAL, "1:12:", "'date' is a function" },
    { "segment x: spend > 1;", SEG_EINVAL, "1:12:", "'spend' needs arguments" },
    { "segment x: revenue(30d) > 1;", SEG_EINVAL, "1:12:", "for a window use spend(30d)" },
    { "segment x: spend(30) > 1;", SEG_EINVAL, "1:18:", "the window must be a duration literal" },
    { "segment x: spend(0d) > 1;", SEG_EINVAL, "1:18:", "longer than zero" },
    { "segment x: spend() > 1;", SEG_EINVAL, "1:12:", "takes one window" },
    { "segment x: spend(30d, region: \"x\") > 1;", SEG_EINVAL, "1:31:", "has no argument 'region'" },
    { "segment x: spend(30d, channel: 1) > 1;", SEG_EINVAL, "1:32:", "channel must be a string literal" },
    { "segment x: spend(30d, channel: \"\") > 1;", SEG_EINVAL, "1:32:", "1 to 256 bytes" },
    { "segment x: count() > 1;", SEG_EINVAL, "1:12:", "an event name and an optional window" },
    { "segment x: count(1) > 1;", SEG_EINVAL, "1:18:", "event name must be a string literal" },
    { "segment x: count(\"a\", 1) > 1;", SEG_EINVAL, "1:23:", "duration literal" },
    { "segment x: count(\"a\", x: 1) > 1;", SEG_EINVAL, "1:26:", "takes no named arguments" },
    { "segment x: date(\"nope\") > now;", SEG_EINVAL, "1:17:", "date(\"nope\"): not a time" },
    { "segment x: date(1) > now;", SEG_EINVAL, "1:12:", "date(...) takes one string" },
    { "segment x: consent(1);", SEG_EINVAL, "1:20:", "channel must be a string literal" },
    { "segment x: consent(\"a\", \"b\");", SEG_EINVAL, "1:12:", "takes one channel" },
    { "segment x: true; segment x: false;", SEG_EINVAL, "1:26:", "segment 'x' is already defined" },
    { "segment x: true; segment set s { x: true; else y; }", SEG_EINVAL, "1:34:", "label 'x' is already defined as a segment" },
    { "segment set x { a: true; else b; } segment x: true;", SEG_EINVAL, "1:44:", "already defined as a segment set" },
    { "segment x: consent(\"email\") < true;", SEG_EINVAL, "1:29:", "bools compare only with == and !=" },
    { "segment x: consent(\"email\") between false and true;", SEG_EINVAL, "1:29:", "'between' needs ordered values" },
    { "segment x: orders in [orders];", SEG_EINVAL, "1:23:", "must be constants" },
    { "segment x: orders in [1, \"a\"];", SEG_EINVAL, "1:19:", "cannot compare int with string" },
    { "segment x: 5 is null;", SEG_EINVAL, "1:14:", "a constant is never null" },
    { "segment x: starts_with(orders, \"a\");", SEG_EINVAL, "1:24:", "takes strings, not a int" },
    { "segment x: starts_with(\"a\");", SEG_EINVAL, "1:12:", "takes two strings" },
    { "segment x: -consent(\"email\");", SEG_EINVAL, "1:12:", "cannot negate a bool" },
    { "segment x: revenue + 5d > 0;", SEG_EINVAL, "1:20:", "cannot compute money + duration" },
    { "segment x: tenure + 5 > 1d;", SEG_EINVAL, "1:21:", "add a duration with a unit" },
    { "segment x: revenue * revenue > 0;", SEG_EINVAL, "1:20:", "cannot compute money * money" },
    { "segment x: orders > 2.5d;", SEG_EPARSE, "1:24:", "whole number" },
    { "segment x: coalesce(1) > 0;", SEG_EINVAL, "1:12:", "coalesce(...) takes two values" },
    { "segment x: coalesce(revenue, \"a\") > 0;", SEG_EINVAL, "1:12:", "cannot combine money with string" },
    { "segment x: date(x: \"2024-01-01\") > now;", SEG_EINVAL, "1:20:", "takes no named arguments" },
    { "segment x: date(\"99999-01-01\") > now;", SEG_EINVAL, "1:17:", "not a time" },
};

START_TEST(type_errors)
{
    tu_snapshot before;
    tu_snap_take(&before, db, 0);
    for (size_t k = 0; k < sizeof type_cases / sizeof type_cases[0]; k++) {
        const bad_case *c = &type_cases[k];
        compile_err(db, c->src, c->code, c->pos, c->frag);
    }
    TU_UNCHANGED(db, &before);
    tu_snap_free(&before);
    /* money literals follow the db's currency */
    seg_db *d0 = NULL;
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.currency_exponent = 0;
    ck_assert_int_eq(seg_db_open(&d0, ":memory:", &o), SEG_OK);
    compile_err(d0, "segment x: revenue > 10.5;", SEG_EINVAL, "1:22:", "than the currency (0)");
    seg_segdef *x = compile_ok(d0, "segment x: revenue > 10.0;");
    seg_segdef_free(x);
    seg_db_close(d0);
}
END_TEST

START_TEST(api_misuse)
{
    seg_segdef *x = (seg_segdef *)&x;
    ck_assert_int_eq(seg_segdef_compile(&x, NULL, "segment a: true;", 16), SEG_EINVAL);
    ck_assert_ptr_null(x);
    TU_RC(db, seg_segdef_compile(NULL, db, "segment a: true;", 16), SEG_EINVAL);
    TU_RC(db, seg_segdef_compile(&x, db, NULL, 3), SEG_EINVAL);
    TU_MSG_HAS(db, "src");
    def = compile_ok(db, "segment a: orders >= 1;");
    ck_assert_int_eq(seg_segdef_eval(NULL, 0, 0, collect_cb, NULL), SEG_EINVAL);
    TU_RC(db, seg_segdef_eval(def, 0, 0, NULL, NULL), SEG_EINVAL);
    TU_RC(db, seg_segdef_eval(def, 0, 0x80, collect_cb, NULL), SEG_EINVAL);
    TU_MSG_HAS(db, "unknown flags");
    TU_RC(db, seg_segdef_eval(def, SEG_TIME_MAX + 1, 0, collect_cb, NULL), SEG_ERANGE);
    TU_RC(db, seg_segdef_eval(def, SEG_TIME_MIN - 1, 0, collect_cb, NULL), SEG_ERANGE);
    unsigned char m[2] = { 7, 7 };
    TU_RC(db, seg_segdef_eval_customer(m, 2, def, "a", NOW), SEG_EINVAL);
    TU_MSG_HAS(db, "1 segments");
    TU_RC(db, seg_segdef_eval_customer(NULL, 1, def, "a", NOW), SEG_EINVAL);
    TU_RC(db, seg_segdef_eval_customer(m, 1, def, "nobody", NOW), SEG_ENOTFOUND);
    ck_assert_int_eq(m[0], 0);
    TU_RC(db, seg_segdef_eval_customer(m, 1, def, NULL, NOW), SEG_EINVAL);
    TU_RC(db, seg_segdef_eval_customer(m, 1, def, "", NOW), SEG_EINVAL);
    ingest(db, tu_purchase("e1", "late", TU_DAYN(50), 100, NULL));
    m[0] = 7;
    TU_RC(db, seg_segdef_eval_customer(m, 1, def, "late", TU_DAYN(50)), SEG_ENOTFOUND);
    TU_MSG_HAS(db, "not a customer yet");
    ck_assert_int_eq(m[0], 0);
    TU_OK(db, seg_segdef_eval_customer(m, 1, def, "late", TU_DAYN(50) + 1));
    ck_assert_int_eq(m[0], 1);
    TU_RC(db, seg_segdef_refresh(def, NOW, 0, NULL, NULL, NULL), SEG_EINVAL);
    TU_RC(db, seg_segdef_refresh(def, NOW, SEG_SEGDEF_FULL | SEG_SEGDEF_TOUCHED, delta_cb, NULL,
                                 NULL), SEG_EINVAL);
    TU_RC(db, seg_segdef_refresh(def, NOW, 0x100, delta_cb, NULL, NULL), SEG_EINVAL);
    seg_segdef_stats st = SEG_SEGDEF_STATS_INIT;
    st.struct_size = 4;
    TU_RC(db, seg_segdef_refresh(def, NOW, 0, delta_cb, NULL, &st), SEG_EVERSION);
    int mem = 9;
    TU_RC(db, seg_segdef_member(&mem, def, "late", 0), SEG_EMISUSE);
    ck_assert_int_eq(mem, 0);
    TU_RC(db, seg_segdef_member(&mem, def, "late", 1), SEG_EINVAL);
    TU_RC(db, seg_segdef_member(NULL, def, "late", 0), SEG_EINVAL);
    seg_segdef_report rep = SEG_SEGDEF_REPORT_INIT;
    rep.struct_size = 8;
    TU_RC(db, seg_segdef_report_get(&rep, def, NOW), SEG_EVERSION);
    TU_RC(db, seg_segdef_report_get(NULL, def, NOW), SEG_EINVAL);
    ck_assert_int_eq(seg_segdef_report_get(&rep, NULL, NOW), SEG_EINVAL);
    char *t = (char *)&t;
    ck_assert_int_eq(seg_segdef_print(&t, NULL), SEG_EINVAL);
    ck_assert_ptr_null(t);
    TU_RC(db, seg_segdef_print(NULL, def), SEG_EINVAL);
    ck_assert_uint_eq(seg_segdef_segment_count(NULL), 0);
    ck_assert_ptr_null(seg_segdef_segment_name(NULL, 0));
    ck_assert_ptr_null(seg_segdef_segment_set(NULL, 0));
    size_t i = 5;
    ck_assert_int_eq(seg_segdef_find(&i, NULL, "a"), SEG_EINVAL);
    TU_RC(db, seg_segdef_find(&i, def, NULL), SEG_EINVAL);
    seg_segdef_free(NULL);
}
END_TEST

/* ======================================================================== */
/* evaluation                                                                */
/* ======================================================================== */

/* every listed segment's members among a, b, c, d, as a string "ab.." */
static void expect_members(seg_segdef *x, const char *seg, const char *who)
{
    const char *all[] = { "a", "b", "c", "d" };
    char got[8] = "";
    for (int k = 0; k < 4; k++)
        if (in_seg(x, all[k], seg, NOW))
            strcat(got, all[k]);
    ck_assert_msg(strcmp(got, who) == 0, "segment %s: members '%s', expected '%s'", seg, got, who);
    /* the batch evaluation agrees */
    members *ms = eval_all(x, NOW, SEG_SEGDEF_SORTED);
    char got2[8] = "";
    size_t i = seg_index(x, seg);
    for (size_t k = 0; k < ms->n; k++)
        if (ms->m[k][i])
            strcat(got2, ms->ids[k]);
    ck_assert_msg(strcmp(got2, who) == 0, "segment %s (eval): '%s', expected '%s'", seg, got2, who);
    free(ms);
}

START_TEST(aggregates)
{
    small_world(db);
    def = compile_ok(db,
        "segment o3: orders == 3;\n"
        "segment o1: orders == 1;\n"
        "segment rev90: revenue == 90.00;\n"
        "segment rev250: revenue == 250 and net_revenue == 200.00 and refunds == -50.00;\n"
        "segment d7: revenue == 7.00 and last_purchase == date(\"2024-03-21\");\n"  /* d's day-120 order is after now */
        "segment recent: days_since_last_purchase <= 5;\n"
        "segment tenure90: tenure == 90d and days_since_first_purchase == 90;\n"
        "segment aov30: average_order_value == 30.00;\n"
        "segment no_purchase: last_purchase is null and first_purchase is null and average_order_value is null;\n"
        "segment eng: engagements == 4 and events == 4 and first_seen == date(\"2024-04-10\") and last_seen < now;\n"
        "segment days: purchase_days == 3 and units == 4;\n");
    expect_members(def, "o3", "a");
    expect_members(def, "o1", "bd");
    expect_members(def, "rev90", "a");
    expect_members(def, "rev250", "b");
    expect_members(def, "d7", "d");
    expect_members(def, "recent", "ab");
    expect_members(def, "tenure90", "a");
    expect_members(def, "aov30", "a");
    expect_members(def, "no_purchase", "c");
    expect_members(def, "eng", "c");
    expect_members(def, "days", "a");
}
END_TEST

START_TEST(windows)
{
    small_world(db);
    def = compile_ok(db,
        "segment s30: spend(30d) == 15.00;\n"
        "segment s60: spend(60d) == 55.00;\n"
        "segment books90: spend(90d, category: \"books\") == 65.00;\n"    /* day 10 is on the edge: in */
        "segment books89: spend(89d, category: \"books\") == 55.00;\n"
        "segment web: spend(90d, channel: \"web\") == 50.00 and spend(90d, channel: \"web\", category: \"toys\") == 25.00;\n"
        "segment o90: orders(90d) == 3 and orders(89d) == 2 and orders(90d, channel: \"web\") == 2;\n"
        "segment ocat: orders(90d, category: \"books\") == 3 and orders(90d, category: \"toys\") == 1;\n"
        "segment net: net_spend(30d) == 200.00 and spend(30d) == 250.00;\n"
        "segment opens: count(\"email_open\", 30d) == 2 and count(\"email_open\") == 3 and count(\"store_visit\", 9d) == 0 and count(\"store_visit\", 10d) == 1;\n"
        "segment unknown: spend(30d, category: \"nothing\") == 0 and count(\"never_seen\") == 0 and orders(10d, channel: \"fax\") == 0;\n"
        "segment future: spend(3650d) == 7.00;\n");  /* d: the order after now does not count */
    expect_members(def, "s30", "a");
    expect_members(def, "s60", "a");
    expect_members(def, "books90", "a");
    expect_members(def, "books89", "a");
    expect_members(def, "web", "a");
    expect_members(def, "o90", "a");
    expect_members(def, "ocat", "a");
    expect_members(def, "net", "b");
    expect_members(def, "opens", "c");
    expect_members(def, "unknown", "abcd");
    expect_members(def, "future", "d");
}
END_TEST

START_TEST(nulls_and_attributes)
{
    small_world(db);
    set_str(db, "a", "country", "US");
    set_str(db, "a", "email", "alice@example.com");
    set_int(db, "b", "age", SEG_TYPE_INT, 42);
    set_int(db, "a", "verified", SEG_TYPE_BOOL, 1);
    set_int(db, "b", "verified", SEG_TYPE_BOOL, 0);
    set_num(db, "c", "score", 2.5);
    set_int(db, "d", "signup", SEG_TYPE_TIME, TU_DAYN(5));
    def = compile_ok(db,
        "segment us: attr(\"country\") == \"US\";\n"
        "segment not_us: attr(\"country\") != \"US\";\n"
        "segment not_eq_us: not attr(\"country\") == \"US\";\n"
        "segment no_country: attr(\"country\") is null;\n"
        "segment fallback: coalesce(attr(\"country\"), \"none\") == \"none\";\n"
        "segment aged: attr(\"age\") > 10 or attr(\"age\") <= 10;\n"
        "segment age_null_sum: (attr(\"age\") + 1) is null;\n"
        "segment verified: attr(\"verified\");\n"
        "segment not_verified: not attr(\"verified\");\n"
        "segment verified_false: attr(\"verified\") == false;\n"
        "segment score: attr(\"score\") > 2 and attr(\"score\") < 3 and attr(\"score\") in [2.5, 7];\n"
        "segment signup: attr(\"signup\") >= date(\"2024-03-06\") and attr(\"signup\") < now;\n"
        "segment countries: attr(\"country\") in [\"CA\", \"US\"];\n"
        "segment not_de: attr(\"country\") not in [\"DE\"];\n"
        "segment mail: starts_with(attr(\"email\"), \"alice\") and ends_with(attr(\"email\"), \"@example.com\") "
        "and contains(attr(\"email\"), \"e@e\") and not contains(attr(\"email\"), \"bob\") and contains(attr(\"email\"), \"\");\n"
        "segment strorder: attr(\"email\") between \"a\" and \"b\" and attr(\"email\") > \"alice\" and \"z\" > attr(\"email\");\n"
        "segment span_null: last_purchase - first_purchase >= 0d;\n"
        "segment unknown_attr_value: attr(\"country\") == \"FR\" or attr(\"country\") != \"FR\";\n");
    expect_members(def, "us", "a");
    expect_members(def, "not_us", "");
    expect_members(def, "not_eq_us", "bcd");
    expect_members(def, "no_country", "bcd");
    expect_members(def, "fallback", "bcd");
    expect_members(def, "aged", "b");
    expect_members(def, "age_null_sum", "acd");
    expect_members(def, "verified", "a");
    expect_members(def, "not_verified", "bcd");
    expect_members(def, "verified_false", "b");
    expect_members(def, "score", "c");
    expect_members(def, "signup", "d");
    expect_members(def, "countries", "a");
    expect_members(def, "not_de", "a");
    expect_members(def, "mail", "a");
    expect_members(def, "strorder", "a");
    expect_members(def, "span_null", "abd");
    expect_members(def, "unknown_attr_value", "a");
}
END_TEST

START_TEST(arithmetic)
{
    small_world(db);
    def = compile_ok(db,
        "segment twice: revenue * 2 == 180.00 and 2 * revenue == 180.00;\n"
        "segment third: revenue / 3 == 30.00 and revenue / orders == average_order_value;\n"
        "segment half: orders / 2 == 1.5 and orders / 2 > 1;\n"          /* int / int is a number */
        "segment scaled: revenue * 1.005 == 90.45 and revenue * 0.5 == 45;\n"
        "segment ratio: net_revenue / revenue == 0.8;\n"
        "segment ovf: (orders * 9223372036854775807) is null;\n"
        "segment div0: revenue / 0 is null and orders / 0 is null;\n"
        "segment dur: tenure / 1d == 90 and tenure / 2 == 45d and tenure * 2 == 180d and tenure * 0.5 == 45d;\n"
        "segment times: now - last_purchase < 6d and first_purchase + 90d == now and now - 90d == first_purchase and 90d + first_purchase == now;\n"
        "segment neg: refunds <= -50.00 and -refunds >= 50.00 and -(-refunds) == refunds;\n"
        "segment mixed: orders + 0.5 == 3.5 and orders - 1 == 2 and 1 - orders == -2 and -orders < -2.5;\n"
        "segment money_add: revenue + 10 == 100.00 and revenue - 0.5 == 89.50;\n"
        "segment lits: 1 + 2 == 3 and 7 / 2 == 3.5 and 1.5 * 2 == 3 and -1 < 0;\n"
        "segment in_num: orders in [1.5, 3] and orders in [3] and orders not in [1, 2];\n"
        "segment betw: orders between 3 and 3 and orders not between 4 and 10 and revenue between 89.99 and 90;\n");
    expect_members(def, "twice", "a");
    expect_members(def, "third", "a");
    expect_members(def, "half", "a");
    expect_members(def, "scaled", "a");
    expect_members(def, "ratio", "b");
    expect_members(def, "ovf", "a");
    expect_members(def, "div0", "abcd");
    expect_members(def, "dur", "a");
    expect_members(def, "times", "a");
    expect_members(def, "neg", "b");
    expect_members(def, "mixed", "a");
    expect_members(def, "money_add", "a");
    expect_members(def, "lits", "abcd");
    expect_members(def, "in_num", "a");
    expect_members(def, "betw", "a");
}
END_TEST

START_TEST(sets_membership_consent)
{
    small_world(db);
    TU_OK(db, seg_customer_set_consent(db, "a", "email", SEG_CONSENT_GRANTED));
    TU_OK(db, seg_customer_set_consent(db, "b", "email", SEG_CONSENT_DENIED));
    TU_OK(db, seg_customer_set_consent(db, "c", "sms", SEG_CONSENT_GRANTED));
    def = compile_ok(db,
        "segment buyers_no_vip: orders >= 1 and not in(big);\n"   /* refers forward */
        "segment set tier { big: revenue >= 100.00; some: orders >= 1; else none; }\n"
        "segment mailable: consent(\"email\");\n"
        "segment not_mailable: not consent(\"email\");\n"
        "segment sms: consent(\"sms\") and not consent(\"push\");\n"
        "segment audience: in(some) and consent(\"email\") and not in(none);\n"
        "segment set first_wins { first: true; second: true; else never; }\n");
    expect_members(def, "big", "b");
    expect_members(def, "some", "ad");
    expect_members(def, "none", "c");
    expect_members(def, "buyers_no_vip", "ad");
    expect_members(def, "mailable", "a");
    expect_members(def, "not_mailable", "bcd");
    expect_members(def, "sms", "c");
    expect_members(def, "audience", "a");
    expect_members(def, "first", "abcd");
    expect_members(def, "second", "");
    expect_members(def, "never", "");
    /* exactly one label of each set per customer */
    members *ms = eval_all(def, NOW, 0);
    ck_assert_uint_eq(ms->n, 4);
    size_t b = seg_index(def, "big");
    for (size_t k = 0; k < ms->n; k++)
        ck_assert_int_eq(ms->m[k][b] + ms->m[k][b + 1] + ms->m[k][b + 2], 1);
    free(ms);
}
END_TEST

START_TEST(eval_order_and_visits)
{
    /* creation order by default, id order with SEG_SEGDEF_SORTED; prospects
     * are visited, erased customers and customers not yet there are not */
    ingest(db, tu_purchase("1", "zed", TU_DAYN(1), 100, NULL));
    ingest(db, tu_purchase("2", "amy", TU_DAYN(2), 100, NULL));
    TU_OK(db, seg_customer_add(db, "mia"));
    ingest(db, tu_purchase("3", "bob", TU_DAYN(200), 100, NULL));
    ingest(db, tu_purchase("4", "gone", TU_DAYN(3), 100, NULL));
    TU_OK(db, seg_customer_erase(db, "gone"));
    def = compile_ok(db, "segment any: true;");
    members *ms = eval_all(def, NOW, 0);
    ck_assert_uint_eq(ms->n, 3);
    ck_assert_str_eq(ms->ids[0], "zed");
    ck_assert_str_eq(ms->ids[1], "amy");
    ck_assert_str_eq(ms->ids[2], "mia");
    free(ms);
    ms = eval_all(def, NOW, SEG_SEGDEF_SORTED);
    ck_assert_uint_eq(ms->n, 3);
    ck_assert_str_eq(ms->ids[0], "amy");
    ck_assert_str_eq(ms->ids[1], "mia");
    ck_assert_str_eq(ms->ids[2], "zed");
    free(ms);
    ms = eval_all(def, TU_DAYN(300), SEG_SEGDEF_SORTED);
    ck_assert_uint_eq(ms->n, 4);
    ck_assert_str_eq(ms->ids[1], "bob");
    free(ms);
}
END_TEST

static int stop_cb(const char *id, const unsigned char *m, size_t n, void *payload)
{
    (void)id; (void)m; (void)n;
    int *calls = payload;
    return ++*calls >= 2;
}

static int write_cb(const char *id, const unsigned char *m, size_t n, void *payload)
{
    (void)m; (void)n;
    int *rc = payload;
    char other[64];
    snprintf(other, sizeof other, "new-%s", id);
    *rc = seg_customer_add(db, other);
    return 0;
}

START_TEST(eval_callbacks)
{
    small_world(db);
    def = compile_ok(db, "segment any: true;");
    int calls = 0;
    TU_OK(db, seg_segdef_eval(def, NOW, 0, stop_cb, &calls));
    ck_assert_int_eq(calls, 2);
    int rc = 0;
    TU_OK(db, seg_segdef_eval(def, NOW, 0, write_cb, &rc));
    ck_assert_int_eq(rc, SEG_EMISUSE);
}
END_TEST

/* ======================================================================== */
/* random worlds: windowed measures against a reference, scan against walk, */
/* as-of views against a database holding only the earlier events           */
/* ======================================================================== */

typedef struct tev {
    int cust;
    uint32_t kind;
    int64_t ts, amount;
    int order;   /* purchase: order number (orders are per customer); -1: own order */
    int cat, chan, name; /* -1: none */
} tev;

static const char *const cats[] = { "c0", "c1", "c2" };
static const char *const chans[] = { "web", "store" };
static const char *const names[] = { "email_open", "store_visit", "app_open" };

typedef struct world {
    tev *ev;
    size_t n;
    int ncust;
} world;

static world make_world(uint64_t seed, int ncust, size_t nev)
{
    world w;
    uint64_t st = seed * 2654435761u + 1;
    w.ev = calloc(nev, sizeof *w.ev);
    ck_assert_ptr_nonnull(w.ev);
    w.n = nev;
    w.ncust = ncust;
    for (size_t k = 0; k < nev; k++) {
        tev *e = &w.ev[k];
        e->cust = (int)(tu_rand(&st) % (uint64_t)ncust);
        e->ts = TU_DAYN(tu_rand(&st) % 200) + (int64_t)(tu_rand(&st) % 86400);
        if (tu_rand(&st) % 3 == 0)
            e->ts = TU_DAYN(tu_rand(&st) % 200); /* on a day boundary */
        uint64_t r = tu_rand(&st) % 10;
        e->cat = tu_rand(&st) % 4 == 0 ? -1 : (int)(tu_rand(&st) % 3);
        e->chan = tu_rand(&st) % 3 == 0 ? -1 : (int)(tu_rand(&st) % 2);
        e->name = -1;
        if (r < 6) {
            e->kind = SEG_EVENT_PURCHASE;
            e->amount = tu_rand(&st) % 7 == 0 ? 0 : (int64_t)(1 + tu_rand(&st) % 20000);
            e->order = tu_rand(&st) % 5 == 0 ? -1 : (int)(tu_rand(&st) % 4);
        } else if (r < 7) {
            e->kind = SEG_EVENT_REFUND;
            e->amount = -(int64_t)(1 + tu_rand(&st) % 5000);
            e->order = -1;
        } else {
            e->kind = SEG_EVENT_ENGAGEMENT;
            e->amount = 0;
            e->order = -1;
            e->cat = e->chan = -1;
            e->name = (int)(tu_rand(&st) % 3);
        }
    }
    return w;
}

static void world_ingest(seg_db *d, const world *w, int64_t before, uint64_t seed)
{
    size_t *idx = malloc(w->n * sizeof *idx);
    ck_assert_ptr_nonnull(idx);
    for (size_t k = 0; k < w->n; k++)
        idx[k] = k;
    tu_shuffle(idx, w->n, seed);
    for (size_t j = 0; j < w->n; j++) {
        const tev *t = &w->ev[idx[j]];
        if (t->ts >= before)
            continue;
        char eid[32], cust[16], oid[32];
        snprintf(eid, sizeof eid, "e%zu", idx[j]);
        snprintf(cust, sizeof cust, "k%03d", t->cust);
        snprintf(oid, sizeof oid, "o%d-%d", t->cust, t->order);
        seg_event e = SEG_EVENT_INIT;
        e.kind = t->kind;
        e.event_id = eid;
        e.customer_id = cust;
        e.ts = t->ts;
        e.amount = t->amount;
        e.order_id = t->kind == SEG_EVENT_PURCHASE && t->order >= 0 ? oid : NULL;
        e.category = t->cat >= 0 ? cats[t->cat] : NULL;
        e.channel = t->chan >= 0 ? chans[t->chan] : NULL;
        e.name = t->name >= 0 ? names[t->name] : NULL;
        ingest(d, e);
    }
    free(idx);
}

static int str_index(const char *const *v, int n, seg__str s)
{
    if (!s.n)
        return -1;
    for (int k = 0; k < n; k++)
        if (seg__str_eq(s, v[k], strlen(v[k])))
            return k;
    return -2; /* a name nobody uses */
}

/* The reference value of slot sl for customer c as of now. */
static int64_t reference(const world *w, int c, const seg_segdef *d, const seg__slot *sl,
                         int64_t now, int *isnull)
{
    const char *pn = sl->prov->name;
    *isnull = 0;
    if (sl->feat != UINT32_MAX) {
        const seg__feature *f = &d->feats[sl->feat];
        int cat = str_index(cats, 3, f->category), chan = str_index(chans, 2, f->channel);
        int nm = str_index(names, 3, f->name);
        int64_t from = f->window == INT64_MAX ? INT64_MIN : now - f->window, acc = 0;
        int seen[64];
        int nseen = 0;
        for (size_t k = 0; k < w->n; k++) {
            const tev *t = &w->ev[k];
            if (t->cust != c || t->ts >= now || t->ts < from)
                continue;
            if (f->kind == SEG__F_COUNT) {
                acc += t->kind == SEG_EVENT_ENGAGEMENT && t->name == nm;
                continue;
            }
            if (t->kind == SEG_EVENT_ENGAGEMENT || (cat != -1 && t->cat != cat) ||
                (chan != -1 && t->chan != chan))
                continue;
            if (f->kind == SEG__F_NET_SPEND)
                acc += t->amount;
            else if (t->kind == SEG_EVENT_PURCHASE && t->amount > 0) {
                if (f->kind == SEG__F_SPEND) {
                    acc += t->amount;
                } else if (t->order < 0) {
                    acc++;
                } else {
                    int dup = 0;
                    for (int j = 0; j < nseen; j++)
                        dup |= seen[j] == t->order;
                    if (!dup) {
                        seen[nseen++] = t->order;
                        acc++;
                    }
                }
            }
        }
        return acc;
    }
    /* aggregates */
    int64_t orders = 0, rev = 0, refunds = 0, events = 0, eng = 0, units = 0;
    int64_t fp = 0, lp = 0, fs = 0, ls = 0;
    int oseen[64], noseen = 0;
    int64_t days[4096];
    int ndays = 0;
    for (size_t k = 0; k < w->n; k++) {
        const tev *t = &w->ev[k];
        if (t->cust != c || t->ts >= now)
            continue;
        if (!events || t->ts < fs) fs = t->ts;
        if (!events || t->ts > ls) ls = t->ts;
        events++;
        if (t->kind == SEG_EVENT_ENGAGEMENT) {
            eng++;
        } else if (t->kind == SEG_EVENT_REFUND) {
            refunds += t->amount;
        } else {
            units++;
            if (t->amount > 0) {
                int dup = 0;
                if (t->order >= 0)
                    for (int j = 0; j < noseen; j++)
                        dup |= oseen[j] == t->order;
                if (!dup) {
                    orders++;
                    if (t->order >= 0)
                        oseen[noseen++] = t->order;
                }
                int64_t day = t->ts / 86400, dupd = 0;
                for (int j = 0; j < ndays; j++)
                    dupd |= days[j] == day;
                if (!dupd)
                    days[ndays++] = day;
                if (!rev || t->ts < fp) fp = t->ts;
                if (!rev || t->ts > lp) lp = t->ts;
                rev += t->amount;
            }
        }
    }
    if (!strcmp(pn, "orders")) return orders;
    if (!strcmp(pn, "revenue")) return rev;
    if (!strcmp(pn, "net_revenue")) return rev + refunds;
    if (!strcmp(pn, "refunds")) return refunds;
    if (!strcmp(pn, "units")) return units;
    if (!strcmp(pn, "events")) return events;
    if (!strcmp(pn, "engagements")) return eng;
    if (!strcmp(pn, "purchase_days")) return ndays;
    *isnull = rev == 0;
    if (!strcmp(pn, "first_purchase")) return fp;
    if (!strcmp(pn, "last_purchase")) return lp;
    if (!strcmp(pn, "days_since_last_purchase")) return (now - lp) / 86400;
    if (!strcmp(pn, "tenure")) return now - fp;
    if (!strcmp(pn, "average_order_value")) return (rev + orders / 2) / (orders ? orders : 1);
    *isnull = events == 0;
    if (!strcmp(pn, "first_seen")) return fs;
    if (!strcmp(pn, "last_seen")) return ls;
    ck_abort_msg("no reference for %s", pn);
    return 0;
}

static const char *const measures_src =
    "segment m: spend(30d) is not null and spend(90d, category: \"c1\") is not null\n"
    "  and spend(60d, channel: \"web\") is not null and spend(45d, category: \"c2\", channel: \"store\") is not null\n"
    "  and net_spend(30d) is not null and net_spend(100d, category: \"c0\") is not null\n"
    "  and orders(30d) is not null and orders(90d, category: \"c1\") is not null\n"
    "  and orders(200d, channel: \"web\") is not null and orders(1000d) is not null\n"
    "  and count(\"email_open\", 20d) is not null and count(\"app_open\") is not null\n"
    "  and count(\"nope\", 5d) is not null and spend(10d, category: \"nope\") is not null\n"
    "  and orders is not null and revenue is not null and net_revenue is not null\n"
    "  and refunds is not null and units is not null and purchase_days is not null\n"
    "  and events is not null and engagements is not null and first_purchase is not null\n"
    "  and last_purchase is not null and first_seen is not null and last_seen is not null\n"
    "  and days_since_last_purchase is not null and tenure is not null\n"
    "  and average_order_value is not null;\n";

static void check_measures(seg_db *d, seg_segdef *x, const world *w, int64_t now, bool scan)
{
    seg__run run;
    ck_assert_int_eq(seg__run_init(&run, x, now, scan), SEG_OK);
    int checked = 0;
    for (uint32_t ci = 0; ci < d->store.ncusts; ci++) {
        if (!seg__run_customer(&run, ci))
            continue;
        int c = atoi(seg__run_cust_id(&run, ci) + 1);
        for (uint32_t k = 0; k < x->nslots; k++) {
            int isnull;
            int64_t want = reference(w, c, x, &x->slots[k], now, &isnull);
            const seg__val *v = seg__vm_slot(&run, &run.cc, k);
            ck_assert_msg(v->null == isnull && (isnull || v->u.i == want),
                          "customer k%03d, %s (slot %u, %s): got %s%lld, want %s%lld", c,
                          x->slots[k].prov->name, k, scan ? "scan" : "walk",
                          v->null ? "null " : "", (long long)v->u.i, isnull ? "null " : "",
                          (long long)want);
            checked++;
        }
    }
    ck_assert_int_gt(checked, 100);
    seg__run_free(&run);
}

START_TEST(measures_match_reference)
{
    /* interleaved order lines (ingested shuffled) exercise the exact
     * recount of the scan, events after now the as-of path */
    for (uint64_t seed = 1; seed <= 6; seed++) {
        seg_db *d = NULL;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
        world w = make_world(seed, 30, 700);
        world_ingest(d, &w, INT64_MAX, seed);
        seg_segdef *x = compile_ok(d, measures_src);
        int64_t nows[] = { TU_DAYN(150), TU_DAYN(120) + 4321, TU_DAYN(250), TU_DAYN(30) };
        for (size_t k = 0; k < 4; k++) {
            check_measures(d, x, &w, nows[k], true);
            check_measures(d, x, &w, nows[k], false);
        }
        seg_segdef_free(x);
        seg_db_close(d);
        free(w.ev);
    }
}
END_TEST

static char *defs_text(void)
{
    size_t n1, n2;
    char *j = read_file(SEG_SRCDIR "/examples/definitions/journeys.seg", &n1);
    char *a = read_file(SEG_SRCDIR "/examples/definitions/audiences.seg", &n2);
    const char *extra =
        "segment rich: net_revenue >= 300.00 and spend(60d, category: \"c1\") > 20;\n"
        "segment busy: orders(45d) >= 2 or count(\"email_open\", 15d) >= 2;\n"
        "segment set tiers { gold: spend(90d) >= 500.00; silver: orders >= 3 and tenure > 20d; "
        "bronze: orders >= 1; else lead; }\n"
        "segment quiet: in(lead) or days_since_last_purchase > 40;\n";
    char *all = malloc(n1 + n2 + strlen(extra) + 2);
    ck_assert_ptr_nonnull(all);
    sprintf(all, "%s\n%s%s", j, a, extra);
    free(j);
    free(a);
    return all;
}

START_TEST(as_of_equals_truncated_database)
{
    char *src = defs_text();
    for (uint64_t seed = 11; seed <= 14; seed++) {
        world w = make_world(seed, 60, 1500);
        int64_t now = TU_DAYN(90 + seed * 20) + (int64_t)seed * 3600;
        seg_db *full = NULL, *trunc = NULL;
        ck_assert_int_eq(seg_db_open(&full, ":memory:", NULL), SEG_OK);
        ck_assert_int_eq(seg_db_open(&trunc, ":memory:", NULL), SEG_OK);
        world_ingest(full, &w, INT64_MAX, seed);
        world_ingest(trunc, &w, now, seed);
        for (int k = 0; k < 60; k += 7) {
            /* consent only for customers who exist as of now in both (a
             * customer whose events all come later is not visited, with
             * or without a consent record) */
            bool early = false;
            for (size_t j = 0; j < w.n; j++)
                early |= w.ev[j].cust == k && w.ev[j].ts < now;
            if (!early)
                continue;
            char id[16];
            snprintf(id, sizeof id, "k%03d", k);
            TU_OK(full, seg_customer_set_consent(full, id, "email", SEG_CONSENT_GRANTED));
            TU_OK(trunc, seg_customer_set_consent(trunc, id, "email", SEG_CONSENT_GRANTED));
        }
        seg_segdef *xf = compile_ok(full, src), *xt = compile_ok(trunc, src);
        members *mf = eval_all(xf, now, SEG_SEGDEF_SORTED);
        members *mt = eval_all(xt, now, SEG_SEGDEF_SORTED);
        ck_assert_uint_eq(mf->n, mt->n);
        ck_assert_uint_eq(mf->nseg, seg_segdef_segment_count(xf));
        size_t members_total = 0;
        for (size_t c = 0; c < mf->n; c++) {
            ck_assert_str_eq(mf->ids[c], mt->ids[c]);
            for (size_t s = 0; s < mf->nseg; s++) {
                ck_assert_msg(mf->m[c][s] == mt->m[c][s], "%s in %s: %d vs %d", mf->ids[c],
                              seg_segdef_segment_name(xf, s), mf->m[c][s], mt->m[c][s]);
                members_total += mf->m[c][s];
            }
            /* one customer at a time (walk) gives the same */
            unsigned char one[64];
            TU_OK(full, seg_segdef_eval_customer(one, mf->nseg, xf, mf->ids[c], now));
            ck_assert_int_eq(memcmp(one, mf->m[c], mf->nseg), 0);
        }
        ck_assert_uint_gt(members_total, mf->n); /* the definitions select something */
        free(mf);
        free(mt);
        seg_segdef_free(xf);
        seg_segdef_free(xt);
        seg_db_close(full);
        seg_db_close(trunc);
        free(w.ev);
    }
    free(src);
}
END_TEST

/* ======================================================================== */
/* membership deltas                                                         */
/* ======================================================================== */

/* the table built from deltas equals a fresh evaluation */
static void same_as_eval(seg_segdef *x, const members *known, int64_t now)
{
    members *ms = eval_all(x, now, 0);
    for (size_t c = 0; c < ms->n; c++) {
        int k = find_id(known, ms->ids[c]);
        for (size_t s = 0; s < ms->nseg; s++) {
            int have = k < 0 ? 0 : known->m[k][s];
            ck_assert_msg(have == ms->m[c][s], "%s in %s: deltas say %d, eval says %d",
                          ms->ids[c], seg_segdef_segment_name(x, s), have, ms->m[c][s]);
            int mem = -1;
            TU_OK(x->db, seg_segdef_member(&mem, x, ms->ids[c], s));
            ck_assert_int_eq(mem, have);
        }
    }
    free(ms);
}

START_TEST(refresh_deltas)
{
    small_world(db);
    def = compile_ok(db, "segment big: revenue >= 100.00;\n"
                         "segment recent: days_since_last_purchase <= 30;\n"
                         "segment set st { p: orders == 0; else c; }\n");
    members *known = calloc(1, sizeof *known);
    ck_assert_ptr_nonnull(known);
    deltas dl = { known, 0, 0, 0, -1 };
    seg_segdef_stats st = SEG_SEGDEF_STATS_INIT;
    TU_OK(db, seg_segdef_refresh(def, NOW, 0, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 1);
    ck_assert_uint_eq(st.evaluated, 4);
    ck_assert_uint_eq(st.entered, dl.enters);
    ck_assert_uint_eq(st.exited, 0);
    ck_assert_uint_eq(dl.enters, 1 + 2 + 4); /* big: b; recent: a b; st: one each */
    same_as_eval(def, known, NOW);

    /* same now, nothing new: nobody is evaluated */
    TU_OK(db, seg_segdef_refresh(def, NOW, 0, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 0);
    ck_assert_uint_eq(st.evaluated, 0);
    ck_assert_uint_eq(st.entered + st.exited, 0);

    /* c buys, a new customer e appears: only they are evaluated */
    ingest(db, tu_purchase("c9", "c", TU_DAYN(98), 20000, NULL));
    ingest(db, tu_purchase("e1", "e", TU_DAYN(97), 500, NULL));
    unsigned long calls = dl.calls;
    TU_OK(db, seg_segdef_refresh(def, NOW, SEG_SEGDEF_SORTED, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 0);
    ck_assert_uint_eq(st.evaluated, 2);
    ck_assert_uint_eq(st.exited, 1);      /* c leaves p */
    ck_assert_uint_eq(st.entered, 3 + 2); /* c: big recent c; e: recent c */
    ck_assert_uint_eq(dl.calls - calls, 6);
    same_as_eval(def, known, NOW);

    /* time passes: the definition depends on time, so everyone is evaluated */
    TU_OK(db, seg_segdef_refresh(def, TU_DAYN(200), 0, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 1);
    ck_assert_uint_eq(st.evaluated, 5);
    same_as_eval(def, known, TU_DAYN(200));

    /* touched only, although time moved: b is evaluated, a keeps its
     * remembered (now stale) membership */
    ingest(db, tu_purchase("b9", "b", TU_DAYN(259), 100, NULL));
    TU_OK(db, seg_segdef_refresh(def, TU_DAYN(260), SEG_SEGDEF_TOUCHED, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 0);
    ck_assert_uint_eq(st.evaluated, 1);
    int mem = -1;
    TU_OK(db, seg_segdef_member(&mem, def, "b", seg_index(def, "recent")));
    ck_assert_int_eq(mem, 1);
    ck_assert_int_eq(in_seg(def, "b", "recent", TU_DAYN(260)), 1);
    /* a: not recent at day 200 nor at 260; force a full refresh */
    TU_OK(db, seg_segdef_refresh(def, TU_DAYN(260), SEG_SEGDEF_FULL, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 1);
    same_as_eval(def, known, TU_DAYN(260));

    /* erasure: e leaves without a report */
    calls = dl.calls;
    TU_OK(db, seg_customer_erase(db, "e"));
    TU_OK(db, seg_segdef_refresh(def, TU_DAYN(260), 0, delta_cb, &dl, &st));
    ck_assert_uint_eq(dl.calls, calls);
    TU_RC(db, seg_segdef_member(&mem, def, "e", 0), SEG_ENOTFOUND);
    same_as_eval(def, known, TU_DAYN(260));
    /* and stats may be omitted */
    TU_OK(db, seg_segdef_refresh(def, TU_DAYN(260), 0, delta_cb, NULL, NULL));
    free(known);
}
END_TEST

START_TEST(refresh_attributes_and_stop)
{
    small_world(db);
    set_str(db, "a", "country", "US");
    def = compile_ok(db, "segment us: attr(\"country\") == \"US\";\n"
                         "segment buyer: orders >= 1;\n");
    members *known = calloc(1, sizeof *known);
    ck_assert_ptr_nonnull(known);
    deltas dl = { known, 0, 0, 0, -1 };
    seg_segdef_stats st = SEG_SEGDEF_STATS_INIT;
    TU_OK(db, seg_segdef_refresh(def, NOW, 0, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 1);
    /* an attribute changes: no event, but everyone is evaluated again */
    set_str(db, "d", "country", "US");
    TU_OK(db, seg_segdef_refresh(def, NOW, 0, delta_cb, &dl, &st));
    ck_assert_uint_eq(st.full, 1);
    ck_assert_uint_eq(st.entered, 1);
    same_as_eval(def, known, NOW);
    /* a definition without attributes ignores attribute changes; it does
     * not depend on time either, so a later now needs no full refresh as
     * long as every event came before the last refresh's now */
    seg_db *d2 = NULL;
    ck_assert_int_eq(seg_db_open(&d2, ":memory:", NULL), SEG_OK);
    ingest(d2, tu_purchase("a1", "a", TU_DAYN(10), 100, NULL));
    ingest(d2, tu_purchase("b1", "b", TU_DAYN(20), 100, NULL));
    seg_segdef *plain = compile_ok(d2, "segment buyer: orders >= 1;");
    deltas dc = { NULL, 0, 0, 0, -1 };
    TU_OK(d2, seg_segdef_refresh(plain, NOW, 0, delta_cb, &dc, &st));
    ck_assert_uint_eq(st.full, 1);
    set_str(d2, "b", "country", "DE");
    TU_OK(d2, seg_segdef_refresh(plain, NOW + 86400 * 30, 0, delta_cb, &dc, &st));
    ck_assert_uint_eq(st.full, 0);
    ck_assert_uint_eq(st.evaluated, 0);
    /* an event after the refresh's now: its customer is touched (and not a
     * customer yet); a later refresh must then look at everyone */
    ingest(d2, tu_purchase("z1", "z", NOW + 86400 * 40, 100, NULL));
    TU_OK(d2, seg_segdef_refresh(plain, NOW + 86400 * 30, 0, delta_cb, &dc, &st));
    ck_assert_uint_eq(st.full, 0);
    ck_assert_uint_eq(st.evaluated, 0);
    ck_assert_uint_eq(st.entered, 0);
    TU_OK(d2, seg_segdef_refresh(plain, NOW + 86400 * 50, 0, delta_cb, &dc, &st));
    ck_assert_uint_eq(st.full, 1);
    ck_assert_uint_eq(st.entered, 1);
    seg_segdef_free(plain);
    seg_db_close(d2);

    /* a callback that stops: nothing is remembered, the next refresh
     * reports the same changes again */
    seg_segdef *x = compile_ok(db, "segment buyer: orders >= 1; segment any: true;");
    deltas stop = { NULL, 0, 0, 0, 2 };
    TU_OK(db, seg_segdef_refresh(x, NOW, 0, delta_cb, &stop, &st));
    ck_assert_uint_eq(stop.calls, 3);
    TU_RC(db, seg_segdef_member(&(int){0}, x, "a", 0), SEG_EMISUSE);
    deltas all = { NULL, 0, 0, 0, -1 };
    TU_OK(db, seg_segdef_refresh(x, NOW, 0, delta_cb, &all, &st));
    ck_assert_uint_eq(all.enters, 3 + 4); /* buyer: a b d; any: a b c d */
    ck_assert_uint_eq(st.entered, all.enters);
    seg_segdef_free(x);
    free(known);
}
END_TEST

/* ======================================================================== */
/* report                                                                    */
/* ======================================================================== */

typedef struct netrev { char ids[MAXC][24]; int64_t net[MAXC]; size_t n; } netrev;

static int netrev_cb(const seg_customer_info *c, void *payload)
{
    netrev *r = payload;
    strcpy(r->ids[r->n], c->customer_id);
    r->net[r->n++] = c->net_revenue;
    return 0;
}

START_TEST(report_matches_evaluation)
{
    char *src = defs_text();
    for (uint64_t seed = 21; seed <= 23; seed++) {
        seg_db *d = NULL;
        ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
        world w = make_world(seed, 80, 2000);
        world_ingest(d, &w, INT64_MAX, seed);
        for (int k = 0; k < 80; k += 3) {
            char id[16];
            snprintf(id, sizeof id, "k%03d", k);
            TU_OK(d, seg_customer_set_consent(d, id, "email", SEG_CONSENT_GRANTED));
        }
        TU_OK(d, seg_customer_add(d, "prospect-only"));
        seg_segdef *x = compile_ok(d, src);
        int64_t now = TU_DAYN(170);
        members *ms = eval_all(x, now, SEG_SEGDEF_SORTED);
        netrev *nr = calloc(1, sizeof *nr);
        ck_assert_ptr_nonnull(nr);
        TU_OK(d, seg_customer_foreach_as_of(d, now, SEG_CUSTOMER_SORTED, netrev_cb, nr));
        ck_assert_uint_eq(nr->n, ms->n);
        seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
        TU_OK(d, seg_segdef_report_get(&r, x, now));
        size_t n = ms->nseg;
        ck_assert_uint_eq(r.segments, n);
        ck_assert_uint_eq(r.customers, ms->n);
        uint64_t none = 0, several = 0;
        int64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t size = 0;
            int64_t rev = 0;
            for (size_t c = 0; c < ms->n; c++) {
                ck_assert_str_eq(ms->ids[c], nr->ids[c]);
                if (ms->m[c][i]) {
                    size++;
                    rev += nr->net[c];
                }
            }
            ck_assert_uint_eq(r.size[i], size);
            ck_assert_int_eq(r.revenue[i], rev);
            for (size_t j = 0; j < n; j++) {
                uint64_t both = 0;
                for (size_t c = 0; c < ms->n; c++)
                    both += ms->m[c][i] && ms->m[c][j];
                ck_assert_uint_eq(r.overlap[i * n + j], both);
            }
        }
        for (size_t c = 0; c < ms->n; c++) {
            int np = 0;
            for (size_t i = 0; i < n; i++)
                np += ms->m[c][i] && seg_segdef_segment_set(x, i) == NULL;
            none += np == 0;
            several += np > 1;
            total += nr->net[c];
        }
        ck_assert_uint_eq(r.in_none, none);
        ck_assert_uint_eq(r.in_several, several);
        ck_assert_int_eq(r.net_revenue, total);
        ck_assert_uint_gt(several, 0); /* audiences overlap the journeys */
        free(ms);
        free(nr);
        seg_segdef_free(x);
        seg_db_close(d);
        free(w.ev);
    }
    free(src);
}
END_TEST

/* RFM values and scores in definitions are those of seg_rfm_foreach() as of
 * the same time: 125 segments, one per (r, f, m) cell, plus value checks */
typedef struct rfm_want {
    char id[64];
    uint32_t status, r, f, m;
    int64_t recency, monetary;
    uint64_t frequency;
} rfm_want;
typedef struct rfm_wants {
    rfm_want *w;
    size_t n, cap;
} rfm_wants;

static int collect_rfm(const seg_rfm_info *c, void *payload)
{
    rfm_wants *ws = payload;
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? ws->cap * 2 : 256;
        ws->w = realloc(ws->w, ws->cap * sizeof *ws->w);
        ck_assert_ptr_nonnull(ws->w);
    }
    rfm_want *w = &ws->w[ws->n++];
    snprintf(w->id, sizeof w->id, "%s", c->customer_id);
    w->status = c->status;
    w->r = c->r;
    w->f = c->f;
    w->m = c->m;
    w->recency = c->recency_days;
    w->frequency = c->frequency;
    w->monetary = c->monetary;
    return 0;
}

typedef struct rfm_check {
    rfm_wants *ws;
    size_t seen;
} rfm_check;

static int check_rfm_row(const char *customer_id, const unsigned char *member, size_t n,
                         void *payload)
{
    rfm_check *k = payload;
    const rfm_want *w = NULL;
    for (size_t i = 0; i < k->ws->n && !w; i++)
        if (strcmp(k->ws->w[i].id, customer_id) == 0)
            w = &k->ws->w[i];
    ck_assert_msg(w != NULL, "%s: not visited by seg_rfm_foreach", customer_id);
    ck_assert_uint_eq(n, 125 + 4);
    for (uint32_t c = 0; c < 125; c++) {
        int want = w->status == SEG_RFM_ACTIVE && c == (w->r - 1) * 25 + (w->f - 1) * 5 + (w->m - 1);
        ck_assert_msg(member[c] == want, "%s: cell %u: member %d, rfm says r%u f%u m%u",
                      customer_id, c, member[c], w->r, w->f, w->m);
    }
    /* scored: r, f and m are not null exactly for active customers */
    ck_assert_int_eq(member[125], w->status == SEG_RFM_ACTIVE);
    ck_assert_int_eq(member[126], w->status == SEG_RFM_ACTIVE);
    ck_assert_int_eq(member[127], 1); /* frequency and monetary as rfm says */
    ck_assert_int_eq(member[128], 1);
    k->seen++;
    return 0;
}

START_TEST(rfm_values_match_rfm_module)
{
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
    TU_OK(d, seg_event_import_csv_file(d, SEG_SRCDIR "/examples/data/sample_events.csv", NULL, NULL));
    TU_OK(d, seg_customer_import_csv_file(d, SEG_SRCDIR "/examples/data/sample_customers.csv"));
    int64_t now;
    TU_OK(d, seg_time_parse(&now, "2024-09-15T12:00:00Z", 20));
    rfm_wants ws = { NULL, 0, 0 };
    seg_rfm_options o = SEG_RFM_OPTIONS_INIT;
    o.as_of = now;
    TU_OK(d, seg_rfm_foreach(NULL, d, &o, 0, collect_rfm, &ws));
    ck_assert_uint_gt(ws.n, 100);
    size_t cap = 125 * 64 + 4096, len = 0;
    char *src = malloc(cap);
    ck_assert_ptr_nonnull(src);
    for (int r = 1; r <= 5; r++)
        for (int f = 1; f <= 5; f++)
            for (int m = 1; m <= 5; m++)
                len += (size_t)snprintf(src + len, cap - len,
                                        "segment c%d%d%d: r == %d and f == %d and m == %d;\n",
                                        r, f, m, r, f, m);
    len += (size_t)snprintf(src + len, cap - len,
                            "segment scored_r: r is not null;\n"
                            "segment scored_fm: f is not null and m is not null;\n"
                            "segment freq: frequency >= 0;\nsegment mon: monetary is not null;\n");
    seg_segdef *x = NULL;
    int rc = seg_segdef_compile(&x, d, src, len);
    ck_assert_msg(rc == SEG_OK, "compile: %s", seg_errmsg(d));
    rfm_check k = { &ws, 0 };
    TU_OK(d, seg_segdef_eval(x, now, 0, check_rfm_row, &k));
    ck_assert_uint_gt(k.seen, 100);
    seg_segdef_free(x);
    /* the values themselves, customer by customer (every 9th), written out in
     * a definition: exactly those values match, off by one they do not */
    for (size_t i = 0; i < ws.n; i += 9) {
        const rfm_want *w = &ws.w[i];
        char money[64], def_src[512];
        ck_assert(seg_money_format(money, sizeof money, w->monetary, 2));
        for (int off = 0; off < 2; off++) {
            int n = w->status == SEG_RFM_ACTIVE
                        ? snprintf(def_src, sizeof def_src,
                                   "segment v: frequency == %llu and recency_days == %lld and "
                                   "monetary == %s;\n",
                                   (unsigned long long)w->frequency + (unsigned)off,
                                   (long long)w->recency, money)
                        : snprintf(def_src, sizeof def_src,
                                   "segment v: frequency == %llu and recency_days is null and "
                                   "monetary == %s;\n",
                                   (unsigned long long)w->frequency + (unsigned)off, money);
            seg_segdef *v = NULL;
            rc = seg_segdef_compile(&v, d, def_src, (size_t)n);
            ck_assert_msg(rc == SEG_OK, "compile %s: %s", def_src, seg_errmsg(d));
            unsigned char member = 9;
            TU_OK(d, seg_segdef_eval_customer(&member, 1, v, w->id, now));
            ck_assert_msg(member == (off == 0), "%s: %s gives %d", w->id, def_src, member);
            seg_segdef_free(v);
        }
    }
    /* the bundled map with the real values: every active customer gets a name */
    char *map = read_file(SEG_SRCDIR "/examples/definitions/rfm_map.seg", NULL);
    x = compile_ok(d, map);
    seg_segdef_report rep = SEG_SEGDEF_REPORT_INIT;
    TU_OK(d, seg_segdef_report_get(&rep, x, now));
    seg_segdef_free(x);
    free(map);
    free(src);
    free(ws.w);
    seg_db_close(d);
}
END_TEST

/* ---- CLV values (seg_segdef_set_clv) ---- */

typedef struct clv_want {
    char id[32];
    double p_alive, ep90, clv365;
} clv_want;

typedef struct clv_wants {
    clv_want *w;
    size_t n, cap;
    seg_clv_model *m;
    seg_clv_value_options vo;
} clv_wants;

static int collect_clv(const seg_clv_summary *s, void *payload)
{
    clv_wants *ws = payload;
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? ws->cap * 2 : 256;
        ws->w = realloc(ws->w, ws->cap * sizeof *ws->w);
        ck_assert_ptr_nonnull(ws->w);
    }
    clv_want *w = &ws->w[ws->n++];
    snprintf(w->id, sizeof w->id, "%s", s->customer_id);
    ck_assert_int_eq(seg_clv_p_alive(&w->p_alive, ws->m, s->frequency, s->recency, s->age), SEG_OK);
    ck_assert_int_eq(seg_clv_expected_purchases(&w->ep90, ws->m, s->frequency, s->recency, s->age,
                                                90.0 / 7), SEG_OK);
    seg_clv_value_options o = ws->vo;
    o.horizon = 365.0 / 7;
    ck_assert_int_eq(seg_clv_value(&w->clv365, ws->m, s->frequency, s->recency, s->age,
                                   s->monetary, &o), SEG_OK);
    return 0;
}

static int ignore_delta(const char *id, size_t seg, int entered, void *payload)
{
    (void)id; (void)seg; (void)entered; (void)payload;
    return 0;
}

/* is `id` a member of the one-segment definition `src`? */
static int member_of(seg_db *d, const char *src, const char *id, int64_t now, seg_clv_model *m,
                     const seg_clv_value_options *vo)
{
    seg_segdef *x = compile_ok(d, src);
    TU_OK(d, seg_segdef_set_clv(x, m, vo));
    unsigned char member = 9;
    TU_OK(d, seg_segdef_eval_customer(&member, 1, x, id, now));
    seg_segdef_free(x);
    return member;
}

START_TEST(clv_values_match_clv_module)
{
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
    TU_OK(d, seg_event_import_csv_file(d, SEG_SRCDIR "/examples/data/sample_events.csv", NULL, NULL));
    int64_t now;
    TU_OK(d, seg_time_parse(&now, "2024-09-15T00:00:00Z", 20));
    /* a weekly model with the CDNOW parameters (any valid ones will do) */
    seg_clv_model *m = NULL;
    ck_assert_int_eq(seg_clv_model_new(&m, SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL), SEG_OK);
    const double p[4] = { 0.243, 4.414, 0.793, 2.426 }, sp[3] = { 6.25, 3.74, 15.44 };
    ck_assert_int_eq(seg_clv_model_set_params(m, p, 4), SEG_OK);
    clv_wants ws = { NULL, 0, 0, m, SEG_CLV_VALUE_OPTIONS_INIT };
    ws.vo.discount_rate = 0.1;
    ws.vo.discount_period = 52;
    ws.vo.margin = 0.3;

    /* reading the values needs a model, and clv() its spend parameters */
    seg_segdef *x = compile_ok(d, "segment a: p_alive > 0.5;\n");
    unsigned char member;
    ck_assert_int_eq(seg_segdef_eval_customer(&member, 1, x, "C00001", now), SEG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(seg_errmsg(d), "seg_segdef_set_clv"));
    seg_clv_model *empty = NULL;
    ck_assert_int_eq(seg_clv_model_new(&empty, SEG_CLV_BGNBD, SEG_CLV_WEEK, NULL), SEG_OK);
    ck_assert_int_eq(seg_segdef_set_clv(x, empty, NULL), SEG_ENOTFOUND);
    seg_clv_model_free(empty);
    seg_clv_value_options bad = SEG_CLV_VALUE_OPTIONS_INIT;
    bad.discount_period = 0;
    ck_assert_int_eq(seg_segdef_set_clv(x, m, &bad), SEG_EINVAL);
    ck_assert_int_eq(seg_segdef_set_clv(NULL, m, NULL), SEG_EINVAL);
    seg_segdef_free(x);
    x = compile_ok(d, "segment a: clv(365d) > 10.00;\n");
    TU_OK(d, seg_segdef_set_clv(x, m, NULL));
    ck_assert_int_eq(seg_segdef_eval_customer(&member, 1, x, "C00001", now), SEG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(seg_errmsg(d), "spend"));
    seg_segdef_free(x);
    ck_assert_int_eq(seg_clv_model_set_spend_params(m, sp, 3), SEG_OK);

    seg_clv_summary_options so = SEG_CLV_SUMMARY_OPTIONS_INIT;
    so.unit = SEG_CLV_WEEK;
    so.calibration_end = now - 1;
    TU_OK(d, seg_clv_summary_foreach(d, &so, collect_clv, &ws, NULL));
    ck_assert_uint_gt(ws.n, 100);
    /* the values written out in a definition: a band of 2e-9 around each
     * matches, a band next to it does not; clv to the cent */
    size_t checked = 0;
    for (size_t i = 0; i < ws.n; i += 11, checked++) {
        const clv_want *w = &ws.w[i];
        char src[512];
        for (int off = 0; off < 2; off++) {
            double o = off ? 2e-6 : 0;
            snprintf(src, sizeof src, "segment v: p_alive between %.12f and %.12f;\n",
                     w->p_alive - 1e-9 + o, w->p_alive + 1e-9 + o);
            ck_assert_msg(member_of(d, src, w->id, now, m, &ws.vo) == !off, "%s: %s", w->id, src);
            snprintf(src, sizeof src, "segment v: expected_purchases(90d) between %.12f and %.12f;\n",
                     w->ep90 - 1e-9 + o, w->ep90 + 1e-9 + o);
            ck_assert_msg(member_of(d, src, w->id, now, m, &ws.vo) == !off, "%s: %s", w->id, src);
            char money[64];
            ck_assert(seg_money_format(money, sizeof money, llround(w->clv365 * 100) + off, 2));
            snprintf(src, sizeof src, "segment v: clv(365d) == %s;\n", money);
            ck_assert_msg(member_of(d, src, w->id, now, m, &ws.vo) == !off, "%s: %s", w->id, src);
        }
    }
    ck_assert_uint_gt(checked, 10);
    /* the model is copied: freeing ours changes nothing; a customer without
     * a purchase before now has null values */
    x = compile_ok(d, "segment known: p_alive is not null and clv(52w) is not null;\n"
                      "segment likely: p_alive >= 0.5 and expected_purchases(12w) > 0.1;\n");
    TU_OK(d, seg_segdef_set_clv(x, m, &ws.vo));
    seg_clv_model_free(m);
    seg_event e = tu_engagement("late0", "latecomer", now - 3600, "email_open");
    TU_OK(d, seg_event_ingest(d, &e));
    e = tu_purchase("late1", "latecomer", now + 3600, 1000, "lo1"); /* after now */
    TU_OK(d, seg_event_ingest(d, &e));
    members *ms = eval_all(x, now, 0);
    int k = find_id(ms, "latecomer");
    ck_assert_int_ge(k, 0);
    ck_assert_int_eq(ms->m[k][0], 0);
    size_t known = 0;
    for (size_t c = 0; c < ms->n; c++)
        known += ms->m[c][0];
    ck_assert_uint_eq(known, ws.n);
    free(ms);
    /* a refresh after the model changes evaluates everyone again */
    seg_segdef_stats st = SEG_SEGDEF_STATS_INIT;
    TU_OK(d, seg_segdef_refresh(x, now, 0, ignore_delta, NULL, &st));
    ck_assert_uint_gt(st.evaluated, ws.n);
    TU_OK(d, seg_segdef_refresh(x, now, 0, ignore_delta, NULL, &st));
    ck_assert_uint_eq(st.evaluated, 0);
    TU_OK(d, seg_segdef_set_clv(x, NULL, NULL)); /* removed: reading fails */
    ck_assert_int_eq(seg_segdef_refresh(x, now, 0, ignore_delta, NULL, &st), SEG_ENOTFOUND);
    seg_segdef_free(x);
    free(ws.w);
    seg_db_close(d);
}
END_TEST

START_TEST(clv_values_compile_errors)
{
    compile_err(db, "segment a: expected_purchases(0d) > 1;", SEG_EINVAL, "1:31:", "longer than zero");
    compile_err(db, "segment a: clv(\"x\") > 1.00;", SEG_EINVAL, "1:16:", "duration literal");
    compile_err(db, "segment a: clv(1d, 2d) > 1.00;", SEG_EINVAL, "1:12:", "one horizon");
    compile_err(db, "segment a: expected_purchases(90d, x: 1) > 1;", SEG_EINVAL, "1:39:",
                "no named arguments");
    compile_err(db, "segment a: clv(200000w) > 1.00;", SEG_EINVAL, "1:16:", "at most 100 years");
    compile_err(db, "segment a: p_alive > 0.5 and p_alive(3d) > 1;", SEG_EINVAL, "1:30:", "p_alive");
}
END_TEST

START_TEST(journey_segments_exclusive)
{
    /* the six journey segments exclude each other on the bundled sample */
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", NULL), SEG_OK);
    TU_OK(d, seg_event_import_csv_file(d, SEG_SRCDIR "/examples/data/sample_events.csv", NULL, NULL));
    char *src = read_file(SEG_SRCDIR "/examples/definitions/journeys.seg", NULL);
    seg_segdef *x = compile_ok(d, src);
    int64_t now;
    TU_OK(d, seg_time_parse(&now, "2025-01-01", 10));
    seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
    TU_OK(d, seg_segdef_report_get(&r, x, now));
    ck_assert_uint_eq(r.segments, 6);
    ck_assert_uint_eq(r.in_several, 0);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_msg(r.size[i] > 0, "journey segment %s is empty on the sample",
                      seg_segdef_segment_name(x, i));
        for (size_t j = 0; j < 6; j++)
            if (i != j)
                ck_assert_uint_eq(r.overlap[i * 6 + j], 0);
    }
    ck_assert_uint_gt(r.in_none, 0);
    free(src);
    seg_segdef_free(x);
    seg_db_close(d);
}
END_TEST

/* ======================================================================== */
/* the RFM named map and the score-grid analysis                             */
/* ======================================================================== */

/* Stand-in RFM values for the tests (the RFM module provides the real
 * ones): r, f and m read int attributes of the same names. */
static void get_score(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out)
{
    memset(out, 0, sizeof *out);
    out->null = 1;
    uint32_t e = cc->cust->ext;
    if (!e || sl->key == SEG__NONE)
        return;
    const seg__custext *x = &run->store->exts[e - 1];
    for (uint32_t k = 0; k < x->n; k++)
        if (x->items[k].key == sl->key) {
            out->null = 0;
            out->u.i = x->items[k].v.i;
        }
}

static int bind_score(seg__run *run, seg__slot *sl)
{
    const seg__store *s = run->store;
    sl->key = seg__dict_find(&s->arena, &s->attr_names, seg__cstr(sl->prov->name));
    return SEG_OK;
}

static const seg__provider test_scores[] = {
    { "r", SEG__T_INT, SEG__SIG_NONE, 0, 0, get_score, bind_score, "test: recency score" },
    { "f", SEG__T_INT, SEG__SIG_NONE, 0, 0, get_score, bind_score, "test: frequency score" },
    { "m", SEG__T_INT, SEG__SIG_NONE, 0, 0, get_score, bind_score, "test: monetary score" },
};

static seg_segdef *compile_scores(seg_db *d, const char *src)
{
    seg_segdef *x = NULL;
    int rc = seg__segdef_compile_ex(&x, d, src, strlen(src), test_scores, 3);
    ck_assert_msg(rc == SEG_OK, "compile: %d %s", rc, seg_errmsg(d));
    return x;
}

/* The cell table as doc/segdef.md shows it: rows r = 5..1, columns
 * f = 1..5; a cell names its label, or the labels by ranges of m. */
static char *cell_table(const seg_segdef *x, const uint32_t *cells)
{
    size_t cap = 8192, n = 0;
    char *t = malloc(cap);
    ck_assert_ptr_nonnull(t);
    n += (size_t)snprintf(t + n, cap - n, "| r \\ f | 1 | 2 | 3 | 4 | 5 |\n"
                                          "| --- | --- | --- | --- | --- | --- |\n");
    for (int r = 5; r >= 1; r--) {
        n += (size_t)snprintf(t + n, cap - n, "| %d |", r);
        for (int f = 1; f <= 5; f++) {
            const uint32_t *c = &cells[((r - 1) * 5 + (f - 1)) * 5];
            n += (size_t)snprintf(t + n, cap - n, " ");
            for (int m = 1; m <= 5;) {
                int e = m;
                while (e < 5 && c[e] == c[m - 1])
                    e++;
                const char *label = x->segs[x->items[0].first_seg + c[m - 1]].name;
                if (m == 1 && e == 5)
                    n += (size_t)snprintf(t + n, cap - n, "%s", label);
                else
                    n += (size_t)snprintf(t + n, cap - n, "%s%s (m %d-%d)", m > 1 ? ", " : "",
                                          label, m, e);
                m = e + 1;
            }
            n += (size_t)snprintf(t + n, cap - n, " |");
        }
        n += (size_t)snprintf(t + n, cap - n, "\n");
        ck_assert_uint_lt(n, cap - 200);
    }
    return t;
}

START_TEST(rfm_map_covers_every_cell)
{
    char *src = read_file(SEG_SRCDIR "/examples/definitions/rfm_map.seg", NULL);
    def = compile_scores(db, src);
    ck_assert_uint_eq(def->nitems, 1);
    uint32_t nrules = def->items[0].nrules;
    ck_assert_uint_eq(nrules, 12); /* eleven names and the else rule */
    uint32_t cells[125];
    TU_OK(db, seg__sd_score_cells(def, 0, 5, cells));
    unsigned reached[12] = { 0 };
    for (int k = 0; k < 125; k++) {
        ck_assert_msg(cells[k] < nrules - 1, "cell r%d f%d m%d falls to the else rule",
                      k / 25 + 1, k / 5 % 5 + 1, k % 5 + 1);
        reached[cells[k]]++;
    }
    for (uint32_t l = 0; l + 1 < nrules; l++)
        ck_assert_msg(reached[l] > 0, "label %s is never reached", def->segs[l].name);
    const char *want[] = { "champions", "loyal", "cant_lose_them", "at_risk", "new", "promising",
                           "potential_loyalist", "need_attention", "about_to_sleep",
                           "hibernating", "lost", "unscored" };
    for (int l = 0; l < 12; l++)
        ck_assert_str_eq(seg_segdef_segment_name(def, (size_t)l), want[l]);
    /* the reference shows this table */
    char *table = cell_table(def, cells);
    char *doc = read_file(SEG_SRCDIR "/doc/segdef.md", NULL);
    ck_assert_msg(strstr(doc, table) != NULL, "doc/segdef.md lacks the cell table:\n%s", table);
    free(doc);
    free(table);
    free(src);
}
END_TEST

START_TEST(score_cells_agree_with_evaluation)
{
    char *src = read_file(SEG_SRCDIR "/examples/definitions/rfm_map.seg", NULL);
    TU_OK(db, seg_attr_declare(db, "r", SEG_TYPE_INT));
    for (int k = 0; k < 125; k++) {
        char id[16];
        snprintf(id, sizeof id, "s%03d", k);
        set_int(db, id, "r", SEG_TYPE_INT, k / 25 + 1);
        set_int(db, id, "f", SEG_TYPE_INT, k / 5 % 5 + 1);
        set_int(db, id, "m", SEG_TYPE_INT, k % 5 + 1);
    }
    TU_OK(db, seg_customer_add(db, "unscored-prospect"));
    def = compile_scores(db, src);
    uint32_t cells[125];
    TU_OK(db, seg__sd_score_cells(def, 0, 5, cells));
    members *ms = eval_all(def, NOW, SEG_SEGDEF_SORTED);
    ck_assert_uint_eq(ms->n, 126);
    for (size_t c = 0; c < ms->n; c++) {
        size_t label = 99;
        for (size_t s = 0; s < ms->nseg; s++)
            if (ms->m[c][s])
                label = s;
        if (ms->ids[c][0] == 's')
            ck_assert_uint_eq(label, cells[atoi(ms->ids[c] + 1)]);
        else
            ck_assert_str_eq(seg_segdef_segment_name(def, label), "unscored");
    }
    free(ms);
    free(src);
}
END_TEST

START_TEST(score_cells_find_gaps)
{
    /* a map in the style of those in circulation: cells left to "others",
     * a label shadowed by an earlier rule, a label no score can reach */
    def = compile_scores(db,
        "segment set gappy {\n"
        "  top: r >= 4 and f >= 4;\n"
        "  loyal: r >= 4 and f >= 4 and m >= 3;\n"   /* shadowed by top */
        "  bottom: r <= 2 and f in [1, 2] and not m between 3 and 5;\n"
        "  impossible: r > 5 or (f == 0 and true);\n"
        "  else others;\n"
        "}\n"
        "segment x: orders > 1;\n"
        "segment set other { q: orders >= 1 and r == 1; else z; }\n");
    uint32_t cells[125];
    TU_OK(db, seg__sd_score_cells(def, 0, 5, cells));
    unsigned reached[5] = { 0 };
    for (int k = 0; k < 125; k++)
        reached[cells[k]]++;
    ck_assert_uint_eq(reached[0], 2 * 2 * 5);  /* r 4-5, f 4-5 */
    ck_assert_uint_eq(reached[1], 0);
    ck_assert_uint_eq(reached[2], 2 * 2 * 2);  /* r 1-2, f 1-2, m 1-2 */
    ck_assert_uint_eq(reached[3], 0);
    ck_assert_uint_eq(reached[4], 125 - 20 - 8);
    /* only r, f, m compared with integer constants */
    TU_RC(db, seg__sd_score_cells(def, 2, 5, cells), SEG_EINVAL);
    TU_MSG_HAS(db, "only r, f and m");
    TU_MSG_HAS(db, "9:");
    TU_RC(db, seg__sd_score_cells(def, 1, 5, cells), SEG_EINVAL);
    TU_MSG_HAS(db, "not a segment set");
    TU_RC(db, seg__sd_score_cells(def, 0, 0, cells), SEG_EINVAL);
}
END_TEST

/* ======================================================================== */
/* canonical text                                                            */
/* ======================================================================== */

static void parse_text(seg__ast *ast, const char *src, size_t n)
{
    seg__pool_init(&ast->pool, &seg__default_alloc);
    seg__sderr err;
    int rc = seg__sd_parse(ast, src, n, &err);
    ck_assert_msg(rc == SEG_OK, "parse: %u:%u: %s\n%s", err.line, err.col, err.msg, src);
}

/* parse(print(x)) == x and print is a fixed point */
static void round_trip(const seg__ast *ast)
{
    size_t n;
    char *t1 = seg__sd_print(&seg__default_alloc, ast, &n);
    ck_assert_ptr_nonnull(t1);
    ck_assert_uint_eq(strlen(t1), n);
    seg__ast back;
    parse_text(&back, t1, n);
    ck_assert_msg(seg__sd_ast_equal(ast, &back), "parse(print(x)) != x for:\n%s", t1);
    char *t2 = seg__sd_print(&seg__default_alloc, &back, NULL);
    ck_assert_str_eq(t1, t2);
    free(t1);
    free(t2);
    seg__pool_free(&back.pool);
}

START_TEST(bundled_definitions_round_trip)
{
    const char *files[] = { "rfm_map.seg", "journeys.seg", "customers.seg", "audiences.seg" };
    int compiled = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char path[512];
        size_t n;
        snprintf(path, sizeof path, SEG_SRCDIR "/examples/definitions/%s", files[k]);
        char *src = read_file(path, &n);
        seg__ast ast;
        parse_text(&ast, src, n);
        ck_assert_uint_gt(ast.nitems, 0);
        round_trip(&ast);
        seg__pool_free(&ast.pool);
        free(src);
    }
    /* and compiled: the definition's own text round trips too */
    char *all = defs_text();
    char *rfm = read_file(SEG_SRCDIR "/examples/definitions/rfm_map.seg", NULL);
    char *cust = read_file(SEG_SRCDIR "/examples/definitions/customers.seg", NULL);
    const char *srcs[] = { all, rfm, cust };
    for (size_t k = 0; k < 3; k++) {
        seg_segdef *x = compile_scores(db, srcs[k]);
        char *t1 = NULL, *t2 = NULL;
        TU_OK(db, seg_segdef_print(&t1, x));
        seg_segdef *y = compile_scores(db, t1);
        TU_OK(db, seg_segdef_print(&t2, y));
        ck_assert_str_eq(t1, t2);
        ck_assert(seg__sd_ast_equal(&x->ast, &y->ast));
        seg_free(t1);
        seg_free(t2);
        seg_segdef_free(x);
        seg_segdef_free(y);
        compiled++;
    }
    ck_assert_int_eq(compiled, 3);
    free(all);
    free(rfm);
    free(cust);
}
END_TEST

/* ---- random ASTs ---- */

typedef struct gen {
    uint64_t st;
    seg__pool *pool;
} gen;

static uint64_t gr(gen *g, uint64_t n) { return tu_rand(&g->st) % n; }

static seg__str gen_ident(gen *g)
{
    static const char *const ids[] = { "orders", "revenue", "x", "_a1", "Set2", "segment_", "elsewhere",
                                       "innie", "nota", "android", "ora", "isnt", "truth", "nullify" };
    const char *s = ids[gr(g, sizeof ids / sizeof ids[0])];
    seg__str r = { s, strlen(s) };
    return r;
}

static seg__str gen_string(gen *g)
{
    static const char *const parts[] = { "a", "\"", "\\", "\n", "\t", "\r", "\x01", "\x7f",
                                         "\xc3\xa9", "\xe2\x82\xac", " ", "#", "x y", "\x1f" };
    size_t n = gr(g, 6), len = 0;
    char *buf = seg__pool_alloc(g->pool, 64);
    ck_assert_ptr_nonnull(buf);
    for (size_t k = 0; k < n; k++) {
        const char *p = parts[gr(g, sizeof parts / sizeof parts[0])];
        memcpy(buf + len, p, strlen(p));
        len += strlen(p);
    }
    seg__str r = { buf, len };
    return r;
}

static seg__node *gen_node(gen *g, int kind, uint32_t nkids)
{
    seg__node *n = seg__pool_alloc(g->pool, sizeof *n);
    ck_assert_ptr_nonnull(n);
    n->kind = (uint8_t)kind;
    n->nkids = nkids;
    if (nkids) {
        n->kids = seg__pool_alloc(g->pool, nkids * sizeof *n->kids);
        ck_assert_ptr_nonnull(n->kids);
    }
    return n;
}

static seg__node *gen_expr(gen *g, int depth)
{
    int kind = depth <= 0 ? (int)(SEG__N_INT + gr(g, 8)) : (int)(1 + gr(g, SEG__N_MEMBER));
    seg__node *n;
    switch (kind) {
    case SEG__N_AND:
    case SEG__N_OR: {
        uint32_t k = 2 + (uint32_t)gr(g, 3);
        n = gen_node(g, kind, k);
        for (uint32_t i = 0; i < k; i++)
            n->kids[i] = gen_expr(g, depth - 1);
        return n;
    }
    case SEG__N_NOT:
    case SEG__N_NEG:
    case SEG__N_ISNULL:
        n = gen_node(g, kind, 1);
        n->kids[0] = gen_expr(g, depth - 1);
        n->neg = kind == SEG__N_ISNULL ? (uint8_t)gr(g, 2) : 0;
        return n;
    case SEG__N_CMP:
    case SEG__N_ARITH:
        n = gen_node(g, kind, 2);
        n->op = (uint8_t)(kind == SEG__N_CMP ? SEG__SOP_EQ + gr(g, 6) : SEG__SOP_ADD + gr(g, 4));
        n->kids[0] = gen_expr(g, depth - 1);
        n->kids[1] = gen_expr(g, depth - 1);
        return n;
    case SEG__N_IN: {
        uint32_t k = 2 + (uint32_t)gr(g, 3);
        n = gen_node(g, kind, k);
        n->neg = (uint8_t)gr(g, 2);
        for (uint32_t i = 0; i < k; i++)
            n->kids[i] = gen_expr(g, depth - 1);
        return n;
    }
    case SEG__N_BETWEEN:
        n = gen_node(g, kind, 3);
        n->neg = (uint8_t)gr(g, 2);
        for (int i = 0; i < 3; i++)
            n->kids[i] = gen_expr(g, depth - 1);
        return n;
    case SEG__N_INT:
        n = gen_node(g, kind, 0);
        n->i = gr(g, 3) ? (int64_t)gr(g, 1000) : INT64_MAX - (int64_t)gr(g, 10);
        return n;
    case SEG__N_DEC:
        n = gen_node(g, kind, 0);
        n->scale = 1 + (int32_t)gr(g, 6);
        n->i = (int64_t)gr(g, 10000000);
        return n;
    case SEG__N_DUR:
        n = gen_node(g, kind, 0);
        n->i = (int64_t)gr(g, 1000);
        n->unit = (uint8_t)gr(g, 5);
        return n;
    case SEG__N_STR:
        n = gen_node(g, kind, 0);
        n->s = gen_string(g);
        return n;
    case SEG__N_BOOL:
        n = gen_node(g, kind, 0);
        n->i = (int64_t)gr(g, 2);
        return n;
    case SEG__N_NAME:
    case SEG__N_MEMBER:
        n = gen_node(g, kind, 0);
        n->s = gen_ident(g);
        return n;
    case SEG__N_CALL: {
        uint32_t npos = (uint32_t)gr(g, 3), nnamed = (uint32_t)gr(g, 3);
        n = gen_node(g, kind, npos + nnamed);
        n->s = gen_ident(g);
        n->npos = npos;
        static const char *const keys[] = { "a", "category", "channel", "z" };
        uint32_t first = (uint32_t)gr(g, 2);
        for (uint32_t i = 0; i < npos + nnamed; i++) {
            n->kids[i] = gen_expr(g, depth - 1);
            if (i >= npos) {
                const char *key = keys[first + (i - npos)]; /* sorted and distinct */
                n->kids[i]->key.p = key;
                n->kids[i]->key.n = strlen(key);
            }
        }
        return n;
    }
    default:
        ck_abort_msg("kind %d", kind);
        return NULL;
    }
}

START_TEST(random_asts_round_trip)
{
    for (uint64_t seed = 1; seed <= 400; seed++) {
        seg__ast ast;
        memset(&ast, 0, sizeof ast);
        seg__pool_init(&ast.pool, &seg__default_alloc);
        gen g = { seed * 0x9E3779B97F4A7C15u + 7, &ast.pool };
        ast.nitems = 1 + (uint32_t)gr(&g, 4);
        ast.items = seg__pool_alloc(&ast.pool, ast.nitems * sizeof *ast.items);
        ck_assert_ptr_nonnull(ast.items);
        for (uint32_t i = 0; i < ast.nitems; i++) {
            seg__item *it = &ast.items[i];
            it->name = gen_ident(&g);
            if (gr(&g, 2)) {
                it->kind = SEG__ITEM_SEGMENT;
                it->nrules = 1;
            } else {
                it->kind = SEG__ITEM_SET;
                it->nrules = 1 + (uint32_t)gr(&g, 4);
            }
            it->rules = seg__pool_alloc(&ast.pool, it->nrules * sizeof *it->rules);
            ck_assert_ptr_nonnull(it->rules);
            for (uint32_t r = 0; r < it->nrules; r++) {
                it->rules[r].label = it->kind == SEG__ITEM_SEGMENT ? it->name : gen_ident(&g);
                bool is_else = it->kind == SEG__ITEM_SET && r + 1 == it->nrules;
                it->rules[r].cond = is_else ? NULL : gen_expr(&g, (int)gr(&g, 6));
            }
        }
        round_trip(&ast);
        seg__pool_free(&ast.pool);
    }
}
END_TEST

/* ======================================================================== */
/* malformed inputs (tests/data/segdef-bad/)                                 */
/* ======================================================================== */

/* Each file names its expected error in its first line:
 *     # expect: LINE:COL: FRAGMENT
 * The error must be exactly at LINE:COL and its message contain FRAGMENT. */
START_TEST(bad_corpus)
{
    const char *dir = SEG_SRCDIR "/tests/data/segdef-bad";
    DIR *dp = opendir(dir);
    ck_assert_msg(dp != NULL, "cannot open %s", dir);
    TU_OK(db, seg_attr_declare(db, "country", SEG_TYPE_STRING));
    TU_OK(db, seg_attr_declare(db, "age", SEG_TYPE_INT));
    int files = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".seg") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n;
        char *src = read_file(path, &n);
        ck_assert_msg(strncmp(src, "# expect: ", 10) == 0, "%s: no '# expect:' line", path);
        char *eol = strchr(src, '\n');
        ck_assert_ptr_nonnull(eol);
        char want[512];
        size_t wl = (size_t)(eol - (src + 10));
        ck_assert_uint_lt(wl, sizeof want);
        memcpy(want, src + 10, wl);
        want[wl] = '\0';
        char *sp = strchr(want, ' ');
        ck_assert_msg(sp != NULL, "%s: expect line needs 'L:C: fragment'", path);
        *sp = '\0';
        seg_segdef *x = (seg_segdef *)&x;
        int rc = seg_segdef_compile(&x, db, src, n);
        const char *m = seg_errmsg(db);
        ck_assert_msg(rc < 0, "%s compiled", path);
        ck_assert_ptr_null(x);
        ck_assert_msg(strncmp(m, want, strlen(want)) == 0 && m[strlen(want)] == ' ',
                      "%s: message '%s', expected position %s", path, m, want);
        ck_assert_msg(strstr(m, sp + 1) != NULL, "%s: message '%s' lacks '%s'", path, m, sp + 1);
        free(src);
        files++;
    }
    closedir(dp);
    ck_assert_int_ge(files, 30);
}
END_TEST

START_TEST(random_bytes_do_not_crash)
{
    /* mutations of a valid text: every outcome is success or an error with
     * a position */
    const char *base = "segment set s { a: spend(30d, category: \"x\") >= 10.50 and not in(b); "
                       "else c; }\nsegment b: attr(\"country\") in [\"US\", \"DE\"] or orders between 1 and 3;";
    TU_OK(db, seg_attr_declare(db, "country", SEG_TYPE_STRING));
    size_t n = strlen(base);
    char *buf = malloc(n + 8);
    ck_assert_ptr_nonnull(buf);
    uint64_t st = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, base, n);
        size_t len = n;
        int muts = 1 + (int)(tu_rand(&st) % 4);
        for (int k = 0; k < muts; k++) {
            size_t at = (size_t)(tu_rand(&st) % len);
            switch (tu_rand(&st) % 3) {
            case 0: buf[at] = (char)(tu_rand(&st) % 256); break;
            case 1: memmove(buf + at, buf + at + 1, len - at - 1); len--; break;
            default: len = at; break;
            }
            if (len == 0)
                break;
        }
        seg_segdef *x = NULL;
        int rc = seg_segdef_compile(&x, db, buf, len);
        if (rc == SEG_OK) {
            members *ms = eval_all(x, NOW, 0);
            free(ms);
            seg_segdef_free(x);
        } else {
            unsigned line, col;
            ck_assert_msg(sscanf(seg_errmsg(db), "%u:%u: ", &line, &col) == 2 && line >= 1 &&
                          col >= 1, "error without a position: %s", seg_errmsg(db));
            ck_assert_ptr_null(x);
        }
    }
    free(buf);
}
END_TEST

/* ======================================================================== */
/* memory: allocations per run, failures, lifetime                           */
/* ======================================================================== */

static void populate(seg_db *d, int from, int to)
{
    for (int c = from; c < to; c++) {
        char id[16], oid[24];
        snprintf(id, sizeof id, "p%05d", c);
        for (int k = 0; k < 1 + c % 5; k++) {
            snprintf(oid, sizeof oid, "o%d-%d", c, k % 3);
            seg_event e = tu_purchase(NULL, id, TU_DAYN((c * 7 + k * 13) % 150), 100 + c * 3 + k, oid);
            e.category = cats[k % 3];
            e.channel = chans[c % 2];
            ingest(d, e);
        }
        if (c % 4 == 0)
            ingest(d, tu_engagement(NULL, id, TU_DAYN(c % 100), "email_open"));
        if (c % 3 == 0)
            TU_OK(d, seg_customer_set_consent(d, id, "email", SEG_CONSENT_GRANTED));
    }
}

static int count_cb(const char *id, const unsigned char *m, size_t n, void *payload)
{
    (void)id;
    for (size_t k = 0; k < n; k++)
        *(unsigned long *)payload += m[k];
    return 0;
}

START_TEST(allocations_do_not_grow_with_customers)
{
    tu_alloc ta = { -1, 0, 0, 0, 0, 0, 0, 0 };
    seg_allocator al = tu_allocator(&ta);
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.allocator = &al;
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    char *src = defs_text();
    unsigned long per_size[2][4];
    for (int round = 0; round < 2; round++) {
        populate(d, round ? 200 : 0, round ? 2000 : 200);
        seg_segdef *x = compile_ok(d, src);
        unsigned long a0 = ta.attempts, hits = 0;
        TU_OK(d, seg_segdef_eval(x, TU_DAYN(160), 0, count_cb, &hits));
        per_size[round][0] = ta.attempts - a0;
        ck_assert_uint_gt(hits, 0);
        a0 = ta.attempts;
        TU_OK(d, seg_segdef_eval(x, TU_DAYN(60), SEG_SEGDEF_SORTED, count_cb, &hits));
        per_size[round][1] = ta.attempts - a0;
        a0 = ta.attempts;
        TU_OK(d, seg_segdef_refresh(x, TU_DAYN(160), SEG_SEGDEF_FULL, delta_cb, NULL, NULL));
        per_size[round][2] = ta.attempts - a0;
        seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
        a0 = ta.attempts;
        TU_OK(d, seg_segdef_report_get(&r, x, TU_DAYN(160)));
        per_size[round][3] = ta.attempts - a0;
        /* one customer at a time: nothing once the buffer has grown */
        unsigned char m[64];
        size_t ns = seg_segdef_segment_count(x);
        TU_OK(d, seg_segdef_eval_customer(m, ns, x, "p00004", TU_DAYN(160)));
        a0 = ta.attempts;
        for (int c = 0; c < 200; c++) {
            char id[16];
            snprintf(id, sizeof id, "p%05d", c);
            TU_OK(d, seg_segdef_eval_customer(m, ns, x, id, TU_DAYN(160)));
        }
        ck_assert_uint_eq(ta.attempts - a0, 0);
        seg_segdef_free(x);
    }
    for (int k = 0; k < 4; k++)
        ck_assert_msg(per_size[0][k] == per_size[1][k],
                      "call %d: %lu allocations for 200 customers, %lu for 2000", k,
                      per_size[0][k], per_size[1][k]);
    free(src);
    seg_db_close(d);
    ck_assert_int_eq(ta.live_blocks, 0);
}
END_TEST

START_TEST(allocation_failures)
{
    tu_alloc ta = { -1, 0, 0, 0, 0, 0, 0, 0 };
    seg_allocator al = tu_allocator(&ta);
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.allocator = &al;
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    populate(d, 0, 60);
    char *src = defs_text();
    size_t len = strlen(src);
    /* compile: fails cleanly until it succeeds */
    seg_segdef *x = NULL;
    int rc = SEG_ENOMEM;
    long k;
    for (k = 0; rc == SEG_ENOMEM; k++) {
        long live = ta.live_blocks;
        ta.fail_after = (long)ta.attempts + k;
        rc = seg_segdef_compile(&x, d, src, len);
        ta.fail_after = -1;
        if (rc == SEG_ENOMEM) {
            ck_assert_ptr_null(x);
            ck_assert_int_eq(ta.live_blocks, live);
            TU_MSG_HAS(d, "out of memory");
        }
    }
    TU_OK(d, rc);
    ck_assert_int_gt(k, 10);
    /* evaluation, refresh and report */
    unsigned long hits_ok = 0;
    TU_OK(d, seg_segdef_eval(x, TU_DAYN(160), SEG_SEGDEF_SORTED, count_cb, &hits_ok));
    for (int call = 0; call < 3; call++) {
        rc = SEG_ENOMEM;
        for (k = 0; rc == SEG_ENOMEM; k++) {
            long live = ta.live_blocks;
            unsigned long hits = 0;
            seg_segdef_report r = SEG_SEGDEF_REPORT_INIT;
            deltas dl = { NULL, 0, 0, 0, -1 };
            ta.fail_after = (long)ta.attempts + k;
            if (call == 0)
                rc = seg_segdef_eval(x, TU_DAYN(160), SEG_SEGDEF_SORTED, count_cb, &hits);
            else if (call == 1)
                rc = seg_segdef_refresh(x, TU_DAYN(160), SEG_SEGDEF_FULL, delta_cb, &dl, NULL);
            else
                rc = seg_segdef_report_get(&r, x, TU_DAYN(160));
            ta.fail_after = -1;
            if (rc == SEG_ENOMEM) {
                ck_assert_int_eq(ta.live_blocks, live);
                ck_assert_uint_eq(hits, 0);
                ck_assert_uint_eq(dl.calls, 0);
                ck_assert_int_eq(x->has_state, call == 2);
            } else {
                TU_OK(d, rc);
                if (call == 0)
                    ck_assert_uint_eq(hits, hits_ok);
            }
        }
    }
    seg_segdef_free(x);
    free(src);
    seg_db_close(d);
    ck_assert_int_eq(ta.live_blocks, 0);
}
END_TEST

START_TEST(definition_outlives_db_handle)
{
    tu_alloc ta = { -1, 0, 0, 0, 0, 0, 0, 0 };
    seg_allocator al = tu_allocator(&ta);
    seg_db_options o = SEG_DB_OPTIONS_INIT;
    o.allocator = &al;
    seg_db *d = NULL;
    ck_assert_int_eq(seg_db_open(&d, ":memory:", &o), SEG_OK);
    small_world(d);
    seg_segdef *x = compile_ok(d, "segment big: revenue >= 100.00;");
    seg_segdef *y = compile_ok(d, "segment any: true;");
    seg_db_close(d); /* the caller is done with the db; the definitions are not */
    ck_assert_int_gt(ta.live_blocks, 0);
    members *ms = eval_all(x, NOW, SEG_SEGDEF_SORTED);
    ck_assert_uint_eq(ms->n, 4);
    ck_assert_int_eq(ms->m[1][0], 1);
    free(ms);
    seg_segdef_free(x);
    ck_assert_int_gt(ta.live_blocks, 0);
    seg_segdef_free(y); /* the last one frees the db */
    ck_assert_int_eq(ta.live_blocks, 0);
}
END_TEST

/* Every definition example in doc/segdef.md compiles (with the journey
 * segments around it, which the suppression example names). */
START_TEST(doc_examples_compile)
{
    char *doc = read_file(SEG_SRCDIR "/doc/segdef.md", NULL);
    char *journeys = read_file(SEG_SRCDIR "/examples/definitions/journeys.seg", NULL);
    static const struct { const char *name; uint32_t type; } attrs[] = {
        { "country", SEG_TYPE_STRING }, { "birth_year", SEG_TYPE_INT },
        { "email_verified", SEG_TYPE_BOOL }, { "signup", SEG_TYPE_TIME },
        { "score", SEG_TYPE_NUMBER }, { "nickname", SEG_TYPE_STRING },
        { "email", SEG_TYPE_STRING },
    };
    for (size_t k = 0; k < sizeof attrs / sizeof attrs[0]; k++)
        TU_OK(db, seg_attr_declare(db, attrs[k].name, attrs[k].type));
    int blocks = 0;
    char *line = doc, *body = NULL;
    bool in_block = false, plain = false;
    while (*line) {
        char *next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        if (strncmp(line, "```", 3) == 0) {
            if (!in_block) {
                in_block = true;
                plain = line[3] == '\n';
                body = next;
            } else {
                in_block = false;
                size_t n = (size_t)(line - body);
                if (plain && (strncmp(body, "segment", 7) == 0 || body[0] == '#')) {
                    char *src = malloc(strlen(journeys) + n + 2);
                    ck_assert_ptr_nonnull(src);
                    sprintf(src, "%s\n%.*s", journeys, (int)n, body);
                    seg_segdef *x = NULL;
                    int rc = seg_segdef_compile(&x, db, src, strlen(src));
                    ck_assert_msg(rc == SEG_OK, "doc example does not compile (%s):\n%.*s",
                                  seg_errmsg(db), (int)n, body);
                    seg_segdef_free(x);
                    free(src);
                    blocks++;
                }
            }
        }
        line = next;
    }
    ck_assert(!in_block);
    ck_assert_int_ge(blocks, 15);
    free(doc);
    free(journeys);
}
END_TEST

Suite *segdef_suite(void)
{
    Suite *s = suite_create("segdef");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, parse_every_construct);
    tcase_add_test(tc, empty_definition);
    tcase_add_test(tc, syntax_errors);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, positions_count_characters);
    tcase_add_test(tc, type_errors);
    tcase_add_test(tc, api_misuse);
    tcase_add_test(tc, bad_corpus);
    tcase_add_test(tc, random_bytes_do_not_crash);
    suite_add_tcase(s, tc);

    tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, aggregates);
    tcase_add_test(tc, windows);
    tcase_add_test(tc, nulls_and_attributes);
    tcase_add_test(tc, arithmetic);
    tcase_add_test(tc, sets_membership_consent);
    tcase_add_test(tc, eval_order_and_visits);
    tcase_add_test(tc, eval_callbacks);
    tcase_add_test(tc, measures_match_reference);
    tcase_add_test(tc, as_of_equals_truncated_database);
    suite_add_tcase(s, tc);

    tc = tcase_create("deltas");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, refresh_deltas);
    tcase_add_test(tc, refresh_attributes_and_stop);
    tcase_add_test(tc, report_matches_evaluation);
    tcase_add_test(tc, journey_segments_exclusive);
    suite_add_tcase(s, tc);

    tc = tcase_create("sets");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, rfm_map_covers_every_cell);
    tcase_add_test(tc, rfm_values_match_rfm_module);
    tcase_add_test(tc, clv_values_match_clv_module);
    tcase_add_test(tc, clv_values_compile_errors);
    tcase_add_test(tc, score_cells_agree_with_evaluation);
    tcase_add_test(tc, score_cells_find_gaps);
    suite_add_tcase(s, tc);

    tc = tcase_create("print");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bundled_definitions_round_trip);
    tcase_add_test(tc, random_asts_round_trip);
    tcase_add_test(tc, doc_examples_compile);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, allocations_do_not_grow_with_customers);
    tcase_add_test(tc, allocation_failures);
    tcase_add_test(tc, definition_outlives_db_handle);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(segdef_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
