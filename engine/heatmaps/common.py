"""What every heat-map method shares: the class to explain, min–max scaling and batch chunks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-7


def class_index(logits: torch.Tensor, target) -> torch.Tensor:
    """One class index per example: `target` (an int or one per example), or the predicted class when None."""
    if target is None:
        return logits.argmax(1)
    index = torch.as_tensor(target, device=logits.device).long().reshape(-1)
    if index.numel() == 1:
        index = index.expand(logits.shape[0])
    if index.numel() != logits.shape[0]:
        raise ValueError(f"target has {index.numel()} entries for a batch of {logits.shape[0]}")
    if bool(((index < 0) | (index >= logits.shape[1])).any()):
        raise ValueError(f"target must be class indices in 0..{logits.shape[1] - 1}")
    return index


def resolve_target(model, x: torch.Tensor, target) -> torch.Tensor:
    """`class_index` for methods whose forwards run on changed inputs: the predicted class is the clean image's."""
    if target is None:
        with torch.no_grad():
            return model(x).argmax(1)
    return class_index(torch.empty(x.shape[0], model.num_classes, device=x.device), target)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min–max scaling to [0, 1] (a constant map becomes all zeros)."""
    flat = maps.flatten(1)
    flat = flat - flat.min(1, keepdim=True).values
    return (flat / (flat.max(1, keepdim=True).values + EPS)).view_as(maps)


def to_input_size(maps: torch.Tensor, size) -> torch.Tensor:
    """A layer-resolution map scaled, upsampled bilinearly to the input and scaled again (as pytorch-grad-cam)."""
    maps = F.interpolate(normalise(maps)[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return normalise(maps)


def rows_per_chunk(sample_shape, batch_size: int | None) -> int:
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
    # Imported here: engine.attacks imports Mask-FGSM, which imports this package.
    from engine.attacks.chunks import chunk_size

    return int(batch_size) if batch_size is not None else chunk_size(sample_shape)


def target_gradients(model, inputs: torch.Tensor, index: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """∂ logit[index] / ∂ input for each row, in chunks (rows are independent: the model is in eval mode)."""
    step = rows_per_chunk(inputs.shape[1:], batch_size)
    grads = []
    for start in range(0, inputs.shape[0], step):
        part = inputs[start : start + step].detach().requires_grad_(True)
        scores = model(part).gather(1, index[start : start + step, None]).sum()
        grads.append(torch.autograd.grad(scores, part)[0])
    return torch.cat(grads)
