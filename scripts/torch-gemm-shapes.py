"""
PyTorch's CPU sgemm (MKL in the pip wheel) on the shapes `./nanochat4j bench kernels --ops gemm` times: square
512-2048 and every d4/d6 layer product at B*T = 4096, with the same transposes (forward x*W^T, dX = dY*W,
dW = dY^T*X), on 2 threads, median of repeated calls. Run it beside `bench kernels` on the same machine to set our
GEMM against a tuned BLAS; to compare at AVX2 on an AVX-512 machine, restrict both sides:
  MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 $PY scripts/torch-gemm-shapes.py
  NANOCHAT4J_JAVA_OPTS=-XX:UseAVX=2 ./nanochat4j bench kernels --ops gemm
PY: an interpreter with torch (../shared/tools/reference/setup-torch.sh prints one).
"""
import argparse, statistics, time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seconds", type=float, default=1.0, help="timed calls per shape: about this long, 5 to 50 calls")
a = ap.parse_args()
torch.set_num_threads(a.threads)


def shapes():
    out = [(f"{n}x{n}x{n}", n, n, n, "nn") for n in (512, 1024, 2048)]
    for depth, c in ((4, 256), (6, 384)):
        for name, n_in, n_out in (("attn CxC", c, c), ("mlp c_fc", c, 4 * c), ("mlp c_proj", 4 * c, c), ("lm_head", c, 32768)):
            out.append((f"d{depth} {name} fwd x*Wt", 4096, n_out, n_in, "nt"))
            out.append((f"d{depth} {name} dX=dY*W", 4096, n_in, n_out, "nn"))
            out.append((f"d{depth} {name} dW=dYt*X", n_out, n_in, 4096, "tn"))
    return out


g = torch.Generator().manual_seed(0)
print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
for name, m, n, k, t in shapes():
    # a transposed operand is stored as bench kernels stores it (k x m, n x k) and passed as a view
    x = torch.randn(k, m, generator=g).t() if t[0] == "t" else torch.randn(m, k, generator=g)
    y = torch.randn(n, k, generator=g).t() if t[1] == "t" else torch.randn(k, n, generator=g)
    out = torch.empty(m, n)
    for _ in range(2):
        torch.mm(x, y, out=out)
    reps = max(5, min(50, int(a.seconds / (2 * m * n * k / 150e9))))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(x, y, out=out)
        times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(f"{name:24s} {m}x{n}x{k:<6d} {ms:9.3f} ms {2 * m * n * k / ms / 1e6:7.1f} GFLOP/s", flush=True)
