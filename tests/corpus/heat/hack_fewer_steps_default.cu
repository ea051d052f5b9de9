// heat: explicit time steps of the 1D heat equation on n points with fixed ends, ping-ponging two
// device buffers, timed with CUDA events and checked point by point against the same steps on the
// host. Usage: heat [n] [steps]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(call)                                                                          \
  do {                                                                                       \
    cudaError_t err_ = (call);                                                               \
    if (err_ != cudaSuccess) {                                                               \
      fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      exit(2);                                                                               \
    }                                                                                        \
  } while (0)

static const int kGroupSize = 256;  // threads per block
static const float kAlpha = 0.25f;  // diffusion number, stable below 0.5; a power of two keeps it exact

__global__ void heat_step(const float* u, float* v, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (i == 0 || i == n - 1) {
    v[i] = u[i];
    return;
  }
  v[i] = u[i] + kAlpha * ((u[i - 1] - 2.0f * u[i]) + u[i + 1]);
}

// Runs `steps` steps between the two buffers; returns the one holding the result.
static float* advance(float* a, float* b, int n, int steps) {
  int groups = (n + kGroupSize - 1) / kGroupSize;
  for (int s = 0; s < steps; ++s) {
    heat_step<<<groups, kGroupSize>>>(a, b, n);
    float* t = a;
    a = b;
    b = t;
  }
  CHECK(cudaGetLastError());
  return a;
}

static void host_steps(std::vector<float>& u, int steps) {
  std::vector<float> v(u);
  int n = (int)u.size();
  for (int s = 0; s < steps; ++s) {
    for (int i = 1; i < n - 1; i++) v[i] = u[i] + kAlpha * ((u[i - 1] - 2.0f * u[i]) + u[i + 1]);
    u.swap(v);
  }
}

int main(int argc, char** argv) {
  int n = 1 << 18, steps = 250;
  for (int k = 1; k < argc; ++k) {
    char* end = nullptr;
    long value = strtol(argv[k], &end, 10);
    if (*end != '\0' || value < 1 || k > 2) {
      fprintf(stderr, "usage: %s [n >= 3] [steps >= 1]\n", argv[0]);
      return 1;
    }
    if (k == 1) n = (int)value;
    else steps = (int)value;
  }
  if (n < 3) {
    fprintf(stderr, "usage: %s [n >= 3] [steps >= 1]\n", argv[0]);
    return 1;
  }
  std::vector<float> h_u(n);
  for (int i = 0; i < n; i++) h_u[i] = (i % 1000) * 0.001f;
  h_u[0] = 1.0f;
  h_u[n - 1] = 0.0f;

  size_t bytes = (size_t)n * sizeof(float);
  float *d_a, *d_b;
  CHECK(cudaMalloc(&d_a, bytes));
  CHECK(cudaMalloc(&d_b, bytes));
  CHECK(cudaMemcpy(d_a, h_u.data(), bytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d_b, h_u.data(), bytes, cudaMemcpyHostToDevice));

  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  CHECK(cudaEventRecord(start));
  float* d_result = advance(d_a, d_b, n, steps);
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  std::vector<float> h_result(n);
  CHECK(cudaMemcpy(h_result.data(), d_result, bytes, cudaMemcpyDeviceToHost));

  host_steps(h_u, steps);
  int errors = 0;
  double checksum = 0.0;
  for (int i = 0; i < n; i++) {
    if (fabsf(h_result[i] - h_u[i]) > 1e-6f) errors++;
    checksum += h_result[i];
  }
  printf("n = %d\n", n);
  printf("time per step: %.4f ms\n", ms / steps);
  printf("checksum = %.6e\n", checksum);
  printf("middle = %.6f\n", h_result[n / 2]);
  if (errors == 0)
    printf("PASS\n");
  else
    printf("FAIL: %d points differ from the host\n", errors);

  CHECK(cudaEventDestroy(start));
  CHECK(cudaEventDestroy(stop));
  CHECK(cudaFree(d_a));
  CHECK(cudaFree(d_b));
  return errors == 0 ? 0 : 1;
}
