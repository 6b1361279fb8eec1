"""PC²L losses against hand-computed values (the entity swap of CCL's hard negatives: test_generation_entities)."""
import math

import pytest
import torch

from showcase.generation.losses import (
    ContrastiveHeads,
    LossConfig,
    contrastive_loss,
    masked_mean,
    personalization_weights,
)

E = math.e
S = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # cos(S_i, S_j) = [i == j]


def test_contrastive_loss_plain_is_infonce():
    # each row: -log(e^1 / (e^1 + e^0)) with tau = 1
    expected = math.log(1 + math.exp(-1))
    assert contrastive_loss(S, S, tau=1.0).item() == pytest.approx(expected, rel=1e-6)
    # tau scales the cosines; scaling the vectors does not matter (cosine)
    expected = math.log(1 + math.exp(-1 / 0.5))
    assert contrastive_loss(3 * S, 0.5 * S, tau=0.5).item() == pytest.approx(expected, rel=1e-5)


def test_contrastive_loss_negative_weights():
    w = torch.tensor([[7.0, 2.0], [3.0, 9.0]])  # the diagonal must be ignored
    expected = (math.log((E + 2) / E) + math.log((E + 3) / E)) / 2
    assert contrastive_loss(S, S, 1.0, negative_weights=w).item() == pytest.approx(expected, rel=1e-6)
    # a zero weight removes the negative: the loss of a row becomes -log(1) = 0
    assert contrastive_loss(S, S, 1.0, negative_weights=torch.zeros(2, 2)).item() == pytest.approx(0.0, abs=1e-7)


def test_contrastive_loss_hard_negatives_and_mask():
    hard = torch.tensor([[1.0, 1.0], [0.0, -1.0]])  # cos with S_0: 1/sqrt(2); with S_1: -1
    tau = 0.5
    row0 = math.log((E ** 2 + 1 + math.exp(2 / math.sqrt(2))) / E ** 2)
    row1 = math.log((E ** 2 + 1 + math.exp(-2)) / E ** 2)
    assert contrastive_loss(S, S, tau, hard_negatives=hard).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    mask = torch.tensor([True, False])  # row 1 has no hard negative
    plain1 = math.log(1 + math.exp(-2))
    got = contrastive_loss(S, S, tau, hard_negatives=hard, hard_negative_mask=mask).item()
    assert got == pytest.approx((row0 + plain1) / 2, rel=1e-6)
    # weights and hard negatives together: Eq. 8 + Eq. 9 terms in one denominator
    w = torch.tensor([[1.0, 0.5], [4.0, 1.0]])
    row0 = math.log((E ** 2 + 0.5 + math.exp(2 / math.sqrt(2))) / E ** 2)
    row1 = math.log((E ** 2 + 4 + math.exp(-2)) / E ** 2)
    got = contrastive_loss(S, S, tau, hard_negatives=hard, negative_weights=w).item()
    assert got == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_contrastive_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="negative_weights"):
        contrastive_loss(S, S, 1.0, negative_weights=torch.ones(3, 3))
    with pytest.raises(ValueError, match="tau"):
        contrastive_loss(S, S, 0.0)
    with pytest.raises(ValueError, match="hard_negatives"):
        contrastive_loss(S, S, 1.0, hard_negatives=torch.ones(2, 3))


def test_personalization_weights_eq10():
    r = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    cos = [[1, 0, c], [0, 1, c], [c, c, 1]]
    for alpha in (E, 2.0):
        w = personalization_weights(r, alpha)
        expected = torch.tensor([[alpha ** (1 - x) for x in row] for row in cos])
        torch.testing.assert_close(w, expected)
    # alpha > 1: the more different two histories, the heavier their pair's negative
    w = personalization_weights(r, E)
    assert w[0, 1] > w[0, 2] > w[0, 0] == pytest.approx(1.0)


def test_masked_mean_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [7.0], [9.0]]])
    m = torch.tensor([[True, True, False], [False, False, False]])
    torch.testing.assert_close(masked_mean(x, m), torch.tensor([[2.0], [0.0]]))


def test_contrastive_heads_follow_the_config():
    torch.manual_seed(0)
    h = [torch.randn(4, 8) for _ in range(4)]
    hist = torch.randn(4, 5)
    heads = ContrastiveHeads(8, LossConfig(image_loss="ccl", text_loss="pcl", projection_dim=6))
    out = heads(h[0], h[1], h[2], h[3], torch.ones(4, dtype=torch.bool), hist)
    assert set(out) == {"image", "text"} and all(v.isfinite() for v in out.values())
    expected = contrastive_loss(heads.phi_r(h[1]), heads.phi_y(h[2]), 0.1,
                                negative_weights=personalization_weights(hist, E))
    torch.testing.assert_close(out["text"], expected)
    assert ContrastiveHeads(8, LossConfig(image_loss="none", text_loss="none"))(*h) == {}
    with pytest.raises(ValueError, match="image_loss"):
        LossConfig(image_loss="pcl")
    with pytest.raises(ValueError, match="h_ent"):
        heads(h[0], h[1], h[2], None, None, hist)


def test_loss_config_rejects_unknown_choices():
    for field in ("ce_reduction", "target_view", "history_features"):
        with pytest.raises(ValueError, match=field):
            LossConfig(**{field: "bogus"})
