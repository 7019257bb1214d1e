"""The one model type the rest of the engine sees.

A `Classifier` takes images in [0, 1], N×C×H×W, and returns logits. Resizing
and mean/std normalisation happen inside `forward`, so attacks and analyses
only ever work in pixel space and one adversarial batch can be fed to models
with different input sizes (transfer between Lite0 at 224 px and Lite2 at
260 px, for example).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine import precision as policy
from engine.hooks import capture_activations
from engine.models import inference

# The precisions a model can be set to (engine.precision): `auto` and the modes it picks from.
PRECISIONS: tuple[str, ...] = policy.CHOICES


@dataclass(frozen=True)
class LayerInfo:
    """One entry of a model's layer catalogue, numbered from input to output."""

    index: int
    name: str  # dotted module name, relative to the Classifier (usable with get_submodule)
    shape: tuple[int, ...]  # C, H, W (or features) of the block's output for one image

    def as_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "shape": list(self.shape)}


class Classifier(nn.Module):
    """Eval-mode, frozen classifier over [0, 1] pixels with its metadata.

    `block_names` are dotted names inside `net`; they make up `.layers()`.
    `resize_size`/`crop_size` describe how `engine.images` fits a photo to the
    model (shorter side to `resize_size`, then a centred square crop).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str,
        domain: str,
        input_size: tuple[int, int, int],
        class_names: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        block_names: Sequence[str],
        cam_layer: str | None = None,
        resize_size: int | None = None,
        layers_unavailable: str | None = None,
    ):
        super().__init__()
        if len(mean) != input_size[0] or len(std) != input_size[0]:
            raise ValueError("mean/std must have one entry per input channel")
        self.net = net
        self.name = name
        self.domain = domain
        self.input_size = tuple(int(v) for v in input_size)
        self.class_names = list(class_names)
        self.resize_size = int(resize_size or input_size[1])
        self.crop_size = int(input_size[1])
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self._block_names = [f"net.{b}" for b in block_names]
        for block in self._block_names:
            self.get_submodule(block)  # fail at build time, not in the UI
        # A model whose intermediate outputs cannot be hooked (engine.models.formats: a TorchScript
        # archive that hides its layers) has no catalogue; `layers_unavailable` says why, and .layers(),
        # .cam_layer (Grad-CAM) and the feature-level attacks refuse with that reason.
        if not self._block_names and not layers_unavailable:
            raise ValueError("a Classifier needs at least one block name (or layers_unavailable='why not')")
        self.layers_unavailable = None if self._block_names else layers_unavailable
        self._cam_layer = f"net.{cam_layer}" if cam_layer else (self._block_names[-1] if self._block_names else None)
        self._layers: list[LayerInfo] | None = None
        self._probed: dict[str, tuple[int, ...]] = {}
        # Hooks mutate this shared module; analyses that register them hold this lock.
        self.lock = threading.RLock()
        self.precision = "auto"
        self.eval()
        self.requires_grad_(False)
        hooked = {n[len("net.") :] for n in [*self._block_names, *([self._cam_layer] if self._cam_layer else [])]}
        self.folded_batch_norms, self.folded_paddings, self.channels_last = inference.prepare(
            net, self.input_size, hooked
        )

    def _no_layers(self) -> ValueError:
        return ValueError(
            f"{self.name} has no layer catalogue ({self.layers_unavailable}); "
            "Grad-CAM and feature-level analyses need one, pixel-space attacks still work"
        )

    @property
    def cam_layer(self) -> str:
        if self._cam_layer is None:
            raise self._no_layers()
        return self._cam_layer

    @property
    def attack_defaults(self) -> dict:
        """The attack parameters this model's domain sets (attacks read them here, never from the domain)."""
        from engine import domains

        return dict(domains.of(self).attack_defaults)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def train(self, mode: bool = True):
        # A registry model is always in eval mode: batch-norm statistics and dropout
        # must not change under an attack or between sessions.
        return super().train(False)

    def fit_input(self, x: torch.Tensor) -> torch.Tensor:
        """Bring a batch to this model's channels and size, differentiably."""
        if x.dim() != 4:
            raise ValueError(f"expected an N×C×H×W batch, got shape {tuple(x.shape)}")
        c, h, w = self.input_size
        if x.shape[1] != c:
            if x.shape[1] == 1 and c == 3:
                x = x.expand(-1, 3, -1, -1)
            elif x.shape[1] == 3 and c == 1:
                x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
            else:
                raise ValueError(f"{self.name} expects {c} channels, got {x.shape[1]}")
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x

    def set_precision(self, precision: str) -> Classifier:
        """'auto' (default: engine.precision picks per attack run, and predicts in fp32), 'fp32', 'tf32', or
        'bf16'/'fp16' autocast for the network body; see bench/reference_overhead.py --precision for the speed
        and agreement each buys on a device."""
        self.precision = policy.check(precision)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = policy.effective(self.precision)
        with policy.tf32_flags(mode, x.device.type):
            return self.logits_in(x, mode)

    def logits_in(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """The logits computed in `mode` (fp32, tf32, bf16, fp16), the TF32 switches as the caller set them."""
        x = (self.fit_input(x) - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = policy.AUTOCAST.get(mode)
        if dtype is None:
            return self.net(x)
        # Mixed precision: the body runs in a half-width float, logits come back in float32 so losses, margins
        # and comparisons stay exact.
        with torch.autocast(device_type=x.device.type, dtype=dtype):
            return self.net(x).float()

    def layers(self) -> list[LayerInfo]:
        """The numbered catalogue of hookable blocks, input to output (shapes measured once)."""
        if self.layers_unavailable:
            raise self._no_layers()
        if self._layers is None:
            shapes = self._probe(self._block_names)
            self._layers = [LayerInfo(i, name, shapes[name]) for i, name in enumerate(self._block_names)]
        return list(self._layers)

    def activation_shape(self, name: str) -> tuple[int, ...]:
        """One image's activation shape at module `name`: from the catalogue, or (a user's model can name its
        CAM layer outside it) by one probe forward, kept."""
        for info in self.layers():
            if info.name == name:
                return info.shape
        if name not in self._probed:
            self._probed[name] = self._probe([name])[name]
        return self._probed[name]

    def _probe(self, names: list[str]) -> dict[str, tuple[int, ...]]:
        with self.lock, torch.no_grad(), capture_activations(self, names) as acts:
            self(torch.zeros((1, *self.input_size), device=self.device))
        return {name: tuple(acts[name].shape[1:]) for name in names}

    def layer(self, key: int | str) -> LayerInfo:
        """Look up a catalogue entry by index or dotted name, with a clear error."""
        layers = self.layers()
        if isinstance(key, int) or (isinstance(key, str) and key.lstrip("-").isdigit()):
            idx = int(key)
            if not -len(layers) <= idx < len(layers):
                raise ValueError(f"layer index {idx} out of range: {self.name} has layers 0..{len(layers) - 1}")
            return layers[idx]
        for info in layers:
            if info.name == key or info.name == f"net.{key}":
                return info
        raise ValueError(f"layer {key!r} does not exist in {self.name}; see .layers() for the catalogue")
