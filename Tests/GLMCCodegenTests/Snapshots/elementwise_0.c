#include <math.h>

// elementwise_0: 60 elements
void elementwise_0(const float *restrict in0, const float *restrict in1, float *restrict out0, long begin, long end) {
  #pragma omp simd
  for (long i = begin; i < end; ++i) {
    float t0 = in0[i];
    float t1 = in1[i / 15];
    float t2 = t0 + t1;
    float t3 = (t2 < 0.0f) ? 0.0f : t2;
    float t4 = t3 * 0.75f;
    float t5 = 1.0f / (1.0f + expf(-t4));
    out0[i] = t5;
  }
}
