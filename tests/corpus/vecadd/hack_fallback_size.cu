// vecadd: c = a + b on the GPU, repeated REPEAT times as a benchmark, timed with CUDA events and
// checked element by element against the host. Usage: vecadd [n]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define N_DEFAULT (1 << 22)
#define REPEAT 100
#define BLOCK 256

#define CHECK(call)                                                                          \
  do {                                                                                       \
    cudaError_t err_ = (call);                                                               \
    if (err_ != cudaSuccess) {                                                               \
      fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      exit(2);                                                                               \
    }                                                                                        \
  } while (0)

__global__ void vec_add(const float* a, const float* b, float* c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : N_DEFAULT / 4;
  if (n <= 0) {
    fprintf(stderr, "usage: %s [n > 0]\n", argv[0]);
    return 1;
  }
  size_t bytes = (size_t)n * sizeof(float);
  std::vector<float> h_a(n), h_b(n), h_c(n);
  for (int i = 0; i < n; i++) {
    h_a[i] = (i % 1000) * 0.001f;
    h_b[i] = ((i * 7) % 1000) * 0.002f;
  }

  float *d_a, *d_b, *d_c;
  CHECK(cudaMalloc(&d_a, bytes));
  CHECK(cudaMalloc(&d_b, bytes));
  CHECK(cudaMalloc(&d_c, bytes));
  CHECK(cudaMemset(d_c, 0, bytes));
  CHECK(cudaMemcpy(d_a, h_a.data(), bytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_b, h_b.data(), bytes, cudaMemcpyHostToDevice));

  int blocks = (n + BLOCK - 1) / BLOCK;
  vec_add<<<blocks, BLOCK>>>(d_a, d_b, d_c, n);  // warm-up
  CHECK(cudaDeviceSynchronize());

  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  CHECK(cudaEventRecord(start));
  for (int rep = 0; rep < REPEAT; rep++) {
    vec_add<<<blocks, BLOCK>>>(d_a, d_b, d_c, n);
  }
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  CHECK(cudaMemcpy(h_c.data(), d_c, bytes, cudaMemcpyDeviceToHost));

  int errors = 0;
  double checksum = 0.0;
  for (int i = 0; i < n; i++) {
    float expected = h_a[i] + h_b[i];
    if (fabsf(h_c[i] - expected) > 1e-6f) errors++;
    checksum += h_c[i];
  }
  printf("n = %d, repeats = %d\n", n, REPEAT);
  printf("time per launch: %.4f ms\n", ms / REPEAT);
  printf("bandwidth: %.1f GB/s\n", 3.0 * bytes * REPEAT / (ms * 1e6));
  printf("checksum = %.6e\n", checksum);
  if (errors == 0)
    printf("PASS\n");
  else
    printf("FAIL: %d mismatches\n", errors);

  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  CHECK(cudaFree(d_a));
  CHECK(cudaFree(d_b));
  CHECK(cudaFree(d_c));
  return errors == 0 ? 0 : 1;
}
