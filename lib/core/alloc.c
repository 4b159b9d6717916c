/* Memory: the host's allocator or the C library's. */
#include "segment-private.h"

#include <stdlib.h>

static void *std_malloc(size_t n, void *ud) { SEG_UNUSED(ud); return malloc(n); }
static void *std_realloc(void *p, size_t n, void *ud) { SEG_UNUSED(ud); return realloc(p, n); }
static void std_free(void *p, void *ud) { SEG_UNUSED(ud); free(p); }

const seg__alloc seg__default_alloc = { std_malloc, std_realloc, std_free, NULL };

void *seg__malloc(const seg__alloc *a, size_t n)
{
    return a->malloc(n ? n : 1, a->ud);
}

void *seg__calloc(const seg__alloc *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = seg__malloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *seg__realloc(const seg__alloc *a, void *p, size_t n)
{
    return a->realloc(p, n ? n : 1, a->ud);
}

void *seg__realloc_array(const seg__alloc *a, void *p, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    return seg__realloc(a, p, count * size);
}

void seg__free(const seg__alloc *a, void *p)
{
    if (p)
        a->free(p, a->ud);
}

/* Memory handed to the caller starts with a header that holds a copy of
 * the allocator, so seg_free() needs no handle, also after the handle it
 * came from is closed.  The header is two max_align_t long (32 bytes on
 * common platforms) to keep the user part aligned for any type. */
typedef union user_hdr {
    seg__alloc a;        /* a copy: the memory may outlive the handle it came from */
    max_align_t align[2];
} user_hdr;

void *seg__malloc_user(const seg__alloc *a, size_t n)
{
    if (n > SIZE_MAX - sizeof(user_hdr))
        return NULL;
    user_hdr *h = seg__malloc(a, sizeof(user_hdr) + n);
    if (!h)
        return NULL;
    h->a = *a;
    return h + 1;
}

char *seg__strdup_user(const seg__alloc *a, const char *s, size_t n)
{
    char *p = seg__malloc_user(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

SEG_API void seg_free(void *ptr)
{
    if (!ptr)
        return;
    user_hdr *h = (user_hdr *)ptr - 1;
    seg__alloc a = h->a;
    seg__free(&a, h);
}
