"""numba.cuda kernels under the CUDA simulator give the CPU kernels' results.

The simulator must be switched on before numba is first imported, so the CUDA side runs in a child
process with ``NUMBA_ENABLE_CUDASIM=1``; this process computes the CPU side and compares.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from agentbus.memory import kernels_cpu

CHILD = """
import sys, numpy as np
from agentbus.memory import kernels_cuda
data = np.load(sys.argv[1])
x, q, mask = data["x"], data["q"], data["mask"]
out = {}
out["i0"], out["s0"] = kernels_cuda.search_cuda(x, q, 10, threads=32)
dev = kernels_cuda.to_device(x.astype(np.float16))
out["i1"], out["s1"] = kernels_cuda.search_cuda(dev, q[:2], 7, mask=mask, threads=32, rows_per_launch=700)
out["i2"], out["s2"] = kernels_cuda.search_cuda(x[:3], q[:1], 5, threads=32)
np.savez(sys.argv[2], **out)
"""


def test_cuda_simulator_matches_cpu(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[50] = x[60]  # a tie
    q = rng.standard_normal((3, 32)).astype(np.float32)
    q[0] = x[50]
    mask = rng.random(2000) < 0.4
    np.savez(tmp_path / "in.npz", x=x, q=q, mask=mask)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")

    ids, scores = kernels_cpu.search_exact(x, q, 10)
    np.testing.assert_allclose(got["s0"], scores, atol=1e-5)
    assert set(got["i0"][0, :2].tolist()) == {50, 60}
    np.testing.assert_array_equal(got["i0"][:, 2:], ids[:, 2:])  # past the tie: identical

    x16 = x.astype(np.float16).astype(np.float32)
    ids, scores = kernels_cpu.search_exact(x16, q[:2], 7, mask=mask)
    np.testing.assert_array_equal(got["i1"], ids)
    np.testing.assert_allclose(got["s1"], scores, atol=1e-5)

    ids, scores = kernels_cpu.search_exact(x[:3], q[:1], 5)
    np.testing.assert_array_equal(got["i2"], ids)
    assert (got["i2"][0, 3:] == -1).all() and np.isneginf(got["s2"][0, 3:]).all()
    np.testing.assert_allclose(got["s2"], scores, atol=1e-5)
