"""Build the CUDA engine's own sources for the host (-DNEPCU_HOST_EMULATION: kernels run as
plain loops over blocks and threads) into a copy of the package, so that tests check the CUDA
code on machines without a GPU. Used by test_cuda.py and test_cuda_md.py; built once per
test session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_BUILT: dict[str, Path] = {}


def emulated_package(tmp_path_factory) -> Path:
    """The folder to put on PYTHONPATH: nepzbl_plugin with ``_cuda`` replaced by the host
    build (its other files are links to the package as imported). Skips without compilers."""
    if "path" in _BUILT:
        return _BUILT["path"]
    if not (shutil.which("g++") and shutil.which("gcc") and shutil.which("cython")):
        pytest.skip("needs g++, gcc and cython")
    import nepzbl_plugin

    package = Path(nepzbl_plugin.__file__).resolve().parent
    if not list(package.glob("_core*.so")):
        pytest.skip("the CPU engine is not built")
    cext = REPO / "cext"
    base = tmp_path_factory.mktemp("cuda_emulation")
    pkg = base / "pkg" / "nepzbl_plugin"
    pkg.mkdir(parents=True)
    for item in package.iterdir():
        if not item.name.startswith("_cuda") and item.name != "__pycache__":
            (pkg / item.name).symlink_to(item)
    cxx = ["g++", "-O1", "-std=c++17", "-fPIC", "-x", "c++", "-DNEPCU_HOST_EMULATION",
           f"-I{cext}", "-c"]
    objects = []
    for ns, real in (("nepcu_f64", "double"), ("nepcu_f32", "float")):
        obj = base / f"{ns}.o"
        subprocess.run(cxx + [f"-DNEP_REAL={real}", f"-DNEP_CUDA_NS={ns}",
                              str(cext / "nep_cuda_kernels.cu"), "-o", str(obj)], check=True)
        objects.append(str(obj))
    # every precision-free CUDA source (the host side, the MD loop, ...)
    for source in sorted(cext.glob("nep_cuda*.cu")):
        if source.name == "nep_cuda_kernels.cu":
            continue
        obj = base / f"{source.stem}.o"
        subprocess.run(cxx + [str(source), "-o", str(obj)], check=True)
        objects.append(str(obj))
    c_file = base / "_cuda.c"
    subprocess.run(["cython", "-3", "-I", str(REPO / "nepzbl_plugin"), "--module-name",
                    "nepzbl_plugin._cuda", str(REPO / "nepzbl_plugin" / "_cuda.pyx"), "-o",
                    str(c_file)], check=True, capture_output=True)
    so = pkg / ("_cuda" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", f"-I{sysconfig.get_paths()['include']}",
                    f"-I{cext}", str(c_file), *objects, "-lstdc++", "-lm", "-o", str(so)],
                   check=True, capture_output=True)
    _BUILT["path"] = base / "pkg"
    return _BUILT["path"]


def run_emulated(tmp_path_factory, script: str, cwd: Path, timeout: int = 900):
    """Run a Python script against the emulated package; returns the CompletedProcess."""
    path = emulated_package(tmp_path_factory)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(path)}, capture_output=True,
                          text=True, timeout=timeout)
