"""The engine's rewrites of a frozen network (engine.models.inference): same function, different cost."""

import pytest
import torch
from torch import nn

from engine import attacks, models
from engine.heatmaps import grad_cam
from engine.models import Classifier
from engine.models.inference import as_given

BUILT_IN = [
    "efficientnet-lite0",
    "fmnist-lenet-0",
    "fmnist-resnet-0",
    "fmnist-vgg-0",
    "fmnist-densenet-0",
    "fmnist-mobilenet-0",
    "fmnist-mlp-0",
]


def both(name):
    with as_given():
        plain = models.load(name)
    return models.load(name), plain


def exact(name):
    with as_given():
        return models.load(name).double()


def input_gradient(model, x):
    x = x.clone().requires_grad_(True)
    logits = model(x)
    return logits.detach().double(), torch.autograd.grad(logits.logsumexp(1).sum() + logits[:, 0].sum(), x)[0].double()


@pytest.mark.parametrize("name", BUILT_IN)
def test_rewritten_network_keeps_logits_gradients_and_catalogue(name):
    """As close to the float64 network as the network as given is: float32 gradients of a deep network are
    themselves only good to ~1 % of their largest entry (Lite0), so the rewrite is judged against float64."""
    fast, plain = both(name)
    x = torch.rand(4, *fast.input_size, generator=torch.Generator().manual_seed(1))
    (lf, gf), (lp, gp) = input_gradient(fast, x), input_gradient(plain, x)
    le, ge = input_gradient(exact(name), x.double())
    for f, p, e in ((lf, lp, le), (gf, gp, ge)):
        scale = float(e.abs().max())
        plain_error = max(float((p - e).abs().max()), 1e-6 * scale)
        assert float((f - e).abs().max()) <= 2 * plain_error
        assert float((f - e).norm()) <= 1.5 * max(float((p - e).norm()), 1e-6 * float(e.norm()))
    assert fast.layers() == plain.layers()
    if name != "fmnist-mlp-0":
        cam_fast, cam_plain = grad_cam(fast, x[:2]), grad_cam(plain, x[:2])
        assert torch.allclose(cam_fast, cam_plain, atol=1e-3)


def test_the_rewrites_happen_where_they_should():
    lite, lenet, mlp = (models.load(n) for n in ("efficientnet-lite0", "fmnist-lenet-0", "fmnist-mlp-0"))
    assert lite.folded_batch_norms == 49 and lite.channels_last  # every batch norm of Lite0 follows a convolution
    assert lite.folded_paddings == 12  # its stride-1 "same" convolutions; the five stride-2 ones pad unevenly
    assert lenet.folded_batch_norms == 0 and lenet.channels_last  # no batch norm to fold
    assert mlp.folded_batch_norms == 0 and not mlp.channels_last  # no convolution: nothing to gain
    with as_given():
        plain = models.load("efficientnet-lite0")
        assert plain.folded_batch_norms == 0 and plain.folded_paddings == 0


def test_pgd_on_the_rewritten_network_fools_the_same_images():
    fast, plain = both("fmnist-lenet-0")
    x = torch.rand(64, *fast.input_size, generator=torch.Generator().manual_seed(2))
    params = dict(eps=0.1, steps=5, alpha=0.03, random_start=False)
    a, b = attacks.run("pgd", fast, x, **params), attacks.run("pgd", plain, x, **params)
    assert (a.success != b.success).sum() <= 1  # a gradient of ±0 up to rounding may flip one sign
    assert float(a.success.float().mean()) > 0.2


class _Net(nn.Module):
    """conv → bn twice; `tap` exposes the first convolution's output to a second reader when set."""

    def __init__(self, view_flatten=False, tap=False, shared_bn=False):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = self.bn1 if shared_bn else nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        self.view_flatten, self.tap = view_flatten, tap
        for bn in (self.bn1, self.bn2):  # statistics far from the identity, so folding them matters
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 2)
            bn.bias.data.uniform_(-1, 1)

    def forward(self, x):
        c1 = self.conv1(x)
        h = torch.relu(self.bn1(c1)) + (c1 if self.tap else 0)
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.fc(h.view(h.shape[0], -1) if self.view_flatten else h.flatten(1))


def wrap(net, blocks):
    return Classifier(
        net,
        name="t",
        domain="fashion-mnist",
        input_size=(1, 8, 8),
        class_names=list("abc"),
        mean=(0.5,),
        std=(0.5,),
        block_names=blocks,
    )


@pytest.mark.parametrize(
    "kwargs, blocks, folded, channels_last",
    [
        ({}, ("fc",), 2, True),
        ({}, ("bn1",), 1, True),  # the catalogue hooks bn1: its output must stay a batch norm's output
        ({}, ("conv2",), 1, True),  # likewise conv2, whose output would become bn2's
        ({"tap": True}, ("fc",), 1, True),  # conv1's output is read twice: folding bn1 would change the other reader
        ({"shared_bn": True}, ("fc",), 0, True),  # one batch norm after two convolutions: neither can absorb it
        ({"view_flatten": True}, ("fc",), 2, False),  # .view over channels fails on channels-last: kept as given
    ],
)
def test_folding_and_layout_only_where_they_keep_the_function(kwargs, blocks, folded, channels_last):
    torch.manual_seed(0)
    reference = _Net(**kwargs).eval()
    state = reference.state_dict()
    net = _Net(**kwargs)
    net.load_state_dict(state)
    model = wrap(net, blocks)
    assert (model.folded_batch_norms, model.channels_last) == (folded, channels_last)
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        expected = reference((x - 0.5) / 0.5)
        assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-5)


class _SamePadConv(nn.Conv2d):
    """TensorFlow's "same" padding as ported networks write it: a zero-padding module, then an unpadded conv."""

    def __init__(self, channels, kernel, stride):
        super().__init__(channels, channels, kernel, stride)
        total = kernel - stride  # for an input side divisible by the stride
        self.static_padding = nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))

    def forward(self, x):
        return nn.functional.conv2d(self.static_padding(x), self.weight, self.bias, self.stride)


@pytest.mark.parametrize(
    "blocks, folded",
    [
        (("fc",), 2),  # both stride-1 convolutions; the stride-2 one pads (1, 2): no padding of a conv does that
        (("b",), 1),  # the catalogue hooks b: it stays the module it was
    ],
)
def test_even_same_padding_becomes_the_convolutions_own(blocks, folded):
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("a", _SamePadConv(2, 3, 1))
    net.add_module("down", _SamePadConv(2, 5, 2))
    net.add_module("b", _SamePadConv(2, 5, 1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(2 * 4 * 4, 3))
    x = torch.rand(3, 2, 8, 8)
    with torch.no_grad():
        expected = net(x)
    model = Classifier(
        net,
        name="t",
        domain="fashion-mnist",
        input_size=(2, 8, 8),
        class_names=list("abc"),
        mean=(0.0, 0.0),
        std=(1.0, 1.0),
        block_names=blocks,
    )
    assert model.folded_paddings == folded
    assert isinstance(net.down, _SamePadConv)
    assert type(net.a) is nn.Conv2d and net.a.padding == (1, 1)
    assert isinstance(net.b, _SamePadConv) == ("b" in blocks)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)
