"""
Real nanochat on this GPU, for the side-by-side in scripts/gpu-check.sh: its own gpt.py, optim.py and engine's
KVCache (nanochat_src/, carried in the pack, unmodified), the model built, initialised, compiled and optimised as
scripts/base_train.py does (bf16 COMPUTE_DTYPE on CUDA, torch.compile, MuonAdamW from setup_optimizer), on
random tokens (the step's speed does not depend on the text, and there is no network or dataset here).
  train:  --depth 12 --batch 32 (× 2048, SSSL, head dim 128, vocab 32768): warm-up, then the median step of
          --steps, as tok/s, MFU of --peak-tflops (nanochat's own estimate_flops) and peak torch memory
  decode: --decode-depth 20, batch 1: a 16-token prompt, then 128 greedy tokens through the KV cache (tok/s)
Prints one JSON object per measurement on stdout.  Usage: python gpu-nanochat-bench.py --src nanochat_src [...]
Smoke test without a GPU: --device cpu --no-compile --depth 1 --batch 1 --seq 64 --steps 1 --warmup 0 --decode-depth 1
"""
import argparse, json, os, statistics, sys, time, types

ap = argparse.ArgumentParser()
ap.add_argument("--src", required=True)
ap.add_argument("--part", choices=["train", "decode", "all"], default="all")
ap.add_argument("--depth", type=int, default=12)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--seq", type=int, default=2048)
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--decode-depth", type=int, default=20)
ap.add_argument("--peak-tflops", type=float, default=989.0)
ap.add_argument("--device", default="cuda", help="cuda (the point); cpu only to smoke-test this script, tiny sizes")
ap.add_argument("--no-compile", action="store_true", help="skip torch.compile of the model (smoke tests)")
a = ap.parse_args()

# no network on the GPU machine: nanochat's FA3 lookup on the Hugging Face hub must fail at once (then: SDPA)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.abspath(a.src))
for mod in ("rustbpe", "tiktoken"):  # the tokenizer's libraries: not needed for the model, maybe not installed
    sys.modules.setdefault(mod, types.ModuleType(mod))
try:
    import filelock  # noqa: F401  (nanochat.common imports it)
except ImportError:
    fl = types.ModuleType("filelock")
    class FileLock:  # never used on this path: only dataset downloads take the lock
        def __init__(self, *args, **kw): pass
        def __enter__(self): return self
        def __exit__(self, *exc): return False
    fl.FileLock = FileLock
    sys.modules["filelock"] = fl

import torch
from nanochat.common import COMPUTE_DTYPE
from nanochat.gpt import GPT, GPTConfig
from nanochat.engine import KVCache
from nanochat.flash_attention import HAS_FA3
ATTN = "fa3" if HAS_FA3 else "sdpa"

HEAD_DIM, VOCAB = 128, 32768
dev = torch.device(a.device)
cuda = dev.type == "cuda"


def emit(**kv):
    print(json.dumps(kv), flush=True)


def build(depth, seq):
    dim = ((depth * 64 + HEAD_DIM - 1) // HEAD_DIM) * HEAD_DIM  # base_train's build_model_meta, aspect ratio 64
    cfg = GPTConfig(sequence_len=seq, vocab_size=VOCAB, n_layer=depth, n_head=dim // HEAD_DIM, n_kv_head=dim // HEAD_DIM,
                    n_embd=dim, window_pattern="SSSL")
    with torch.device("meta"):
        model = GPT(cfg)
    model.to_empty(device=dev)
    torch.manual_seed(0)
    model.init_weights()
    return model, cfg


def sync():
    if cuda:
        torch.cuda.synchronize()


# decode first: no compile, seconds — a result even when the time runs out during the train part's compile
if a.part in ("decode", "all"):
    model, cfg = build(a.decode_depth, a.seq)
    model.eval()
    g = torch.Generator(device=dev).manual_seed(1)
    prompt = torch.randint(0, VOCAB, (1, 16), generator=g, device=dev)
    n_new, res = 128, []
    with torch.inference_mode():
        for rep in range(4):
            kv = KVCache(batch_size=1, num_heads=cfg.n_kv_head, seq_len=16 + n_new, head_dim=HEAD_DIM, num_layers=cfg.n_layer,
                         device=dev, dtype=COMPUTE_DTYPE)
            sync()
            t0 = time.perf_counter()
            nxt = model(prompt, kv_cache=kv)[:, -1].argmax(-1, keepdim=True)
            sync()
            t1 = time.perf_counter()
            for _ in range(n_new - 1):
                nxt = model(nxt, kv_cache=kv)[:, -1].argmax(-1, keepdim=True)
            sync()
            t2 = time.perf_counter()
            if rep:
                res.append((t1 - t0, t2 - t1))
    tp = statistics.median(r[0] for r in res)
    td = statistics.median(r[1] for r in res)
    emit(kind="nanochat-decode", attention=ATTN, depth=a.decode_depth, batch=1, dtype=str(COMPUTE_DTYPE), torch=torch.__version__,
         prefill_ms=round(tp * 1e3, 2), tok_per_s=round((n_new - 1) / td, 1), ms_per_token=round(td / (n_new - 1) * 1e3, 3))
    del model, kv
    if cuda:
        torch.cuda.empty_cache()

if a.part in ("train", "all"):
    model, cfg = build(a.depth, a.seq)
    opt = model.setup_optimizer(weight_decay=0.28)
    fpt = model.estimate_flops()
    run = model if a.no_compile else torch.compile(model, dynamic=False)
    g = torch.Generator(device=dev).manual_seed(a.depth)
    idx = torch.randint(0, VOCAB, (a.batch, a.seq), generator=g, device=dev)
    tgt = torch.randint(0, VOCAB, (a.batch, a.seq), generator=g, device=dev)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    t_start = time.perf_counter()
    for it in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        loss = run(idx, tgt)
        loss.backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        print(f"nanochat step {it}: loss {loss.item():.4f}, {dt * 1e3:.1f} ms", file=sys.stderr, flush=True)
        if it >= a.warmup:
            times.append(dt)
    dt = statistics.median(times)
    tok = a.batch * a.seq / dt
    emit(kind="nanochat-train", attention=ATTN, depth=a.depth, batch=a.batch, seq=a.seq, dtype=str(COMPUTE_DTYPE), torch=torch.__version__,
         steps=a.steps, dt_ms=round(dt * 1e3, 2), tok_per_s=round(tok), mfu_pct=round(100 * fpt * tok / (a.peak_tflops * 1e12), 2),
         peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None, wall_s=round(time.perf_counter() - t_start, 1))
    del model, opt, run, loss
    if cuda:
        torch.cuda.empty_cache()
