"""Classical baselines: a one-layer torch RNN or LSTM with a linear readout to the 2^I word logits, behind the
forward contract of `qrnn.QRNN`, so that the training loop, the losses, checkpoints and evaluation treat them
like a QRNN.

Each step feeds the input word one-hot encoded (2^I values: the network sees words, as the QRNN's kernels are
indexed by words) and reads out `probs` = softmax of the logits, the distribution over the next word; the losses
(`qrnn.loss.original_loss` / `nll_loss`) then apply unchanged. Teacher forcing: the network always reads
`inputs[:, t]`; what is measured (postselected or sampled) does not feed back. With one-hot inputs and torch's
two bias vectors per gate, an RNN of width 22 and an LSTM of width 10 on 3-bit words (the paper's DNA
comparison) have exactly 888 parameters each; the QRNN they are compared with (workspace 5, 1 stage, degree 3)
has 837.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qrnn.bits import bits_to_int, int_to_bits
from qrnn.errors import QRNNError
from qrnn.sequences import Postselect, check_sequences, postselection_mask, sample_outcomes, sampling_uniforms

BASELINE_KINDS = ("rnn", "lstm")
# How a baseline starts: "standard" (below), or "notebook": the original's comparison notebooks
# (notebooks/long-sequence-comparisons-*.ipynb): input weights Xavier-uniform, every recurrent bias 0, the
# recurrent weights orthogonal per gate, the readout as torch's nn.Linear draws it.
BASELINE_INITS = ("standard", "notebook")
# LSTM forget gates start biased open, so that memory is kept by default (Jozefowicz et al., 2015).
LSTM_FORGET_BIAS = 1.0


def parameter_count(model: nn.Module) -> int:
    """The number of trainable scalars of `model` (any kind: QRNN or baseline)."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def estimate_memory_bytes(kind: str, input_size: int, hidden_size: int, batch: int, length: int, itemsize: int,
                          layers: int = 1) -> int:
    """Bytes a training step of a baseline of these sizes holds at its peak (an upper estimate, computed without
    building it): the parameters with their gradients and two optimizer states, and per step the one-hot inputs,
    each layer's gates and hidden states, the readout's logits and probabilities and their gradients."""
    words = 2**input_size
    gates = 1 if kind == "rnn" else 4
    first = gates * hidden_size * (words + hidden_size + 2)
    deeper = gates * hidden_size * (2 * hidden_size + 2)
    parameters = first + (layers - 1) * deeper + words * (hidden_size + 1)
    per_step = batch * (words + layers * (3 * gates * hidden_size + 2 * hidden_size) + 4 * words)
    return (4 * parameters + length * per_step) * itemsize


class ClassicalBaseline(nn.Module):
    """A classical recurrent baseline of kind `kind` ("rnn": tanh Elman RNN, "lstm") with `layers` stacked
    layers of `hidden_size` units on words of `input_size` bits, started as `init` says (`BASELINE_INITS`); call
    it like `qrnn.QRNN`: `probs, measured, min_postselection_probability = model(inputs, targets, postselect=True)`.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, layers: int = 1, init: str = "standard") -> None:
        super().__init__()
        if kind not in BASELINE_KINDS:
            raise QRNNError(f"unknown baseline kind {kind!r}; valid: {', '.join(BASELINE_KINDS)}")
        if not isinstance(input_size, int) or input_size < 1:
            raise QRNNError(f"a baseline needs an input size of at least 1 bit, got {input_size!r}")
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise QRNNError(f"a baseline needs a hidden width (--workspace) of at least 1, got {hidden_size!r}")
        if not isinstance(layers, int) or layers < 1:
            raise QRNNError(f"a baseline needs at least 1 layer (--layers), got {layers!r}")
        if init not in BASELINE_INITS:
            raise QRNNError(f"unknown baseline initialisation {init!r}; valid: {', '.join(BASELINE_INITS)}")
        self.kind = kind
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.layers = layers
        self.init = init
        words = 2**input_size
        recurrent = nn.RNN if kind == "rnn" else nn.LSTM
        self.recurrent = recurrent(words, hidden_size, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, words)
        self.reset_parameters()

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments as plain data, with the model kind (what checkpoints store)."""
        return {"model": self.kind, "input_size": self.input_size, "hidden_size": self.hidden_size,
                "layers": self.layers, "init": self.init}

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"layers={self.layers}, init={self.init}")

    @torch.no_grad()
    def reset_parameters(
        self,
        bias_spread: float = 0.1,
        weights_spread: float = 0.01,
        unitaries_spread: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        """The initialisation `self.init`, seeded by `generator`, layer by layer.

        "standard": input and readout weights uniform in +-1/sqrt(hidden) (torch's default range), recurrent
        weights orthogonal (one orthogonal block per gate), biases zero except the LSTM's forget gates (1).
        "notebook" (the original's comparison notebooks): input weights Xavier-uniform (+-sqrt(6 / (fan_in +
        fan_out))), recurrent weights orthogonal per gate, every recurrent bias 0, and the readout as torch's
        nn.Linear starts it (weight and bias uniform in +-1/sqrt(hidden)).

        The spreads are the QRNN's initialisation options; they do not apply to a classical network and are
        accepted so that every model kind is initialised through the same call. Draws happen on the CPU in float64
        in a fixed order, so a seed gives the same network on every device, dtype and shard."""
        del bias_spread, weights_spread, unitaries_spread
        bound = 1.0 / math.sqrt(self.hidden_size)
        hidden = self.hidden_size

        def uniform(parameter: torch.Tensor, limit: float = bound) -> None:
            values = torch.rand(parameter.shape, generator=generator, dtype=torch.float64) * (2 * limit) - limit
            parameter.copy_(values.to(parameter.dtype))

        def orthogonal_blocks(parameter: torch.Tensor) -> None:
            blocks = []
            for _ in range(parameter.shape[0] // hidden):
                block = torch.empty(hidden, hidden, dtype=torch.float64)
                nn.init.orthogonal_(block, generator=generator)
                blocks.append(block)
            parameter.copy_(torch.cat(blocks).to(parameter.dtype))

        notebook = self.init == "notebook"
        for layer in range(self.layers):
            weight_ih = getattr(self.recurrent, f"weight_ih_l{layer}")
            fan_out, fan_in = weight_ih.shape
            uniform(weight_ih, math.sqrt(6.0 / (fan_in + fan_out)) if notebook else bound)
            orthogonal_blocks(getattr(self.recurrent, f"weight_hh_l{layer}"))
            bias_ih = getattr(self.recurrent, f"bias_ih_l{layer}")
            bias_ih.zero_()
            getattr(self.recurrent, f"bias_hh_l{layer}").zero_()
            if self.kind == "lstm" and not notebook:
                # torch's gate order is input, forget, cell, output; one of the two bias vectors carries the offset.
                bias_ih[hidden : 2 * hidden] = LSTM_FORGET_BIAS
        uniform(self.readout.weight)
        if notebook:
            uniform(self.readout.bias)
        else:
            self.readout.bias.zero_()

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        postselect: Postselect = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Run sequences with teacher forcing; the contract of `qrnn.QRNN.forward`: `inputs`, `targets` integer
        bits B x L x I (or L x I); step t feeds `inputs[:, t]` and predicts `targets[:, t + 1]`.

        Returns `probs` (B x 2^I x (L-1), softmax of the readout), `measured` (B x (L-1) x I: the target word
        where postselected, else a word sampled from `probs` with `generator`) and the smallest probability of a
        postselected target word (1.0 if none was postselected)."""
        unbatched = inputs.dim() == 2
        inputs, targets = check_sequences(inputs, targets, self.input_size)
        batch, length, _ = inputs.shape
        weight = self.readout.weight
        device, dtype = weight.device, weight.dtype
        words = bits_to_int(inputs[:, :-1]).to(device)
        target_words = bits_to_int(targets[:, 1:]).to(device)
        encoded = F.one_hot(words, 2**self.input_size).to(dtype)
        hidden_states, _ = self.recurrent(encoded)
        probs = torch.softmax(self.readout(hidden_states), dim=-1)  # B x (L-1) x 2^I
        # The same postselection rule and sampling as the QRNN: one uniform per step and sample, drawn in float64
        # on the CPU (step-major), compared with the cumulative distribution.
        postselected = postselection_mask(postselect, targets, device).T  # B x (L-1)
        detached = probs.detach()
        if bool(postselected.all()):
            measured = target_words
        else:
            uniforms = sampling_uniforms(length - 1, batch, generator, device, dtype).T
            sampled = sample_outcomes(detached, uniforms)
            measured = torch.where(postselected, target_words, sampled)
        chosen = detached.gather(-1, target_words.unsqueeze(-1)).squeeze(-1)[postselected]
        minimum = float(chosen.min()) if chosen.numel() else 1.0
        probs = probs.transpose(1, 2)
        measured_bits = int_to_bits(measured, self.input_size)
        if unbatched:
            return probs[0], measured_bits[0], minimum
        return probs, measured_bits, minimum
