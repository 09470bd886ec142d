/* The string heap of a CPU plan run: every string is one malloc'd block on a list, freed all at
   once when the run's outputs have been read. A mutex serializes allocations (a step's slices run
   on several threads). */
#include "glmc_runtime_support.h"

#include <pthread.h>
#include <stdlib.h>

/* A block: this header, then the glmc_string (16 bytes keep it 16-byte aligned). */
typedef struct block {
    struct block *next;
    int64_t pad;
} block;

static glmc_string *string_of(block *b) { return (glmc_string *)(b + 1); }

typedef struct {
    glmc_string_heap heap; /* first: a glmc_string_heap * is a string_heap_state * */
    pthread_mutex_t lock;
    block *blocks;
    int failed;
} string_heap_state;

static glmc_string *heap_alloc(glmc_string_heap *heap, int64_t length) {
    string_heap_state *state = (string_heap_state *)heap;
    block *b = NULL;
    if (length >= 0 && (uint64_t)length < (uint64_t)SIZE_MAX - sizeof(block) - sizeof(glmc_string) - 1)
        b = (block *)malloc(sizeof(block) + sizeof(glmc_string) + (size_t)length + 1);
    pthread_mutex_lock(&state->lock);
    if (b) {
        b->next = state->blocks;
        state->blocks = b;
    } else {
        state->failed = 1;
    }
    pthread_mutex_unlock(&state->lock);
    if (!b) return NULL;
    glmc_string *s = string_of(b);
    s->length = length;
    s->bytes[length] = 0;
    return s;
}

glmc_string_heap *glmc_string_heap_create(glmc_string *(*change_case)(glmc_string_heap *, const glmc_string *, int),
                                          glmc_string *(*canonical)(glmc_string_heap *, const glmc_string *)) {
    string_heap_state *state = (string_heap_state *)calloc(1, sizeof(string_heap_state));
    if (!state) return NULL;
    if (pthread_mutex_init(&state->lock, NULL) != 0) {
        free(state);
        return NULL;
    }
    state->heap.alloc = heap_alloc;
    state->heap.change_case = change_case;
    state->heap.canonical = canonical;
    return &state->heap;
}

int glmc_string_heap_failed(glmc_string_heap *heap) {
    string_heap_state *state = (string_heap_state *)heap;
    pthread_mutex_lock(&state->lock);
    int failed = state->failed;
    pthread_mutex_unlock(&state->lock);
    return failed;
}

void glmc_string_heap_reset(glmc_string_heap *heap) {
    string_heap_state *state = (string_heap_state *)heap;
    pthread_mutex_lock(&state->lock);
    block *b = state->blocks;
    state->blocks = NULL;
    state->failed = 0;
    pthread_mutex_unlock(&state->lock);
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

void glmc_string_heap_destroy(glmc_string_heap *heap) {
    if (!heap) return;
    glmc_string_heap_reset(heap);
    string_heap_state *state = (string_heap_state *)heap;
    pthread_mutex_destroy(&state->lock);
    free(state);
}
