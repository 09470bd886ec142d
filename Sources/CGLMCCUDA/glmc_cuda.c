#define _GNU_SOURCE /* dladdr */
#include "glmc_cuda.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_why(char *why, size_t why_size, const char *text) {
    if (why && why_size) snprintf(why, why_size, "%s", text);
}

/* ---- NVRTC ---------------------------------------------------------------------------------- */

typedef struct _nvrtcProgram *nvrtcProgram;

static const char *(*p_nvrtcGetErrorString)(int result);
static int (*p_nvrtcVersion)(int *major, int *minor);
static int (*p_nvrtcCreateProgram)(nvrtcProgram *program, const char *source, const char *name, int header_count,
                                   const char *const *headers, const char *const *include_names);
static int (*p_nvrtcDestroyProgram)(nvrtcProgram *program);
static int (*p_nvrtcCompileProgram)(nvrtcProgram program, int option_count, const char *const *options);
static int (*p_nvrtcGetPTXSize)(nvrtcProgram program, size_t *size);
static int (*p_nvrtcGetPTX)(nvrtcProgram program, char *ptx);
static int (*p_nvrtcGetProgramLogSize)(nvrtcProgram program, size_t *size);
static int (*p_nvrtcGetProgramLog)(nvrtcProgram program, char *log);

static pthread_mutex_t nvrtc_lock = PTHREAD_MUTEX_INITIALIZER;
static int nvrtc_state;  /* 0: not tried, 1: loaded, -1: failed */
static char nvrtc_why[1280];
static char nvrtc_from[1024];

/* The folder holding the CUDA headers kernels may include (cuda_fp16.h, cuda_bf16.h): NVRTC has no
   include path of its own. $GLMC_CUDA_INCLUDE if set; else next to the NVRTC that was loaded, in the
   wheels' layout (site-packages/nvidia/cuda_nvrtc/lib → nvidia/cuda_runtime/include, from the
   nvidia-cuda-runtime-cu12 wheel) or the toolkit's (lib64 → include); else /usr/local/cuda/include.
   Empty when none has cuda_fp16.h. */
static char nvrtc_include[1100];

static int has_fp16_header(const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/cuda_fp16.h", dir);
    FILE *f = fopen(path, "r");
    if (f) fclose(f);
    return f != NULL;
}

static void find_include_directory(void) {
    nvrtc_include[0] = 0;
    const char *chosen = getenv("GLMC_CUDA_INCLUDE");
    if (chosen && *chosen) { snprintf(nvrtc_include, sizeof nvrtc_include, "%s", chosen); return; }
    char library[1024] = "";
    Dl_info info;
    if (p_nvrtcVersion && dladdr(*(void **)&p_nvrtcVersion, &info) && info.dli_fname) snprintf(library, sizeof library, "%s", info.dli_fname);
    char *slash = strrchr(library, '/');
    if (slash) {
        *slash = 0;  /* the library's folder */
        const char *const relative[] = { "/../../cuda_runtime/include", "/../include" };
        for (size_t i = 0; i < sizeof relative / sizeof relative[0]; i++) {
            char dir[1100];
            snprintf(dir, sizeof dir, "%s%s", library, relative[i]);
            if (has_fp16_header(dir)) { snprintf(nvrtc_include, sizeof nvrtc_include, "%s", dir); return; }
        }
    }
    if (has_fp16_header("/usr/local/cuda/include")) snprintf(nvrtc_include, sizeof nvrtc_include, "/usr/local/cuda/include");
}

const char *glmc_nvrtc_include_directory(void) { return nvrtc_state == 1 ? nvrtc_include : ""; }

static int resolve_nvrtc(void *h) {
#define NVRTC_SYM(name) if (!(*(void **)&p_##name = dlsym(h, #name))) { \
        snprintf(nvrtc_why, sizeof nvrtc_why, "%s lacks %s", nvrtc_from, #name); return 0; }
    NVRTC_SYM(nvrtcGetErrorString) NVRTC_SYM(nvrtcVersion) NVRTC_SYM(nvrtcCreateProgram)
    NVRTC_SYM(nvrtcDestroyProgram) NVRTC_SYM(nvrtcCompileProgram) NVRTC_SYM(nvrtcGetPTXSize)
    NVRTC_SYM(nvrtcGetPTX) NVRTC_SYM(nvrtcGetProgramLogSize) NVRTC_SYM(nvrtcGetProgramLog)
#undef NVRTC_SYM
    return 1;
}

static int try_open_nvrtc(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(nvrtc_why, sizeof nvrtc_why, "%s", e ? e : path);
        return 0;
    }
    snprintf(nvrtc_from, sizeof nvrtc_from, "%s", path);
    if (!resolve_nvrtc(h)) { dlclose(h); nvrtc_from[0] = 0; return 0; }
    return 1;
}

int glmc_nvrtc_load(char *why, size_t why_size) {
    pthread_mutex_lock(&nvrtc_lock);
    if (nvrtc_state == 0) {
        const char *chosen = getenv("GLMC_NVRTC");
        int ok = 0;
        if (chosen && *chosen) {
            /* An explicit choice is not second-guessed: a wrong path is an error, not a fallback. */
            ok = try_open_nvrtc(chosen);
        } else {
            static const char *const names[] = {
                "libnvrtc.so.12", "libnvrtc.so",
                "/usr/local/cuda/lib64/libnvrtc.so.12", "/usr/local/cuda/lib64/libnvrtc.so",
            };
            for (size_t i = 0; i < sizeof names / sizeof names[0] && !ok; i++) ok = try_open_nvrtc(names[i]);
            if (!ok) snprintf(nvrtc_why, sizeof nvrtc_why, "no libnvrtc.so.12 or libnvrtc.so on the library path or in /usr/local/cuda/lib64");
        }
        nvrtc_state = ok ? 1 : -1;
        if (ok) find_include_directory();
    }
    int loaded = nvrtc_state == 1;
    if (!loaded) set_why(why, why_size, nvrtc_why);
    pthread_mutex_unlock(&nvrtc_lock);
    return loaded;
}

const char *glmc_nvrtc_origin(void) { return nvrtc_state == 1 ? nvrtc_from : ""; }

int glmc_nvrtc_version(int *major, int *minor) {
    if (nvrtc_state != 1) { *major = 0; *minor = 0; return 0; }
    return p_nvrtcVersion(major, minor) == 0;
}

/* Keeps the first GLMC_NVRTC_LOG_LINES non-empty lines of `log` (in place, without the trailing
   newline) and says how many more there were. `log` has room for the note: see the caller. */
static void shorten_log(char *log, size_t capacity) {
    char *out = log;
    const char *in = log;
    int kept = 0, dropped = 0;
    while (*in) {
        const char *end = strchr(in, '\n');
        size_t length = end ? (size_t)(end - in) : strlen(in);
        if (length > 0) {
            if (kept < GLMC_NVRTC_LOG_LINES) {
                if (kept > 0) *out++ = '\n';
                memmove(out, in, length);
                out += length;
                kept++;
            } else dropped++;
        }
        in += length + (end ? 1 : 0);
    }
    *out = 0;
    if (dropped > 0) snprintf(out, capacity - (size_t)(out - log), "\n... (%d more lines)", dropped);
}

int glmc_nvrtc_compile(const char *source, const char *name, const char *arch,
                       char **ptx, size_t *ptx_size, char **log, const char **error_name) {
    *ptx = NULL; *ptx_size = 0; *log = NULL; *error_name = "NVRTC_SUCCESS";
    if (nvrtc_state != 1) { *error_name = "NVRTC not loaded"; return -1; }
    char architecture[64];
    snprintf(architecture, sizeof architecture, "--gpu-architecture=compute_%s", strncmp(arch, "sm_", 3) == 0 ? arch + 3 : arch);
    char include[1200];
    snprintf(include, sizeof include, "-I%s", nvrtc_include);
    const char *const options[] = { architecture, "-default-device", "--std=c++17", include };
    const int option_count = (int)(sizeof options / sizeof options[0]) - (nvrtc_include[0] ? 0 : 1);
    nvrtcProgram program = NULL;
    int r = p_nvrtcCreateProgram(&program, source, name, 0, NULL, NULL);
    if (r != 0) { *error_name = p_nvrtcGetErrorString(r); return r; }
    int compiled = p_nvrtcCompileProgram(program, option_count, options);
    size_t log_size = 0;
    if (p_nvrtcGetProgramLogSize(program, &log_size) == 0 && log_size > 1) {
        size_t capacity = log_size + 64;  /* room for the "more lines" note */
        char *text = malloc(capacity);
        if (text && p_nvrtcGetProgramLog(program, text) == 0) { text[log_size] = 0; shorten_log(text, capacity); *log = text; }
        else free(text);
    }
    r = compiled;
    if (r == 0) {
        size_t size = 0;
        r = p_nvrtcGetPTXSize(program, &size);
        if (r == 0) {
            char *text = malloc(size + 1);
            if (!text) { r = 2; /* NVRTC_ERROR_OUT_OF_MEMORY */ }
            else if ((r = p_nvrtcGetPTX(program, text)) == 0) {
                text[size] = 0;
                *ptx = text;
                *ptx_size = strlen(text);  /* the size NVRTC reports counts the NUL */
            } else free(text);
        }
    }
    *error_name = p_nvrtcGetErrorString(r);
    p_nvrtcDestroyProgram(&program);
    return r;
}

/* ---- CUDA driver API ------------------------------------------------------------------------ */

static pthread_mutex_t cuda_lock = PTHREAD_MUTEX_INITIALIZER;
static int cuda_state;
static char cuda_why[1280];
static glmc_cuda_api cuda_api;

const glmc_cuda_api *glmc_cuda_load(char *why, size_t why_size) {
    pthread_mutex_lock(&cuda_lock);
    if (cuda_state == 0) {
        const char *chosen = getenv("GLMC_LIBCUDA");
        const char *path = chosen && *chosen ? chosen : "libcuda.so.1";
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        int ok = h != NULL;
        if (!ok) {
            const char *e = dlerror();
            snprintf(cuda_why, sizeof cuda_why, "cannot load %s (%s); is the NVIDIA driver installed?", path, e ? e : "not found");
        }
#define CU_SYM(field, symbol) if (ok && !(*(void **)&cuda_api.field = dlsym(h, symbol))) { \
        snprintf(cuda_why, sizeof cuda_why, "%s lacks %s (driver older than CUDA 12?)", path, symbol); ok = 0; }
        CU_SYM(cuInit, "cuInit") CU_SYM(cuGetErrorName, "cuGetErrorName") CU_SYM(cuGetErrorString, "cuGetErrorString")
        CU_SYM(cuDeviceGetCount, "cuDeviceGetCount") CU_SYM(cuDeviceGet, "cuDeviceGet")
        CU_SYM(cuDeviceGetName, "cuDeviceGetName") CU_SYM(cuDeviceGetAttribute, "cuDeviceGetAttribute")
        CU_SYM(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")
        CU_SYM(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2")
        CU_SYM(cuCtxSetCurrent, "cuCtxSetCurrent")
        CU_SYM(cuModuleLoadDataEx, "cuModuleLoadDataEx") CU_SYM(cuModuleUnload, "cuModuleUnload")
        CU_SYM(cuModuleGetFunction, "cuModuleGetFunction")
        CU_SYM(cuMemAlloc, "cuMemAlloc_v2") CU_SYM(cuMemFree, "cuMemFree_v2") CU_SYM(cuMemsetD8, "cuMemsetD8_v2")
        CU_SYM(cuMemcpyHtoD, "cuMemcpyHtoD_v2") CU_SYM(cuMemcpyDtoH, "cuMemcpyDtoH_v2")
        CU_SYM(cuStreamCreate, "cuStreamCreate") CU_SYM(cuStreamDestroy, "cuStreamDestroy_v2")
        CU_SYM(cuStreamSynchronize, "cuStreamSynchronize") CU_SYM(cuLaunchKernel, "cuLaunchKernel")
        CU_SYM(cuEventCreate, "cuEventCreate") CU_SYM(cuEventRecord, "cuEventRecord")
        CU_SYM(cuEventSynchronize, "cuEventSynchronize") CU_SYM(cuEventElapsedTime, "cuEventElapsedTime")
        CU_SYM(cuEventDestroy, "cuEventDestroy_v2")
#undef CU_SYM
        if (!ok && h) dlclose(h);
        cuda_state = ok ? 1 : -1;
    }
    const glmc_cuda_api *api = cuda_state == 1 ? &cuda_api : NULL;
    if (!api) set_why(why, why_size, cuda_why);
    pthread_mutex_unlock(&cuda_lock);
    return api;
}
