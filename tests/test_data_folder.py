"""tests/test_data_folder.py — folder:DIR against torchvision's ImageFolder on trees of real
CIFAR-10 and MNIST images: the same classes, the same order and labels, the same pixels (by the
SHA-256 that `info --data` prints), the training split's normalisation; LeNet-5 learns from a
folder tree; a LeNet-5 trained by PyTorch on the tree evaluates to torch's own accuracy; InFIP
keys come from a folder; folder-rgb:/folder-grey: read every image as PIL's convert("RGB") /
convert("L") (a 3-channel PyTorch model on a grey tree); bad trees give one line and exit 2."""
import gzip
import hashlib
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image
from torchvision.datasets import ImageFolder

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_check import SHARED, check, done, expect_bad, parse, run  # noqa: E402

tmp = tempfile.mkdtemp(prefix="dg-folder-")
cifar = np.frombuffer(gzip.open(os.path.join(SHARED, "cifar10", "test_batch.bin.gz")).read(), np.uint8).reshape(-1, 3073)
names = open(os.path.join(SHARED, "cifar10", "batches.meta.txt")).read().split()


def cifar_image(i):
    return cifar[i, 1:].reshape(3, 32, 32).transpose(1, 2, 0)


def idx(path):
    raw = gzip.open(path).read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(dims)]
    return np.frombuffer(raw[4 + 4 * dims:], np.uint8).reshape(shape)


def digest_images(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def digest_labels(labels):
    return hashlib.sha256(np.asarray(labels, dtype="<i4").tobytes()).hexdigest()


def torch_view(folder, mode, class_to_idx=None):
    """(NCHW uint8 arrays, labels, classes) as ImageFolder with PIL convert(mode) sees folder"""
    ds = ImageFolder(folder, loader=lambda p: Image.open(p).convert(mode))
    arrays, labels = [], []
    for path, target in ds.samples:
        a = np.asarray(ds.loader(path))
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        labels.append(class_to_idx[ds.classes[target]] if class_to_idx else target)
    return arrays, labels, ds


def info(spec, split):
    r = run("info", "--data", spec, "--split", split, "--json")
    check(r.returncode == 0, f"info --data {spec} --split {split} (exit {r.returncode}) {r.stderr.strip()[-300:]}")
    return parse(r.stdout)


# 1. A colour tree: CIFAR-10 images in class folders, with what ImageFolder's order depends on:
# files beside sub-folders, "sub" and "sub-b" (sorted(os.walk) orders by the whole folder path,
# so sub-b comes before sub's own sub-folder "sub/x"), an upper-case .PNG, a hidden class folder,
# a palette, an RGBA and a grey image among the RGB ones, and files that are not images.
colour = os.path.join(tmp, "colour")
for split, first, count in (("train", 0, 300), ("test", 300, 100)):
    for i in range(first, first + count):
        cls = names[cifar[i, 0]]
        sub = ["", "sub", "sub-b", "sub/x"][i % 4]
        d = os.path.join(colour, split, cls, sub)
        os.makedirs(d, exist_ok=True)
        img = Image.fromarray(cifar_image(i))
        ext = ".PNG" if i % 11 == 0 else ".png"
        if i % 13 == 0:
            img = img.convert("P")
        elif i % 17 == 0:
            img = img.convert("RGBA")
        elif i % 19 == 0:
            img = img.convert("L")
        img.save(os.path.join(d, f"{i:04d}{ext}"))
    open(os.path.join(colour, split, "airplane", "notes.txt"), "w").write("not an image\n")
for split, first in (("train", 600), ("test", 700)):  # "cat-2" sorts between "cat" and "cat/sub" as a path
    for i in range(first, first + 6):
        d = os.path.join(colour, split, "cat-2")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(cifar_image(i)).save(os.path.join(d, f"{i:04d}.png"))
os.makedirs(os.path.join(colour, "train", ".extra"))
Image.fromarray(cifar_image(500)).save(os.path.join(colour, "train", ".extra", "a.png"))
open(os.path.join(colour, "train", "README"), "w").write("a file beside the class folders\n")

spec = "folder:" + colour
tr = info(spec, "train")
arrays, labels, ds = torch_view(os.path.join(colour, "train"), "RGB")
check(tr.get("class_names") == ds.classes and tr.get("classes") == 12 and ds.classes[0] == ".extra",
      f"class names and indices are ImageFolder's, the hidden folder included: {tr.get('class_names')}")
check(tr.get("images") == len(ds.samples) == 307 and tr.get("shape") == [3, 32, 32],
      f"every .png/.PNG at any depth, nothing else ({tr.get('images')} images, ImageFolder {len(ds.samples)})")
check(tr.get("labels_sha256") == digest_labels(labels), "labels in ImageFolder's sample order")
check(tr.get("images_sha256") == digest_images(arrays),
      "pixels equal PIL's convert('RGB') in ImageFolder's order (palette expanded, alpha dropped, grey replicated)")
stack = np.stack(arrays).astype(np.float64) / 255.0
mean, std = stack.mean(axis=(0, 2, 3)), stack.std(axis=(0, 2, 3))
check(np.allclose(tr.get("mean", [0] * 3), mean, atol=1e-6) and np.allclose(tr.get("std", [0] * 3), std, atol=1e-6),
      f"mean/std are the training pixels' ({tr.get('mean')} vs {mean.tolist()})")
check(tr.get("per_class_count") == np.bincount(labels, minlength=12).tolist(), "per-class counts")

te = info(spec, "test")
arrays_t, labels_t, ds_t = torch_view(os.path.join(colour, "test"), "RGB", ds.class_to_idx)
check(te.get("class_names") == ds.classes and te.get("classes") == 12,
      "the test split is labelled with the training split's classes (it lacks .extra)")
check(ds_t.classes[0] == "airplane" and te.get("labels_sha256") == digest_labels(labels_t),
      "test labels are the training indices of the test folders' names (ImageFolder on test alone would shift them)")
check(te.get("images_sha256") == digest_images(arrays_t) and te.get("images") == 106, "test pixels")
check(te.get("mean") == tr.get("mean") and te.get("std") == tr.get("std"), "the test split is normalised as training")

# 2. A grey tree of MNIST digits: one channel; an RGB image in the test split becomes grey by
# PIL's luma; LeNet-5 learns from it, and eval counts its classes.
mn_img = idx(os.path.join(SHARED, "mnist", "t10k-images-idx3-ubyte.gz"))
mn_lab = idx(os.path.join(SHARED, "mnist", "t10k-labels-idx1-ubyte.gz"))
grey = os.path.join(tmp, "grey")
for split, first, count in (("train", 0, 4000), ("test", 4000, 1000)):
    for i in range(first, first + count):
        d = os.path.join(grey, split, f"digit-{mn_lab[i]}")
        os.makedirs(d, exist_ok=True)
        img = Image.fromarray(mn_img[i])
        if split == "test" and i % 50 == 0:  # tinted RGB
            a = np.stack([mn_img[i], mn_img[i] // 2, 255 - mn_img[i]], axis=2)
            img = Image.fromarray(a.astype(np.uint8))
        img.save(os.path.join(d, f"{i}.png"))
gspec = "folder:" + grey
gt = info(gspec, "test")
arrays_g, labels_g, _ = torch_view(os.path.join(grey, "test"), "L")
check(gt.get("shape") == [1, 28, 28] and gt.get("images_sha256") == digest_images(arrays_g)
      and gt.get("labels_sha256") == digest_labels(labels_g),
      "a grey training split gives one channel; colour test images become PIL's convert('L')")
model = os.path.join(tmp, "lenet.safetensors")
r = run("train", "--net", "lenet5", "--data", gspec, "--epochs", "2", "--opt", "adam", "--lr", "2e-3", "--batch", "32",
        "--seed", "4", "--out", model)
summary = parse(r.stdout.splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else {}
check(r.returncode == 0 and summary.get("test_acc", 0) >= 0.9,
      f"LeNet-5 learns 4000 MNIST digits from a folder tree: test accuracy {summary.get('test_acc')} >= 0.9 "
      f"{r.stderr.strip()[-200:]}")
r = run("eval", "--net", "lenet5", "--model", model, "--data", gspec)
ev = parse(r.stdout)
check(r.returncode == 0 and ev.get("per_class_count") == np.bincount(labels_g, minlength=10).tolist()
      and abs(ev.get("accuracy", 0) - summary.get("test_acc", -1)) < 1e-9, "eval of the folder's test split")

# 2b. A model trained elsewhere: PyTorch trains LeNet-5 on the same tree through ImageFolder (with
# the normalisation `info --data` reports), saves it with torch.save, and dnnguard's eval of the
# .pt on folder:DIR gets as many images right as torch in every class.
import torch  # noqa: E402
import torch_nets  # noqa: E402
from torchvision import transforms  # noqa: E402

torch.manual_seed(5)
torch.set_num_threads(2)
gtr = info(gspec, "train")
norm = transforms.Compose([transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize(gtr["mean"], gtr["std"])])
train_t = ImageFolder(os.path.join(grey, "train"), transform=norm)
test_t = ImageFolder(os.path.join(grey, "test"), transform=norm)
net = torch_nets.build("lenet5", 10)
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
for x, y in torch.utils.data.DataLoader(train_t, batch_size=32, shuffle=True):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
net.eval()
with torch.no_grad():
    xs, ys = zip(*[test_t[i] for i in range(len(test_t))])
    torch_pred = net(torch.stack(xs)).argmax(1)
hit = (torch_pred == torch.tensor(ys)).numpy()
torch_acc = float(hit.mean())
torch_per_class = [int(hit[np.asarray(ys) == k].sum()) for k in range(10)]
torch.save(net.state_dict(), os.path.join(tmp, "torch-lenet.pt"))
r = run("eval", "--net", "lenet5", "--model", os.path.join(tmp, "torch-lenet.pt"), "--data", gspec)
ev = parse(r.stdout)
ours = [round(a * n) for a, n in zip(ev.get("per_class_accuracy", []), ev.get("per_class_count", []))]
check(r.returncode == 0 and torch_acc > 0.85 and ours == torch_per_class,
      f"a LeNet-5 trained by PyTorch on the ImageFolder tree: dnnguard eval on folder:DIR gets {ev.get('accuracy')}, "
      f"torch {torch_acc:.6f}, as many right in every class {r.stderr.strip()[-200:]}")

# 2c. InFIP with keys from a folder: the owner's reference from folder:DIR, the model against
# itself is pirated with ASSIM exactly 1.
ref = os.path.join(tmp, "ref")
r = run("infip", "extract", "--model", model, "--net", "lenet5", "--keys", gspec, "--n", "16", "--seed", "2", "--out", ref)
check(r.returncode == 0, f"infip extract --keys folder:DIR (exit {r.returncode}) {r.stderr.strip()[-200:]}")
r = run("infip", "verify", "--model", model, "--net", "lenet5", "--reference", ref)
v = parse(r.stdout)
check(r.returncode == 0 and v.get("assim") == 1.0 and v.get("pirated") is True,
      f"infip verify of the model against its folder-keyed reference: ASSIM {v.get('assim')}, exit {r.returncode}")

# 2d. Channel modes. folder-rgb:DIR reads every image as ImageFolder's default loader does
# (convert("RGB")): a PyTorch LeNet-5 with a 3-channel stem, fed the grey tree so, evaluates in
# dnnguard to torch's accuracy in every class. folder-grey:DIR reads every image as
# convert("L") (torchvision's Grayscale): the colour tree becomes one channel, test split too.
rspec = "folder-rgb:" + grey
rtr, rte = info(rspec, "train"), info(rspec, "test")
arrays_r, labels_r, _ = torch_view(os.path.join(grey, "test"), "RGB")
check(rte.get("shape") == [3, 28, 28] and rte.get("images_sha256") == digest_images(arrays_r)
      and rte.get("labels_sha256") == digest_labels(labels_r) and rte.get("name") == "folder-rgb",
      "folder-rgb: a grey tree read as ImageFolder's default loader reads it (3 channels, tinted images kept)")
check(rtr.get("mean") == [gtr["mean"][0]] * 3 and rtr.get("std") == [gtr["std"][0]] * 3 and rte.get("mean") == rtr.get("mean"),
      f"folder-rgb: the grey statistics on each channel ({rtr.get('mean')}, {rtr.get('std')})")
net3 = torch_nets.LeNet5(10, in_c=3)
state = {k: v.clone() for k, v in net.state_dict().items()}
state["conv1.weight"] = state["conv1.weight"].repeat(1, 3, 1, 1) / 3  # the same function of a grey image
net3.load_state_dict(state)
net3.eval()
rgb_t = ImageFolder(os.path.join(grey, "test"), transform=transforms.Compose(
    [transforms.ToTensor(), transforms.Normalize(rtr["mean"], rtr["std"])]))
with torch.no_grad():
    xs, ys = zip(*[rgb_t[i] for i in range(len(rgb_t))])
    hit3 = (net3(torch.stack(xs)).argmax(1) == torch.tensor(ys)).numpy()
torch.save(net3.state_dict(), os.path.join(tmp, "torch-lenet-rgb.pt"))
r = run("eval", "--net", "lenet5", "--model", os.path.join(tmp, "torch-lenet-rgb.pt"), "--data", rspec)
ev = parse(r.stdout)
ours = [round(a * n) for a, n in zip(ev.get("per_class_accuracy", []), ev.get("per_class_count", []))]
check(r.returncode == 0 and hit3.mean() > 0.85 and ours == [int(hit3[np.asarray(ys) == k].sum()) for k in range(10)],
      f"a 3-channel PyTorch LeNet-5 on folder-rgb: dnnguard {ev.get('accuracy')}, torch {hit3.mean():.6f}, "
      f"as many right in every class {r.stderr.strip()[-200:]}")
r = run("eval", "--net", "lenet5", "--model", os.path.join(tmp, "torch-lenet-rgb.pt"), "--data", gspec)
check(r.returncode == 2 and "conv1.weight" in r.stderr,
      f"the 3-channel model on the 1-channel folder: refused, naming conv1.weight (exit {r.returncode}) {r.stderr.strip()[-200:]}")
yspec = "folder-grey:" + colour
ytr, yte = info(yspec, "train"), info(yspec, "test")
arrays_y, labels_y, _ = torch_view(os.path.join(colour, "train"), "L")
arrays_yt, labels_yt, _ = torch_view(os.path.join(colour, "test"), "L", ds.class_to_idx)
stack = np.stack(arrays_y).astype(np.float64) / 255.0
check(ytr.get("shape") == [1, 32, 32] and ytr.get("images_sha256") == digest_images(arrays_y)
      and ytr.get("labels_sha256") == digest_labels(labels_y) and yte.get("images_sha256") == digest_images(arrays_yt)
      and yte.get("labels_sha256") == digest_labels(labels_yt),
      "folder-grey: a colour tree read as convert('L'), both splits")
check(np.allclose(ytr.get("mean", [0]), [stack.mean()], atol=1e-6) and np.allclose(ytr.get("std", [0]), [stack.std()], atol=1e-6)
      and yte.get("mean") == ytr.get("mean"), f"folder-grey: statistics of the grey pixels ({ytr.get('mean')})")
expect_bad(["info", "--data", "folder-rgb:"], "folder-rgb:", "folder-rgb with no folder")

# 3. Bad trees: one line naming the file, exit 2.


def bad_tree(name, build):
    root = os.path.join(tmp, name)
    os.makedirs(os.path.join(root, "train", "a"))
    os.makedirs(os.path.join(root, "train", "b"))
    Image.fromarray(cifar_image(0)).save(os.path.join(root, "train", "a", "0.png"))
    Image.fromarray(cifar_image(1)).save(os.path.join(root, "train", "b", "1.png"))
    build(root)
    return "folder:" + root


spec = bad_tree("jpeg", lambda r: Image.fromarray(cifar_image(2)).save(os.path.join(r, "train", "a", "2.jpg")))
expect_bad(["info", "--data", spec], "2.jpg", "a JPEG among the images is refused, not skipped")
spec = bad_tree("size", lambda r: Image.fromarray(cifar_image(2)[:30]).save(os.path.join(r, "train", "b", "2.png")))
expect_bad(["info", "--data", spec], "2.png", "an image of another size")
spec = bad_tree("corrupt", lambda r: open(os.path.join(r, "train", "b", "2.png"), "wb").write(
    open(os.path.join(r, "train", "b", "1.png"), "rb").read()[:200]))
expect_bad(["info", "--data", spec], "2.png", "a truncated PNG")
spec = bad_tree("empty", lambda r: os.makedirs(os.path.join(r, "train", "c", "deeper")))
expect_bad(["info", "--data", spec], "train/c", "a training class folder with no image")


def test_extra_class(r):
    os.makedirs(os.path.join(r, "test", "z"))
    Image.fromarray(cifar_image(3)).save(os.path.join(r, "test", "z", "3.png"))


spec = bad_tree("testclass", test_extra_class)
expect_bad(["info", "--data", spec, "--split", "test"], "test/z", "a test class that training lacks")
spec = bad_tree("testsize", lambda r: (os.makedirs(os.path.join(r, "test", "a")), Image.fromarray(
    cifar_image(3)[:, :20]).save(os.path.join(r, "test", "a", "3.png"))))
expect_bad(["info", "--data", spec, "--split", "test"], "3.png", "test images of another size than training's")
spec = bad_tree("loop", lambda r: os.symlink("..", os.path.join(r, "train", "a", "up")))
expect_bad(["info", "--data", spec], "loop", "a link loop below a class folder")


def two_loops(r):  # each level branches twice: a depth bound alone would read 2^32 folders
    os.symlink("../..", os.path.join(r, "train", "a", "up1"))
    os.symlink("../..", os.path.join(r, "train", "a", "up2"))


spec = bad_tree("loops", two_loops)
expect_bad(["info", "--data", spec], "loop", "two branching link loops, refused at once")
spec = bad_tree("deep", lambda r: os.makedirs(os.path.join(r, "train", "a", *["d"] * 33)))
expect_bad(["info", "--data", spec], "deep", "folders more than 32 deep")
spec = bad_tree("deep16", lambda r: Image.fromarray((cifar_image(2)[:, :, 0].astype(np.uint16) * 257)).save(
    os.path.join(r, "train", "b", "2.png")))
r16 = Image.open(os.path.join(tmp, "deep16", "train", "b", "2.png"))
check(r16.mode.startswith("I"), f"PIL wrote a 16-bit grey PNG (mode {r16.mode})")
expect_bad(["info", "--data", spec], "16 bits", "a 16-bit image (PIL and dnnguard round those differently)")
spec = bad_tree("fifo", lambda r: os.mkfifo(os.path.join(r, "train", "b", "2.png")))
expect_bad(["info", "--data", spec], "not a regular file", "a FIFO named .png is refused, not read (it would block)")
spec = bad_tree("latin1", lambda r: shutil.copy(os.path.join(r, "train", "a", "0.png"),
                                                os.path.join(os.fsencode(r), b"train", b"a", b"caf\xe9.png")))
expect_bad(["info", "--data", spec], "not UTF-8", "a file name that is not UTF-8 (Python would sort it elsewhere)")
spec = bad_tree("newline", lambda r: Image.fromarray(cifar_image(2)[:5]).save(os.path.join(r, "train", "a", "x\nfake.png")))
expect_bad(["info", "--data", spec], "x\\x0afake.png", "a name with a newline stays on one line")
spec = bad_tree("notest", lambda r: None)
expect_bad(["info", "--data", spec, "--split", "test"], "test", "no test folder")
expect_bad(["info", "--data", "folder:" + os.path.join(tmp, "nonexistent")], "nonexistent", "no such folder")
expect_bad(["info", "--data", "folder:"], "folder:", "no folder given")
expect_bad(["info", "--data", "folder:" + os.path.join(tmp, "jpeg", "train", "a", "0.png")], "0.png", "a file, not a folder")
expect_bad(["info", "--data", "folder:" + os.path.join(tmp, "jpeg"), "--split", "val"], "val", "an unknown split")

shutil.rmtree(tmp)
done()
