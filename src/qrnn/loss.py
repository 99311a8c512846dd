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
    if scored is None:
        return values.mean()
    scored = scored.to(values.device).expand_as(values)
    return values[scored].mean()


def best_original_loss(input_size: int) -> float:
    """The smallest value the cross-entropy over probabilities-as-logits can take: -1 + ln(2^I - 1 + e)."""
    return -1.0 + math.log(2**input_size - 1 + math.e)


def original_loss(probs: torch.Tensor, target_words: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy with `probs` (B x 2^I x T) as logits against `target_words` (B x T), averaged over the
    `scored` steps (bool B x T, all if None), minus its best value."""
    input_size = int(math.log2(probs.shape[1]))
    per_step = F.cross_entropy(probs, target_words.to(probs.device), reduction="none")
    return _scored_mean(per_step, scored) - best_original_loss(input_size)


def nll_loss(probs: torch.Tensor, target_words: torch.Tensor, scored: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-probability of the target word over the scored steps."""
    chosen = probs.gather(1, target_words.to(probs.device).unsqueeze(1)).squeeze(1)
    return _scored_mean(-torch.log(chosen.clamp_min(torch.finfo(probs.dtype).tiny)), scored)
