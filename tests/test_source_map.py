"""Kernel symbol -> source line: demangling, the __global__ finder (tree-sitter and fallback), matching."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wattson.profilers.kernels import source_map
from wattson.profilers.kernels.source_map import (
    demangle,
    demangled_param_types,
    find_kernel_definitions,
    kernel_base_name,
    locate_kernel,
)

KERNELS_CU = """\
#include <cstdio>
#define BLOCK 256

namespace ns {
template <typename T, int N>
__global__ void __launch_bounds__(BLOCK) scale(T* __restrict__ x, T a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= a * N;
}
}  // namespace ns

__global__ void over(float* x, int n) { if (n) x[0] = n; }
__global__ void over(double* x, int n) { if (n) x[0] = n; }

extern "C" __global__ void plain(float* x) { x[0] = 1.0f; }

// __global__ void commented_out(int x) {}
static const char* text = "__global__ void in_a_string(int x) {}";
__global__ void declared_only(int n);

void launch(float* f, double* d)
{
    ns::scale<float, 2><<<1, BLOCK>>>(f, 1.0f, 1);
    ns::scale<double, 3><<<1, BLOCK>>>(d, 1.0, 1);
    over<<<1, 1>>>(f, 1);
    over<<<1, 1>>>(d, 1);
    plain<<<1, 1>>>(f);
}
"""

MACROS_CU = """\
#define KERNEL __global__
#define DEFINE_UNARY(NAME, OP) \\
    __global__ void NAME##_kernel(float* x, int n) \\
    { int i = threadIdx.x; if (i < n) x[i] = OP(x[i]); }

KERNEL void via_alias(float* x) { x[0] = 0.0f; }
DEFINE_UNARY(negate, -)
DEFINE_UNARY(twice,
             2.0f *)
template <>
__global__ void spec<float>(float* x) { x[0] = 1.0f; }
"""


@pytest.fixture(params=["tree-sitter", "fallback"])
def finder_mode(request, monkeypatch):
    """Each finder test runs with the grammar and with the regex fallback (as on a host without it)."""
    source_map._cached_definitions.cache_clear()
    if request.param == "fallback":
        monkeypatch.setattr(source_map, "_parser", lambda: None)
    else:
        pytest.importorskip("tree_sitter_cuda")
    yield request.param
    source_map._cached_definitions.cache_clear()


def _by_name(defs):
    return {(d.name, d.line): d for d in defs}


def test_finds_templates_overloads_and_extern_c(finder_mode):
    defs = find_kernel_definitions(KERNELS_CU)
    assert [(d.name, d.line, d.end_line) for d in defs] == [
        ("scale", 5, 10), ("over", 13, 13), ("over", 14, 14), ("plain", 16, 16)]
    scale = defs[0]
    assert scale.is_template and scale.template_params == ["T", "N"]
    assert scale.params == ["T* __restrict__ x", "T a", "int n"]
    assert [source_map._normal_type(t) for t in scale.param_types] == ["T *", "T", "int"]
    assert not defs[1].is_template
    if finder_mode == "tree-sitter":
        assert scale.qualified_name == "ns::scale"


def test_comments_strings_and_declarations_are_not_definitions(finder_mode):
    names = {d.name for d in find_kernel_definitions(KERNELS_CU)}
    assert not names & {"commented_out", "in_a_string", "declared_only"}


def test_macros_alias_and_kernel_defining_macro(finder_mode):
    defs = find_kernel_definitions(MACROS_CU)
    got = {d.name: d for d in defs}
    assert set(got) == {"via_alias", "negate_kernel", "twice_kernel", "spec"}
    assert got["via_alias"].line == 6
    assert (got["negate_kernel"].line, got["negate_kernel"].from_macro) == (7, "DEFINE_UNARY")
    assert (got["twice_kernel"].line, got["twice_kernel"].end_line) == (8, 9)
    assert got["negate_kernel"].params == ["float* x", "int n"]
    assert got["spec"].is_template and got["spec"].line == 10


def test_kernel_body_lines_cover_multiline_definitions(finder_mode):
    src = "\n".join(["", "template <typename T>", "__global__ void", "  k(T* x,", "    int n)", "{",
                     "  x[0] = n;", "}", ""])
    (k,) = find_kernel_definitions(src)
    assert (k.name, k.line, k.end_line, k.params) == ("k", 2, 8, ["T* x", "int n"])


def test_demangle_and_base_names():
    assert demangle("_Z5saxpyifPfS_") == "saxpy(int, float, float*, float*)"
    assert demangle("plain") == "plain"
    assert kernel_base_name("_ZN2ns5scaleIfLi2EEEvPT_S1_i") == "scale"
    assert kernel_base_name("void ns::scale<float, 2>(float*, float, int)") == "scale"
    assert kernel_base_name("_ZN12_GLOBAL__N_16kernelEPf") == "kernel"  # anonymous namespace
    assert kernel_base_name("plain") == "plain"
    assert demangled_param_types("_Z4overPdi") == ["double*", "int"]
    assert demangled_param_types("plain") is None
    assert demangled_param_types("_Z6kernelv") == []


@pytest.mark.skipif(shutil.which("c++filt") is None, reason="c++filt not installed")
def test_demangle_falls_back_to_cxxfilt_tool(monkeypatch):
    monkeypatch.setitem(sys.modules, "cxxfilt", None)  # as on a host without the package
    demangle.cache_clear()
    try:
        assert demangle("_Z4overPdi") == "over(double*, int)"
    finally:
        demangle.cache_clear()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_symbols_from_nvcc_map_to_their_definitions(tmp_path: Path, finder_mode):
    """The kernel names CUPTI reports are the PTX entry names: take them from nvcc itself."""
    source = tmp_path / "kernels.cu"
    source.write_text(KERNELS_CU)
    ptx = tmp_path / "kernels.ptx"
    subprocess.run(["nvcc", "--ptx", "-arch=sm_90", str(source), "-o", str(ptx)], check=True, timeout=120,
                   capture_output=True)
    entries = re.findall(r"\.entry\s+(\w+)", ptx.read_text())
    sources = {"other.cu": MACROS_CU, "kernels.cu": KERNELS_CU}
    located = {demangle(e): locate_kernel(e, sources) for e in entries}
    assert located == {
        "over(float*, int)": ("kernels.cu", 13),
        "over(double*, int)": ("kernels.cu", 14),
        "plain": ("kernels.cu", 16),
        "void ns::scale<float, 2>(float*, float, int)": ("kernels.cu", 5),
        "void ns::scale<double, 3>(double*, double, int)": ("kernels.cu", 5),
    }


def test_unknown_kernels_are_not_located():
    assert locate_kernel("_Z7missingPf", {"kernels.cu": KERNELS_CU}) is None
    assert locate_kernel("[CUDA memcpy HtoD]", {"kernels.cu": KERNELS_CU}) is None


def test_examples_kernels_are_found():
    """Every __global__ in our own examples is found (the editor's code lenses depend on it)."""
    examples = sorted(Path(__file__).resolve().parents[1].glob("examples/**/*.cu"))
    if not examples:
        pytest.skip("no examples yet")
    for path in examples:
        text = path.read_text()
        expected = len(re.findall(r"^\s*(?:template\s*<[^>]*>\s*)?__global__\b[^;]*\{", text, re.MULTILINE))
        assert len(find_kernel_definitions(text)) >= expected, path
