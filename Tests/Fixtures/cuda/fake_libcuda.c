/* A stand-in for libcuda.so.1 that tests load through $GLMC_LIBCUDA on machines without a GPU.

   It runs no kernels: "device memory" is host memory, launches are recorded. Every call that
   matters is appended to the file $GLMC_FAKE_CUDA_LOG, one line each, so a test can check what
   CUDAExecutor asked of the driver: allocation sizes, where inputs and weights were copied (with an
   FNV-1a hash of the bytes), each launch's kernel, grid, block, shared bytes and parameters.
   $GLMC_FAKE_CUDA_DEVICES sets the device count (default 1), $GLMC_FAKE_CUDA_CC the compute
   capability (default 90), $GLMC_FAKE_CUDA_FAIL names one entry point that returns
   CUDA_ERROR_LAUNCH_FAILED (719). A module holds the names of the image's `.entry` lines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;

static void logf_(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *format, ...) {
    const char *path = getenv("GLMC_FAKE_CUDA_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    va_list args;
    va_start(args, format);
    vfprintf(f, format, args);
    va_end(args);
    fputc('\n', f);
    fclose(f);
}

static int failing(const char *name) {
    const char *fail = getenv("GLMC_FAKE_CUDA_FAIL");
    return fail && strcmp(fail, name) == 0;
}
#define FAIL_IF(name) do { if (failing(name)) return 719; } while (0)

static unsigned long long fnv1a(const void *data, size_t n) {
    const unsigned char *p = data;
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

CUresult cuInit(unsigned int flags) { (void)flags; FAIL_IF("cuInit"); return 0; }

CUresult cuGetErrorName(CUresult error, const char **name) {
    switch (error) {
    case 0: *name = "CUDA_SUCCESS"; return 0;
    case 1: *name = "CUDA_ERROR_INVALID_VALUE"; return 0;
    case 101: *name = "CUDA_ERROR_INVALID_DEVICE"; return 0;
    case 500: *name = "CUDA_ERROR_NOT_FOUND"; return 0;
    case 719: *name = "CUDA_ERROR_LAUNCH_FAILED"; return 0;
    default: *name = NULL; return 1;
    }
}

CUresult cuGetErrorString(CUresult error, const char **text) {
    switch (error) {
    case 500: *text = "named symbol not found"; return 0;
    case 719: *text = "unspecified launch failure"; return 0;
    default: *text = NULL; return 1;
    }
}

CUresult cuDeviceGetCount(int *count) {
    const char *n = getenv("GLMC_FAKE_CUDA_DEVICES");
    *count = n ? atoi(n) : 1;
    return 0;
}

CUresult cuDeviceGet(int *device, int ordinal) { *device = ordinal; return 0; }

CUresult cuDeviceGetName(char *name, int length, int device) {
    snprintf(name, (size_t)length, "Fake GPU %d", device);
    return 0;
}

CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
    (void)device;
    const char *cc = getenv("GLMC_FAKE_CUDA_CC");
    int level = cc ? atoi(cc) : 90;
    if (attribute == 75) { *value = level / 10; return 0; }
    if (attribute == 76) { *value = level % 10; return 0; }
    return 1;
}

static int context_token;
CUresult cuDevicePrimaryCtxRetain(void **context, int device) { logf_("ctx_retain %d", device); *context = &context_token; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(int device) { logf_("ctx_release %d", device); return 0; }
CUresult cuCtxSetCurrent(void *context) { (void)context; return 0; }

/* A module: the image's entry names, one per line. */
typedef struct { char *names; } fake_module;
typedef struct { char name[256]; } fake_function;

CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned int count, int *options, void **values) {
    (void)count; (void)options; (void)values;
    FAIL_IF("cuModuleLoadDataEx");
    fake_module *m = calloc(1, sizeof *m);
    const char *text = image;
    size_t capacity = strlen(text) + 2;
    m->names = calloc(1, capacity);
    for (const char *p = strstr(text, ".entry "); p; p = strstr(p + 1, ".entry ")) {
        const char *name = p + 7, *end = name;
        while (*end && *end != '(' && *end != ' ' && *end != '\n') end++;
        strncat(m->names, name, (size_t)(end - name));
        strcat(m->names, "\n");
    }
    logf_("module_load %zu", strlen(text));
    *module = m;
    return 0;
}

CUresult cuModuleUnload(void *module) {
    fake_module *m = module;
    free(m->names);
    free(m);
    logf_("module_unload");
    return 0;
}

CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
    fake_module *m = module;
    char line[300];
    snprintf(line, sizeof line, "%s\n", name);
    const char *p = m->names;
    int found = 0;
    while ((p = strstr(p, line))) { if (p == m->names || p[-1] == '\n') { found = 1; break; } p++; }
    if (!found) return 500;
    fake_function *f = calloc(1, sizeof *f);  /* leaked with the module; fine for tests */
    snprintf(f->name, sizeof f->name, "%s", name);
    *function = f;
    return 0;
}

CUresult cuMemAlloc_v2(CUdeviceptr *pointer, size_t bytes) {
    FAIL_IF("cuMemAlloc");
    void *p = malloc(bytes);
    memset(p, 0xAB, bytes);  /* not zero: the executor must clear what it relies on */
    *pointer = (CUdeviceptr)(size_t)p;
    logf_("alloc %zu", bytes);
    return 0;
}

CUresult cuMemFree_v2(CUdeviceptr pointer) { free((void *)(size_t)pointer); logf_("free"); return 0; }

CUresult cuMemsetD8_v2(CUdeviceptr pointer, unsigned char value, size_t count) {
    memset((void *)(size_t)pointer, value, count);
    logf_("memset %zu %u", count, value);
    return 0;
}

/* Addresses are logged as an allocation's order and an offset: the test knows the sizes. */
CUresult cuMemcpyHtoD_v2(CUdeviceptr destination, const void *source, size_t bytes) {
    FAIL_IF("cuMemcpyHtoD");
    memcpy((void *)(size_t)destination, source, bytes);
    logf_("htod %zu %016llx", bytes, fnv1a(source, bytes));
    return 0;
}

CUresult cuMemcpyDtoH_v2(void *destination, CUdeviceptr source, size_t bytes) {
    memcpy(destination, (const void *)(size_t)source, bytes);
    logf_("dtoh %zu %016llx", bytes, fnv1a(destination, bytes));
    return 0;
}

static int stream_token, event_token;
CUresult cuStreamCreate(void **stream, unsigned int flags) { (void)flags; *stream = &stream_token; return 0; }
CUresult cuStreamDestroy_v2(void *stream) { (void)stream; return 0; }
CUresult cuStreamSynchronize(void *stream) { (void)stream; return 0; }

/* Logs the launch shape and, to show which parameter is which, a hash of the first 16 bytes the
   second parameter (the weights buffer) points at. */
CUresult cuLaunchKernel(void *function, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                        unsigned int by, unsigned int bz, unsigned int shared, void *stream, void **parameters,
                        void **extra) {
    (void)stream; (void)extra;
    FAIL_IF("cuLaunchKernel");
    fake_function *f = function;
    CUdeviceptr arena = *(CUdeviceptr *)parameters[0], weights = *(CUdeviceptr *)parameters[1];
    logf_("launch %s grid=%u,%u,%u block=%u,%u,%u shared=%u weights16=%016llx arena_is_weights=%d",
          f->name, gx, gy, gz, bx, by, bz, shared, fnv1a((const void *)(size_t)weights, 16), arena == weights);
    return 0;
}

CUresult cuEventCreate(void **event, unsigned int flags) { (void)flags; *event = &event_token; return 0; }
CUresult cuEventRecord(void *event, void *stream) { (void)event; (void)stream; return 0; }
CUresult cuEventSynchronize(void *event) { (void)event; FAIL_IF("cuEventSynchronize"); return 0; }
CUresult cuEventElapsedTime(float *milliseconds, void *start, void *end) { (void)start; (void)end; *milliseconds = 0.25f; return 0; }
CUresult cuEventDestroy_v2(void *event) { (void)event; return 0; }
