/*
 * arena.c — bump allocation for one compilation (AST, strings, spec
 * arrays), released at once.  Large requests get a block of their own.
 * And out of memory, for both programs: the one message, and the one way
 * an error path that cannot unwind ends the process (pp_exit_now), after
 * what must be undone first (output.c registers the removal of its
 * temporaries: this file is below it and knows it only as a function).
 */
#include <errno.h> /* and program_invocation_short_name (_GNU_SOURCE) */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
            pp_out_of_memory((double)sizeof *b + (double)cap, "the compiler's arena");
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

/* ---- out of memory, and ending the process from an error path ---- */

static const char *program;
static void (*before_exit)(void);

void pp_set_program(const char *prog)
{
    if (!program)
        program = prog;
}

void pp_before_exit(void (*fn)(void))
{
    before_exit = fn;
}

_Noreturn void pp_exit_now(int status)
{
    fflush(stdout);
    fflush(stderr);
    if (before_exit)
        before_exit();
    _exit(status);
}

_Noreturn void pp_out_of_memory(double bytes, const char *what)
{
    const char *prog = program ? program : program_invocation_short_name;
    fflush(stdout); /* what was printed before comes before the error */
    if (bytes > 0)
        fprintf(stderr, "%s: error: out of memory: cannot allocate %.0f bytes for %s\n", prog, bytes,
                what);
    else
        fprintf(stderr, "%s: error: out of memory: cannot allocate %s\n", prog, what);
    pp_exit_now(1);
}

void *pp_calloc(size_t n, size_t size, const char *what)
{
    if (pp_test_alloc_fails && pp_test_alloc_fails((double)n * (double)size, what)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n ? n : 1, size ? size : 1);
}

void *pp_xcalloc(size_t n, size_t size, const char *what)
{
    void *q = pp_calloc(n, size, what);
    if (!q)
        pp_out_of_memory((double)n * (double)size, what);
    return q;
}
