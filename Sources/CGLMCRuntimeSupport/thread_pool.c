/* A persistent pool for plan steps.
 *
 * One job at a time: the caller publishes it by bumping `ticket`, whose high 32 bits are the
 * job's generation and low 32 bits the next unclaimed slice. Threads (workers and the caller)
 * claim slices with a compare-and-swap that fails once the generation moved on, so a worker that
 * wakes late can never run a slice of a newer job with an older job's kernel. `remaining` counts
 * unfinished slices; the caller returns when it reaches zero. Idle workers spin for a short while
 * (steps follow each other closely) and then sleep on `wake`; the caller broadcasts only when
 * someone sleeps (a Dekker-style handshake on `sleepers` and `ticket`, both sequentially
 * consistent). */
#include "glmc_runtime_support.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GLMC_PAUSE() _mm_pause()
#else
#define GLMC_PAUSE() ((void)0)
#endif

/* Spin iterations before a worker sleeps (on the order of 100 microseconds). */
enum { GLMC_SPIN_LIMIT = 20000 };

struct glmc_pool {
    int workers;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Atomic unsigned long long ticket;
    _Atomic long remaining;
    _Atomic int sleepers;
    _Atomic int stop;
    /* The current job; written before `ticket` is bumped, read after a slice is claimed. */
    glmc_kernel_fn fn;
    void **args;
    long range, parts, chunk;
};

/* Claims and runs slices of generation `gen` until none is left. */
static void run_slices(glmc_pool *p, unsigned long long gen) {
    for (;;) {
        unsigned long long t = atomic_load(&p->ticket);
        if ((t >> 32) != gen) return;
        long index = (long)(t & 0xffffffffULL);
        if (index >= p->parts) return;
        if (!atomic_compare_exchange_weak(&p->ticket, &t, t + 1)) continue;
        long begin = index * p->chunk, end = begin + p->chunk;
        if (end > p->range) end = p->range;
        if (begin < end) p->fn(p->args, begin, end);
        atomic_fetch_sub(&p->remaining, 1);
    }
}

static void *worker_main(void *arg) {
    glmc_pool *p = arg;
    unsigned long long seen = atomic_load(&p->ticket) >> 32;
    for (;;) {
        unsigned long long gen = seen;
        for (int spin = 0; spin < GLMC_SPIN_LIMIT; ++spin) {
            gen = atomic_load(&p->ticket) >> 32;
            if (gen != seen || atomic_load(&p->stop)) break;
            GLMC_PAUSE();
        }
        if (gen == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add(&p->sleepers, 1);
            while ((gen = atomic_load(&p->ticket) >> 32) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->lock);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->lock);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = gen;
        run_slices(p, gen);
    }
}

glmc_pool *glmc_pool_create(int threads) {
    glmc_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->workers = threads > 1 ? threads - 1 : 0;
    p->threads = calloc(p->workers > 0 ? (size_t)p->workers : 1, sizeof(pthread_t));
    if (!p->threads) { free(p); return NULL; }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* Kernels keep packing buffers of a few tens of KiB on the stack. */
    pthread_attr_setstacksize(&attr, 8u << 20);
    for (int i = 0; i < p->workers; ++i) {
        if (pthread_create(&p->threads[i], &attr, worker_main, p) != 0) {
            p->workers = i;
            pthread_attr_destroy(&attr);
            glmc_pool_destroy(p);
            return NULL;
        }
    }
    pthread_attr_destroy(&attr);
    return p;
}

void glmc_pool_run(glmc_pool *p, glmc_kernel_fn fn, void **args, long range, long parts, long chunk) {
    if (p->workers == 0 || parts <= 1) {
        for (long i = 0; i < parts; ++i) {
            long begin = i * chunk, end = begin + chunk;
            if (end > range) end = range;
            if (begin < end) fn(args, begin, end);
        }
        return;
    }
    p->fn = fn; p->args = args; p->range = range; p->parts = parts; p->chunk = chunk;
    atomic_store(&p->remaining, parts);
    unsigned long long gen = (atomic_load(&p->ticket) >> 32) + 1;
    atomic_store(&p->ticket, gen << 32);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    run_slices(p, gen);
    /* The last slices are running on workers; they finish soon. */
    for (long spin = 0; atomic_load(&p->remaining) > 0; ++spin) {
        if (spin < GLMC_SPIN_LIMIT) GLMC_PAUSE(); else sched_yield();
    }
}

void glmc_pool_destroy(glmc_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->workers; ++i) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->threads);
    free(p);
}
