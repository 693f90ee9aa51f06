"""sparsemax / sparsestmax: the worked example, hand cases and properties on random logits."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fsd.nn import sparsemax, sparsestmax

EXAMPLE = torch.tensor([1.0, 1.2, 0.9])

logit_vectors = st.integers(min_value=2, max_value=6).flatmap(
    lambda k: st.lists(
        st.floats(min_value=-3.0, max_value=3.0, allow_nan=False, allow_subnormal=False),
        min_size=k,
        max_size=k,
    )
)
radii = st.floats(min_value=0.0, max_value=1.2, allow_nan=False)


@pytest.mark.parametrize(
    ("radius", "expected"),
    [(0.0, [0.30, 0.50, 0.20]), (0.7, [0.10, 0.90, 0.0]), (0.82, [0.0, 1.0, 0.0]), (1.0, [0.0, 1.0, 0.0])],
)
def test_reference_worked_example(radius, expected):
    torch.testing.assert_close(sparsestmax(EXAMPLE, radius), torch.tensor(expected), atol=0.01, rtol=0)


def test_example_becomes_one_hot_exactly_at_the_vertex_distance_of_its_edge():
    # on the edge {0, 1} one-hot lies sqrt(1/2) from the edge centre, which is sqrt(1/6) from u
    onset = math.sqrt(0.5 + 1.0 / 6.0)
    assert sparsestmax(EXAMPLE, onset - 0.01)[0] > 0
    assert torch.equal(sparsestmax(EXAMPLE, onset + 1e-4), torch.tensor([0.0, 1.0, 0.0]))


@pytest.mark.parametrize(
    ("logits", "expected"),
    [
        ([0.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]),
        ([2.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
        ([0.5, 0.0, -1.0], [0.75, 0.25, 0.0]),  # tau = (0.5 + 0 - 1) / 2 = -0.25
        ([1.0, 1.0, 0.0, -5.0], [0.5, 0.5, 0.0, 0.0]),  # tau = 0.5, the third entry is clipped
        ([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]),  # already on the simplex
    ],
)
def test_sparsemax_hand_cases(logits, expected):
    logits = torch.tensor(logits, dtype=torch.float64)
    torch.testing.assert_close(sparsemax(logits), torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(sparsestmax(logits, 0.0), torch.tensor(expected, dtype=torch.float64))


def euclidean_projection_cost(point: torch.Tensor, logits: torch.Tensor) -> float:
    return float(((point - logits) ** 2).sum())


@settings(max_examples=60, deadline=None)
@given(logit_vectors)
def test_sparsemax_is_the_closest_point_of_the_simplex(values):
    logits = torch.tensor(values, dtype=torch.float64)
    projection = sparsemax(logits)
    assert projection.min() >= 0 and abs(float(projection.sum()) - 1.0) < 1e-9
    # no random point of the simplex is closer to the logits
    candidates = torch.distributions.Dirichlet(torch.ones(len(values), dtype=torch.float64)).sample((200,))
    best = euclidean_projection_cost(projection, logits)
    assert all(euclidean_projection_cost(c, logits) >= best - 1e-12 for c in candidates)


@settings(max_examples=100, deadline=None)
@given(logit_vectors, radii)
def test_sparsestmax_properties(values, radius):
    logits = torch.tensor(values, dtype=torch.float64)
    k = len(values)
    out = sparsestmax(logits, radius)
    base = sparsemax(logits)
    assert out.min() >= 0 and abs(float(out.sum()) - 1.0) < 1e-9
    assert not bool(((out > 0) & (base == 0)).any()), "support must not grow beyond sparsemax's"
    centre = torch.full_like(out, 1.0 / k)
    distance = float((out - centre).norm())
    at_centre_of_its_face = (base[base > 0] - base[base > 0].mean()).abs().max() < 1e-6
    if not at_centre_of_its_face:
        # the result honours the radius constraint, or is a vertex when the radius exceeds the simplex
        assert distance >= min(radius, math.sqrt(1 - 1 / k)) - 1e-7
    if radius >= math.sqrt(1 - 1 / k) and not at_centre_of_its_face:
        assert int((out > 0).sum()) == 1


@settings(max_examples=40, deadline=None)
@given(logit_vectors)
def test_radius_zero_is_sparsemax_and_large_radius_is_argmax(values):
    logits = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(sparsestmax(logits, 0.0), sparsemax(logits))
    top_two = torch.topk(logits, 2).values
    if float(top_two[0] - top_two[1]) > 1e-6:
        one_hot = torch.nn.functional.one_hot(logits.argmax(), len(values)).to(logits.dtype)
        torch.testing.assert_close(sparsestmax(logits, 1.0), one_hot)


def test_batched_rows_equal_rows_processed_one_by_one():
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))
    for radius in (0.0, 0.3, 0.6, 0.9):
        batched = sparsestmax(logits, radius)
        for row in range(8):
            torch.testing.assert_close(batched[row], sparsestmax(logits[row], radius))


def test_gradients_flow_through_the_projection():
    logits = torch.tensor([1.0, 1.2, 0.9, 0.95], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: sparsestmax(z, 0.3), (logits,))
    assert torch.autograd.gradcheck(lambda z: sparsestmax(z, 0.0), (logits,))
    out = sparsestmax(logits, 0.3)
    (out * torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=torch.float64)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_tied_logits_are_broken_towards_the_first_largest_one():
    logits = torch.zeros(3, requires_grad=True)
    out = sparsestmax(logits, 0.5)
    centre = torch.full((3,), 1 / 3)
    assert abs(float((out.detach() - centre).norm()) - 0.5) < 1e-6
    assert out[0] > out[1] and torch.isclose(out[1], out[2])
    out[0].backward()
    assert torch.isfinite(logits.grad).all()
    # a tie on an edge: [0, .25, .25] reaches the edge centre [0, .5, .5] and moves to a vertex
    torch.testing.assert_close(
        sparsestmax(torch.tensor([0.0, 0.25, 0.25]), 1.0), torch.tensor([0.0, 1.0, 0.0])
    )
    assert torch.equal(sparsestmax(torch.zeros(4), 1.0), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_scripted_functions_equal_eager_ones():
    scripted = torch.jit.script(sparsestmax)
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    for radius in (0.0, 0.5, 0.8):
        torch.testing.assert_close(scripted(logits, radius), sparsestmax(logits, radius))
    torch.testing.assert_close(torch.jit.script(sparsemax)(logits), sparsemax(logits))


def test_output_keeps_the_device_and_dtype_of_the_logits():
    logits = torch.randn(3, dtype=torch.float64)
    out = sparsestmax(logits, 0.6)
    assert out.dtype == torch.float64 and out.device == logits.device


@pytest.mark.parametrize("radius", [-0.1, float("nan"), float("inf")])
def test_invalid_radius_is_rejected(radius):
    with pytest.raises(ValueError, match="radius"):
        sparsestmax(EXAMPLE, radius)
