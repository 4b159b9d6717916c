/*
 * Customer journeys: internals shared by lib/journey/ and the white-box
 * tests.
 *
 * parse.c reads `journey NAME { ... }` blocks (called by lib/segdef's
 * parser), checks their structure, prints them canonically and adds their
 * conditions to a definition as hidden segments; engine.c runs them on a
 * db (per-customer state machines, timers, steps and their actions);
 * persist.c writes and reads the states as module records.
 */
#ifndef SEGMENT_JOURNEY_PRIVATE_H
#define SEGMENT_JOURNEY_PRIVATE_H

#include "segdef/segdef-private.h"
#include "segment/journey.h"

/* ---- limits ---- */
#define SEG__JR_STATES_MAX   1000u   /* states of one journey */
#define SEG__JR_JOURNEYS_MAX 1000u   /* journeys of one definition */
#define SEG__JR_VARIANTS_MAX 16u     /* variants of one journey (the holdout apart) */
#define SEG__JR_CHAIN_MAX    64u     /* steps of one customer at one instant */
#define SEG__JR_DUR_MAX      (INT64_C(100) * 366 * 86400) /* longest duration: 100 years */

/* ---- AST (parse.c), allocated in the definition's pool ---- */

/* an event a transition, an exit rule or a goal waits for */
typedef struct seg__jr_event {
    uint32_t kind;           /* SEG_EVENT_PURCHASE, _REFUND, _ENGAGEMENT */
    seg__str name;           /* ENGAGEMENT: its name */
    seg__str category, channel, sku;  /* filters; empty: any */
    seg__node *min_amount;   /* filter: a literal (money), or NULL */
    uint32_t line, col;
} seg__jr_event;

typedef struct seg__jr_param {
    seg__str key;
    seg__node *value;        /* a literal */
} seg__jr_param;

typedef struct seg__jr_action {
    seg__str name;           /* "email:discount_5" (channel before ':') */
    seg__jr_param *params;   /* sorted by key */
    uint32_t nparams;
    seg__str *variants;      /* 'for a, b': only for these; none: for all */
    uint32_t nvariants;
    uint32_t line, col;
} seg__jr_action;

enum { SEG__JT_ON = 1, SEG__JT_AFTER, SEG__JT_WHEN, SEG__JT_NOW };
enum { SEG__JS_ENTRY = 0, SEG__JS_PURCHASE = 1 };  /* after ... since */

typedef struct seg__jr_trans {
    uint8_t kind;            /* SEG__JT_* */
    uint8_t since;           /* AFTER: SEG__JS_* */
    uint8_t unit;            /* AFTER: the duration's unit as written */
    uint8_t to_exit;         /* '-> exit' */
    int64_t count;           /* AFTER: the duration as written (count, unit) */
    int64_t dur;             /* AFTER: seconds */
    seg__jr_event ev;        /* ON */
    seg__node *cond;         /* WHEN */
    uint32_t cond_item;      /* WHEN: the hidden item (seg__jr_add_conditions) */
    seg__str *variants;      /* 'for a, b' */
    uint32_t nvariants;
    seg__str target;         /* the next state (empty with to_exit) */
    uint32_t target_line, target_col;
    seg__jr_action *acts;
    uint32_t nacts;
    uint32_t line, col;
} seg__jr_trans;

typedef struct seg__jr_state {
    seg__str name;
    uint32_t line, col;
    seg__jr_action *acts;    /* on entering */
    uint32_t nacts;
    seg__jr_trans *trans;
    uint32_t ntrans;
} seg__jr_state;

enum { SEG__JX_WHEN = 1, SEG__JX_ON };
typedef struct seg__jr_exit {
    uint8_t kind;            /* SEG__JX_* */
    seg__node *cond;
    uint32_t cond_item;
    seg__jr_event ev;
    uint32_t line, col;
} seg__jr_exit;

enum { SEG__JR_NEVER = 0, SEG__JR_ALWAYS, SEG__JR_AFTER };

typedef struct seg__jrast {
    seg__str name;
    uint32_t line, col;
    seg__node *enter;
    uint32_t enter_item;
    uint32_t enter_line, enter_col;
    seg__jr_exit *exits;
    uint32_t nexits;
    uint8_t reentry;         /* SEG__JR_* */
    uint8_t reentry_unit;
    bool has_reentry;
    int64_t reentry_count, reentry_dur;
    seg__str *variants;      /* declared variants, in order */
    uint32_t *shares;        /* percent */
    uint32_t nvariants;
    uint32_t holdout;        /* percent (0: no holdout) */
    bool has_holdout;
    bool has_goal;
    seg__jr_event goal;
    seg__jr_state *states;   /* the first one is where customers enter */
    uint32_t nstates;
} seg__jrast;

/* parse.c: a money literal in minor units of `exponent` decimals:
 * SEG_OK, SEG_EINVAL (too many decimals), SEG_ERANGE */
int seg__jr_money(const seg__node *n, int exponent, int64_t *out);

/* ---- the engine (engine.c) ---- */

/* One customer in one journey (or after it): 32 bytes. */
typedef struct seg__jrec {
    int64_t since;           /* when the current state was entered (out: the exit) */
    uint32_t ci;             /* customer index */
    uint32_t run;            /* the customer's run of the journey, from 1 */
    uint32_t steps;          /* steps taken in this run */
    uint32_t next;           /* the customer's next record (SEG__NONE: last) */
    uint16_t journey;
    uint16_t state;          /* SEG__JR_OUT: not in the journey */
    uint8_t variant;         /* index into the journey's variants; holdout = nvariants */
    uint8_t flags;           /* SEG__JRF_* */
    uint8_t reason;          /* out: SEG_JOURNEY_EXIT_* */
    uint8_t txn;             /* the engine's epoch when last saved in an undo log */
} seg__jrec;

#define SEG__JR_OUT 0xffffu
#define SEG__JRF_CONVERTED 0x1u  /* this run reached the goal */

#define SEG__JR_VALL 0xffffffffu  /* a variant mask: every variant */

/* An action, ready to emit (built at open from the AST). */
typedef struct seg__jract {
    char *name;              /* NUL-terminated */
    char *channel;           /* the part before ':', or NULL */
    char *params;            /* "key=value;key=value" (escaped), "" when none */
    uint32_t vmask;          /* the variants it is for (bit = variant index) */
} seg__jract;

/* A transition, compiled: its target and its actions in the journey's
 * action table. */
typedef struct seg__jrtc {
    uint32_t vmask;          /* the variants it is for */
    uint16_t target;         /* the next state, SEG__JR_OUT for exit */
    uint16_t pad;
    uint32_t a0, na;         /* actions [a0, a0 + na) */
} seg__jrtc;

/* An 'after' transition, compiled. */
typedef struct seg__jraf {
    int64_t dur;
    uint32_t vmask;
    uint16_t k;              /* its index among the state's transitions */
    uint8_t since;           /* SEG__JS_* */
    uint8_t pad;
} seg__jraf;

/* A state, compiled. */
typedef struct seg__jrsc {
    uint32_t t0;             /* its transitions: tc[t0 ...] */
    uint32_t af0, naf;       /* its 'after' transitions: af[af0 ...] */
    uint32_t a0, na;         /* actions on entering it */
    uint16_t name_len;
    bool has_conds;          /* a 'when' transition, or the journey has an 'exit when' */
    bool has_now;            /* a '->' transition (at once) */
} seg__jrsc;

/* A timer: the record's earliest 'after' transition is due. */
typedef struct seg__jtimer {
    int64_t due;
    uint32_t rec;
    uint32_t steps;          /* the record's steps when it was set */
} seg__jtimer;

/* The names of the engine's journeys, compiled for the run. */
typedef struct seg__jrj {
    const seg__jrast *ast;
    char *name;              /* NUL-terminated */
    char **state_names;      /* [nstates] */
    char **variant_names;    /* [nvariants + 1]: the last one is "holdout" */
    uint32_t enter_seg;      /* condition segments in the conditions' definition */
    uint32_t *exit_seg;      /* [nexits] (UINT32_MAX: not a condition) */
    uint32_t **when_seg;     /* [nstates][ntrans] */
    bool tdep_enter;         /* the entry condition depends on time */
    bool *tdep_state;        /* [nstates]: a 'when' or an exit condition depends on time */
    bool has_when_exit;      /* an 'exit when' rule */
    uint64_t seed;           /* hash of the name: the variants' seed */
    /* compiled states, transitions and actions */
    seg__jrsc *sc;           /* [nstates] */
    seg__jrtc *tc;           /* every state's transitions, in order */
    seg__jract *acts;        /* every action, in order */
    seg__jraf *af;           /* every 'after' transition, in order */
    uint32_t ntc, nacts, naf;
    /* conversion counters: [nvariants + 1] and [nstates] */
    uint64_t *v_entered, *v_converted;
    uint64_t *s_entered, *s_converted;
    bool stats_dirty;
} seg__jrj;

#endif /* SEGMENT_JOURNEY_PRIVATE_H */
