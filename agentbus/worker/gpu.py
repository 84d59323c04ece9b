"""``worker-gpu``: find the GPU (numba.cuda), or refuse to start; one process per GPU with --gpus."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from agentbus.bus.routing import gpu_targets
from agentbus.domain import ConfigError

NO_GPU = (
    "worker-gpu found no GPU: numba.cuda sees no device (check the NVIDIA driver and CUDA_VISIBLE_DEVICES). "
    "Run worker-cpu instead, or add --simulate-gpu to run GPU tasks under numba's CUDA simulator (development)."
)


def detect(simulated_memory: int) -> dict[str, Any]:
    """The device this process will use, as the heartbeat reports it; ConfigError when there is none."""
    from agentbus.memory.gpu import detect_devices

    devices = detect_devices(simulated_memory)
    if not devices:
        raise ConfigError(NO_GPU)
    return {"kind": "gpu", **devices[0].to_dict()}


def targets_for(device: dict[str, Any]) -> list[str]:
    return gpu_targets(int(device["memory_total"]))


def supervise(gpus: list[str], argv: list[str], metrics_port: int = 0) -> int:
    """Start one worker-gpu process per GPU index with CUDA_VISIBLE_DEVICES set; forward signals.
    With a metrics port, the process of the i-th GPU serves on ``metrics_port + i``."""
    children = []
    for i, index in enumerate(gpus):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": index}
        port = ["--metrics-port", str(metrics_port + i if metrics_port else 0)]  # the last one given counts
        children.append(
            subprocess.Popen([sys.executable, "-m", "agentbus", *argv, *port, "--name-suffix", f"gpu{index}"], env=env)
        )

    def forward(signum: int, frame: object) -> None:
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [c.wait() for c in children]
    return max(codes, default=0)
