"""Training losses over the model's output distributions.

`original_loss` is the original implementation's: torch's cross-entropy with the *probabilities* passed as if
they were logits, minus the best value that can take (-1 + ln(2^I - 1 + e), reached when the target has
probability 1), so a perfect model scores 0 and the numbers match the paper's. `nll_loss` is the negative
log-likelihood of the target word, the proper likelihood loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _scored_mean(values: torch.Tensor, scored: torch.Tensor | None) -> torch.Tensor:
    """The mean of `values` (..., B, T) over the `scored` entries of its last two axes (all if None): one mean per
    entry of the leading axes (a pool's members), a scalar without them. Each member's mean is computed exactly
    as a lone model's (a row of a reduction sums as the whole of one does)."""
    lead = values.shape[:-2]
    if scored is None:
        return values.reshape(*lead, -1).mean(-1)
    scored = scored.to(values.device).expand_as(values)
    chosen = values[scored]
    if not lead:
        return chosen.mean()
    counts = scored.reshape(-1, scored.shape[-2] * scored.shape[-1]).sum(-1)
    if bool((counts == counts[0]).all()):
        return chosen.view(*lead, -1).mean(-1)
    rows = values.reshape(-1, *values.shape[-2:])
    masks = scored.reshape(-1, *scored.shape[-2:])
    return torch.stack([row[mask].mean() for row, mask in zip(rows, masks, strict=True)]).view(lead)


def best_original_loss(input_size: int) -> float:
    """The smallest value the cross-entropy over probabilities-as-logits can take: -1 + ln(2^I - 1 + e)."""
    return -1.0 + math.log(2**input_size - 1 + math.e)


def original_loss(probs: torch.Tensor, target_words: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy with `probs` (B x 2^I x T) as logits against `target_words` (B x T), averaged over the
    `scored` steps (bool B x T, all if None), minus its best value. With leading axes (a pool's members: P x B x
    2^I x T, P x B x T), one loss per member, each the lone model's number."""
    words, steps = probs.shape[-2], probs.shape[-1]
    input_size = int(math.log2(words))
    per_step = F.cross_entropy(
        probs.reshape(-1, words, steps), target_words.to(probs.device).reshape(-1, steps), reduction="none"
    ).view(target_words.shape)
    return _scored_mean(per_step, scored) - best_original_loss(input_size)


def nll_loss(probs: torch.Tensor, target_words: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-probability of the target word over the scored steps (one per member with leading
    axes, as `original_loss`)."""
    chosen = probs.gather(-2, target_words.to(probs.device).unsqueeze(-2)).squeeze(-2)
    return _scored_mean(-torch.log(chosen.clamp_min(torch.finfo(probs.dtype).tiny)), scored)
