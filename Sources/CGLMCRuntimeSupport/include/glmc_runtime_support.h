/* Hand-written C support for GLMCRuntime: the host's CPU features and a persistent thread pool
   that runs plan kernels (ABI `void k(void **args, long begin, long end)`). */
#ifndef GLMC_RUNTIME_SUPPORT_H
#define GLMC_RUNTIME_SUPPORT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the host CPU (and the OS, for the wider register files) supports `feature`, one of the
   names a plan's `cpu_features` may list: "sse2", "avx", "avx2", "fma", "avx512f", "avx512bw",
   "avx512dq", "avx512vl", "avx512vnni". 1: supported; 0: not, or unknown name, or not an x86 host. */
int glmc_cpu_supports(const char *feature);

/* The plan kernel ABI. */
typedef void (*glmc_kernel_fn)(void **args, long begin, long end);

typedef struct glmc_pool glmc_pool;

/* A pool of `threads` - 1 worker threads (the calling thread is the last one). NULL if a thread
   cannot be created. Workers spin briefly after each job, then sleep on a condition variable. */
glmc_pool *glmc_pool_create(int threads);

/* Runs `fn(args, begin, end)` over [0, range) split into `parts` slices of `chunk` (the last one
   shorter), spread over the pool's threads and the caller; returns when every slice is done.
   One run at a time per pool. */
void glmc_pool_run(glmc_pool *pool, glmc_kernel_fn fn, void **args, long range, long parts, long chunk);

/* Stops and joins the workers and frees the pool. */
void glmc_pool_destroy(glmc_pool *pool);

/* Strings of a CPU plan (see Docs/PlanFormat.md): a string element in the arena is one pointer to
   a glmc_string, its UTF-8 bytes prefixed by their count and followed by a NUL (not counted).
   Kernels that create strings get the run's heap as a step argument ({"string_heap": true}); the
   generated kernels declare the same two structs (GLMCCodegen's string prelude). */
#include <stdint.h>

typedef struct glmc_string {
    int64_t length;
    char bytes[];
} glmc_string;

typedef struct glmc_string_heap glmc_string_heap;
struct glmc_string_heap {
    /* A new string of `length` bytes (their content unset; the NUL after them set), or NULL when
       out of memory (the runtime then fails the run after the step). Thread-safe. */
    glmc_string *(*alloc)(glmc_string_heap *heap, int64_t length);
    /* A new string: `s` in upper (upper != 0) or lower case by Unicode's default case mapping (as
       the interpreter's StringNormalizer), or NULL when out of memory. Thread-safe. */
    glmc_string *(*change_case)(glmc_string_heap *heap, const glmc_string *s, int upper);
    /* A new string: `s` in Unicode normalization form C, or NULL when out of memory. Canonically
       equivalent strings (which the interpreter's comparisons treat as equal) have the same NFC
       bytes; kernels call it for strings that are not all ASCII. Thread-safe. */
    glmc_string *(*canonical)(glmc_string_heap *heap, const glmc_string *s);
};

/* A heap whose strings live until glmc_string_heap_reset or _destroy. `change_case` is the
   runtime's case mapping and `canonical` its NFC normalization (both allocate their result with
   heap->alloc). NULL if out of memory. */
glmc_string_heap *glmc_string_heap_create(glmc_string *(*change_case)(glmc_string_heap *, const glmc_string *, int),
                                          glmc_string *(*canonical)(glmc_string_heap *, const glmc_string *));

/* Whether an allocation failed since the last reset. */
int glmc_string_heap_failed(glmc_string_heap *heap);

/* Frees every string the heap allocated and clears the failure flag. */
void glmc_string_heap_reset(glmc_string_heap *heap);

/* Frees the strings and the heap. */
void glmc_string_heap_destroy(glmc_string_heap *heap);

#ifdef __cplusplus
}
#endif

#endif
