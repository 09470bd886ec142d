/* NVRTC and the CUDA driver API, loaded with dlopen at first use.

   No CUDA header is needed to build glmc: the few types and prototypes used are declared here with
   the ABI of CUDA 12 (cuda.h, nvrtc.h). The libraries are optional at run time: a machine without
   NVRTC still writes source-only CUDA plans, one without a driver still builds and runs CPU plans.
   Entry points whose ABI changed in CUDA 4 / 11 are resolved by their versioned names (`_v2`), which
   is what cuda.h maps the plain names to. */
#ifndef GLMC_CUDA_H
#define GLMC_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- NVRTC ---------------------------------------------------------------------------------- */

/* Loads NVRTC once: the file named by $GLMC_NVRTC if set (and only that), else `libnvrtc.so.12`,
   `libnvrtc.so` on the loader's search path, else the same names under /usr/local/cuda/lib64.
   Returns 1 when loaded; 0 otherwise, with the reason in `why` (NUL-terminated, truncated to
   `why_size`). Thread-safe. */
int glmc_nvrtc_load(char *why, size_t why_size);

/* The path or name NVRTC was loaded from ("" before a successful load). */
const char *glmc_nvrtc_origin(void);

/* The folder passed to NVRTC with -I for the CUDA headers kernels include (cuda_fp16.h,
   cuda_bf16.h): $GLMC_CUDA_INCLUDE, else found next to the loaded NVRTC (the
   nvidia-cuda-runtime-cu12 wheel's nvidia/cuda_runtime/include, or a toolkit's include folder),
   else /usr/local/cuda/include; "" when none has cuda_fp16.h. */
const char *glmc_nvrtc_include_directory(void);

/* NVRTC's version (major, minor); 0 when it is not loaded. */
int glmc_nvrtc_version(int *major, int *minor);

/* Compiles `source` (program name `name`) to PTX for `arch` ("sm_90") with glmc's options:
   --gpu-architecture=compute_90 (PTX for that virtual architecture, which the driver JIT-compiles
   for the device it runs on, that one or later), -default-device (functions without __device__ are
   device functions: the kernel library's helpers are plain C), --std=c++17, -I for the CUDA headers
   (glmc_nvrtc_include_directory, when found), and no fast math (IEEE
   division, square root and denormals, as in the CPU plans).
   Returns NVRTC's result code (0: success). `*ptx` (NUL-terminated, `*ptx_size` bytes without the
   NUL) is set on success; `*log` is set whenever NVRTC produced a log (warnings included), cut to
   its first GLMC_NVRTC_LOG_LINES non-empty lines and a "... (N more lines)" line. Both
   are malloc'ed: the caller frees them. `*error_name` is NVRTC's name for the result code.
   Returns -1 (with `*error_name` "NVRTC not loaded") when glmc_nvrtc_load has not succeeded. */
#define GLMC_NVRTC_LOG_LINES 30

int glmc_nvrtc_compile(const char *source, const char *name, const char *arch,
                       char **ptx, size_t *ptx_size, char **log, const char **error_name);

/* ---- CUDA driver API ------------------------------------------------------------------------ */

typedef int glmc_CUresult;              /* CUresult: 0 = CUDA_SUCCESS */
typedef int glmc_CUdevice;
typedef unsigned long long glmc_CUdeviceptr;
typedef struct glmc_CUctx_st *glmc_CUcontext;
typedef struct glmc_CUmod_st *glmc_CUmodule;
typedef struct glmc_CUfunc_st *glmc_CUfunction;
typedef struct glmc_CUstream_st *glmc_CUstream;
typedef struct glmc_CUevent_st *glmc_CUevent;

/* CUdevice_attribute values used. */
enum {
    GLMC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    GLMC_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};

/* The driver entry points glmc uses. */
typedef struct glmc_cuda_api {
    glmc_CUresult (*cuInit)(unsigned int flags);
    glmc_CUresult (*cuGetErrorName)(glmc_CUresult error, const char **name);
    glmc_CUresult (*cuGetErrorString)(glmc_CUresult error, const char **text);
    glmc_CUresult (*cuDeviceGetCount)(int *count);
    glmc_CUresult (*cuDeviceGet)(glmc_CUdevice *device, int ordinal);
    glmc_CUresult (*cuDeviceGetName)(char *name, int length, glmc_CUdevice device);
    glmc_CUresult (*cuDeviceGetAttribute)(int *value, int attribute, glmc_CUdevice device);
    glmc_CUresult (*cuDevicePrimaryCtxRetain)(glmc_CUcontext *context, glmc_CUdevice device);
    glmc_CUresult (*cuDevicePrimaryCtxRelease)(glmc_CUdevice device);           /* _v2 */
    glmc_CUresult (*cuCtxSetCurrent)(glmc_CUcontext context);
    glmc_CUresult (*cuModuleLoadDataEx)(glmc_CUmodule *module, const void *image, unsigned int option_count,
                                        int *options, void **option_values);
    glmc_CUresult (*cuModuleUnload)(glmc_CUmodule module);
    glmc_CUresult (*cuModuleGetFunction)(glmc_CUfunction *function, glmc_CUmodule module, const char *name);
    glmc_CUresult (*cuMemAlloc)(glmc_CUdeviceptr *pointer, size_t bytes);             /* _v2 */
    glmc_CUresult (*cuMemFree)(glmc_CUdeviceptr pointer);                             /* _v2 */
    glmc_CUresult (*cuMemsetD8)(glmc_CUdeviceptr pointer, unsigned char value, size_t count);   /* _v2 */
    glmc_CUresult (*cuMemcpyHtoD)(glmc_CUdeviceptr destination, const void *source, size_t bytes);  /* _v2 */
    glmc_CUresult (*cuMemcpyDtoH)(void *destination, glmc_CUdeviceptr source, size_t bytes);        /* _v2 */
    glmc_CUresult (*cuStreamCreate)(glmc_CUstream *stream, unsigned int flags);
    glmc_CUresult (*cuStreamDestroy)(glmc_CUstream stream);                           /* _v2 */
    glmc_CUresult (*cuStreamSynchronize)(glmc_CUstream stream);
    glmc_CUresult (*cuLaunchKernel)(glmc_CUfunction function, unsigned int grid_x, unsigned int grid_y,
                                    unsigned int grid_z, unsigned int block_x, unsigned int block_y,
                                    unsigned int block_z, unsigned int shared_bytes, glmc_CUstream stream,
                                    void **parameters, void **extra);
    glmc_CUresult (*cuEventCreate)(glmc_CUevent *event, unsigned int flags);
    glmc_CUresult (*cuEventRecord)(glmc_CUevent event, glmc_CUstream stream);
    glmc_CUresult (*cuEventSynchronize)(glmc_CUevent event);
    glmc_CUresult (*cuEventElapsedTime)(float *milliseconds, glmc_CUevent start, glmc_CUevent end);
    glmc_CUresult (*cuEventDestroy)(glmc_CUevent event);                              /* _v2 */
} glmc_cuda_api;

/* Loads the driver (`libcuda.so.1`; $GLMC_LIBCUDA names another file, for tests) once and resolves
   every entry point above. Returns the table, or NULL with the reason in `why`. Thread-safe. */
const glmc_cuda_api *glmc_cuda_load(char *why, size_t why_size);

#ifdef __cplusplus
}
#endif

#endif
