/*
 * The definition handle: compile, free, names, canonical text.
 */
#include "segdef/segdef-private.h"
#include "segment/rfm.h"

#include <math.h>

#include <stdio.h>

static void def_free(seg_segdef *d)
{
    const seg__alloc *a = &d->db->alloc;
    for (uint32_t i = 0; i < d->nsegs; i++)
        seg__free(a, d->segs[i].name);
    if (d->items)
        for (uint32_t i = 0; i < d->nitems; i++) {
            seg__free(a, d->items[i].name);
            seg__free(a, d->items[i].progs);
        }
    seg__free(a, d->segs);
    seg__free(a, d->items);
    seg__free(a, d->order);
    seg__free(a, d->code);
    seg__free(a, d->consts);
    seg__free(a, d->slots);
    seg__free(a, d->feats);
    seg__free(a, d->scratch);
    seg_rfm_thresholds_free(d->rfm);
    seg_clv_model_free(d->clv);
    seg__free(a, d->feat_cache);
    seg__free(a, d->clv_scratch.buf);
    seg__free(a, d->state);
    seg__free(a, d->rep_size);
    seg__free(a, d->rep_revenue);
    seg__free(a, d->rep_overlap);
    seg__pool_free(&d->ast.pool);
    seg_db *db = d->db;
    seg__free(a, d);
    seg__db_unref(db);
}

/* conds: add the journey blocks' conditions as hidden segments (the
 * journey engine's evaluator); otherwise journey blocks are checked by
 * compiling such a definition on the side. */
static int compile(seg_segdef **out, seg_db *db, const char *src, size_t len,
                   const seg__provider *extra, size_t nextra, bool conds, seg__sderr *err)
{
    seg_segdef *d = seg__calloc(&db->alloc, 1, sizeof *d);
    if (!d) {
        memset(err, 0, sizeof *err);
        err->code = SEG_ENOMEM;
        err->line = err->col = 1;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return SEG_ENOMEM;
    }
    d->db = db;
    seg__db_ref(db);
    d->exponent = seg__db_exponent(db);
    d->extra = extra;
    d->nextra = nextra;
    seg__pool_init(&d->ast.pool, &db->alloc);
    int rc = seg__sd_parse(&d->ast, src ? src : "", len, err);
    if (rc == SEG_OK && conds)
        rc = seg__jr_add_conditions(&d->ast, err);
    if (rc == SEG_OK)
        rc = seg__sd_check(d, err);
    if (rc == SEG_OK)
        rc = seg__sd_codegen(d, err);
    if (rc == SEG_OK && !conds && d->ast.njourneys)
        rc = seg__jr_validate(d, src ? src : "", len, err);
    if (rc != SEG_OK) {
        def_free(d);
        return err->code;
    }
    d->state_words = (d->nsegs + 63) / 64;
    *out = d;
    return SEG_OK;
}

int seg__segdef_compile_ex(seg_segdef **out, seg_db *db, const char *src, size_t len,
                           const seg__provider *extra, size_t nextra)
{
    if (out)
        *out = NULL;
    if (!db)
        return SEG_EINVAL;
    seg__error_clear(db);
    if (!out)
        return seg__error(db, SEG_EINVAL, "out: NULL");
    if (!src && len)
        return seg__error(db, SEG_EINVAL, "src: NULL");
    seg__sderr err;
    int rc = compile(out, db, src, len, extra, nextra, false, &err);
    if (rc != SEG_OK)
        seg__error(db, err.code, "%u:%u: %s", (unsigned)err.line, (unsigned)err.col, err.msg);
    return rc;
}

int seg__segdef_compile_conds(seg_segdef **out, seg_db *db, const char *src, size_t len,
                              const seg__provider *extra, size_t nextra, seg__sderr *err)
{
    *out = NULL;
    return compile(out, db, src, len, extra, nextra, true, err);
}

SEG_API int seg_segdef_compile(seg_segdef **out, seg_db *db, const char *src, size_t len)
{
    return seg__segdef_compile_ex(out, db, src, len, NULL, 0);
}

SEG_API void seg_segdef_free(seg_segdef *def)
{
    if (def)
        def_free(def);
}

SEG_API int seg_segdef_set_clv(seg_segdef *def, seg_clv_model *model,
                               const seg_clv_value_options *opts)
{
    if (!def)
        return SEG_EINVAL;
    seg_db *db = def->db;
    seg__error_clear(db);
    seg_clv_value_options o = SEG_CLV_VALUE_OPTIONS_INIT;
    if (opts) {
        if (seg__struct_in(&o, sizeof o, opts, opts->struct_size, sizeof o) != SEG_OK)
            return seg__error(db, SEG_EVERSION, "seg_clv_value_options: unsupported struct_size %zu",
                              opts->struct_size);
        if (!(o.discount_rate >= 0) || !isfinite(o.discount_rate) ||
            !(o.discount_period > 0) || !isfinite(o.discount_period) ||
            !(o.margin >= 0) || !isfinite(o.margin))
            return seg__error(db, SEG_EINVAL, "seg_clv_value_options: discount_rate and margin "
                              "must be finite and >= 0, discount_period finite and > 0");
    }
    seg_clv_model *copy = NULL;
    if (model) {
        if (!model->has_params)
            return seg__error(db, SEG_ENOTFOUND, "the CLV model has no parameters (fit it, or "
                              "set or import them, first)");
        copy = seg__malloc(&db->alloc, sizeof *copy);
        if (!copy)
            return seg__error(db, SEG_ENOMEM, "out of memory");
        *copy = *model;
        copy->alloc = db->alloc;
        copy->errmsg[0] = '\0';
    }
    seg_clv_model_free(def->clv);
    def->clv = copy;
    o.horizon = 0;
    def->clv_opts = o;
    def->clv_gen++;
    def->stale = true;
    return SEG_OK;
}

SEG_API size_t seg_segdef_segment_count(const seg_segdef *def)
{
    return def ? def->nsegs : 0;
}

SEG_API const char *seg_segdef_segment_name(const seg_segdef *def, size_t i)
{
    return def && i < def->nsegs ? def->segs[i].name : NULL;
}

SEG_API const char *seg_segdef_segment_set(const seg_segdef *def, size_t i)
{
    if (!def || i >= def->nsegs)
        return NULL;
    const seg__citem *it = &def->items[def->segs[i].item];
    return it->kind == SEG__ITEM_SET ? it->name : NULL;
}

SEG_API int seg_segdef_find(size_t *out, seg_segdef *def, const char *name)
{
    if (out)
        *out = 0;
    if (!def)
        return SEG_EINVAL;
    seg__error_clear(def->db);
    if (!out || !name)
        return seg__error(def->db, SEG_EINVAL, "%s: NULL", !out ? "out" : "name");
    for (uint32_t i = 0; i < def->nsegs; i++)
        if (strcmp(def->segs[i].name, name) == 0) {
            *out = i;
            return SEG_OK;
        }
    return seg__error(def->db, SEG_ENOTFOUND, "no segment named '%s'", name);
}

SEG_API int seg_segdef_print(char **out, seg_segdef *def)
{
    if (out)
        *out = NULL;
    if (!def)
        return SEG_EINVAL;
    seg__error_clear(def->db);
    if (!out)
        return seg__error(def->db, SEG_EINVAL, "out: NULL");
    size_t n;
    char *text = seg__sd_print(&def->db->alloc, &def->ast, &n);
    char *user = text ? seg__strdup_user(&def->db->alloc, text, n) : NULL;
    seg__free(&def->db->alloc, text);
    if (!user)
        return seg__error(def->db, SEG_ENOMEM, "out of memory");
    *out = user;
    return SEG_OK;
}
