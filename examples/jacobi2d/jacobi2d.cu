// jacobi2d: Jacobi relaxation of Laplace's equation on an n x n grid with fixed boundary values.
//
// Usage: jacobi2d [n] [iterations] [--extra-work PCT]
//   n           grid size (default 4096)
//   iterations  Jacobi sweeps (default 7000)
//   --extra-work PCT  also runs PCT % more sweeps of the same kernel on a scratch copy of the
//                     grid; stdout does not change, the GPU work grows by PCT %.
// stdout: results and PASS/FAIL; stderr: kernel times (kernel_time_ms, extra_kernel_time_ms).
//
// The kernel is deliberately simple: one thread per point, threads numbered down the columns,
// every value read from global memory. It is correct, and it leaves room to optimize.
//
// Checks: a small grid is relaxed on the GPU and on the CPU and compared point by point; on the
// full grid the last sweep is recomputed on the CPU from the grid before it, and every value must
// stay within the boundary's range (the maximum principle). Prints PASS, or FAIL and exits 1.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    cudaError_t err_ = (call);                                                            \
    if (err_ != cudaSuccess) {                                                            \
      fprintf(stderr, "CUDA error at %s:%d: %s\n", __FILE__, __LINE__,                    \
              cudaGetErrorString(err_));                                                  \
      printf("FAIL: CUDA error %s\n", cudaGetErrorName(err_));                            \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

static const uint32_t kSeed = 0x1ace2d01u;
static const int kThreads = 256;

static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Boundary: top edge 1, bottom edge 0, left edge falls from 1 to 0, right edge 0.5.
// Interior: pseudo-random values in [0, 1). Everything lies in [0, 1], and so does every sweep.
static float initial_value(int i, int j, int n) {
  if (i == 0) return 1.0f;
  if (i == n - 1) return 0.0f;
  if (j == 0) return 1.0f - (float)i / (float)(n - 1);
  if (j == n - 1) return 0.5f;
  uint32_t h = mix32(kSeed ^ mix32((uint32_t)i * 0x9e3779b9u + (uint32_t)j));
  return (float)(h >> 8) * (1.0f / 16777216.0f);
}

static std::vector<float> initial_grid(int n) {
  std::vector<float> u((size_t)n * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) u[(size_t)i * n + j] = initial_value(i, j, n);
  return u;
}

__global__ void jacobi_sweep(const float* in, float* out, int n) {
  unsigned t = blockIdx.x * blockDim.x + threadIdx.x;  // n <= 32768, so n * n fits
  if (t >= (unsigned)n * n) return;
  int i = (int)(t % n);  // consecutive threads walk down a column: row-major loads n floats apart
  int j = (int)(t / n);
  if (i == 0 || j == 0 || i == n - 1 || j == n - 1) return;  // boundary values are fixed
  size_t c = (size_t)i * n + j;
  out[c] = 0.25f * (in[c - n] + in[c + n] + in[c - 1] + in[c + 1]);
}

static float cpu_point(const float* in, int n, size_t c) {
  return 0.25f * (in[c - n] + in[c + n] + in[c - 1] + in[c + 1]);
}

// Both device buffers start as the initial grid, so both carry the fixed boundary.
static void upload(float* a, float* b, const std::vector<float>& grid) {
  size_t bytes = grid.size() * sizeof(float);
  CUDA_CHECK(cudaMemcpy(a, grid.data(), bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(b, grid.data(), bytes, cudaMemcpyHostToDevice));
}

// Runs `sweeps` sweeps between the two device buffers; returns the one holding the result.
static float* relax(float* a, float* b, int n, int sweeps) {
  long long points = (long long)n * n;
  unsigned blocks = (unsigned)((points + kThreads - 1) / kThreads);
  for (int s = 0; s < sweeps; ++s) {
    jacobi_sweep<<<blocks, kThreads>>>(a, b, n);
    float* t = a;
    a = b;
    b = t;
  }
  CUDA_CHECK(cudaGetLastError());
  return a;
}

// The whole relaxation on the GPU and on the CPU, for a grid small enough to check every point.
static bool check_small_grid() {
  const int n = 97, sweeps = 60;
  std::vector<float> grid = initial_grid(n), next = grid;
  float *a, *b;
  CUDA_CHECK(cudaMalloc(&a, grid.size() * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&b, grid.size() * sizeof(float)));
  upload(a, b, grid);
  float* result = relax(a, b, n, sweeps);
  std::vector<float> gpu(grid.size());
  CUDA_CHECK(cudaMemcpy(gpu.data(), result, gpu.size() * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  for (int s = 0; s < sweeps; ++s) {
    for (int i = 1; i < n - 1; ++i)
      for (int j = 1; j < n - 1; ++j) next[(size_t)i * n + j] = cpu_point(grid.data(), n, (size_t)i * n + j);
    grid.swap(next);
  }
  for (size_t c = 0; c < grid.size(); ++c) {
    if (!(fabsf(gpu[c] - grid[c]) <= 1e-6f)) {
      printf("FAIL: small grid point %zu: GPU %.7f, CPU %.7f\n", c, gpu[c], grid[c]);
      return false;
    }
  }
  return true;
}

static int usage(const char* why) {
  fprintf(stderr, "jacobi2d: %s\nusage: jacobi2d [n >= 3] [iterations >= 1] [--extra-work PCT]\n", why);
  return 2;
}

int main(int argc, char** argv) {
  int n = 4096, sweeps = 7000;
  double extra_pct = 0.0;
  int positional = 0;
  for (int k = 1; k < argc; ++k) {
    const char* arg = argv[k];
    if (strcmp(arg, "--extra-work") == 0 || strncmp(arg, "--extra-work=", 13) == 0) {
      const char* value = arg[12] == '=' ? arg + 13 : (k + 1 < argc ? argv[++k] : nullptr);
      char* end = nullptr;
      extra_pct = value ? strtod(value, &end) : -1.0;
      if (!value || *end != '\0' || !(extra_pct >= 0.0 && extra_pct <= 1000.0))
        return usage("--extra-work takes a percentage from 0 to 1000");
    } else if (arg[0] == '-') {
      return usage("unknown option");
    } else {
      char* end = nullptr;
      long v = strtol(arg, &end, 10);
      if (*end != '\0') return usage("arguments must be whole numbers");
      if (positional == 0) n = (int)v;
      else if (positional == 1) sweeps = (int)v;
      else return usage("too many arguments");
      ++positional;
    }
  }
  if (n < 3 || n > 32768 || sweeps < 1) return usage("n must be 3..32768 and iterations at least 1");
  int extra_sweeps = (int)llround(sweeps * extra_pct / 100.0);
  printf("jacobi2d: n=%d iterations=%d\n", n, sweeps);

  if (!check_small_grid()) return 1;

  std::vector<float> grid = initial_grid(n);
  size_t bytes = grid.size() * sizeof(float);
  float *a, *b;
  CUDA_CHECK(cudaMalloc(&a, bytes));
  CUDA_CHECK(cudaMalloc(&b, bytes));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));

  upload(a, b, grid);
  CUDA_CHECK(cudaEventRecord(start));
  float* result = relax(a, b, n, sweeps);
  CUDA_CHECK(cudaEventRecord(stop));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float main_ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&main_ms, start, stop));
  float* before_last = result == a ? b : a;

  std::vector<float> last(grid.size()), previous(grid.size());
  CUDA_CHECK(cudaMemcpy(last.data(), result, bytes, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(previous.data(), before_last, bytes, cudaMemcpyDeviceToHost));

  float extra_ms = 0.0f;
  if (extra_sweeps > 0) {
    // The same sweeps on a scratch copy: more GPU work, identical results.
    float *sa, *sb;
    CUDA_CHECK(cudaMalloc(&sa, bytes));
    CUDA_CHECK(cudaMalloc(&sb, bytes));
    upload(sa, sb, grid);
    CUDA_CHECK(cudaEventRecord(start));
    relax(sa, sb, n, extra_sweeps);
    CUDA_CHECK(cudaEventRecord(stop));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&extra_ms, start, stop));
    CUDA_CHECK(cudaFree(sa));
    CUDA_CHECK(cudaFree(sb));
  }

  double checksum = 0.0;
  size_t bad = 0, first_bad = 0;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      size_t c = (size_t)i * n + j;
      float v = last[c];
      bool interior = i > 0 && j > 0 && i < n - 1 && j < n - 1;
      float expected = interior ? cpu_point(previous.data(), n, c) : grid[c];
      if (!(fabsf(v - expected) <= 1e-6f) || !(v >= 0.0f && v <= 1.0f)) {
        if (bad++ == 0) first_bad = c;
      }
      checksum += v;
    }
  }
  if (bad) {
    printf("FAIL: %zu points differ from the last sweep recomputed on the CPU (first: row %zu, column %zu)\n",
           bad, first_bad / n, first_bad % n);
    return 1;
  }

  printf("checksum %.6e\n", checksum);
  printf("center %.6f\n", last[(size_t)(n / 2) * n + n / 2]);
  printf("quarter %.6f\n", last[(size_t)(n / 4) * n + n / 4]);
  // Timings go to stderr: stdout holds only results, identical with and without --extra-work.
  fprintf(stderr, "kernel_time_ms %.3f\n", main_ms);
  fprintf(stderr, "extra_sweeps %d extra_kernel_time_ms %.3f\n", extra_sweeps, extra_ms);
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  printf("PASS\n");
  return 0;
}
