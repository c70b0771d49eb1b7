/*
 * arena.c — bump allocation for one compilation (AST, strings, spec
 * arrays), released at once.  Large requests get a block of their own.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

struct pp_arena_block {
    pp_arena_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 64 * 1024 };

void *pp_arena_alloc(pp_arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    pp_arena_block *b = a->head;
    if (!b || b->size - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            pp_out_of_memory();
        b->used = 0;
        b->size = cap;
        /* A big one-off block goes behind the head so the head keeps filling. */
        if (a->head && cap > ARENA_BLOCK) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *pp_arena_strndup(pp_arena *a, const char *s, size_t n)
{
    char *p = pp_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pp_arena_strdup(pp_arena *a, const char *s)
{
    return pp_arena_strndup(a, s, strlen(s));
}

void *pp_arena_grow(pp_arena *a, void *old, int n, int *cap, size_t elem)
{
    if (n < *cap)
        return old;
    int ncap = *cap ? 2 * *cap : 4;
    void *v = pp_arena_alloc(a, (size_t)ncap * elem);
    if (n)
        memcpy(v, old, (size_t)n * elem);
    *cap = ncap;
    return v;
}

void pp_arena_free(pp_arena *a)
{
    pp_arena_block *b = a->head;
    while (b) {
        pp_arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

_Noreturn void pp_out_of_memory(void)
{
    fputs("out of memory\n", stderr);
    abort();
}

void *pp_xcalloc(size_t n, size_t size)
{
    void *q = calloc(n ? n : 1, size);
    if (!q)
        pp_out_of_memory();
    return q;
}
