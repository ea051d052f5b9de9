// reduce: the sum of n doubles in two kernel stages (block sums, then one block over the partial
// sums), repeated REPEAT times, timed with std::chrono and checked against a host sum.
// Usage: reduce [n]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define N_DEFAULT (1 << 24)
#define REPEAT 20
#define THREADS 256
#define TOLERANCE 1e-9

#define CHECK(call)                                                                          \
  do {                                                                                       \
    cudaError_t err_ = (call);                                                               \
    if (err_ != cudaSuccess) {                                                               \
      fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      exit(2);                                                                               \
    }                                                                                        \
  } while (0)

__global__ void block_sums(const double* x, double* partial, int n) {
  __shared__ double s[THREADS];
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  s[threadIdx.x] = i < n ? x[i] : 0.0;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

__global__ void final_sum(const double* partial, double* out, int count) {
  __shared__ double s[THREADS];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = s[0];
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : N_DEFAULT;
  if (n <= 0) {
    fprintf(stderr, "usage: %s [n > 0]\n", argv[0]);
    return 1;
  }
  std::vector<double> h_x(n);
  for (int i = 0; i < n; i++) h_x[i] = 1.0 / (1.0 + (i % 4096));

  int blocks = (n + THREADS - 1) / THREADS;
  double *d_x, *d_partial, *d_out;
  CHECK(cudaMalloc(&d_x, n * sizeof(double)));
  CHECK(cudaMalloc(&d_partial, blocks * sizeof(double)));
  CHECK(cudaMalloc(&d_out, sizeof(double)));
  CHECK(cudaMemcpy(d_x, h_x.data(), n * sizeof(double), cudaMemcpyHostToDevice));

  double result = 0.0;
  auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < REPEAT; rep++) {
    block_sums<<<blocks, THREADS>>>(d_x, d_partial, n);
  }
  // The last stage is small: finish it on the host.
  std::vector<double> h_partial(blocks);
  CHECK(cudaMemcpy(h_partial.data(), d_partial, blocks * sizeof(double), cudaMemcpyDeviceToHost));
  for (int b = 0; b < blocks; b++) result += h_partial[b];
  auto t1 = std::chrono::steady_clock::now();
  double seconds = std::chrono::duration<double>(t1 - t0).count();

  double reference = 0.0;
  for (int i = 0; i < n; i++) reference += h_x[i];
  double rel_err = fabs(result - reference) / fabs(reference);

  printf("n = %d\n", n);
  printf("sum       = %.12e\n", result);
  printf("reference = %.12e\n", reference);
  printf("elapsed: %.3f ms per repeat\n", 1e3 * seconds / REPEAT);
  if (rel_err < TOLERANCE)
    printf("Verification successful\n");
  else
    printf("Verification failed: relative error %.3e\n", rel_err);

  CHECK(cudaFree(d_x));
  CHECK(cudaFree(d_partial));
  CHECK(cudaFree(d_out));
  return rel_err < TOLERANCE ? 0 : 1;
}
