/*
 * Static analysis of segment sets over score grids.
 *
 * A set whose rules compare only the scores r, f and m (integers
 * 1..nscores, such as RFM scores) with integer constants assigns each of
 * the nscores^3 cells of the grid exactly one label; which one is found by
 * running the compiled set on every cell, with the three values fed
 * straight into the machine's value cache.  From the cell table a test (or
 * a tool) sees which cells fall to the else rule and which labels no cell
 * reaches.
 */
#include "segdef/segdef-private.h"

#include <stdio.h>

static int which(const seg__node *n)
{
    if (n->kind != SEG__N_NAME || n->type != SEG__T_INT)
        return -1;
    if (seg__str_eq(n->s, "r", 1)) return 0;
    if (seg__str_eq(n->s, "f", 1)) return 1;
    if (seg__str_eq(n->s, "m", 1)) return 2;
    return -1;
}

static bool int_const(const seg__node *n)
{
    return n->isconst && n->type == SEG__T_INT;
}

/* Does the condition use only r, f, m compared with integer constants?
 * Records the slot of each score seen in slots[3]. */
static bool score_only(const seg__node *n, uint32_t slots[3], const seg__node **bad)
{
    int w;
    switch (n->kind) {
    case SEG__N_AND:
    case SEG__N_OR:
    case SEG__N_NOT:
        for (uint32_t k = 0; k < n->nkids; k++)
            if (!score_only(n->kids[k], slots, bad))
                return false;
        return true;
    case SEG__N_BOOL:
        return true;
    case SEG__N_CMP: {
        const seg__node *x = n->kids[0], *c = n->kids[1];
        if (which(x) < 0) {
            x = n->kids[1];
            c = n->kids[0];
        }
        if ((w = which(x)) < 0 || !int_const(c))
            break;
        slots[w] = x->slot;
        return true;
    }
    case SEG__N_IN:
    case SEG__N_BETWEEN:
        if ((w = which(n->kids[0])) < 0)
            break;
        for (uint32_t k = 1; k < n->nkids; k++)
            if (!int_const(n->kids[k])) {
                *bad = n->kids[k];
                return false;
            }
        slots[w] = n->kids[0]->slot;
        return true;
    default:
        break;
    }
    *bad = n;
    return false;
}

int seg__sd_score_cells(const seg_segdef *def, uint32_t item, int nscores, uint32_t *cells)
{
    seg_db *db = def->db;
    if (item >= def->nitems || def->items[item].kind != SEG__ITEM_SET)
        return seg__error(db, SEG_EINVAL, "item %u is not a segment set", (unsigned)item);
    if (nscores < 1 || nscores > 100)
        return seg__error(db, SEG_EINVAL, "nscores %d: must be 1..100", nscores);
    const seg__item *it = &def->ast.items[item];
    const seg__citem *ci = &def->items[item];
    uint32_t slots[3] = { UINT32_MAX, UINT32_MAX, UINT32_MAX };
    for (uint32_t r = 0; r + 1 < it->nrules; r++) {
        const seg__node *bad = NULL;
        if (!score_only(it->rules[r].cond, slots, &bad))
            return seg__error(db, SEG_EINVAL,
                              "%u:%u: set '%s', rule '%s': only r, f and m compared with "
                              "integer constants can be analysed over the score grid",
                              (unsigned)bad->line, (unsigned)bad->col, ci->name,
                              it->rules[r].label.p);
    }
    /* a run with only the machine's buffers */
    const seg__alloc *a = &db->alloc;
    seg__run run;
    memset(&run, 0, sizeof run);
    run.def = (seg_segdef *)def;
    run.db = db;
    run.store = &db->store;
    run.stack = seg__calloc(a, def->max_stack + 1, sizeof *run.stack);
    run.vals = seg__calloc(a, (size_t)def->nslots + 1, sizeof *run.vals);
    run.stamp = seg__calloc(a, (size_t)def->nslots + 1, sizeof *run.stamp);
    run.member = seg__calloc(a, (size_t)def->nsegs + 1, 1);
    int rc = SEG_OK;
    if (!run.stack || !run.vals || !run.stamp || !run.member) {
        rc = seg__error(db, SEG_ENOMEM, "out of memory");
        goto out;
    }
    run.epoch = 1;
    run.featv_ci = UINT32_MAX;
    seg__cctx cc;
    memset(&cc, 0, sizeof cc);
    size_t cell = 0;
    for (int r = 1; r <= nscores; r++)
        for (int f = 1; f <= nscores; f++)
            for (int m = 1; m <= nscores; m++, cell++) {
                const int v[3] = { r, f, m };
                for (int k = 0; k < 3; k++)
                    if (slots[k] != UINT32_MAX) {
                        run.vals[slots[k]].u.i = v[k];
                        run.vals[slots[k]].null = 0;
                        run.stamp[slots[k]] = run.epoch;
                    }
                uint32_t rule = 0;
                for (; rule + 1 < ci->nrules; rule++)
                    if (seg__vm_exec(&run, &cc, &ci->progs[rule]))
                        break;
                cells[cell] = rule;
            }
out:
    seg__free(a, run.stack);
    seg__free(a, run.vals);
    seg__free(a, run.stamp);
    seg__free(a, run.member);
    return rc;
}
