"""How a file is built and run: resolution order, commands, files that travel, worded errors.

Trees are real files in temp folders; the commands that matter are compiled with the real nvcc.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from wattson import project as project_module
from wattson.config import load_config, merge_settings
from wattson.project import ProjectError, find_project, local_includes, resolve_program

KERNEL = '#include <cstdio>\n__global__ void k() {}\nint main() { k<<<1, 1>>>(); printf("PASS\\n"); }\n'
SPEC_KEYS = {"name", "files", "build", "run", "workdir", "build_timeout_s", "run_timeout_s", "env",
             "source_file", "skipped_files"}


needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")


def tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (root / ".git").mkdir(exist_ok=True)  # keeps the search for wattson.toml inside the tree
    return root


def materialize(spec: dict, where: Path) -> Path:
    """Writes a ProgramSpec's files as the agent does; returns the folder build and run execute in."""
    for rel, content in spec["files"].items():
        path = where / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if "text" in content:
            path.write_text(content["text"])
        else:
            path.write_bytes(base64.b64decode(content["base64"]))
    return where / spec["workdir"]


def build_here(spec: dict, where: Path) -> subprocess.CompletedProcess:
    # -arch=native needs a GPU at compile time; this machine has none, so build for the H100's.
    command = spec["build"].replace("-arch=native", "-arch=sm_90")
    return subprocess.run(command, shell=True, cwd=materialize(spec, where), capture_output=True, text=True,
                          timeout=60)


# --- resolution order ----------------------------------------------------------------------------

def test_wattson_toml_comes_before_a_makefile(tmp_path):
    tree(tmp_path, {"app/k.cu": KERNEL, "app/Makefile": "run: all\n\t./k\n",
                    "app/wattson.toml": '[build]\ncommand = "make"\n[run]\ncommand = "./k"\nargs = ["7"]\n'})
    spec = resolve_program(tmp_path / "app" / "k.cu", None)
    assert find_project(tmp_path / "app" / "k.cu").kind == "toml"
    assert (spec["build"], spec["run"]) == ("make", "./k 7")
    assert set(spec) == SPEC_KEYS
    assert set(spec["files"]) == {"k.cu", "Makefile", "wattson.toml"}


def test_a_makefile_with_a_run_target_comes_before_the_single_file(tmp_path):
    makefile = "program = main\n\nall: $(program)\n\nrun : build\n\t./main 100\n"
    tree(tmp_path, {"app/main.cu": KERNEL, "app/Makefile": makefile})
    spec = resolve_program(tmp_path / "app" / "main.cu", None)
    assert (spec["build"], spec["run"], spec["workdir"]) == ("make ARCH=$WATTSON_ARCH", "make run", ".")
    assert spec["name"] == "app"


@pytest.mark.parametrize(("makefile", "has_run"), [
    ("all:\n\tnvcc k.cu\n", False),
    (".PHONY: run\n", False),
    ("run := 3\nall:\n\techo\n", False),
    ("run = yes\n", False),
    ("# run: commented\n", False),
    ("test run: all\n\t./k\n", True),
    ("run::\n\t./k\n", True),
    ("include common.mk\n", True),
])
def test_run_target_detection(tmp_path, makefile, has_run):
    tree(tmp_path, {"k.cu": KERNEL, "Makefile": makefile, "common.mk": "run: all\n\t./k\n"})
    assert find_project(tmp_path / "k.cu").kind == ("makefile" if has_run else "single-file")


def test_makefile_arguments_need_the_program_name(tmp_path):
    tree(tmp_path, {"a/main.cu": KERNEL, "a/Makefile": "program = main\nrun: all\n\t./$(program) 10\n",
                    "b/main.cu": KERNEL, "b/Makefile": "run: all\n\t./main 10\n"})
    assert resolve_program(tmp_path / "a" / "main.cu", ["20", "x y"])["run"] == "./main 20 'x y'"
    with pytest.raises(ProjectError, match=r"Add a wattson.toml there with \[run\] command"):
        resolve_program(tmp_path / "b" / "main.cu", ["20"])


@pytest.mark.parametrize(("name", "text", "build"), [
    ("saxpy.cu", KERNEL, "nvcc -O3 -arch=native -o saxpy saxpy.cu"),
    ("blas.cu", "#include <cublas_v2.h>\n#include <curand.h>\n" + KERNEL,
     "nvcc -O3 -arch=native -o blas blas.cu -lcublas -lcurand"),
    ("k.hip", "#include <hip/hip_runtime.h>\nint main() {}\n", "hipcc -O3 -o k k.hip"),
    ("h.cpp", "#include <hip/hip_runtime.h>\nint main() { hipMalloc(0, 0); }\n", "hipcc -O3 -o h h.cpp"),
    ("c.cpp", KERNEL, "nvcc -O3 -arch=native -x cu -o c c.cpp"),
    ("my app.cu", KERNEL, "nvcc -O3 -arch=native -o 'my app' 'my app.cu'"),
])
def test_single_file_commands(tmp_path, name, text, build):
    tree(tmp_path, {name: text})
    spec = resolve_program(tmp_path / name, ["1", "2"])
    assert spec["build"] == build
    assert spec["run"] == "./" + ("'my app'" if " " in name else Path(name).stem) + " 1 2"
    assert spec["source_file"] == name and spec["workdir"] == "."


def test_toml_in_a_parent_folder_builds_the_opened_file_from_the_root(tmp_path):
    tree(tmp_path, {"wattson.toml": '[run]\nargs = ["3"]\ntimeout_s = 9\nenv = { A = "1" }\n',
                    "src/app.cu": KERNEL, "data/input.txt": "1 2 3\n"})
    spec = resolve_program(tmp_path / "src" / "app.cu", None)
    assert spec["build"] == "nvcc -O3 -arch=native -o app src/app.cu"
    assert spec["run"] == "./app 3"
    assert (spec["run_timeout_s"], spec["env"], spec["source_file"]) == (9.0, {"A": "1"}, "src/app.cu")
    assert set(spec["files"]) == {"wattson.toml", "src/app.cu", "data/input.txt"}
    assert spec["name"] == tmp_path.name


def test_run_command_follows_the_build_output_name(tmp_path):
    tree(tmp_path, {"wattson.toml": '[build]\ncommand = "nvcc -o bin/solver main.cu"\n', "main.cu": KERNEL})
    assert resolve_program(tmp_path / "main.cu", None)["run"] == "./bin/solver"


def test_an_empty_build_command_means_no_build_step(tmp_path):
    tree(tmp_path, {"wattson.toml": '[build]\ncommand = ""\n[run]\ncommand = "python3 run.py"\n',
                    "k.cu": KERNEL, "run.py": "print('PASS')\n"})
    spec = resolve_program(tmp_path / "k.cu", [])
    assert spec["build"] is None and spec["run"] == "python3 run.py"


def test_command_line_arguments_replace_the_tomls(tmp_path):
    tree(tmp_path, {"wattson.toml": '[run]\ncommand = "./k"\nargs = ["4096", "100"]\n', "k.cu": KERNEL})
    assert resolve_program(tmp_path / "k.cu", None)["run"] == "./k 4096 100"
    assert resolve_program(tmp_path / "k.cu", ["8", "--flag=a b"])["run"] == "./k 8 '--flag=a b'"
    assert resolve_program(tmp_path / "k.cu", [])["run"] == "./k"


def test_the_toml_that_governs_the_file_wins_over_a_config_from_elsewhere(tmp_path):
    tree(tmp_path, {"a/wattson.toml": '[run]\ncommand = "./a"\n', "a/a.cu": KERNEL,
                    "b/wattson.toml": '[run]\ncommand = "./b"\ntimeout_s = 5\n', "b/b.cu": KERNEL})
    config_a = load_config(tmp_path / "a" / "wattson.toml")
    assert resolve_program(tmp_path / "b" / "b.cu", None, config_a)["run"] == "./b"
    # Settings merged onto the file's own config are kept.
    config_b = merge_settings(load_config(tmp_path / "b" / "wattson.toml"), {"run": {"timeoutS": 7}})
    assert resolve_program(tmp_path / "b" / "b.cu", None, config_b)["run_timeout_s"] == 7.0


# --- includes ------------------------------------------------------------------------------------

INCLUDE_TREE = {
    "app/main.cu": '#include "util.cuh"\n#include "../include/common.h"\n#include <cuda_runtime.h>\n'
                   '#include "generated.h"\n' + KERNEL.replace("#include <cstdio>\n", ""),
    "app/util.cuh": '#pragma once\n#include "detail/math.cuh"\n#include <cstdio>\n',
    "app/detail/math.cuh": '#pragma once\n#include "../util.cuh"\ninline int twice(int x) { return x; }\n',
    "include/common.h": "#pragma once\n#define COMMON 1\n",
    "app/unrelated.h": "this header is not included\n",
}


def test_local_includes_are_followed_transitively_and_once(tmp_path):
    tree(tmp_path, INCLUDE_TREE | {"app/generated.h.in": "template"})
    found = local_includes(tmp_path / "app" / "main.cu")
    rels = sorted(p.relative_to(tmp_path.resolve()).as_posix() for p in found)
    assert rels == ["app/detail/math.cuh", "app/util.cuh", "include/common.h"]


@needs_nvcc
def test_single_file_with_headers_outside_its_folder_builds_for_real(tmp_path):
    tree(tmp_path, INCLUDE_TREE | {"app/generated.h": "#define GENERATED 1\n"})
    spec = resolve_program(tmp_path / "app" / "main.cu", None)
    assert spec["workdir"] == "app" and spec["source_file"] == "app/main.cu"
    assert set(spec["files"]) == {"app/main.cu", "app/util.cuh", "app/detail/math.cuh", "include/common.h",
                                  "app/generated.h"}
    result = build_here(spec, tmp_path / "job")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "job" / "app" / "main").is_file()


@needs_nvcc
def test_derived_build_in_a_toml_project_builds_for_real(tmp_path):
    tree(tmp_path, {"proj/wattson.toml": "[run]\n", "proj/src/app.cu": '#include "../inc/k.h"\n' + KERNEL,
                    "proj/inc/k.h": "#pragma once\n"})
    spec = resolve_program(tmp_path / "proj" / "src" / "app.cu", None)
    result = build_here(spec, tmp_path / "job")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "job" / "app").is_file()


def test_project_sources_bring_headers_from_outside_the_root(tmp_path):
    tree(tmp_path, {"proj/wattson.toml": "[run]\n", "proj/k.cu": '#include "../shared/s.h"\n' + KERNEL,
                    "shared/s.h": "#pragma once\n", "shared/other.h": "not needed\n"})
    spec = resolve_program(tmp_path / "proj" / "k.cu", None)
    assert spec["workdir"] == "proj"
    assert set(spec["files"]) == {"proj/wattson.toml", "proj/k.cu", "shared/s.h"}


# --- files that travel ---------------------------------------------------------------------------

def test_what_stays_behind(tmp_path):
    big = b"x" * (project_module.MAX_TRAVEL_FILE_BYTES + 1)
    tree(tmp_path, {
        "wattson.toml": "[run]\n", "k.cu": KERNEL,
        "data/in.bin": bytes(range(256)),
        "k": b"\x7fELF\x02\x01\x01" + bytes(100),
        "k.o": b"object",
        "big.dat": big,
        ".hidden": "secret", ".venv/lib.py": "x", "__pycache__/m.pyc": b"\0",
        "build/CMakeCache.txt": "cmake", "build/out.txt": "built",
        ".git/config": "[core]",
    })
    spec = resolve_program(tmp_path / "k.cu", None)
    assert set(spec["files"]) == {"wattson.toml", "k.cu", "data/in.bin"}
    assert base64.b64decode(spec["files"]["data/in.bin"]["base64"]) == bytes(range(256))
    assert spec["files"]["k.cu"] == {"text": KERNEL}
    assert spec["skipped_files"] == {"big.dat": "larger than 5.0 MB", "k.o": "build output",
                                     "k": "executable (rebuilt on the GPU host)"}


def test_too_much_to_send_is_an_error_naming_the_largest_files(tmp_path, monkeypatch):
    monkeypatch.setattr(project_module, "MAX_TRAVEL_TOTAL_BYTES", 64 * 1024)
    tree(tmp_path, {"wattson.toml": "[run]\n", "k.cu": KERNEL, "data/a.bin": bytes(50 * 1024),
                    "data/b.bin": bytes(30 * 1024)})
    expected = r"largest: data/a.bin \(50 KB\), data/b.bin .* put a wattson.toml"
    with pytest.raises(ProjectError, match=expected):
        resolve_program(tmp_path / "k.cu", None)


def test_too_many_files_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(project_module, "MAX_TRAVEL_FILES", 5)
    tree(tmp_path, {"wattson.toml": "[run]\n", "k.cu": KERNEL} | {f"d/{i}.txt": "x" for i in range(6)})
    with pytest.raises(ProjectError, match="limits: 5 files"):
        resolve_program(tmp_path / "k.cu", None)


# --- the file the user opened --------------------------------------------------------------------

@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.cu", None, "no such file"),
    ("notes.py", "print()\n", "Wattson works on CUDA and HIP sources"),
    ("empty.cu", "", "is empty"),
    ("blank.cu", "  \n\n", "only white space"),
    ("blob.cu", b"\x7fELF\0\0\0", "is a binary file"),
    ("latin.cu", b"// caf\xe9\nint main(){}\n", "not UTF-8"),
    ("kernels.cuh", "__global__ void k();\n", "is a header: it cannot be built on its own"),
])
def test_files_that_cannot_be_used_say_why(tmp_path, name, content, message):
    tree(tmp_path, {} if content is None else {name: content})
    with pytest.raises(ProjectError, match=message):
        resolve_program(tmp_path / name, None)


def test_a_folder_or_a_huge_file_say_why(tmp_path):
    tree(tmp_path, {"k.cu": "// " + "x" * project_module.MAX_SOURCE_BYTES + "\n", "dir.cu/a": "x"})
    with pytest.raises(ProjectError, match="larger than the 1.0 MB"):
        resolve_program(tmp_path / "k.cu", None)
    with pytest.raises(ProjectError, match="is a folder"):
        resolve_program(tmp_path / "dir.cu", None)


def test_a_header_in_a_toml_project_is_fine(tmp_path):
    tree(tmp_path, {"wattson.toml": '[build]\ncommand = "make"\n[run]\ncommand = "./k"\n',
                    "k.cuh": "__global__ void k();\n", "k.cu": KERNEL})
    spec = resolve_program(tmp_path / "k.cuh", None)
    assert spec["source_file"] == "k.cuh" and spec["build"] == "make"


@needs_nvcc
def test_single_file_spec_builds_for_real(tmp_path):
    tree(tmp_path, {"src/saxpy.cu": KERNEL})
    spec = resolve_program(tmp_path / "src" / "saxpy.cu", None)
    result = build_here(spec, tmp_path / "job")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "job" / "saxpy").is_file()
