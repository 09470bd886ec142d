#include "glmc_runtime_support.h"
#include <string.h>

int glmc_cpu_supports(const char *feature) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports needs a literal, hence the table. It also checks that the OS saves
       the AVX and AVX-512 register state (XGETBV), so a listed feature is usable. */
    __builtin_cpu_init();
    if (strcmp(feature, "sse2") == 0) return __builtin_cpu_supports("sse2") != 0;
    if (strcmp(feature, "avx") == 0) return __builtin_cpu_supports("avx") != 0;
    if (strcmp(feature, "avx2") == 0) return __builtin_cpu_supports("avx2") != 0;
    if (strcmp(feature, "fma") == 0) return __builtin_cpu_supports("fma") != 0;
    if (strcmp(feature, "avx512f") == 0) return __builtin_cpu_supports("avx512f") != 0;
    if (strcmp(feature, "avx512bw") == 0) return __builtin_cpu_supports("avx512bw") != 0;
    if (strcmp(feature, "avx512dq") == 0) return __builtin_cpu_supports("avx512dq") != 0;
    if (strcmp(feature, "avx512vl") == 0) return __builtin_cpu_supports("avx512vl") != 0;
    if (strcmp(feature, "avx512vnni") == 0) return __builtin_cpu_supports("avx512vnni") != 0;
#else
    (void)feature;
#endif
    return 0;
}
