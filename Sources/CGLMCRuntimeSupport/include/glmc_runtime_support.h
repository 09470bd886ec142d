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

#ifdef __cplusplus
}
#endif

#endif
