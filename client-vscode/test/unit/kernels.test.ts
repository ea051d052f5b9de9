import * as assert from "node:assert/strict";
import { describe, it } from "node:test";

import { blankCommentsAndStrings, findKernels, kernelAt } from "../../src/kernels";

const SOURCE = `#include <cstdio>
// __global__ void commented_out(int* a) { }
__global__ void declared_only(float* x);

template <typename T>
__global__ void __launch_bounds__(256, 2) scale(T* data, T factor, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { data[i] *= factor; }
  const char* note = "} not a brace { __global__ void fake() {";
}

extern "C" __global__ void
add_vectors(const float* __restrict__ a, const float* b, float* c, int n)
{
  /* } */ int i = threadIdx.x; if (i < n) c[i] = a[i] + b[i];
}

int main() { scale<<<1, 1>>>((float*)0, 2.0f, 0); return 0; }
`;

describe("findKernels", () => {
  const kernels = findKernels(SOURCE);

  it("finds definitions, skipping comments, strings and declarations", () => {
    assert.deepEqual(
      kernels.map((k) => k.name),
      ["scale", "add_vectors"],
    );
  });

  it("spans each kernel from __global__ to its closing brace", () => {
    const scale = kernels[0];
    assert.equal(SOURCE.slice(scale.start, scale.start + 10), "__global__");
    assert.equal(SOURCE[scale.end - 1], "}");
    assert.ok(SOURCE.slice(scale.start, scale.end).includes("not a brace"));
    const add = kernels[1];
    assert.ok(SOURCE.slice(add.end).trimStart().startsWith("int main"));
  });

  it("finds the kernel under the cursor and none outside", () => {
    assert.equal(kernelAt(kernels, SOURCE.indexOf("data[i] *="))?.name, "scale");
    assert.equal(kernelAt(kernels, SOURCE.indexOf("c[i] = a[i]"))?.name, "add_vectors");
    assert.equal(kernelAt(kernels, SOURCE.indexOf("int main")), undefined);
  });

  it("tolerates a kernel whose body is not closed yet", () => {
    const typing = "__global__ void k(int* a) {\n  a[0] = 1;\n";
    assert.deepEqual(findKernels(typing), [{ name: "k", start: 0, end: typing.length }]);
  });
});

describe("blankCommentsAndStrings", () => {
  it("keeps offsets and newlines", () => {
    const text = 'a /* x\ny */ "s{" // c\nb';
    const blank = blankCommentsAndStrings(text);
    assert.equal(blank.length, text.length);
    assert.equal(blank, "a     \n" + " ".repeat(14) + "\nb");
  });
});
