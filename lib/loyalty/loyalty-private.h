/*
 * Loyalty programs: internals shared by lib/loyalty/, the segdef values
 * `tier` and `points`, and the white-box tests.
 *
 * parse.c   the `program NAME { ... }` item of the definition language
 *           (called by the segdef parser) and its checks -> seg_loyalty
 * engine.c  points, expiry, the tier simulation and the ledger replay over
 *           one customer's entries; the stateless seg_loyalty_score()
 * ledger.c  the ledger on a db: follows ingestion (module hooks), redeems,
 *           persists and restores records, answers status and walks
 */
#ifndef SEGMENT_LOYALTY_PRIVATE_H
#define SEGMENT_LOYALTY_PRIVATE_H

#include "segdef/segdef-private.h"
#include "segment/loyalty.h"

#define SEG__L_SCALE 10000        /* multipliers and point rates: 4 decimals */
#define SEG__L_MULT_MAX (1000 * SEG__L_SCALE)
#define SEG__L_BONUS_MAX 64
#define SEG__L_TIER_MAX 64
#define SEG__L_DUR_MAX (SEG_TIME_MAX - SEG_TIME_MIN)
#define SEG__L_NO_ORDER UINT32_MAX

enum { SEG__LQ_SPEND = 1, SEG__LQ_POINTS, SEG__LQ_ORDERS };
enum { SEG__LR_DOWN = 0, SEG__LR_NEAREST, SEG__LR_UP };
enum { SEG__LX_NEVER = 0, SEG__LX_AFTER, SEG__LX_MONTH, SEG__LX_QUARTER, SEG__LX_YEAR };

/* ---- the parsed program (in the AST's pool) ---- */
typedef struct seg__lnum {
    bool set;
    bool neg;
    int kind;                /* SEG__TK_INT or SEG__TK_DEC */
    int64_t i;
    int32_t scale;
    uint32_t line, col;
} seg__lnum;

typedef struct seg__lbonus_ast {
    uint32_t line, col;
    seg__str *cats, *chans;  /* NULL: any */
    uint32_t ncats, nchans;
    seg__lnum mult, flat;
    struct seg__lbonus_ast *next;
} seg__lbonus_ast;

typedef struct seg__ltier_ast {
    uint32_t line, col;
    seg__str name;
    seg__lnum from, mult;
    struct seg__ltier_ast *next;
} seg__ltier_ast;

typedef struct seg__lprog_ast {
    seg__str name;
    uint32_t line, col;
    seg__lnum earn_points, earn_per;
    uint32_t earn_line, earn_col;
    int rounding;
    seg__lnum min_spend;
    int expire;              /* SEG__LX_* */
    int64_t expire_after;    /* AFTER: seconds */
    int64_t expire_plus;     /* periods: extra whole periods */
    int qualify;             /* SEG__LQ_*, 0: not given (spend over 365d) */
    int64_t window;
    int64_t grace;
    bool negative;
    seg__lbonus_ast *bonus, **bonus_tail;
    uint32_t nbonus;
    seg__ltier_ast *tiers, **tier_tail;
    uint32_t ntiers;
    struct seg__lprog_ast *next;
} seg__lprog_ast;

/* ---- the compiled program ---- */
typedef struct seg__lrate {
    int64_t n, d;            /* points = amount * n / d, rounded */
    uint64_t m;              /* UINT64_MAX / d: division by a multiplication */
    uint64_t bias;           /* rounding: (amount * n + bias) / d rounded down */
    int64_t flat;            /* the bonus rule's points (0: none) */
} seg__lrate;

typedef struct seg__lname {
    char *s;
    size_t n;
    uint64_t mask;           /* bonus rules naming it */
} seg__lname;

/* The names of the bonus filters (up to 64) found by their first 4 bytes:
 * a hash of those bytes, chosen at compile time so that the names' first
 * bytes never collide, gives the names that start so (mult 0: no table,
 * lookups scan the names). */
typedef struct seg__lntab {
    uint64_t mult;
    unsigned shift;          /* 64 - log2 of the size */
    uint32_t *key;           /* [size]: the first 4 bytes (0 past the end); 0: free */
    uint64_t *names;         /* [size]: bit k: name k starts with key */
} seg__lntab;

typedef struct seg__ltier {
    char *name;
    int64_t from;            /* qualifying measure needed */
    int64_t mult;            /* SEG__L_SCALE = 1x */
} seg__ltier;

typedef struct seg__lbonus {
    int64_t mult;            /* SEG__L_SCALE = no multiplier */
    int64_t flat;            /* points added to the purchase */
} seg__lbonus;

struct seg_loyalty {
    seg__alloc alloc;
    unsigned refs;           /* the caller's and each ledger's */
    char *name;
    int exponent;
    int rounding;
    int64_t min_spend;
    int expire;
    int64_t expire_after;
    int64_t expire_plus;
    int qualify;
    int64_t window;
    int64_t grace;
    bool negative;
    uint32_t ntiers;
    seg__ltier *tiers;
    uint32_t nbonus;
    seg__lbonus *bonus;
    seg__lname *cats, *chans;
    uint32_t ncats, nchans;
    uint64_t anycat, anychan;   /* rules without a category / channel filter */
    seg__lntab cattab, chantab; /* cats and chans by their first bytes */
    seg__lrate *rates;          /* [ntiers * (nbonus + 1)]: bonus 0 = none */
    seg__lrate base;            /* the earn rate alone (reversals without an order) */
};

/* Build a program from its AST: checks, rates.  NULL with err set. */
int seg__loyalty_build(seg_loyalty **out, const seg__lprog_ast *pa, const seg__alloc *a,
                       int exponent, seg__sderr *err);

/* ---- the engine (engine.c) ---- */
enum { SEG__LE_PURCHASE = 1, SEG__LE_REFUND = 2, SEG__LE_REDEEM = 3 };

/* One entry as the engine replays it (64 bytes).  In: ts, kind, amount,
 * points (REDEEM: asked; PURCHASE: fixed when `fixed`), order, bonus.
 * Work (set when the entry is replayed): the rest, and the points of a
 * purchase not fixed or of a refund. */
typedef struct seg__lent {
    int64_t ts;
    int64_t amount;
    int64_t points;          /* PURCHASE: earned (computed unless fixed); REFUND: points it reverses */
    int64_t rem;             /* PURCHASE: points left in the lot; else 0 */
    int64_t aux;             /* the change of the qualifying measure */
    int64_t exp;             /* PURCHASE: when the lot expires */
    uint32_t order;          /* order key, SEG__L_NO_ORDER: none */
    uint32_t olink;          /* the entry before it in its order's hash chain, + 1 (0: none) */
    uint8_t kind;
    uint8_t bonus;           /* PURCHASE: rule + 1, 0: none */
    uint8_t fixed;
    uint8_t pad;
} seg__lent;

/* the lot draws of one replayed entry (for recording a redemption) */
typedef void (*seg__ldraw_cb)(void *ctx, uint32_t entry, uint32_t lot, int64_t points);

typedef struct seg__lres {
    int tier;
    int64_t balance, earned, redeemed, expired, reversed;
    int64_t measure;
    int64_t downgrade_at;    /* -1: not in grace */
    int64_t debt;
    uint32_t done;           /* entries replayed (ts < until) */
} seg__lres;

/* Replay entries e[0..n) (time order) up to `until` (entries with ts <
 * until), in one forward pass.  Computes the points of purchases not
 * fixed.  cb (when not NULL) is told the lot draws of entry `watch`. */
void seg__loyalty_replay(const seg_loyalty *p, seg__lent *e, size_t n, int64_t until,
                         seg__lres *out, seg__ldraw_cb cb, void *ctx, uint32_t watch);

/* Points of a purchase of `amount` at tier t with bonus b (0: none). */
int64_t seg__loyalty_points(const seg_loyalty *p, int64_t amount, int tier, unsigned bonus);
/* Bonus rule (+1, 0: none) of a purchase in category/channel. */
unsigned seg__loyalty_bonus(const seg_loyalty *p, seg__str cat, seg__str chan);
/* When points earned at ts expire (INT64_MAX: never). */
int64_t seg__loyalty_expiry(const seg_loyalty *p, int64_t ts);
/* Fill a public status from a replay (as_of for the next-tier figures). */
void seg__loyalty_fill(const seg_loyalty *p, const seg__lres *r, seg_loyalty_status *st);

void seg__loyalty_unref(seg_loyalty *p);
/* Build cattab and chantab once cats and chans are complete (SEG_OK or
 * SEG_ENOMEM); free them. */
int seg__loyalty_index_names(seg_loyalty *p);
void seg__loyalty_free_index(seg_loyalty *p);

/* ---- the ledger (ledger.c) and the segdef values ---- */
typedef struct seg_loyalty_ledger seg__ledger;
/* The ledger attached to db for the values `tier` and `points`: SEG_OK
 * with *out set, or an error with the db's message set (none, several). */
int seg__loyalty_for_values(seg_db *db, seg__ledger **out);
/* Customer ci's replay as of now (cached per customer and now). */
const seg__lres *seg__loyalty_value(seg__ledger *l, uint32_t ci, int64_t now);
const char *seg__loyalty_tier_str(const seg__ledger *l, int tier);

#endif /* SEGMENT_LOYALTY_PRIVATE_H */
