"""Batch-norm kernels side by side: NumPy reference, normlab.nn_tuned.TunedBatchNorm (rows
"normlab"), the readable normlab.nn.BatchNorm (rows "readable"), torch.nn.BatchNormNd.

Run: python benchmarks/bn_kernels.py [--repeats 21]
float32, one thread, warm-up then the median of the repeats, all in this one process.
Times are the CPU time of the calling thread (`time.thread_time`): with one thread every
kernel runs there, and CPU time, unlike wall time, does not grow when other processes
share the machine (cache and memory-bandwidth contention still can).
Each time is also shown as a ratio to torch's native kernel for the same work and to a
plain copy of the tensor (the memory floor: a kernel cannot beat reading x and writing y),
with the page faults per call: a fresh tensor whose memory glibc maps anew from the OS
costs page faults, often more than the arithmetic. glibc's thresholds for
that move with the process's history, so run it also with them pinned, e.g.
``MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824`` (then no kernel
faults and the table shows arithmetic and memory traffic alone).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from normlab import functional as F  # noqa: E402
from normlab import nn as nl  # noqa: E402
from normlab.nn_tuned import TunedBatchNorm  # noqa: E402

SHAPES = [(256, 1024), (64, 64, 32, 32), (128, 32, 28, 28)]
TORCH_BN = {2: nn.BatchNorm1d, 4: nn.BatchNorm2d}


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def median_seconds(kernels: dict, repeats: int, warmup: int = 2) -> tuple[dict, dict]:
    """Median thread CPU time of each kernel, and its page faults per call; the kernels
    take turns (round robin) so that a change in machine load hits all of them alike."""
    for fn in kernels.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in kernels}
    faults = dict.fromkeys(kernels, 0)
    for _ in range(repeats):
        for name, fn in kernels.items():
            start, start_faults = time.thread_time(), minor_faults()
            fn()
            times[name].append(time.thread_time() - start)
            faults[name] += minor_faults() - start_faults
    return ({name: statistics.median(ts) for name, ts in times.items()},
            {name: f / repeats for name, f in faults.items()})


def forward_backward(module, x, dout):
    def run():
        xg = x.detach().requires_grad_(True)
        module(xg).backward(dout)
    return run


def measure(shape, repeats):
    c = shape[1]
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape, dtype=np.float32)
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    dout_np = rng.standard_normal(shape, dtype=np.float32)
    _, cache = F.batchnorm_forward(x_np, gamma, beta)
    x, dout = torch.from_numpy(x_np), torch.from_numpy(dout_np)
    ours, readable, native = TunedBatchNorm(c), nl.BatchNorm(c), TORCH_BN[len(shape)](c)

    t, faults = median_seconds({
        "copy": lambda: x.clone(),
        "numpy forward": lambda: F.batchnorm_forward(x_np, gamma, beta),
        "numpy staged backward": lambda: F.batchnorm_backward(dout_np, cache),
        "numpy closed-form backward": lambda: F.batchnorm_backward_fast(dout_np, cache),
        "normlab forward": lambda: ours(x),
        "normlab forward+backward": forward_backward(ours, x, dout),
        "readable forward": lambda: readable(x),
        "readable forward+backward": forward_backward(readable, x, dout),
        "torch forward": lambda: native(x),
        "torch forward+backward": forward_backward(native, x, dout),
    }, repeats)
    torch_for = {"numpy forward": "torch forward", "normlab forward": "torch forward",
                 "torch forward": "torch forward", "numpy staged backward": "torch forward+backward",
                 "numpy closed-form backward": "torch forward+backward",
                 "normlab forward+backward": "torch forward+backward",
                 "readable forward": "torch forward", "readable forward+backward": "torch forward+backward",
                 "torch forward+backward": "torch forward+backward", "copy": "torch forward"}
    rows = [(name, sec * 1e3, sec / t[torch_for[name]], sec / t["copy"], faults[name]) for name, sec in t.items()]
    return rows, t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed runs per kernel (median; default 21)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, numpy {np.__version__}, float32, 1 thread, thread CPU time, "
          f"median of {args.repeats}, load average {os.getloadavg()[0]:.1f}\n")
    malloc = " ".join(f"{k}={v}" for k, v in os.environ.items() if k.startswith("MALLOC_")) or "glibc defaults"
    print(f"malloc: {malloc}\n")
    print("| shape | kernel | ms | × torch | × copy | page faults |")
    print("|---|---|---:|---:|---:|---:|")
    checks = []
    for shape in SHAPES:
        rows, t = measure(shape, args.repeats)
        for name, ms, vs_torch, vs_copy, page_faults in rows:
            print(f"| {shape} | {name} | {ms:.2f} | {vs_torch:.2f} | {vs_copy:.2f} | {page_faults:.0f} |")
        checks.append((shape, t["numpy staged backward"] / t["numpy closed-form backward"],
                       t["normlab forward+backward"] / t["torch forward+backward"],
                       t["normlab forward"] / t["torch forward"]))
    print("\n| shape | closed-form speed-up over staged (target ≥ 1.8) | normlab/torch fwd+bwd (≤ 1.5) | normlab/torch fwd (≤ 1.0 on 4-D) |")
    print("|---|---:|---:|---:|")
    for shape, speedup, fb, f in checks:
        print(f"| {shape} | {speedup:.2f} | {fb:.2f} | {f:.2f} |")


if __name__ == "__main__":
    main()
