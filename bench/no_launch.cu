// A program whose only kernel launch fails (2048 threads per block) and which prints PASS anyway.
// Does the "may not have used the GPU" note fire? `wattson profile bench/no_launch.cu --json`:
// on the H100 it did not (the context alone held 126 W against 75 W idle; docs/measurement.md).
#include <cstdio>
#include <unistd.h>
__global__ void k(float *x) { x[threadIdx.x] = 1.0f; }
int main() {
  float *d;
  cudaMalloc(&d, 4096 * sizeof(float));
  k<<<1, 2048>>>(d);
  cudaError_t e = cudaGetLastError();  // a bad launch configuration is reported here, not by the sync
  cudaDeviceSynchronize();
  usleep(800000);  // host work while the context stays open
  printf("launch: %s\nPASS\n", cudaGetErrorString(e));
  cudaFree(d);
  return 0;
}
