"""GPU devices through numba.cuda, and a batched cosine-similarity kernel (with its CPU twin).

``NUMBA_ENABLE_CUDASIM=1`` must be set before numba is imported for the simulator; the
worker role sets it when started with ``--simulate-gpu``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["GpuDevice", "cosine_similarity", "detect_devices", "simulated"]


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: str
    memory_total: int
    memory_free: int
    compute_capability: str
    simulated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "memory_total": self.memory_total,
            "memory_free": self.memory_free,
            "compute_capability": self.compute_capability,
            "simulated": self.simulated,
        }


def simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def detect_devices(simulated_memory: int = 16 * 2**30) -> list[GpuDevice]:
    """The GPUs this process sees (CUDA_VISIBLE_DEVICES applies); one fake device under the simulator."""
    if simulated():
        return [GpuDevice(0, "numba CUDA simulator", simulated_memory, simulated_memory, "sim", True)]
    try:
        from numba import cuda

        if not cuda.is_available():
            return []
        found = []
        for i, dev in enumerate(cuda.list_devices()):
            with dev:
                free, total = cuda.current_context().get_memory_info()
                cc = ".".join(str(x) for x in dev.compute_capability)
                name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            found.append(GpuDevice(i, name, int(total), int(free), cc))
        return found
    except Exception:  # no driver, no libcudart: no GPU for us
        return []


def memory_free(device: GpuDevice) -> int:
    if device.simulated:
        return device.memory_free
    try:
        from numba import cuda

        free, _ = cuda.current_context().get_memory_info()
        return int(free)
    except Exception:
        return 0


_kernels: dict[str, Any] = {}
# numba.cuda, bound on first use. The kernel must reach it as a module global: the CUDA
# simulator swaps that global for its fake module while a kernel runs.
cuda: Any = None


def _cpu_kernel() -> Any:
    if "cpu" not in _kernels:
        from numba import njit, prange

        @njit(parallel=True, fastmath=True, cache=True)  # type: ignore[misc]
        def cosine_cpu(a: Any, b: Any, out: Any) -> None:  # pragma: no cover - compiled
            for i in prange(a.shape[0]):
                na = 0.0
                for k in range(a.shape[1]):
                    na += a[i, k] * a[i, k]
                for j in range(b.shape[0]):
                    dot = 0.0
                    nb = 0.0
                    for k in range(a.shape[1]):
                        dot += a[i, k] * b[j, k]
                        nb += b[j, k] * b[j, k]
                    denom = math.sqrt(na) * math.sqrt(nb)
                    out[i, j] = dot / denom if denom > 0 else 0.0

        _kernels["cpu"] = cosine_cpu
    return _kernels["cpu"]


def _cuda_kernel() -> Any:
    global cuda
    if "cuda" not in _kernels:
        from numba import cuda as numba_cuda

        cuda = numba_cuda

        @cuda.jit  # type: ignore[misc]
        def cosine_cuda(a: Any, b: Any, out: Any) -> None:  # pragma: no cover - compiled
            i, j = cuda.grid(2)
            if i < a.shape[0] and j < b.shape[0]:
                dot = 0.0
                na = 0.0
                nb = 0.0
                for k in range(a.shape[1]):
                    dot += a[i, k] * b[j, k]
                    na += a[i, k] * a[i, k]
                    nb += b[j, k] * b[j, k]
                denom = math.sqrt(na) * math.sqrt(nb)
                out[i, j] = dot / denom if denom > 0 else 0.0

        _kernels["cuda"] = cosine_cuda
    return _kernels["cuda"]


def cosine_similarity(a: Any, b: Any, *, gpu: bool) -> np.ndarray:
    """Cosine similarity of every row of ``a`` with every row of ``b`` — on the GPU or the CPU."""
    a32 = np.ascontiguousarray(a, dtype=np.float32)
    b32 = np.ascontiguousarray(b, dtype=np.float32)
    if a32.ndim != 2 or b32.ndim != 2 or a32.shape[1] != b32.shape[1]:
        raise ValueError(f"expected two matrices with the same width, got {a32.shape} and {b32.shape}")
    out = np.zeros((a32.shape[0], b32.shape[0]), dtype=np.float32)
    if not gpu:
        _cpu_kernel()(a32, b32, out)
        return out
    kernel = _cuda_kernel()
    threads = (16, 16)
    blocks = (max(1, math.ceil(a32.shape[0] / 16)), max(1, math.ceil(b32.shape[0] / 16)))
    d_out = cuda.to_device(out)
    kernel[blocks, threads](cuda.to_device(a32), cuda.to_device(b32), d_out)
    result: np.ndarray = d_out.copy_to_host()
    return result
