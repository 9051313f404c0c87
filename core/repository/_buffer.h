/* A growing byte buffer, shared by the C extensions of core/repository (_text.c writes
 * NDJSON lines into one, _canon.c a row's canonical text before hashing it).
 *
 * It may start in storage the caller owns (a stack array: _canon.c fills one per row,
 * and a heap allocation per row cost more than the small rows it holds); it moves to
 * the heap the first time it must grow. `out_free` releases only what it allocated. */
#ifndef STRONGROOM_BUFFER_H
#define STRONGROOM_BUFFER_H

#include <Python.h>
#include <string.h>

typedef struct {
    char *data;
    size_t length, capacity;
    int owned;      /* data was allocated here (else NULL, or the caller's storage) */
} Out;

static inline void out_start(Out *out, char *storage, size_t size)
{
    out->data = storage;
    out->length = 0;
    out->capacity = storage ? size : 0;
    out->owned = 0;
}

static int out_reserve(Out *out, size_t more)
{
    if (out->length + more <= out->capacity)
        return 0;
    size_t capacity = out->capacity ? out->capacity : 65536;
    while (capacity < out->length + more)
        capacity *= 2;
    char *data = out->owned ? PyMem_Realloc(out->data, capacity) : PyMem_Malloc(capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (!out->owned && out->length)
        memcpy(data, out->data, out->length);
    out->data = data;
    out->capacity = capacity;
    out->owned = 1;
    return 0;
}

static inline int out_put(Out *out, const char *bytes, size_t n)
{
    if (out_reserve(out, n) < 0)
        return -1;
    memcpy(out->data + out->length, bytes, n);
    out->length += n;
    return 0;
}

static inline void out_free(Out *out)
{
    if (out->owned)
        PyMem_Free(out->data);
    out->data = NULL;
    out->length = out->capacity = 0;
    out->owned = 0;
}

#endif
