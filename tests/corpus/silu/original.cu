// silu: y = x * sigmoid(x) = x / (1 + exp(-x)) over n floats, repeated REPEAT times, timed with CUDA
// events. Writes a 1024-value sample of y to silu.bin and checks y against the host.
// Usage: silu [n]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define N_DEFAULT (1 << 22)
#define REPEAT 50
#define BLOCK 256
#define SAMPLES 1024

#define CHECK(call)                                                                          \
  do {                                                                                       \
    cudaError_t err_ = (call);                                                               \
    if (err_ != cudaSuccess) {                                                               \
      fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      exit(2);                                                                               \
    }                                                                                        \
  } while (0)

__global__ void silu(const float* x, float* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i] / (1.0f + expf(-x[i]));
}

int main(int argc, char** argv) {
  int n = argc > 1 ? atoi(argv[1]) : N_DEFAULT;
  if (n < SAMPLES) {
    fprintf(stderr, "usage: %s [n >= %d]\n", argv[0], SAMPLES);
    return 1;
  }
  std::vector<float> h_x(n), h_y(n);
  for (int i = 0; i < n; i++) h_x[i] = -8.0f + 16.0f * (i % 10007) / 10007.0f;

  float *d_x, *d_y;
  CHECK(cudaMalloc(&d_x, n * sizeof(float)));
  CHECK(cudaMalloc(&d_y, n * sizeof(float)));
  CHECK(cudaMemset(d_y, 0, n * sizeof(float)));
  CHECK(cudaMemcpy(d_x, h_x.data(), n * sizeof(float), cudaMemcpyHostToDevice));

  int blocks = (n + BLOCK - 1) / BLOCK;
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  CHECK(cudaEventRecord(start));
  for (int rep = 0; rep < REPEAT; rep++) silu<<<blocks, BLOCK>>>(d_x, d_y, n);
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  CHECK(cudaMemcpy(h_y.data(), d_y, n * sizeof(float), cudaMemcpyDeviceToHost));

  std::vector<float> sample(SAMPLES);
  for (int k = 0; k < SAMPLES; k++) sample[k] = h_y[(long)k * n / SAMPLES];
  FILE* out = fopen("silu.bin", "wb");
  if (!out || fwrite(sample.data(), sizeof(float), SAMPLES, out) != SAMPLES) {
    fprintf(stderr, "cannot write silu.bin\n");
    return 3;
  }
  fclose(out);

  double mean = 0.0, worst = 0.0;
  for (int i = 0; i < n; i++) {
    double expected = h_x[i] / (1.0 + exp(-(double)h_x[i]));
    worst = fmax(worst, fabs(h_y[i] - expected) / fmax(fabs(expected), 1e-3));
    mean += h_y[i];
  }
  mean /= n;
  printf("n = %d\n", n);
  printf("kernel time: %.4f ms\n", ms / REPEAT);
  printf("mean = %.8e\n", mean);
  if (worst < 1e-5)
    printf("PASS (worst relative error %.2e)\n", worst);
  else
    printf("FAIL (worst relative error %.2e)\n", worst);
  return worst < 1e-5 ? 0 : 1;
}
