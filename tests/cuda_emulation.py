"""Build the CUDA engine's own sources for the host (-DNEPCU_HOST_EMULATION: kernels run as
plain loops over blocks and threads) into a copy of the package, so that tests check the CUDA
code on machines without a GPU. Used by test_cuda.py, test_cuda_md.py, test_train_cuda.py and
test_cuda_emulation.py; built once per test session (NEPCU_EMU_REVERSE=1 in a run's
environment reverses the launch order at run time, without another build). The build itself,
:func:`build_emulated_package`, also serves tools/rehearse_device.py (the device scripts
rehearsed on the host).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_BUILT: dict[str, Path] = {}


def emulated_package(tmp_path_factory) -> Path:
    """The folder to put on PYTHONPATH: nepzbl_plugin with ``_cuda`` replaced by the host
    build (its other files are links to the package as imported). Skips without compilers."""
    import pytest

    if "path" in _BUILT:
        return _BUILT["path"]
    try:
        _BUILT["path"] = build_emulated_package(tmp_path_factory.mktemp("cuda_emulation"))
    except EmulationUnavailable as why:
        pytest.skip(str(why))
    return _BUILT["path"]


class EmulationUnavailable(RuntimeError):
    """No compilers, or no CPU engine to link the emulated package to."""


def build_emulated_package(base: Path, package: Path | None = None, *,
                           reuse: bool = False) -> Path:
    """Build the host emulation of the CUDA sources in ``base`` (an empty or earlier build
    folder) and return ``base / "pkg"``, the folder to put on PYTHONPATH: ``package`` (default:
    nepzbl_plugin as imported) with ``_cuda`` replaced by the host build, its other files links
    to the originals. ``reuse``: keep an earlier build newer than every source it compiles (the
    links are made afresh). Used by the tests (above) and by tools/rehearse_device.py."""
    if not (shutil.which("g++") and shutil.which("gcc") and shutil.which("cython")):
        raise EmulationUnavailable("needs g++, gcc and cython")
    if package is None:
        import nepzbl_plugin

        package = Path(nepzbl_plugin.__file__).resolve().parent
    if not list(package.glob("_core*.so")):
        raise EmulationUnavailable("the CPU engine is not built")
    cext = REPO / "cext"
    pkg = base / "pkg" / "nepzbl_plugin"
    so = pkg / ("_cuda" + sysconfig.get_config_var("EXT_SUFFIX"))
    sources = [*cext.iterdir(), *(REPO / "nepzbl_plugin").glob("_*.p[xy][xid]")]
    up_to_date = reuse and so.is_file() and so.stat().st_mtime > max(
        source.stat().st_mtime for source in sources)
    if pkg.exists():
        for item in pkg.iterdir():  # links, __pycache__, and the build unless up to date
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            elif not (up_to_date and item == so):
                item.unlink()
    pkg.mkdir(parents=True, exist_ok=True)
    for item in package.iterdir():
        if not item.name.startswith("_cuda") and item.name != "__pycache__":
            (pkg / item.name).symlink_to(item)
    if up_to_date:
        return base / "pkg"
    cxx = ["g++", "-O1", "-std=c++17", "-fPIC", "-x", "c++", "-DNEPCU_HOST_EMULATION",
           f"-I{cext}", "-c"]
    jobs, objects = [], []
    # the kernels compiled once per precision, as meson does
    for source, ns, real in (("nep_cuda_kernels.cu", "nepcu_f64", "double"),
                             ("nep_cuda_kernels.cu", "nepcu_f32", "float"),
                             ("nep_train_cuda_kernels.cu", "nepct_f64", "double"),
                             ("nep_train_cuda_kernels.cu", "nepct_f32", "float")):
        obj = base / f"{ns}.o"
        jobs.append(cxx + [f"-DNEP_REAL={real}", f"-DNEP_CUDA_NS={ns}", str(cext / source),
                           "-o", str(obj)])
        objects.append(str(obj))
    # every precision-free CUDA source (the host side, the MD loop, the training host side)
    for source in sorted([*cext.glob("nep_cuda*.cu"), *cext.glob("nep_train_cuda*.cu")]):
        if source.name.endswith("_kernels.cu"):
            continue
        obj = base / f"{source.stem}.o"
        jobs.append(cxx + [str(source), "-o", str(obj)])
        objects.append(str(obj))
    # the training host side builds its neighbour lists with the C engine
    for source in ("nep_core.c", "nep_neighbors.c"):
        obj = base / (source + ".o")
        jobs.append(["gcc", "-O1", "-std=c99", "-fPIC", f"-I{cext}", "-c", str(cext / source),
                     "-o", str(obj)])
        objects.append(str(obj))
    c_file = base / "_cuda.c"
    jobs.append(["cython", "-3", "-I", str(REPO / "nepzbl_plugin"), "--module-name",
                 "nepzbl_plugin._cuda", str(REPO / "nepzbl_plugin" / "_cuda.pyx"), "-o",
                 str(c_file)])
    running = [subprocess.Popen(job, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for job in jobs]
    for job, proc in zip(jobs, running, strict=True):
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(job)}\n{out.decode()[-3000:]}")
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", f"-I{sysconfig.get_paths()['include']}",
                    f"-I{cext}", str(c_file), *objects, "-lstdc++", "-lm", "-o", str(so)],
                   check=True, capture_output=True)
    return base / "pkg"


def run_emulated(tmp_path_factory, script: str, cwd: Path, timeout: int = 900,
                 env: dict[str, str] | None = None):
    """Run a Python script against the emulated package, with ``env`` added to the
    environment (e.g. NEPCU_EMU_REVERSE=1); returns the CompletedProcess."""
    path = emulated_package(tmp_path_factory)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(path)},
                          capture_output=True, text=True, timeout=timeout)
