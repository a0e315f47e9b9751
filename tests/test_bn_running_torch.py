"""tests/test_bn_running_torch.py — batch norm's running statistics through a whole net, against
PyTorch: `dnnguard train` of a wrn-10-1 (pre-activation: a batch norm before every conv but the
stem) for one SGD step on a folder of 8 images, started from torch's weights, must leave every
running_mean and running_var where torch's training-mode forward of the same 8 images leaves them
(momentum 0.1 and the unbiased batch variance: the biased one would be 3.5e-5 off, against 2e-7 of
rounding). The kernel is checked alone in test_optim_torch.py; this checks the net's bookkeeping
(which statistics each layer keeps). The eval-mode forward with running statistics is compared with
torch in test_infip_torch.py."""
import os
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import check, done, run  # noqa: E402
import st_io  # noqa: E402
import torch_nets  # noqa: E402

tmp = tempfile.mkdtemp(prefix="dg-bn-")
P = lambda name: os.path.join(tmp, name)
rng = np.random.default_rng(3)
images = rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
for split in ("train", "test"):
    for i, img in enumerate(images):
        os.makedirs(P(f"data/{split}/{'ab'[i % 2]}"), exist_ok=True)
        Image.fromarray(img).save(P(f"data/{split}/{'ab'[i % 2]}/{i}.png"))

torch.manual_seed(5)
model = torch_nets.build("wrn-10-1", 2)
with torch.no_grad():  # running statistics away from their defaults, so that momentum shows
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
st_io.write(P("init.safetensors"), state)

r = run("train", "--net", "wrn-10-1", "--data", f"folder:{P('data')}", "--init", P("init.safetensors"), "--epochs", "1",
        "--batch", "8", "--opt", "sgd", "--lr", "0.1", "--momentum", "0", "--eval-every", "0", "--normalize", "0.5/0.5",
        "--backend", "cpu", "--out", P("out.safetensors"))
check(r.returncode == 0, f"train one step from torch's weights (exit {r.returncode}) {r.stderr.strip()[-300:]}")
got = st_io.read(P("out.safetensors")) if r.returncode == 0 else {}

x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
elements = {}  # per batch norm: the values per channel its batch statistics are over
handles = [m.register_forward_hook(lambda mod, inp, out: elements.__setitem__(mod, inp[0].numel() // inp[0].shape[1]))
           for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
model.train()
with torch.no_grad():
    model((x - 0.5) / 0.5)
for h in handles:
    h.remove()
want = {k: v.numpy().copy() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}
worst, where = 0.0, ""
for k, v in want.items():
    e = float(np.abs(got[k].astype(np.float64) - v).max() / np.abs(v).max()) if k in got else 1.0
    if e > worst:
        worst, where = e, k
n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
check(n_bn >= 7 and len(want) == 2 * n_bn and all(k in got for k in want) and worst < 1e-5,
      f"every running_mean and running_var after the step equals torch's ({len(want)} tensors, worst "
      f"normalised error {worst:.2e} at {where})")
# the biased batch variance would put running_var measurably elsewhere: the check above can fail
modules = dict(model.named_modules())
biased_off = 0.0
for k in want:
    if k.endswith("running_var"):
        n = elements[modules[k.rsplit(".", 1)[0]]]
        batch_var = (want[k] - 0.9 * state[k]) / 0.1  # the unbiased batch variance torch used
        alt = 0.9 * state[k] + 0.1 * batch_var * (n - 1) / n
        biased_off = max(biased_off, float(np.abs(alt - want[k]).max() / np.abs(want[k]).max()))
check(biased_off > 10 * max(worst, 1e-7), f"... the biased variance would be {biased_off:.1e} off, far above that")
done()
