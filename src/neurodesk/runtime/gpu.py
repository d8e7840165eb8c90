"""NVIDIA GPUs in containers: which device nodes, driver libraries and tools to expose.

Everything is looked up under roots given as parameters (``/dev``, the host's library dirs), so
the rules can be tested with a fake tree. Libraries are bound into ``GPU_LIB_DIR`` and tools
into ``GPU_BIN_DIR`` inside the container, which are put first on LD_LIBRARY_PATH and PATH (as
Apptainer's ``--nv`` does with /.singularity.d/libs).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from neurodesk.errors import NeurodeskError

DEVICE_PATTERNS = (
    "nvidia[0-9]*",
    "nvidiactl",
    "nvidia-uvm",
    "nvidia-uvm-tools",
    "nvidia-modeset",
    "nvidia-caps/nvidia-cap[0-9]*",
)
LIBRARY_PATTERNS = (
    "libcuda.so*",
    "libcudadebugger.so*",
    "libnvidia-*.so*",
    "libnvcuvid.so*",
    "libnvoptix.so*",
    "libGLX_nvidia.so*",
    "libEGL_nvidia.so*",
    "libGLESv2_nvidia.so*",
    "libGLESv1_CM_nvidia.so*",
    "libvdpau_nvidia.so*",
)
TOOLS = ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nvidia-cuda-mps-control")
HOST_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/lib/x86_64-linux-gnu/nvidia/current",
)
HOST_BIN_DIRS = ("/usr/bin", "/usr/local/bin")
GPU_LIB_DIR = "/.neurodesk/nvidia/lib"
GPU_BIN_DIR = "/.neurodesk/nvidia/bin"


class NoGPUError(NeurodeskError):
    """--gpu was asked for, but this machine shows no NVIDIA GPU."""


@dataclass
class GpuSetup:
    devices: list[str] = field(default_factory=list)  # host device paths, bound read-write
    libraries: dict[str, str] = field(default_factory=dict)  # container path -> host path
    tools: dict[str, str] = field(default_factory=dict)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """LD_LIBRARY_PATH and PATH with the driver's directories first."""
        out: dict[str, str] = {}
        if self.libraries:
            old = base.get("LD_LIBRARY_PATH")
            out["LD_LIBRARY_PATH"] = GPU_LIB_DIR + (f":{old}" if old else "")
        if self.tools:
            out["PATH"] = GPU_BIN_DIR + ":" + base.get("PATH", "/usr/bin:/bin")
        return out


def find_devices(dev_root: Path = Path("/dev")) -> list[str]:
    """NVIDIA device nodes: /dev/nvidia*, and /dev/nvidia-caps/* (MIG)."""
    found: list[str] = []
    for sub in ("", "nvidia-caps"):
        directory = dev_root / sub if sub else dev_root
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            rel = entry.relative_to(dev_root).as_posix()
            if not entry.is_dir() and any(fnmatch.fnmatch(rel, p) for p in DEVICE_PATTERNS):
                found.append(str(entry))
    return sorted(found)


def find_libraries(lib_dirs: tuple[str, ...] = HOST_LIB_DIRS) -> dict[str, str]:
    """The first copy of each driver library file name, by directory order."""
    found: dict[str, str] = {}
    for directory in lib_dirs:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if name in found or not any(fnmatch.fnmatch(name, p) for p in LIBRARY_PATTERNS):
                continue
            path = os.path.join(directory, name)
            if os.path.isfile(path):  # follows the .so -> .so.1 -> .so.535 chain on the host
                found[name] = path
    return {f"{GPU_LIB_DIR}/{name}": path for name, path in found.items()}


def find_tools(bin_dirs: tuple[str, ...] = HOST_BIN_DIRS) -> dict[str, str]:
    found: dict[str, str] = {}
    for tool in TOOLS:
        for directory in bin_dirs:
            path = os.path.join(directory, tool)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found[f"{GPU_BIN_DIR}/{tool}"] = path
                break
    return found


def gpu_setup(
    dev_root: Path = Path("/dev"),
    lib_dirs: tuple[str, ...] = HOST_LIB_DIRS,
    bin_dirs: tuple[str, ...] = HOST_BIN_DIRS,
) -> GpuSetup:
    """What --gpu exposes; raises NoGPUError when there are no NVIDIA device nodes."""
    devices = find_devices(dev_root)
    if not devices:
        raise NoGPUError(
            f"--gpu was given but there is no NVIDIA GPU here (no {dev_root}/nvidia* devices)",
            hint="run without --gpu, or load the NVIDIA driver (check with nvidia-smi)",
        )
    return GpuSetup(devices, find_libraries(lib_dirs), find_tools(bin_dirs))
