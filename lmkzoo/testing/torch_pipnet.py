"""A PyTorch PIPNet-R18 written for lmkzoo from docs/reference_facts.md (§A1-A2 key names): the parity
reference of the checkpoint converter's tests and the eager-PyTorch baseline of ``lmkzoo bench``.

torch is an optional dependency (``pip install 'lmkzoo[torch]'``); this module imports it on use.
"""

from __future__ import annotations

__all__ = ["PipResNet18", "random_pipnet"]  # noqa: F822 (built on first use by __getattr__, which imports torch)


def _classes():
    import torch

    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, inp, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inp != planes:
                self.downsample = nn.Sequential(nn.Conv2d(inp, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


    class PipResNet18(nn.Module):
        """Pip_resnet18 of jhb86253817/PIPNet lib/networks.py, written from the facts sheet (net_stride 32 or 16)."""

        def __init__(self, num_lms, num_nb, net_stride=32):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            chans, inp = [64, 128, 256, 512], 64
            for i, c in enumerate(chans):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(inp, c, stride), BasicBlock(c, c, 1)))
                inp = c
            self.net_stride = net_stride
            if net_stride == 16:
                self.deconv1 = nn.ConvTranspose2d(512, 512, 4, 2, 1, bias=False)
                self.bn_deconv1 = nn.BatchNorm2d(512)
            self.cls_layer = nn.Conv2d(512, num_lms, 1)
            self.x_layer = nn.Conv2d(512, num_lms, 1)
            self.y_layer = nn.Conv2d(512, num_lms, 1)
            self.nb_x_layer = nn.Conv2d(512, num_nb * num_lms, 1)
            self.nb_y_layer = nn.Conv2d(512, num_nb * num_lms, 1)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            if self.net_stride == 16:
                x = torch.relu(self.bn_deconv1(self.deconv1(x)))
            return [self.cls_layer(x), self.x_layer(x), self.y_layer(x), self.nb_x_layer(x), self.nb_y_layer(x)]


    def random_pipnet(num_lms=98, num_nb=10, net_stride=32, seed=0):
        torch.manual_seed(seed)
        net = PipResNet18(num_lms, num_nb, net_stride)
        with torch.no_grad():  # non-trivial BN statistics so a wrong BN mapping cannot hide
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
                if isinstance(m, nn.Conv2d) and m.bias is not None:  # heads: larger than the 0.001 init
                    nn.init.normal_(m.weight, std=0.05)
                    nn.init.normal_(m.bias, std=0.1)
        return net.eval()

    return PipResNet18, random_pipnet


def __getattr__(name):
    if name in ("PipResNet18", "random_pipnet"):
        classes = dict(zip(("PipResNet18", "random_pipnet"), _classes()))
        globals().update(classes)
        return classes[name]
    raise AttributeError(name)
