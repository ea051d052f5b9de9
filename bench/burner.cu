// A calibrated amount of extra GPU work, appended to a program's run for known-answer tests:
// `wattson_burner ITERATIONS` runs an FMA loop on every SM, ITERATIONS times, then exits.
#include <cstdio>
#include <cstdlib>

__global__ void burn(float* out, int inner)
{
    float a = 1.0f + threadIdx.x * 1e-7f, b = a * 0.5f, c = a * 0.25f, d = a * 0.125f;
    for (int i = 0; i < inner; ++i) {
        a = fmaf(a, 0.9999999f, 1e-7f); b = fmaf(b, 0.9999999f, 1e-7f);
        c = fmaf(c, 0.9999999f, 1e-7f); d = fmaf(d, 0.9999999f, 1e-7f);
    }
    out[blockIdx.x * blockDim.x + threadIdx.x] = a + b + c + d;
}

int main(int argc, char** argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 1;
    int blocks = 132 * 8, threads = 256;
    float* out = nullptr;
    if (cudaMalloc(&out, sizeof(float) * blocks * threads) != cudaSuccess) return 1;
    for (long i = 0; i < iterations; ++i) burn<<<blocks, threads>>>(out, 4096);
    if (cudaDeviceSynchronize() != cudaSuccess) return 1;
    cudaFree(out);
    return 0;
}
