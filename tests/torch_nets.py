"""tests/torch_nets.py — PyTorch definitions of dnnguard's nets, with state-dict names equal to
dnnguard's: build(name, classes) for lenet5, wrn-D-K, vgg16-cifar, resnet18-cifar, vgg16, resnet18.
The ImageNet nets come from torchvision when it is installed (Debian: python3-torchvision), else from
the structurally identical definitions below. Test helper only; touches no file."""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import torchvision
except ImportError:  # the fallbacks below mirror torchvision 0.14 module for module
    torchvision = None


# ---- LeNet-5 ----
class LeNet5(nn.Module):
    def __init__(self, classes=10, in_c=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


# ---- Wide ResNet, as xternalz/WideResNet-pytorch (dropout 0) ----
class WRNBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal = in_planes == out_planes
        self.convShortcut = None if self.equal else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x):
        o = self.relu1(self.bn1(x))
        y = self.conv2(self.relu2(self.bn2(self.conv1(o))))
        return (x if self.equal else self.convShortcut(o)) + y


class WRNGroup(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WRNBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, width, classes=10):
        super().__init__()
        assert (depth - 4) % 6 == 0
        n = (depth - 4) // 6
        ch = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, ch[0], 3, padding=1, bias=False)
        self.block1 = WRNGroup(n, ch[0], ch[1], 1)
        self.block2 = WRNGroup(n, ch[1], ch[2], 2)
        self.block3 = WRNGroup(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn1(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# ---- VGG ----
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _vgg_features(batch_norm):
    layers, c = [], 3
    for v in VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.Conv2d(c, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            c = v
    return layers


class VGG16Cifar(nn.Module):
    """kuangliu/pytorch-cifar's VGG('VGG16'), with the class count as a parameter."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(*_vgg_features(True), nn.AvgPool2d(1, 1))
        self.classifier = nn.Linear(512, classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class VGG16(nn.Module):
    """torchvision.models.vgg16() without torchvision."""

    def __init__(self, classes=1000):
        super().__init__()
        self.features = nn.Sequential(*_vgg_features(False))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(0.5),
                                        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(0.5),
                                        nn.Linear(4096, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- ResNet-18 ----
class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock without torchvision."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision.models.resnet18() without torchvision."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, planes in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            blocks = nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))
            setattr(self, f"layer{i + 1}", blocks)
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ShortcutBlock(nn.Module):
    """kuangliu/pytorch-cifar's BasicBlock: torchvision's, its projection named shortcut (an empty
    nn.Sequential when the block keeps its shape)."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class KuangliuResNet18(nn.Module):
    """The CIFAR ResNet18 of kuangliu/pytorch-cifar, the most used one: resnet18-cifar's function
    (3x3 stem, no max pool, a fixed 4x4 average pool) under other names (shortcut, linear)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for i, planes in enumerate([64, 128, 256, 512]):
            blocks = nn.Sequential(ShortcutBlock(inplanes, planes, 1 if i == 0 else 2), ShortcutBlock(planes, planes))
            setattr(self, f"layer{i + 1}", blocks)
            inplanes = planes
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).view(out.size(0), -1))


def _resnet18(classes):
    return torchvision.models.resnet18(num_classes=classes) if torchvision else ResNet18(classes)


def _vgg16(classes):
    return torchvision.models.vgg16(num_classes=classes) if torchvision else VGG16(classes)


def build(name, classes):
    """An nn.Module whose state_dict names (less num_batches_tracked) equal dnnguard's for name."""
    m = re.fullmatch(r"wrn-(\d+)-(\d+)", name)
    if m:
        return WideResNet(int(m.group(1)), int(m.group(2)), classes)
    if name == "lenet5":
        return LeNet5(classes)
    if name == "vgg16-cifar":
        return VGG16Cifar(classes)
    if name == "vgg16":
        return _vgg16(classes)
    if name == "resnet18":
        return _resnet18(classes)
    if name == "resnet18-cifar":
        net = _resnet18(classes)
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        return net
    raise ValueError(f"unknown net {name}")


def default_shape(name):
    """(c, h, w), classes: the natural input of a name, as dnnguard's registry has it."""
    if name == "lenet5":
        return (1, 28, 28), 10
    if name in ("vgg16", "resnet18"):
        return (3, 224, 224), 1000
    return (3, 32, 32), 10


def state_tensors(module):
    """[(name, tensor)] of the state dict in order, without num_batches_tracked."""
    return [(k, v) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")]


def trainable_count(module):
    return sum(p.numel() for p in module.parameters())


if __name__ == "__main__":  # print the parameter counts quoted in docs/nets.md and tests/test_nets.c
    import sys
    names = sys.argv[1:] or ["lenet5", "wrn-10-4", "wrn-16-4", "wrn-28-10", "vgg16-cifar", "resnet18-cifar",
                             "vgg16", "resnet18"]
    for n in names:
        (c, h, w), k = default_shape(n)
        net = build(n, k)
        total = sum(t.numel() for _, t in state_tensors(net))
        print(f"{n:15s} classes={k:5d} trainable={trainable_count(net):10d} state={total:10d} "
              f"tensors={len(state_tensors(net))} torchvision={'yes' if torchvision else 'no'}")
