"""The modelled step cost of the virtual clock: more work never costs less time."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.live.stepcost import REFERENCE_COST, StepWork

works = st.builds(
    StepWork,
    encoder_positions=st.integers(50, 1650),
    prefill_tokens=st.integers(1, 448),
    decoder_calls=st.integers(0, 224),
    fed_tokens=st.integers(0, 448),
    output_tokens=st.integers(0, 224),
)


@given(works, st.sampled_from([f.name for f in fields(StepWork)]), st.integers(1, 200))
def test_more_of_any_work_costs_more(work, name, more):
    bigger = replace(work, **{name: getattr(work, name) + more})
    assert REFERENCE_COST.seconds(bigger) > REFERENCE_COST.seconds(work) > 0


@given(works, st.floats(0.1, 100))
def test_speed_divides_the_cost(work, speed):
    assert REFERENCE_COST.seconds(work, speed) == pytest.approx(
        REFERENCE_COST.seconds(work) / speed
    )


def test_a_typical_step_costs_what_it_did_on_the_reference_cpu():
    """The mean step of the fit: 11.5 s encoded (window and padding), a 46-token prefill,
    6 further calls; it took 0.33 s on the reference CPU, 0.19 s of it in the encoder."""
    work = StepWork(
        encoder_positions=575, prefill_tokens=46, decoder_calls=6, fed_tokens=12, output_tokens=40
    )
    assert 0.25 < REFERENCE_COST.seconds(work) < 0.40
    # without tokens: the encoder and the fixed part of the prefill and the alignment
    no_tokens = replace(work, prefill_tokens=0, decoder_calls=0, fed_tokens=0, output_tokens=0)
    assert 0.19 < REFERENCE_COST.seconds(no_tokens) < 0.24
