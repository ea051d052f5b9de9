// spmv: sparse matrix-vector product y = A x, with A in CSR form, repeated.
//
// Usage: spmv [rows] [repetitions]
//   rows         rows (and columns) of the square matrix (default 4194304)
//   repetitions  products computed (default 2500); each one overwrites y
//
// The matrix is generated from a fixed seed: row r holds 16 to 48 entries in columns near r
// (within 1024), values in [-1, 1). The kernel is the scalar CSR kernel: one thread per row, so
// the threads of a warp read entries that lie a row apart and finish at different times.
//
// Checks: sampled rows of y are recomputed on the CPU in double precision from the generating
// function (not from the GPU's copy of the matrix). Prints PASS, or FAIL and exits 1. Kernel time
// goes to stderr.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

static const uint32_t kSeed = 0x5a1e0c5du;
static const int kMinRowLength = 16;
static const int kMaxRowLength = 48;
static const int kBandwidth = 1024;
static const int kThreads = 256;
static const int kSampledRows = 4096;

__host__ __device__ inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

__host__ __device__ inline float unit_signed(uint32_t h) {  // [-1, 1)
  return (float)(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
}

__host__ __device__ inline int row_length(int row) {
  return kMinRowLength + (int)(mix32(kSeed ^ (uint32_t)row) % (kMaxRowLength - kMinRowLength + 1));
}

// Entry k of row `row`: its column (wrapping around the edges) and value.
__host__ __device__ inline void entry(int row, int k, int n, int* column, float* value) {
  uint32_t h = mix32(mix32(kSeed + (uint32_t)row * 0x9e3779b9u) ^ (uint32_t)k * 0x85ebca6bu);
  int offset = (int)(h % (2 * kBandwidth + 1)) - kBandwidth;
  int c = (row + offset) % n;
  *column = c < 0 ? c + n : c;
  *value = unit_signed(mix32(h ^ 0xc2b2ae35u));
}

__host__ __device__ inline float x_at(int j) { return unit_signed(mix32(kSeed ^ 0x27d4eb2fu ^ (uint32_t)j)); }

__global__ void fill_matrix(const int* row_start, int* columns, float* values, float* x, int n) {
  int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n) return;
  for (int p = row_start[row], k = 0; p < row_start[row + 1]; ++p, ++k) entry(row, k, n, &columns[p], &values[p]);
  x[row] = x_at(row);
}

__global__ void spmv_csr_scalar(const int* row_start, const int* columns, const float* values, const float* x,
                                float* y, int n) {
  int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= n) return;
  float sum = 0.0f;
  for (int p = row_start[row]; p < row_start[row + 1]; ++p) sum += values[p] * x[columns[p]];
  y[row] = sum;
}

static int usage(const char* why) {
  fprintf(stderr, "spmv: %s\nusage: spmv [rows >= 1] [repetitions >= 1]\n", why);
  return 2;
}

int main(int argc, char** argv) {
  long values_in[2] = {1 << 22, 2500};
  if (argc > 3) return usage("too many arguments");
  for (int k = 1; k < argc; ++k) {
    char* end = nullptr;
    values_in[k - 1] = strtol(argv[k], &end, 10);
    if (*end != '\0') return usage("arguments must be whole numbers");
  }
  if (values_in[0] < 1 || values_in[0] > (1 << 25) || values_in[1] < 1 || values_in[1] > 1000000)
    return usage("rows must be 1..33554432 and repetitions 1..1000000");
  const int n = (int)values_in[0], repetitions = (int)values_in[1];

  std::vector<int> row_start(n + 1);
  row_start[0] = 0;
  for (int r = 0; r < n; ++r) row_start[r + 1] = row_start[r] + row_length(r);
  const long long nnz = row_start[n];
  printf("spmv: rows=%d nonzeros=%lld repetitions=%d\n", n, nnz, repetitions);

  int *d_row_start, *d_columns;
  float *d_values, *d_x, *d_y;
  CUDA_CHECK(cudaMalloc(&d_row_start, (n + 1) * sizeof(int)));
  CUDA_CHECK(cudaMalloc(&d_columns, nnz * sizeof(int)));
  CUDA_CHECK(cudaMalloc(&d_values, nnz * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&d_x, n * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&d_y, n * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(d_row_start, row_start.data(), (n + 1) * sizeof(int), cudaMemcpyHostToDevice));
  const unsigned blocks = (unsigned)((n + kThreads - 1) / kThreads);
  fill_matrix<<<blocks, kThreads>>>(d_row_start, d_columns, d_values, d_x, n);
  CUDA_CHECK(cudaGetLastError());

  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start));
  for (int r = 0; r < repetitions; ++r)
    spmv_csr_scalar<<<blocks, kThreads>>>(d_row_start, d_columns, d_values, d_x, d_y, n);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaEventRecord(stop));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float kernel_ms = 0.0f;
  CUDA_CHECK(cudaEventElapsedTime(&kernel_ms, start, stop));

  std::vector<float> y(n);
  CUDA_CHECK(cudaMemcpy(y.data(), d_y, n * sizeof(float), cudaMemcpyDeviceToHost));

  // Sampled rows, first and last included, from the generating function in double precision.
  const int samples = n < kSampledRows ? n : kSampledRows;
  for (int k = 0; k < samples; ++k) {
    int row = samples == 1 ? 0 : (int)(((long long)k * (n - 1)) / (samples - 1));
    double expected = 0.0, magnitude = 0.0;
    for (int e = 0; e < row_length(row); ++e) {
      int column;
      float value;
      entry(row, e, n, &column, &value);
      double term = (double)value * (double)x_at(column);
      expected += term;
      magnitude += fabs(term);
    }
    // Single-precision sums of up to 48 terms: rounding stays well below 1e-5 of the terms' size.
    if (!(fabs(y[row] - expected) <= 1e-5 * magnitude + 1e-30)) {
      printf("FAIL: row %d: GPU %.7e, CPU %.7e\n", row, y[row], expected);
      return 1;
    }
  }

  double abs_sum = 0.0, sq_sum = 0.0, max_abs = 0.0;
  for (int r = 0; r < n; ++r) {
    if (!std::isfinite(y[r])) {
      printf("FAIL: y[%d] is not finite\n", r);
      return 1;
    }
    abs_sum += fabs(y[r]);
    max_abs = fmax(max_abs, fabs(y[r]));
    sq_sum += (double)y[r] * y[r];
  }
  printf("sum_abs_y %.6e\n", abs_sum);
  printf("norm_y %.6e\n", sqrt(sq_sum));
  printf("max_abs_y %.6e\n", max_abs);
  fprintf(stderr, "kernel_time_ms %.3f\n", kernel_ms);
  CUDA_CHECK(cudaFree(d_row_start));
  CUDA_CHECK(cudaFree(d_columns));
  CUDA_CHECK(cudaFree(d_values));
  CUDA_CHECK(cudaFree(d_x));
  CUDA_CHECK(cudaFree(d_y));
  printf("PASS\n");
  return 0;
}
