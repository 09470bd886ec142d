/* Loads the OpenCL ICD loader with dlopen at first use. Linking libOpenCL directly would make the
   glmc executable fail to start on a machine without it, even to run CPU plans. */
#include "glmc_opencl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static glmc_opencl_api api;
static const glmc_opencl_api *loaded;
static char load_error[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    /* $GLMC_OPENCL_LIBRARY names another loader or a vendor library directly (and lets tests
       check the message below). */
    const char *library = getenv("GLMC_OPENCL_LIBRARY");
    if (!library || !*library) library = "libOpenCL.so.1";
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error,
                 "OpenCL is not available: cannot load %s (install ocl-icd-libopencl1 and an ICD "
                 "such as pocl-opencl-icd)", library);
        return;
    }
#define RESOLVE(fn)                                                                                     \
    do {                                                                                                \
        void *sym = dlsym(lib, #fn);                                                                    \
        if (!sym) {                                                                                     \
            snprintf(load_error, sizeof load_error,                                                     \
                     "OpenCL is not available: %s has no function " #fn " (OpenCL 1.2 needed)", library);\
            dlclose(lib);                                                                               \
            return;                                                                                     \
        }                                                                                               \
        memcpy(&api.fn, &sym, sizeof sym);                                                              \
    } while (0)
    RESOLVE(clGetPlatformIDs);
    RESOLVE(clGetPlatformInfo);
    RESOLVE(clGetDeviceIDs);
    RESOLVE(clGetDeviceInfo);
    RESOLVE(clCreateContext);
    RESOLVE(clReleaseContext);
    RESOLVE(clCreateCommandQueue);
    RESOLVE(clReleaseCommandQueue);
    RESOLVE(clCreateBuffer);
    RESOLVE(clReleaseMemObject);
    RESOLVE(clCreateProgramWithSource);
    RESOLVE(clBuildProgram);
    RESOLVE(clGetProgramBuildInfo);
    RESOLVE(clReleaseProgram);
    RESOLVE(clCreateKernel);
    RESOLVE(clReleaseKernel);
    RESOLVE(clSetKernelArg);
    RESOLVE(clEnqueueNDRangeKernel);
    RESOLVE(clEnqueueWriteBuffer);
    RESOLVE(clEnqueueReadBuffer);
    RESOLVE(clEnqueueFillBuffer);
    RESOLVE(clFinish);
#undef RESOLVE
    loaded = &api; /* the library stays loaded for the life of the process */
}

const glmc_opencl_api *glmc_opencl(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *glmc_opencl_load_error(void) {
    pthread_once(&once, load);
    return load_error;
}

cl_int glmc_opencl_set_buffer_args(const glmc_opencl_api *a, cl_kernel kernel, cl_mem arena, cl_mem weights) {
    cl_int err = a->clSetKernelArg(kernel, 0, sizeof(cl_mem), &arena);
    if (err != CL_SUCCESS) return err;
    return a->clSetKernelArg(kernel, 1, sizeof(cl_mem), &weights);
}

cl_int glmc_opencl_enqueue_1d(const glmc_opencl_api *a, cl_command_queue queue, cl_kernel kernel,
                              size_t global, size_t local) {
    return a->clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &global, &local, 0, NULL, NULL);
}

const char *glmc_opencl_error_name(cl_int code) {
    switch (code) {
#define NAME(c) case c: return #c;
    NAME(CL_SUCCESS)
    NAME(CL_DEVICE_NOT_FOUND)
    NAME(CL_DEVICE_NOT_AVAILABLE)
    NAME(CL_COMPILER_NOT_AVAILABLE)
    NAME(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    NAME(CL_OUT_OF_RESOURCES)
    NAME(CL_OUT_OF_HOST_MEMORY)
    NAME(CL_PROFILING_INFO_NOT_AVAILABLE)
    NAME(CL_MEM_COPY_OVERLAP)
    NAME(CL_IMAGE_FORMAT_MISMATCH)
    NAME(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    NAME(CL_BUILD_PROGRAM_FAILURE)
    NAME(CL_MAP_FAILURE)
    NAME(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    NAME(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    NAME(CL_COMPILE_PROGRAM_FAILURE)
    NAME(CL_LINKER_NOT_AVAILABLE)
    NAME(CL_LINK_PROGRAM_FAILURE)
    NAME(CL_DEVICE_PARTITION_FAILED)
    NAME(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    NAME(CL_INVALID_VALUE)
    NAME(CL_INVALID_DEVICE_TYPE)
    NAME(CL_INVALID_PLATFORM)
    NAME(CL_INVALID_DEVICE)
    NAME(CL_INVALID_CONTEXT)
    NAME(CL_INVALID_QUEUE_PROPERTIES)
    NAME(CL_INVALID_COMMAND_QUEUE)
    NAME(CL_INVALID_HOST_PTR)
    NAME(CL_INVALID_MEM_OBJECT)
    NAME(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
    NAME(CL_INVALID_IMAGE_SIZE)
    NAME(CL_INVALID_SAMPLER)
    NAME(CL_INVALID_BINARY)
    NAME(CL_INVALID_BUILD_OPTIONS)
    NAME(CL_INVALID_PROGRAM)
    NAME(CL_INVALID_PROGRAM_EXECUTABLE)
    NAME(CL_INVALID_KERNEL_NAME)
    NAME(CL_INVALID_KERNEL_DEFINITION)
    NAME(CL_INVALID_KERNEL)
    NAME(CL_INVALID_ARG_INDEX)
    NAME(CL_INVALID_ARG_VALUE)
    NAME(CL_INVALID_ARG_SIZE)
    NAME(CL_INVALID_KERNEL_ARGS)
    NAME(CL_INVALID_WORK_DIMENSION)
    NAME(CL_INVALID_WORK_GROUP_SIZE)
    NAME(CL_INVALID_WORK_ITEM_SIZE)
    NAME(CL_INVALID_GLOBAL_OFFSET)
    NAME(CL_INVALID_EVENT_WAIT_LIST)
    NAME(CL_INVALID_EVENT)
    NAME(CL_INVALID_OPERATION)
    NAME(CL_INVALID_GL_OBJECT)
    NAME(CL_INVALID_BUFFER_SIZE)
    NAME(CL_INVALID_MIP_LEVEL)
    NAME(CL_INVALID_GLOBAL_WORK_SIZE)
    NAME(CL_INVALID_PROPERTY)
    NAME(CL_INVALID_IMAGE_DESCRIPTOR)
    NAME(CL_INVALID_COMPILER_OPTIONS)
    NAME(CL_INVALID_LINKER_OPTIONS)
    NAME(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef NAME
    default: return NULL;
    }
}
