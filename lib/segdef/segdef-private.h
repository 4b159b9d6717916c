/*
 * The definition language: internals shared by the files of lib/segdef/, the
 * white-box tests, and the modules that will extend the language (loyalty
 * programs and tiers, journeys).
 *
 * Pipeline: lexer.c (tokens) -> parser.c (AST) -> check.c (names, types,
 * cycles) -> compile.c (bytecode) -> vm.c (one customer) / eval.c (every
 * customer, deltas, reports).  print.c turns an AST back into canonical
 * text; values.c is the registry of named values (the extension point for
 * RFM, CLV, loyalty and journey values); analyze.c holds static analyses.
 */
#ifndef SEGMENT_SEGDEF_PRIVATE_H
#define SEGMENT_SEGDEF_PRIVATE_H

#include "core/core-private.h"
#include "segment/segdef.h"
#include "clv/clv-private.h"

/* ---- limits ---- */
#define SEG__SD_SRC_MAX   (16u << 20) /* bytes of source text */
#define SEG__SD_DEPTH_MAX 200         /* nesting of an expression */
#define SEG__SD_SEG_MAX   65535u      /* segments (plain + labels) */
#define SEG__SD_LIST_MAX  65535u      /* elements of an `in [...]` list, arguments */

/* ---- value types ---- */
enum {
    SEG__T_ERR = 0,  /* not typed yet / error */
    SEG__T_BOOL,
    SEG__T_INT,
    SEG__T_NUM,      /* double */
    SEG__T_MONEY,    /* int64 minor units */
    SEG__T_DUR,      /* int64 seconds */
    SEG__T_TIME,     /* int64 seconds since the epoch */
    SEG__T_STR,
    SEG__T_LITINT,   /* an integer literal not yet given a type */
    SEG__T_LITDEC    /* a decimal literal not yet given a type */
};
const char *seg__sd_type_name(int t);

/* ---- tokens (lexer.c) ---- */
enum {
    SEG__TK_EOF = 0, SEG__TK_IDENT, SEG__TK_INT, SEG__TK_DEC, SEG__TK_DUR, SEG__TK_STR,
    SEG__TK_LPAREN, SEG__TK_RPAREN, SEG__TK_LBRACK, SEG__TK_RBRACK, SEG__TK_LBRACE,
    SEG__TK_RBRACE, SEG__TK_COMMA, SEG__TK_COLON, SEG__TK_SEMI, SEG__TK_PLUS, SEG__TK_MINUS,
    SEG__TK_STAR, SEG__TK_SLASH, SEG__TK_EQ, SEG__TK_NE, SEG__TK_LT, SEG__TK_LE, SEG__TK_GT,
    SEG__TK_GE,
    /* keywords (reserved everywhere) */
    SEG__TK_SEGMENT, SEG__TK_SET, SEG__TK_ELSE, SEG__TK_AND, SEG__TK_OR, SEG__TK_NOT,
    SEG__TK_IN, SEG__TK_BETWEEN, SEG__TK_IS, SEG__TK_NULL, SEG__TK_TRUE, SEG__TK_FALSE,
    /* journey blocks (lib/journey/parse.c): '->' */
    SEG__TK_ARROW
};

/* duration units */
enum { SEG__DU_S = 0, SEG__DU_MIN, SEG__DU_H, SEG__DU_D, SEG__DU_W };
extern const int64_t seg__du_seconds[5];
extern const char *const seg__du_name[5];

typedef struct seg__tok {
    int kind;
    uint32_t line, col;
    const char *p;         /* the token's text in the source */
    size_t n;
    /* INT: value; DEC: mantissa with `scale` decimals; DUR: count, unit */
    int64_t i;
    int32_t scale;
    int unit;
    /* STR: the unescaped bytes (owned by the lexer's buffer) */
    char *s;
    size_t sn;
} seg__tok;

typedef struct seg__lexer {
    const seg__alloc *alloc;
    const char *src, *end, *pos;
    uint32_t line;
    const char *line_start;
    char *sbuf;            /* unescaped text of the current string token */
    size_t sbuf_cap;
    /* error */
    int err;               /* SEG_OK or a code */
    char msg[512];
    uint32_t err_line, err_col;
} seg__lexer;

void seg__lex_init(seg__lexer *lx, const seg__alloc *a, const char *src, size_t len);
void seg__lex_free(seg__lexer *lx);
/* Read the next token: SEG_OK, or an error code with lx->msg set. */
int seg__lex_next(seg__lexer *lx, seg__tok *t);
/* 1-based character column of p on the line starting at line_start */
uint32_t seg__lex_col(const char *line_start, const char *p);
/* Is the text an identifier that is not a keyword? */
bool seg__sd_is_ident(const char *p, size_t n);
/* keyword token kind of an identifier, or SEG__TK_IDENT */
int seg__sd_keyword(const char *p, size_t n);

/* ---- AST (parser.c) ---- */
enum {
    SEG__N_AND = 1,   /* kids[0..nkids), nkids >= 2 */
    SEG__N_OR,        /* kids[0..nkids), nkids >= 2 */
    SEG__N_NOT,       /* kids[0] */
    SEG__N_CMP,       /* op; kids[0], kids[1] */
    SEG__N_IN,        /* neg; kids[0] the value, kids[1..nkids) the list */
    SEG__N_BETWEEN,   /* neg; kids[0] value, kids[1] low, kids[2] high */
    SEG__N_ISNULL,    /* neg (is not null); kids[0] */
    SEG__N_ARITH,     /* op (+ - * /); kids[0], kids[1] */
    SEG__N_NEG,       /* kids[0] */
    SEG__N_INT,       /* i (>= 0) */
    SEG__N_DEC,       /* i mantissa (>= 0), scale 1..18 */
    SEG__N_DUR,       /* i count (>= 0), unit */
    SEG__N_STR,       /* s */
    SEG__N_BOOL,      /* i 0/1 */
    SEG__N_NAME,      /* s: a bare name (a value such as `orders`) */
    SEG__N_CALL,      /* s: the function's name; kids: positional arguments,
                       * then named ones (key set), named ones sorted by key */
    SEG__N_MEMBER     /* s: in(segment) */
};

/* comparison and arithmetic operators (seg__node.op) */
enum { SEG__SOP_EQ = 1, SEG__SOP_NE, SEG__SOP_LT, SEG__SOP_LE, SEG__SOP_GT, SEG__SOP_GE,
       SEG__SOP_ADD, SEG__SOP_SUB, SEG__SOP_MUL, SEG__SOP_DIV };
const char *seg__sd_op_text(int op);

typedef struct seg__node seg__node;
struct seg__node {
    uint8_t kind;
    uint8_t op;         /* SEG__OP_* */
    uint8_t neg;        /* not in / not between / is not null */
    uint8_t unit;       /* DUR */
    int32_t scale;      /* DEC */
    uint32_t line, col;
    uint32_t height;    /* 1 + the largest height of the kids */
    uint32_t nkids;
    uint32_t npos;      /* CALL: positional arguments come first */
    seg__node **kids;
    int64_t i;
    seg__str s;         /* STR, NAME, CALL, MEMBER (owned by the AST's arena) */
    seg__str key;       /* a named argument's key, else empty */
    /* set by check.c */
    uint8_t type;       /* SEG__T_* */
    uint8_t conv;       /* 1: the value is converted to a number (int64 -> double) */
    uint8_t mode;       /* ARITH: SEG__AM_*; CALL: SEG__FN_* */
    uint8_t isconst;    /* a constant: its value is in ci / cd / s */
    uint32_t slot;      /* NAME/CALL: the value slot; MEMBER: the segment */
    int64_t ci;         /* constant value once typed (literals) */
    double cd;
};

typedef struct seg__rule {
    seg__str label;     /* set rules: the label; a plain segment: its name */
    uint32_t line, col; /* of the label / name */
    seg__node *cond;    /* NULL for `else` */
} seg__rule;

enum { SEG__ITEM_SEGMENT = 1, SEG__ITEM_SET = 2 };

typedef struct seg__item {
    int kind;
    seg__str name;      /* the segment's or the set's name */
    uint32_t line, col; /* of the keyword `segment` */
    seg__rule *rules;   /* SEGMENT: one rule; SET: the rules, the last one is else */
    uint32_t nrules;
} seg__item;

/* A bump allocator that owns an AST. */
typedef struct seg__pool {
    const seg__alloc *alloc;
    struct seg__pool_block *blocks;
    size_t used, cap;
} seg__pool;
void seg__pool_init(seg__pool *p, const seg__alloc *a);
void *seg__pool_alloc(seg__pool *p, size_t n);   /* zeroed; NULL on ENOMEM */
void seg__pool_free(seg__pool *p);

typedef struct seg__ast {
    seg__pool pool;
    seg__item *items;
    uint32_t nitems;
    /* journey blocks (lib/journey/parse.c), kept apart from the items:
     * their conditions are checked and compiled by lib/journey */
    struct seg__jrast *journeys;
    uint32_t njourneys, capjourneys;
    /* loyalty programs (lib/loyalty/), in text order: parsed here, compiled
     * by seg_loyalty_compile(), ignored by the segment checker */
    struct seg__lprog_ast *programs;
} seg__ast;

/* An error with its position, filled by the parser and the checker. */
typedef struct seg__sderr {
    int code;
    uint32_t line, col;
    char msg[600];
} seg__sderr;

/* Parse text into ast (its pool must be initialized).  On failure err is
 * filled and the caller frees the pool. */
int seg__sd_parse(seg__ast *ast, const char *src, size_t len, seg__sderr *err);

/* ---- items of other modules (journey blocks) ----
 * The parser hands an item that starts with a module's word ('journey') to
 * that module's parser, which reads tokens and expressions through these. */
typedef struct seg__parser seg__parser;
const seg__tok *seg__sdp_cur(seg__parser *p);
int seg__sdp_next(seg__parser *p);                       /* SEG_OK or the error */
int seg__sdp_peek(seg__parser *p, const seg__tok **out); /* the token after cur */
seg__node *seg__sdp_expr(seg__parser *p);                /* NULL on error */
int seg__sdp_error(seg__parser *p, uint32_t line, uint32_t col, int code, const char *fmt,
                   ...) SEG_PRINTF(5, 6);
int seg__sdp_expected(seg__parser *p, const char *what); /* "expected WHAT, found ..." */
seg__str seg__sdp_str(seg__parser *p, const char *s, size_t n); /* copy into the pool */
seg__ast *seg__sdp_ast(seg__parser *p);
/* lib/journey/parse.c: a 'journey NAME { ... }' block (cur is 'journey') */
int seg__jr_parse(seg__parser *p);
/* lib/journey/parse.c: canonical text of the journey blocks (appended by
 * seg__sd_print), NULL on ENOMEM; equality of two ASTs' journey blocks */
char *seg__jr_print(const seg__alloc *a, const seg__ast *ast, size_t *len_out);
bool seg__jr_ast_equal(const seg__ast *a, const seg__ast *b);
/* lib/journey/engine.c, for the value journey_state("NAME"): the journeys
 * open on db (NULL: none) and the index of journey `name` in them
 * (UINT32_MAX: no such journey); the name of customer ci's state (NULL:
 * not in the journey). */
const void *seg__jr_lookup(const seg_db *db, seg__str name, uint32_t *index_out);
const char *seg__jr_state_name(const void *engine, uint32_t index, uint32_t ci);
/* print.c: canonical text of one expression, NULL on ENOMEM */
char *seg__sd_print_expr(const seg__alloc *a, const seg__node *n);
/* An item `program NAME { ... }` (lib/loyalty/parse.c): called with *cur
 * its first token (the identifier `program`), returns with *cur the token
 * after it; the program is appended to ast->programs. */
int seg__loyalty_parse(seg__lexer *lx, seg__tok *cur, seg__ast *ast, seg__sderr *err);

/* Structural equality of ASTs (names, literals as written, shape). */
bool seg__sd_ast_equal(const seg__ast *a, const seg__ast *b);

/* Canonical text of an AST, NUL-terminated, allocated with a (free with
 * seg__free); NULL on ENOMEM. */
char *seg__sd_print(const seg__alloc *a, const seg__ast *ast, size_t *len_out);

/* how an arithmetic node computes (seg__node.mode) */
enum { SEG__AM_I = 1,  /* int64, checked */
       SEG__AM_D,      /* double */
       SEG__AM_D2I };  /* double, rounded back to int64 (money, durations) */

/* built-in functions other than values (seg__node.mode of a CALL) */
enum { SEG__FN_VALUE = 0, SEG__FN_DATE, SEG__FN_STARTS, SEG__FN_ENDS, SEG__FN_CONTAINS,
       SEG__FN_COALESCE };

/* ---- value providers (values.c): the named values of the language ---- */

/* The arguments a value takes. */
enum {
    SEG__SIG_NONE = 0,   /* orders */
    SEG__SIG_WINDOW,     /* spend(30d [, category: "x"] [, channel: "y"]) */
    SEG__SIG_COUNT,      /* count("email_open" [, 30d]) */
    SEG__SIG_ATTR,       /* attr("name"): the attribute's declared type */
    SEG__SIG_CONSENT,    /* consent("email") */
    SEG__SIG_HORIZON,    /* expected_purchases(90d): a horizon (slot.dur) */
    SEG__SIG_NAME        /* journey_state("core_reactivation"): one name, fixed type */
};

/* provider flags */
#define SEG__PV_TIME   0x1u  /* depends on now */
#define SEG__PV_ATTRS  0x2u  /* reads attributes or consent */
#define SEG__PV_EVENTS 0x4u  /* a windowed measure over the event chain */

typedef struct seg__val {
    union { int64_t i; double d; const char *s; } u;
    uint32_t n;         /* STR: length */
    uint8_t null;
} seg__val;

typedef struct seg__run seg__run;
typedef struct seg__cctx seg__cctx;
typedef struct seg__slot seg__slot;
struct seg__block;
struct seg__col;

typedef struct seg__provider {
    const char *name;
    uint8_t type;       /* result type (SIG_ATTR: decided by the db) */
    uint8_t sig;        /* SEG__SIG_* */
    uint16_t flags;     /* SEG__PV_* */
    uint8_t feature;    /* SIG_WINDOW/SIG_COUNT: SEG__F_* */
    /* Compute the value for the customer in cc. */
    void (*get)(const seg__run *run, seg__cctx *cc, const seg__slot *sl, seg__val *out);
    /* Optional, once per evaluation run before any customer: bind to the
     * db's state (e.g. a model's thresholds).  SEG_OK or an error with the
     * db's message set. */
    int (*bind)(seg__run *run, seg__slot *sl);
    const char *doc;    /* one line for messages and the reference */
    /* Optional: the value's column for every lane of a block at once (the
     * block machine), the same values as `get` lane by lane.  Sets v (and
     * n for strings) of every lane and the null mask of the valid ones;
     * lanes outside blk->valid may hold anything. */
    void (*col)(const seg__run *run, const struct seg__block *blk, const seg__slot *sl,
                struct seg__col *out);
} seg__provider;

/* The built-in providers and how many there are. */
extern const seg__provider seg__sd_builtins[];
extern const size_t seg__sd_nbuiltins;

/* Windowed measures computed from the events (seg__feature.kind). */
enum { SEG__F_SPEND = 1, SEG__F_NET_SPEND, SEG__F_ORDERS, SEG__F_COUNT };

typedef struct seg__feature {
    uint8_t kind;
    int64_t window;     /* seconds; INT64_MAX: all time */
    seg__str name;      /* COUNT: the engagement name */
    seg__str category;  /* filters; empty: any */
    seg__str channel;
} seg__feature;

/* One distinct value a definition reads (a provider and its arguments). */
struct seg__slot {
    const seg__provider *prov;
    uint8_t type;
    uint32_t feat;      /* windowed: index into the features, else UINT32_MAX */
    seg__str arg;       /* ATTR: attribute name; CONSENT: channel */
    int64_t dur;        /* HORIZON: seconds */
    /* bound per run */
    uint32_t key;       /* ATTR: attribute index; CONSENT: channel index | 0x80000000; NONE: unknown */
    void *bound;        /* for a provider's bind() */
};

/* ---- bytecode (compile.c) ---- */
enum {
    SEG__BC_RET = 0,     /* result: top of stack as a bool (null: false) */
    SEG__BC_LOAD,        /* slot: push its value */
    SEG__BC_CONST,       /* k: push consts[k] */
    SEG__BC_CMPI,        /* op: pop b, a; push a op b (int64 compare) */
    SEG__BC_CMPD,        /* op: doubles */
    SEG__BC_CMPS,        /* op: strings, byte order */
    SEG__BC_LCMPI,       /* slot, op, k: push value(slot) op consts[k] */
    SEG__BC_LCMPD,       /* slot, op, k */
    SEG__BC_JFK,         /* target: top false or null: top = false, jump; else pop */
    SEG__BC_JTK,         /* target: top true: jump; else pop */
    SEG__BC_NOT,         /* null counts as false */
    SEG__BC_ISNULL,      /* neg */
    SEG__BC_ADDI, SEG__BC_SUBI, SEG__BC_MULI,   /* checked: overflow gives null */
    SEG__BC_ADDD, SEG__BC_SUBD, SEG__BC_MULD, SEG__BC_DIVD, /* non-finite gives null */
    SEG__BC_NEGI, SEG__BC_NEGD,
    SEG__BC_I2D,         /* depth: convert the value `depth` below the top to double */
    SEG__BC_D2I,         /* round half away from zero; out of range: null */
    SEG__BC_INI,         /* k, n, neg: pop x; push x in consts[k..k+n) */
    SEG__BC_IND, SEG__BC_INS,
    SEG__BC_BETWEENI,    /* neg: pop hi, lo, x */
    SEG__BC_BETWEEND, SEG__BC_BETWEENS,
    SEG__BC_PREFIX, SEG__BC_SUFFIX, SEG__BC_CONTAINS, /* pop b, a */
    SEG__BC_COALESCE,    /* pop b, a; push a unless null, else b */
    SEG__BC_MEMBER,      /* segment: push the customer's membership */
    SEG__BC_NOP,
    SEG__BC_ALLI,        /* n, then n (slot, op, k): push whether every
                          * value(slot) op consts[k] holds (all evaluated:
                          * no data-dependent jumps) */
    SEG__BC_ANYI,        /* n, then n (slot, op, k): whether any holds */
    /* the customer program (every item in evaluation order, one run) */
    SEG__BC_STORE,       /* seg: pop a bool into member[seg] (null: 0) */
    SEG__BC_CLR,         /* seg, n: member[seg .. seg+n) = 0 */
    SEG__BC_SET1,        /* seg: member[seg] = 1 */
    SEG__BC_JPOPF,       /* target: pop; jump when false or null */
    SEG__BC_JMP,         /* target */
    SEG__BC_HALT,        /* end of the customer program */
    /* sets in the block program (vmblock.c): lanes still without a label */
    SEG__BC_SETB_BEGIN,  /* every valid lane is without a label */
    SEG__BC_SETB_RULE,   /* seg: pop; the lanes where it holds and still without a
                          * label get this one */
    SEG__BC_SETB_ELSE    /* seg: the lanes left get this one */
};

typedef struct seg__prog {
    uint32_t *code;      /* into the definition's code array */
    uint32_t n;
} seg__prog;

/* A segment: a plain one, or a label of a set. */
typedef struct seg__segment {
    char *name;          /* NUL-terminated, owned */
    uint32_t item;       /* index of its item */
    uint32_t rule;       /* index of its rule in the item */
} seg__segment;

/* An item as compiled: evaluated in topological order of in() references. */
typedef struct seg__citem {
    int kind;
    char *name;          /* the set's name (SET), owned; the segment's name (SEGMENT) */
    uint32_t first_seg;  /* its segments are first_seg .. first_seg + nrules - 1 */
    uint32_t nrules;
    seg__prog *progs;    /* [nrules]; the else rule has none (n == 0) */
} seg__citem;

struct seg_segdef {
    seg_db *db;
    seg__ast ast;                /* kept for printing */
    /* names */
    seg__segment *segs;
    uint32_t nsegs;
    seg__citem *items;
    uint32_t nitems;
    uint32_t *order;             /* items in evaluation order */
    seg__prog cprog;             /* every item in that order, storing into member[] */
    seg__prog bprog;             /* the same for the block machine (vmblock.c) */
    /* code and data */
    uint32_t *code;
    size_t ncode;
    seg__val *consts;
    uint32_t nconsts;
    char *strpool;               /* string constants */
    seg__slot *slots;
    uint32_t nslots;
    seg__feature *feats;
    uint32_t nfeats;
    uint32_t max_stack;
    uint32_t pv_flags;           /* union of the providers' SEG__PV_* */
    int exponent;                /* currency exponent at compile time */
    /* extra providers (tests) */
    const seg__provider *extra;
    size_t nextra;
    /* RFM thresholds calibrated for the last run that read RFM values, and
     * the state they were calibrated on (reused while it is the same) */
    struct seg_rfm_thresholds *rfm;
    int64_t rfm_now;
    uint64_t rfm_nevents, rfm_live, rfm_ncusts;
    /* the CLV model of p_alive, expected_purchases() and clv() (a copy,
     * NULL: none), clv()'s discounting, and the last customer summarized */
    struct seg_clv_model *clv;
    seg_clv_value_options clv_opts;
    seg__clv_scratch clv_scratch;
    uint64_t clv_gen;            /* bumped by every run that binds a CLV value */
    uint64_t clv_sum_gen;        /* clv_sum is of customer clv_sum_ci in run clv_sum_gen */
    uint32_t clv_sum_ci;
    int clv_sum_rc;              /* SEG_OK, or SEG_ENOTFOUND: no purchase up to now */
    seg_clv_summary clv_sum;
    bool stale;                  /* the next refresh evaluates everyone (the model changed) */
    /* the scan's table of windowed measures, kept between evaluations (its
     * pages stay mapped: a fresh one costs the kernel's zeroing each time) */
    void *feat_cache;
    size_t feat_cache_bytes;
    bool feat_cache_busy;        /* a run is using it */
    /* reusable buffers of single-customer evaluation */
    uint32_t *scratch;           /* 4 * scratch_cap words */
    size_t scratch_cap;
    /* membership remembered by the last refresh */
    uint64_t *state;             /* state_words per customer */
    uint32_t state_words;
    uint32_t state_ncusts;       /* customers covered by state */
    bool has_state;
    uint32_t mark_events;        /* store.nevents at the last refresh */
    uint64_t mark_attr_gen;      /* db->attr_gen at the last refresh */
    int64_t mark_now;
    int64_t mark_max_ts;         /* latest event time of any customer at the last refresh */
    /* the last report's arrays */
    uint64_t *rep_size;
    int64_t *rep_revenue;
    uint64_t *rep_overlap;
};

/* Compile with extra providers (looked up before the built-ins); tests use
 * this for stand-in RFM values.  The table must outlive the definition. */
int seg__segdef_compile_ex(seg_segdef **out, seg_db *db, const char *src, size_t len,
                           const seg__provider *extra, size_t nextra);

/* Compile with the conditions of the journey blocks added as hidden
 * segments (lib/journey, seg__jr_add_conditions): the journey engine's
 * evaluator.  On failure *out is NULL and err holds the position and the
 * message (the db's message is not set). */
int seg__segdef_compile_conds(seg_segdef **out, seg_db *db, const char *src, size_t len,
                              const seg__provider *extra, size_t nextra, seg__sderr *err);
/* lib/journey/parse.c: append the hidden segments; check every journey
 * block's conditions once the definition is compiled (names, types). */
int seg__jr_add_conditions(seg__ast *ast, seg__sderr *err);
int seg__jr_validate(seg_segdef *def, const char *src, size_t len, seg__sderr *err);

/* check.c + compile.c: names, types and code for a parsed AST. */
int seg__sd_check(seg_segdef *def, seg__sderr *err);
int seg__sd_codegen(seg_segdef *def, seg__sderr *err);
const seg__provider *seg__sd_find_provider(const seg_segdef *def, seg__str name, int sig_has_args);

/* ---- evaluation (vm.c, eval.c) ---- */

/* A customer's aggregates as of now. */
typedef struct seg__agg {
    uint64_t orders, days, events, engagements;
    int64_t first_purchase, last_purchase, first_seen, last_seen;
    int64_t revenue, refunds, units;
} seg__agg;

/* The customer being evaluated. */
struct seg__cctx {
    uint32_t ci;
    const seg__cust *cust;      /* the store's record */
    seg__agg agg;               /* aggregates as of now */
    bool scan;                  /* features come from run->feat_vals */
};

/* One evaluation run: the bound state of a definition for one `now`. */
struct seg__run {
    seg_segdef *def;
    seg_db *db;
    const seg__store *store;
    int64_t now;
    /* features, bound: dictionary indexes (SEG__NONE: matches nothing) */
    uint32_t *feat_cat, *feat_chan, *feat_name;  /* [nfeats] */
    int64_t *feat_from;                          /* [nfeats]: window start */
    /* scan mode: per customer feature values, feat_vals[ci * feat_stride + f];
     * a row holds the measures, then the scan's order bookkeeping, padded to
     * whole cache lines (feat_raw is the allocation) */
    int64_t *feat_vals;
    void *feat_raw;
    bool feat_cached;           /* feat_raw is the definition's feat_cache */
    size_t feat_stride;
    uint8_t *recount;           /* per customer: 1 when order features need a walk */
    uint32_t ncusts;
    /* scratch for walks (as-of aggregates, distinct orders): */
    uint32_t *scr_idx;          /* [scr_cap] */
    uint64_t *scr_key;          /* [scr_cap] */
    uint64_t *scr_key2;         /* [scr_cap] */
    size_t scr_cap;
    /* the VM's stack and the per-customer value cache */
    seg__val *stack;
    seg__val *vals;             /* [nslots] */
    uint32_t *stamp;            /* [nslots] */
    int64_t *featv;             /* [nfeats]: walk mode */
    uint32_t epoch;
    uint8_t *member;            /* [nsegs] */
    uint32_t featv_ci;          /* the customer whose measures featv holds (walks) */
    struct seg__block *blk;     /* the block machine's state (scan mode) */
    seg__cctx cc;               /* the customer last evaluated (its values stay
                                 * readable through seg__vm_slot until the next) */
    char idbuf[SEG_ID_MAX + 1];
};

/* Prepare a run; scan = compute windowed measures for every customer with
 * one pass over the events.  Frees with seg__run_free. */
int seg__run_init(seg__run *run, seg_segdef *def, int64_t now, bool scan);
void seg__run_free(seg__run *run);
/* Evaluate customer ci (live, existing as of now): fills run->member.
 * Returns false when the customer is not a customer yet at now. */
bool seg__run_customer(seg__run *run, uint32_t ci);
/* ---- the block machine (vmblock.c): up to 64 customers at once ---- */
#define SEG__LANES 64
typedef union seg__num { int64_t i; double d; const char *s; } seg__num;
/* a value for every lane */
typedef struct seg__col {
    uint64_t null;              /* lanes where the value is null */
    uint64_t mask;              /* is_mask: the lanes where the bool is true */
    uint32_t is_mask;           /* a bool held as a mask only (v, n unset; never null) */
    seg__num v[SEG__LANES];
    uint32_t n[SEG__LANES];     /* string lengths */
} seg__col;
typedef struct seg__block {
    uint32_t ci[SEG__LANES];    /* the lanes' customers */
    seg__cctx cc[SEG__LANES];
    uint64_t valid;             /* lanes holding a customer (as of now) */
    uint32_t nlanes;
    seg__col *stack;            /* [max_stack] */
    seg__col **sp;              /* [max_stack]: what each stack entry points to */
    seg__col *slots;            /* [nslots] */
    uint32_t *stamp;            /* [nslots]: the block a slot's column belongs to */
    uint32_t epoch;
    uint64_t *member;           /* [nsegs]: lanes in each segment */
    uint8_t *bytes;             /* [LANES * nsegs]: the same as bytes, lane by lane */
} seg__block;
int seg__block_init(seg__run *run);
void seg__block_free(seg__run *run);
/* Evaluate the block's lanes (blk->ci, blk->nlanes, blk->valid set; the
 * lanes' contexts prepared): fills blk->member. */
void seg__vm_block(seg__run *run);

/* Evaluate one program for the customer in cc (vm.c). */
bool seg__vm_exec(seg__run *run, seg__cctx *cc, const seg__prog *p);
/* A slot's value for the customer (lazily computed, cached per customer). */
const seg__val *seg__vm_slot(seg__run *run, seg__cctx *cc, uint32_t slot);
/* Windowed measures of the customer by walking its events (walk mode). */
void seg__run_walk_features(seg__run *run, seg__cctx *cc);
/* The customer's id into run->idbuf. */
const char *seg__run_cust_id(seg__run *run, uint32_t ci);

/* Ask the memory for the cache line holding p.  An asm statement on x86:
 * GCC 12 drops __builtin_prefetch as dead code in some inlined contexts
 * (the loops of eval.c among them; check with objdump -d). */
static inline void seg__sd_prefetch(const void *p)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#elif defined(__GNUC__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

/* ---- the journey engine's use of runs (eval.c) ---- */
/* Move a walk-mode run to another time (evaluating one customer at the
 * times of its events and timers): windows restart, cached measures drop,
 * scratch grows to customer ci's events.  SEG_OK or SEG_ENOMEM. */
int seg__run_retime(seg__run *run, int64_t now, uint32_t ci);
/* Evaluate every customer with only[ci] != 0 (NULL: all) at now with the
 * block machine; fn gets each customer's membership (member[nsegs]); a
 * non-zero return stops.  SEG_OK or an error with the db's message set. */
typedef int (*seg__sd_each_fn)(void *ctx, uint32_t ci, const uint8_t *member);
int seg__sd_eval_each(seg_segdef *def, int64_t now, const uint8_t *only, seg__sd_each_fn fn,
                      void *ctx);

/* ---- static analysis (analyze.c) ---- */

/* For a set whose conditions use only the values named r, f and m (each an
 * integer score 1..nscores) compared with integer constants (and, or, not,
 * comparisons, in [...], between, true, false): the label each of the
 * nscores^3 cells gets, cells[((r-1) * nscores + (f-1)) * nscores + (m-1)]
 * = the rule index within the set (the else rule is nrules - 1).
 * SEG_OK, SEG_EINVAL (with the db's message: not such a set) or SEG_ENOMEM. */
int seg__sd_score_cells(const seg_segdef *def, uint32_t item, int nscores, uint32_t *cells);

#endif /* SEGMENT_SEGDEF_PRIVATE_H */
