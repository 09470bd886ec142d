/* The OpenCL API for GLMCRuntime's OpenCLExecutor, loaded at first use with dlopen so that glmc
   starts (and runs CPU plans) on a machine without an OpenCL ICD loader. Only the OpenCL 1.2
   functions the executor calls are resolved. */
#ifndef GLMC_OPENCL_H
#define GLMC_OPENCL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The resolved entry points (same names and signatures as in <CL/cl.h>). */
typedef struct glmc_opencl_api {
    cl_int (*clGetPlatformIDs)(cl_uint, cl_platform_id *, cl_uint *);
    cl_int (*clGetPlatformInfo)(cl_platform_id, cl_platform_info, size_t, void *, size_t *);
    cl_int (*clGetDeviceIDs)(cl_platform_id, cl_device_type, cl_uint, cl_device_id *, cl_uint *);
    cl_int (*clGetDeviceInfo)(cl_device_id, cl_device_info, size_t, void *, size_t *);
    cl_context (*clCreateContext)(const cl_context_properties *, cl_uint, const cl_device_id *,
                                  void (CL_CALLBACK *)(const char *, const void *, size_t, void *), void *, cl_int *);
    cl_int (*clReleaseContext)(cl_context);
    cl_command_queue (*clCreateCommandQueue)(cl_context, cl_device_id, cl_command_queue_properties, cl_int *);
    cl_int (*clReleaseCommandQueue)(cl_command_queue);
    cl_mem (*clCreateBuffer)(cl_context, cl_mem_flags, size_t, void *, cl_int *);
    cl_int (*clReleaseMemObject)(cl_mem);
    cl_program (*clCreateProgramWithSource)(cl_context, cl_uint, const char **, const size_t *, cl_int *);
    cl_int (*clBuildProgram)(cl_program, cl_uint, const cl_device_id *, const char *,
                             void (CL_CALLBACK *)(cl_program, void *), void *);
    cl_int (*clGetProgramBuildInfo)(cl_program, cl_device_id, cl_program_build_info, size_t, void *, size_t *);
    cl_int (*clReleaseProgram)(cl_program);
    cl_kernel (*clCreateKernel)(cl_program, const char *, cl_int *);
    cl_int (*clReleaseKernel)(cl_kernel);
    cl_int (*clSetKernelArg)(cl_kernel, cl_uint, size_t, const void *);
    cl_int (*clEnqueueNDRangeKernel)(cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *,
                                     const size_t *, cl_uint, const cl_event *, cl_event *);
    cl_int (*clEnqueueWriteBuffer)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, const void *,
                                   cl_uint, const cl_event *, cl_event *);
    cl_int (*clEnqueueReadBuffer)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *,
                                  cl_uint, const cl_event *, cl_event *);
    cl_int (*clEnqueueFillBuffer)(cl_command_queue, cl_mem, const void *, size_t, size_t, size_t,
                                  cl_uint, const cl_event *, cl_event *);
    cl_int (*clFinish)(cl_command_queue);
} glmc_opencl_api;

/* The API, loading libOpenCL.so.1 on the first call (thread-safe, once per process). NULL when the
   library or one of its functions cannot be loaded; then glmc_opencl_load_error() says why. */
const glmc_opencl_api *glmc_opencl(void);

/* Why glmc_opencl() returned NULL (one line), or "" if it did not. */
const char *glmc_opencl_load_error(void);

/* The name of an OpenCL error code ("CL_INVALID_KERNEL_NAME"), or NULL for an unknown code. */
const char *glmc_opencl_error_name(cl_int code);

/* Sets arguments 0 and 1 of `kernel` to the buffers `arena` and `weights` (the GPU plan kernel ABI). */
cl_int glmc_opencl_set_buffer_args(const glmc_opencl_api *api, cl_kernel kernel, cl_mem arena, cl_mem weights);

/* Enqueues a 1-D NDRange of `global` work items in work-groups of `local`. */
cl_int glmc_opencl_enqueue_1d(const glmc_opencl_api *api, cl_command_queue queue, cl_kernel kernel,
                              size_t global, size_t local);

#ifdef __cplusplus
}
#endif

#endif
