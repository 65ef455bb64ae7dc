"""Writes the small torch.save files TorchZipRealFilesTest reads (run with PyTorch; the outputs are committed).

torch_views.pt        current zip layout: fp32 / bf16 / fp16 / int64 tensors, a transpose and a slice that share a
                      storage with a saved tensor (strides, storage offset), an nn.Parameter
torch_views_legacy.pt the same dict with _use_new_zipfile_serialization=False (torch's pre-1.6 format)
torch_views.json      the expected values (row-major) and dtypes
"""
import json, os, torch
from collections import OrderedDict

here = os.path.dirname(os.path.abspath(__file__))
base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8 - 1
sd = OrderedDict()
sd["base"] = base
sd["transposed"] = base.t()                 # strides (1, 6)
sd["slice"] = base[1:3, 2:5]                # offset 8, strides (6, 1)
sd["bf16"] = (base * 3.3).to(torch.bfloat16)
sd["fp16"] = (base * 1.7).half()
sd["long"] = torch.tensor([3, -1, 123456789], dtype=torch.int64)
sd["param"] = torch.nn.Parameter(torch.linspace(-1, 1, 5))
torch.save(sd, os.path.join(here, "torch_views.pt"))
torch.save(sd, os.path.join(here, "torch_views_legacy.pt"), _use_new_zipfile_serialization=False)
exp = {k: {"dtype": str(v.dtype), "shape": list(v.shape),
           "values": v.detach().float().reshape(-1).tolist() if v.is_floating_point() else v.reshape(-1).tolist()}
       for k, v in sd.items()}
json.dump({"torch": torch.__version__, "tensors": exp}, open(os.path.join(here, "torch_views.json"), "w"), indent=1)
