"""Cross-check of nanochat4j's exports with PyTorch and nanochat's own code (not part of the test suite: needs torch).

  PY=$(../shared/tools/reference/setup-torch.sh)   # then: $PY -m pip install tiktoken filelock safetensors
  ./nanochat4j export --format nanochat OUT --base-dir ../shared/fixtures/nanochat-checkpoint [--dtype bf16]
  ./nanochat4j export --format safetensors-hf HF --base-dir ../shared/fixtures/nanochat-checkpoint
  $PY scripts/check_nanochat_export.py OUT d2 120 HF

With the fixture's expected.json: nanochat's checkpoint_manager.load_checkpoint / build_model and
RustBPETokenizer.from_directory load OUT (torch.load with weights_only, as nanochat calls it) and compute the same
token ids, last-position logits (to fp32 rounding for fp32, to bf16 rounding of the weights for bf16) and rendered
conversation; tiktoken built from HF's tokenizer.tiktoken + config.json encodes the same ids, and HF's
model.safetensors holds the fixture's tensors bit for bit.
"""
import base64, json, os, sys, types

shared = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')
sys.path.insert(0, os.path.join(shared, 'tools', 'reference', 'nanochat_src'))
sys.modules.setdefault('rustbpe', types.ModuleType('rustbpe'))  # nanochat imports it at module level, only to train
import torch, tiktoken
from safetensors.torch import load_file

out, tag, step, hf = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fixture = os.path.join(shared, 'fixtures', 'nanochat-checkpoint')
exp = json.load(open(os.path.join(fixture, 'expected.json')))
os.environ['NANOCHAT_BASE_DIR'] = out
from nanochat.checkpoint_manager import build_model, load_checkpoint
from nanochat.tokenizer import RustBPETokenizer, get_token_bytes

ckdir = os.path.join(out, 'base_checkpoints', tag)
sd, _, meta = load_checkpoint(ckdir, step, torch.device('cpu'))
assert list(sd) == exp['state_dict_keys']
bf16 = all(v.dtype == torch.bfloat16 for v in sd.values())
model, _, meta = build_model(ckdir, step, torch.device('cpu'), 'eval')
tok = RustBPETokenizer.from_directory(os.path.join(out, 'tokenizer'))
tb = get_token_bytes()
assert tok.get_vocab_size() == exp['vocab_size'] and tok.get_bos_token_id() == exp['bos_id'] and tb.dtype == torch.int32
worst = 0.0
for p in exp['prompts']:
    ids = tok.encode(p['text'], prepend=tok.get_bos_token_id())
    assert ids == p['ids'], (p['text'], ids)
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0, -1].float()
    worst = max(worst, (logits[:16] - torch.tensor(p['last_logits_first16'])).abs().max().item())
    assert logits.argmax().item() == p['last_logits_argmax']
assert worst < (2e-2 if bf16 else 2e-5), worst
ids, mask = tok.render_conversation(exp['render_conversation']['conversation'])
assert ids == exp['render_conversation']['ids'] and mask == exp['render_conversation']['mask']
print(f'nanochat loads {out}: {len(sd)} tensors ({"bf16" if bf16 else "fp32"}), ids, argmax and conversation equal, '
      f'max |logit diff| {worst:.1e}')

cfg = json.load(open(os.path.join(hf, 'config.json')))
ranks = {}
for line in open(os.path.join(hf, cfg['tokenizer']['file'])):
    t, r = line.split()
    ranks[base64.b64decode(t)] = int(r)
enc = tiktoken.Encoding(name='nanochat', pat_str=cfg['tokenizer']['pattern'], mergeable_ranks=ranks,
                        special_tokens=cfg['tokenizer']['special_tokens'])
for p in exp['prompts']:
    assert [cfg['bos_token_id']] + enc.encode_ordinary(p['text']) == p['ids'], p['text']
w = load_file(os.path.join(hf, 'model.safetensors'))
ref = torch.load(os.path.join(fixture, 'base_checkpoints', 'd2', 'model_000120.pt'))
assert list(w) == list(ref) and all(torch.equal(w[k], ref[k]) for k in ref)
print(f'{hf}: tiktoken encodes to nanochat ids; model.safetensors equals the fixture bit for bit')
