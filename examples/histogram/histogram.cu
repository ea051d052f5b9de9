// histogram: a 1024-bin histogram and a sum/maximum reduction of generated integer data.
//
// Usage: histogram [values] [passes]
//   values  number of input values (default 67108864)
//   passes  times the histogram and reduction are taken over the data (default 300); counts and
//           sums accumulate over the passes
//
// The data are generated on the GPU from a fixed seed: each value is the sum of two uniform 12-bit
// numbers (0..8190, a triangular distribution), so the middle bins are the busiest. Every value
// adds 1 to its bin with an atomic in global memory, and every thread adds its share of the
// reduction with global atomics: correct, and contended.
//
// Checks: the histogram and reduction of the first values are recomputed on the CPU and must match
// exactly; for the full data, the counts must add up to values x passes, the sum must lie within
// the bounds the bins give, and the maximum must fall in the last non-empty bin. Prints PASS, or
// FAIL and exits 1. Kernel time goes to stderr.

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

static const uint32_t kSeed = 0x4157a9e1u;
static const int kBins = 1024;
static const int kBinShift = 3;  // values 0..8190 -> bins 0..1023
static const int kThreads = 256;
static const size_t kCheckedValues = 1 << 20;

__host__ __device__ inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

__host__ __device__ inline uint32_t value_at(size_t i) {
  uint32_t lo = (uint32_t)i, hi = (uint32_t)(i >> 32);
  uint32_t h = mix32(kSeed ^ mix32(lo ^ mix32(hi + 0x9e3779b9u)));
  return (h >> 20) + (mix32(h ^ 0x85ebca6bu) >> 20);
}

__global__ void generate(uint32_t* values, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) values[i] = value_at(i);
}

__global__ void histogram_global(const uint32_t* values, size_t n, unsigned int* bins) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) atomicAdd(&bins[values[i] >> kBinShift], 1u);
}

__global__ void sum_and_max(const uint32_t* values, size_t n, unsigned long long* sum, unsigned int* max) {
  size_t stride = (size_t)gridDim.x * blockDim.x;
  unsigned long long s = 0;
  unsigned int m = 0;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint32_t v = values[i];
    s += v;
    m = v > m ? v : m;
  }
  atomicAdd(sum, s);
  atomicMax(max, m);
}

struct Result {
  std::vector<unsigned int> bins;
  unsigned long long sum = 0;
  unsigned int max = 0;
};

// Histogram and reduction of values[0, n), `passes` times, accumulated.
static Result analyse(const uint32_t* values, size_t n, int passes, int reduce_blocks, float* kernel_ms) {
  unsigned int *bins, *max;
  unsigned long long* sum;
  CUDA_CHECK(cudaMalloc(&bins, kBins * sizeof(unsigned int)));
  CUDA_CHECK(cudaMalloc(&sum, sizeof(unsigned long long)));
  CUDA_CHECK(cudaMalloc(&max, sizeof(unsigned int)));
  CUDA_CHECK(cudaMemset(bins, 0, kBins * sizeof(unsigned int)));
  CUDA_CHECK(cudaMemset(sum, 0, sizeof(unsigned long long)));
  CUDA_CHECK(cudaMemset(max, 0, sizeof(unsigned int)));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  unsigned blocks = (unsigned)((n + kThreads - 1) / kThreads);
  CUDA_CHECK(cudaEventRecord(start));
  for (int p = 0; p < passes; ++p) {
    histogram_global<<<blocks, kThreads>>>(values, n, bins);
    sum_and_max<<<reduce_blocks, kThreads>>>(values, n, sum, max);
  }
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaEventRecord(stop));
  CUDA_CHECK(cudaEventSynchronize(stop));
  CUDA_CHECK(cudaEventElapsedTime(kernel_ms, start, stop));
  Result r;
  r.bins.resize(kBins);
  CUDA_CHECK(cudaMemcpy(r.bins.data(), bins, kBins * sizeof(unsigned int), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(&r.sum, sum, sizeof(r.sum), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(&r.max, max, sizeof(r.max), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(bins));
  CUDA_CHECK(cudaFree(sum));
  CUDA_CHECK(cudaFree(max));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return r;
}

// The first values, histogrammed once on the GPU and on the CPU: everything must match exactly.
static bool check_prefix(const uint32_t* values, size_t n, int reduce_blocks) {
  size_t m = n < kCheckedValues ? n : kCheckedValues;
  float ms;
  Result gpu = analyse(values, m, 1, reduce_blocks, &ms);
  Result cpu;
  cpu.bins.assign(kBins, 0);
  for (size_t i = 0; i < m; ++i) {
    uint32_t v = value_at(i);
    cpu.bins[v >> kBinShift] += 1;
    cpu.sum += v;
    cpu.max = v > cpu.max ? v : cpu.max;
  }
  for (int b = 0; b < kBins; ++b) {
    if (gpu.bins[b] != cpu.bins[b]) {
      printf("FAIL: first %zu values, bin %d: GPU %u, CPU %u\n", m, b, gpu.bins[b], cpu.bins[b]);
      return false;
    }
  }
  if (gpu.sum != cpu.sum || gpu.max != cpu.max) {
    printf("FAIL: first %zu values: GPU sum %llu max %u, CPU sum %llu max %u\n", m, gpu.sum, gpu.max, cpu.sum,
           cpu.max);
    return false;
  }
  return true;
}

// What the bins alone imply about the full result.
static bool check_invariants(const Result& r, size_t n, int passes) {
  unsigned long long count = 0, low = 0, high = 0;
  int last = -1;
  for (int b = 0; b < kBins; ++b) {
    count += r.bins[b];
    low += (unsigned long long)r.bins[b] * ((unsigned long long)b << kBinShift);
    high += (unsigned long long)r.bins[b] * (((unsigned long long)b << kBinShift) + (1u << kBinShift) - 1);
    if (r.bins[b]) last = b;
  }
  if (count != (unsigned long long)n * passes) {
    printf("FAIL: the bins hold %llu values, expected %llu\n", count, (unsigned long long)n * passes);
    return false;
  }
  if (r.sum < low || r.sum > high) {
    printf("FAIL: sum %llu lies outside [%llu, %llu], the range the bins allow\n", r.sum, low, high);
    return false;
  }
  if ((int)(r.max >> kBinShift) != last) {
    printf("FAIL: maximum %u is not in the last non-empty bin %d\n", r.max, last);
    return false;
  }
  return true;
}

static int usage(const char* why) {
  fprintf(stderr, "histogram: %s\nusage: histogram [values >= 1] [passes >= 1]\n", why);
  return 2;
}

int main(int argc, char** argv) {
  long long args[2] = {1ll << 26, 300};
  if (argc > 3) return usage("too many arguments");
  for (int k = 1; k < argc; ++k) {
    char* end = nullptr;
    args[k - 1] = strtoll(argv[k], &end, 10);
    if (*end != '\0') return usage("arguments must be whole numbers");
  }
  if (args[0] < 1 || args[0] > (1ll << 30) || args[1] < 1 || args[1] > 4096)
    return usage("values must be 1..1073741824 and passes 1..4096");
  if (args[0] * args[1] > (1ll << 40)) return usage("values x passes must stay below 2^40 (bin counts are 32-bit)");
  const size_t n = (size_t)args[0];
  const int passes = (int)args[1];
  printf("histogram: values=%zu passes=%d bins=%d\n", n, passes, kBins);

  int device, sms;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int reduce_blocks = sms * 4;

  uint32_t* values;
  CUDA_CHECK(cudaMalloc(&values, n * sizeof(uint32_t)));
  generate<<<(unsigned)((n + kThreads - 1) / kThreads), kThreads>>>(values, n);
  CUDA_CHECK(cudaGetLastError());

  if (!check_prefix(values, n, reduce_blocks)) return 1;
  float kernel_ms = 0.0f;
  Result r = analyse(values, n, passes, reduce_blocks, &kernel_ms);
  CUDA_CHECK(cudaFree(values));
  if (!check_invariants(r, n, passes)) return 1;

  unsigned long long weighted = 0;
  int mode = 0;
  for (int b = 0; b < kBins; ++b) {
    weighted += (unsigned long long)r.bins[b] * (unsigned long long)(b + 1);
    if (r.bins[b] > r.bins[mode]) mode = b;
  }
  printf("sum %llu\n", r.sum);
  printf("max %u\n", r.max);
  printf("mean %.6f\n", (double)r.sum / ((double)n * passes));
  printf("busiest_bin %d count %u\n", mode, r.bins[mode]);
  printf("bin_checksum %llu\n", weighted);
  fprintf(stderr, "kernel_time_ms %.3f\n", kernel_ms);
  printf("PASS\n");
  return 0;
}
