"""What a streaming step costs, modelled from the work it did, for a virtual clock that repeats.

At ``--pace fast`` the pipeline's clock normally advances by each step's measured compute
time, so it schedules as real time would on this machine. Measured time varies from run to
run (a shared virtual machine, another process, the CPU's clock), and a step ending 20 ms
later can move the next step's window end by a block, which changes what is read: the same
code gave 7.63% and 8.57% WER on one machine. A modelled cost depends only on the work (the
encoder's input length, the tokens fed to the decoder, the number of decoder calls), so a run
repeats exactly, on any machine, and a setting can be judged by one run instead of a spread.

The coefficients were fitted on 729 steps of tiny.en int8 streaming the long-form files on a
2-core AMD EPYC (family 23 model 1, AVX2 without VNNI), where the model is within 3% of the
measured step time at the median and 0.3% in total. ``speed`` scales it: 2.5 is about the
2-core Xeon of the real-time figures in docs/benchmarks.md.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepWork:
    """What one streaming step computed, in the units its cost grows with."""

    encoder_positions: int  # encoder output frames (50 per second of input)
    prefill_tokens: int  # tokens of the decoder's first call
    decoder_calls: int  # calls after the prefill
    fed_tokens: int  # tokens fed to those calls
    output_tokens: int  # tokens of the reading (alignment rows)
    detections: int = 0  # language detections: a one-token prefill each


@dataclass(frozen=True)
class StepCostModel:
    """Milliseconds on the reference CPU; each term is one kind of work."""

    # encoder: fixed + per position + attention (quadratic in positions)
    encoder_ms: tuple[float, float, float] = (27.2, 0.161, 1.94e-4)
    # decoder: fixed + per prefilled token + its cross-attention over the positions
    prefill_ms: tuple[float, float, float] = (33.5, 0.205, 1.32e-3)
    # each later call: fixed + cross-attention over the positions, plus per token fed
    call_ms: tuple[float, float] = (3.71, 1.69e-3)
    fed_token_ms: float = 0.95
    # word alignment: fixed + attention rows times positions (median filter, DTW)
    align_ms: tuple[float, float] = (1.17, 7.09e-4)

    def seconds(self, work: StepWork, speed: float = 1.0) -> float:
        """The step's modelled compute time on a CPU ``speed`` times the reference's."""
        positions = work.encoder_positions
        e0, e1, e2 = self.encoder_ms
        p0, p1, p2 = self.prefill_ms
        c0, c1 = self.call_ms
        a0, a1 = self.align_ms
        encoder = e0 + e1 * positions + e2 * positions * positions
        prefill = p0 + work.prefill_tokens * (p1 + p2 * positions)
        calls = work.decoder_calls * (c0 + c1 * positions) + work.fed_tokens * self.fed_token_ms
        align = a0 + a1 * work.output_tokens * positions
        detect = work.detections * (p0 + p1 + p2 * positions)
        return (encoder + prefill + calls + align + detect) / 1000 / speed


REFERENCE_COST = StepCostModel()
