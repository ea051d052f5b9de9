// nbody: all-pairs gravitational n-body simulation in single precision.
//
// Usage: nbody [bodies] [steps]
//   bodies  number of bodies (default 65536)
//   steps   time steps (default 300)
//
// Each step computes every body's acceleration from all others (softened gravity, G = 1), then
// advances velocities and positions (semi-implicit Euler). One thread per body walks all bodies
// from global memory and divides by an IEEE square root: correct, FMA-heavy, and slower than it
// needs to be.
//
// Checks: a small system is simulated on the GPU and in double precision on the CPU and compared;
// for the full system, the last step of a sample of bodies is recomputed on the CPU from the state
// before it. Prints PASS, or FAIL and exits 1. Kernel time goes to stderr.

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

static const uint32_t kSeed = 0x0b0d1e55u;
static const int kThreads = 256;
static const float kDt = 0.001f;
static const float kSoftening2 = 0.01f;  // softening length 0.1: close pairs stay finite

static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

static float unit(uint32_t index, uint32_t stream) {  // [0, 1)
  return (float)(mix32(kSeed ^ mix32(index * 8u + stream)) >> 8) * (1.0f / 16777216.0f);
}

// Positions in the cube [-1, 1)^3, small random velocities, masses summing to about 1 (in .w).
static void initial_state(int n, std::vector<float4>& pos, std::vector<float4>& vel) {
  pos.resize(n);
  vel.resize(n);
  for (int i = 0; i < n; ++i) {
    float mass = (0.5f + unit(i, 3)) / (float)n;
    pos[i] = make_float4(2.0f * unit(i, 0) - 1.0f, 2.0f * unit(i, 1) - 1.0f, 2.0f * unit(i, 2) - 1.0f, mass);
    vel[i] = make_float4(0.1f * (unit(i, 4) - 0.5f), 0.1f * (unit(i, 5) - 0.5f), 0.1f * (unit(i, 6) - 0.5f), 0.0f);
  }
}

__global__ void nbody_step(const float4* pos, const float4* vel, float4* pos_out, float4* vel_out, int n,
                           float dt, float softening2) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float4 p = pos[i];
  float ax = 0.0f, ay = 0.0f, az = 0.0f;
  for (int j = 0; j < n; ++j) {
    float4 q = pos[j];
    float dx = q.x - p.x, dy = q.y - p.y, dz = q.z - p.z;
    float d2 = dx * dx + dy * dy + dz * dz + softening2;
    float inv_d = 1.0f / sqrtf(d2);
    float s = q.w * inv_d * inv_d * inv_d;
    ax += dx * s;
    ay += dy * s;
    az += dz * s;
  }
  float4 v = vel[i];
  v.x += ax * dt;
  v.y += ay * dt;
  v.z += az * dt;
  vel_out[i] = v;
  pos_out[i] = make_float4(p.x + v.x * dt, p.y + v.y * dt, p.z + v.z * dt, p.w);
}

struct Simulation {
  std::vector<float4> pos, vel;            // after the last step
  std::vector<float4> prev_pos, prev_vel;  // before the last step
  float kernel_ms = 0.0f;
};

static Simulation simulate(int n, int steps) {
  Simulation sim;
  initial_state(n, sim.pos, sim.vel);
  size_t bytes = (size_t)n * sizeof(float4);
  float4 *pos[2], *vel[2];
  for (int k = 0; k < 2; ++k) {
    CUDA_CHECK(cudaMalloc(&pos[k], bytes));
    CUDA_CHECK(cudaMalloc(&vel[k], bytes));
  }
  CUDA_CHECK(cudaMemcpy(pos[0], sim.pos.data(), bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(vel[0], sim.vel.data(), bytes, cudaMemcpyHostToDevice));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  unsigned blocks = (unsigned)((n + kThreads - 1) / kThreads);
  CUDA_CHECK(cudaEventRecord(start));
  for (int s = 0; s < steps; ++s) {
    int in = s % 2, out = 1 - in;
    nbody_step<<<blocks, kThreads>>>(pos[in], vel[in], pos[out], vel[out], n, kDt, kSoftening2);
  }
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaEventRecord(stop));
  CUDA_CHECK(cudaEventSynchronize(stop));
  CUDA_CHECK(cudaEventElapsedTime(&sim.kernel_ms, start, stop));
  int last = steps % 2, before = 1 - last;
  sim.prev_pos.resize(n);
  sim.prev_vel.resize(n);
  CUDA_CHECK(cudaMemcpy(sim.pos.data(), pos[last], bytes, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(sim.vel.data(), vel[last], bytes, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(sim.prev_pos.data(), pos[before], bytes, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(sim.prev_vel.data(), vel[before], bytes, cudaMemcpyDeviceToHost));
  for (int k = 0; k < 2; ++k) {
    CUDA_CHECK(cudaFree(pos[k]));
    CUDA_CHECK(cudaFree(vel[k]));
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return sim;
}

// Acceleration of body i in double precision, and the sum of the magnitudes of its terms (the
// scale that single-precision rounding errors are proportional to).
static void cpu_acceleration(const std::vector<float4>& pos, int i, double acc[3], double* term_sum) {
  acc[0] = acc[1] = acc[2] = 0.0;
  *term_sum = 0.0;
  const float4 p = pos[i];
  for (size_t j = 0; j < pos.size(); ++j) {
    double dx = (double)pos[j].x - p.x, dy = (double)pos[j].y - p.y, dz = (double)pos[j].z - p.z;
    double d2 = dx * dx + dy * dy + dz * dz + kSoftening2;
    double s = pos[j].w / (d2 * sqrt(d2));
    acc[0] += dx * s;
    acc[1] += dy * s;
    acc[2] += dz * s;
    *term_sum += sqrt(d2 - kSoftening2) * s;
  }
}

// The whole simulation of a small system, on the GPU and in double precision on the CPU.
static bool check_small_system() {
  const int n = 1000, steps = 10;
  Simulation gpu = simulate(n, steps);
  std::vector<float4> pos, vel;
  initial_state(n, pos, vel);
  std::vector<double> x(3 * n), v(3 * n);
  for (int i = 0; i < n; ++i) {
    x[3 * i] = pos[i].x, x[3 * i + 1] = pos[i].y, x[3 * i + 2] = pos[i].z;
    v[3 * i] = vel[i].x, v[3 * i + 1] = vel[i].y, v[3 * i + 2] = vel[i].z;
  }
  std::vector<double> a(3 * n);
  for (int s = 0; s < steps; ++s) {
    for (int i = 0; i < n; ++i) {
      double ax = 0, ay = 0, az = 0;
      for (int j = 0; j < n; ++j) {
        double dx = x[3 * j] - x[3 * i], dy = x[3 * j + 1] - x[3 * i + 1], dz = x[3 * j + 2] - x[3 * i + 2];
        double d2 = dx * dx + dy * dy + dz * dz + kSoftening2;
        double f = pos[j].w / (d2 * sqrt(d2));
        ax += dx * f, ay += dy * f, az += dz * f;
      }
      a[3 * i] = ax, a[3 * i + 1] = ay, a[3 * i + 2] = az;
    }
    for (int k = 0; k < 3 * n; ++k) {
      v[k] += a[k] * kDt;
      x[k] += v[k] * kDt;
    }
  }
  for (int i = 0; i < n; ++i) {
    const float gp[3] = {gpu.pos[i].x, gpu.pos[i].y, gpu.pos[i].z};
    const float gv[3] = {gpu.vel[i].x, gpu.vel[i].y, gpu.vel[i].z};
    for (int d = 0; d < 3; ++d) {
      // Ten steps of single-precision rounding stay far below these (about 3e-7 and 2e-8).
      if (!(fabs(gp[d] - x[3 * i + d]) <= 4e-6) || !(fabs(gv[d] - v[3 * i + d]) <= 2e-7)) {
        printf("FAIL: small system, body %d: GPU position %.7f velocity %.7f, CPU %.7f %.7f\n", i, gp[d], gv[d],
               x[3 * i + d], v[3 * i + d]);
        return false;
      }
    }
  }
  return true;
}

// The last step of sampled bodies: velocity change against the CPU's acceleration, then position.
static bool check_last_step(const Simulation& sim) {
  const int n = (int)sim.pos.size();
  const int samples = n < 64 ? n : 64;
  const double eps = 1.2e-7;  // float's unit roundoff, with margin
  for (int k = 0; k < samples; ++k) {
    int i = (int)(((long long)k * n) / samples);
    double acc[3], term_sum;
    cpu_acceleration(sim.prev_pos, i, acc, &term_sum);
    const float v0[3] = {sim.prev_vel[i].x, sim.prev_vel[i].y, sim.prev_vel[i].z};
    const float v1[3] = {sim.vel[i].x, sim.vel[i].y, sim.vel[i].z};
    const float p0[3] = {sim.prev_pos[i].x, sim.prev_pos[i].y, sim.prev_pos[i].z};
    const float p1[3] = {sim.pos[i].x, sim.pos[i].y, sim.pos[i].z};
    for (int d = 0; d < 3; ++d) {
      double gpu_acc = ((double)v1[d] - v0[d]) / kDt;
      double tol = 1e-4 * term_sum + 4 * eps * (fabs(v0[d]) + fabs(v1[d])) / kDt;
      if (!(fabs(gpu_acc - acc[d]) <= tol)) {
        printf("FAIL: body %d: acceleration %.7e from the GPU's last step, %.7e on the CPU\n", i, gpu_acc, acc[d]);
        return false;
      }
      double expected = (double)p0[d] + (double)v1[d] * kDt;
      if (!(fabs(p1[d] - expected) <= 4 * eps * (fabs(p0[d]) + fabs(v1[d]) * kDt) + 1e-30)) {
        printf("FAIL: body %d: position %.7f after the last step, expected %.7f\n", i, p1[d], expected);
        return false;
      }
    }
    if (sim.pos[i].w != sim.prev_pos[i].w) {
      printf("FAIL: body %d: mass changed\n", i);
      return false;
    }
  }
  return true;
}

static int usage(const char* why) {
  fprintf(stderr, "nbody: %s\nusage: nbody [bodies >= 2] [steps >= 1]\n", why);
  return 2;
}

int main(int argc, char** argv) {
  long values[2] = {65536, 300};
  if (argc > 3) return usage("too many arguments");
  for (int k = 1; k < argc; ++k) {
    char* end = nullptr;
    values[k - 1] = strtol(argv[k], &end, 10);
    if (*end != '\0') return usage("arguments must be whole numbers");
  }
  if (values[0] < 2 || values[0] > (1 << 24) || values[1] < 1 || values[1] > 1000000)
    return usage("bodies must be 2..16777216 and steps 1..1000000");
  const int n = (int)values[0], steps = (int)values[1];
  printf("nbody: bodies=%d steps=%d\n", n, steps);

  if (!check_small_system()) return 1;
  Simulation sim = simulate(n, steps);
  if (!check_last_step(sim)) return 1;

  double kinetic = 0.0, radius = 0.0, max_speed = 0.0, mass = 0.0;
  for (int i = 0; i < n; ++i) {
    const float4 p = sim.pos[i], v = sim.vel[i];
    if (!std::isfinite(p.x + p.y + p.z + v.x + v.y + v.z)) {
      printf("FAIL: body %d has a non-finite position or velocity\n", i);
      return 1;
    }
    double speed2 = (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z;
    kinetic += 0.5 * p.w * speed2;
    max_speed = fmax(max_speed, sqrt(speed2));
    radius += sqrt((double)p.x * p.x + (double)p.y * p.y + (double)p.z * p.z);
    mass += p.w;
  }
  printf("kinetic_energy %.6e\n", kinetic);
  printf("mean_radius %.6f\n", radius / n);
  printf("max_speed %.6f\n", max_speed);
  printf("total_mass %.6f\n", mass);
  fprintf(stderr, "kernel_time_ms %.3f\n", sim.kernel_ms);
  printf("PASS\n");
  return 0;
}
