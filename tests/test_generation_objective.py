"""The PC²L objective as the module computes it (Eq. 5 and 11): CE summed per sequence or averaged per token, H^Y read
from the text alone or from the pass that saw the photos, Eq. 10 on standardised or raw history features."""
import pytest
import torch

from showcase.generation.losses import LossConfig, masked_mean, personalization_weights
from showcase.generation.model import GeneratorConfig
from showcase.generation.module import GeneratorModule
from showcase.generation.tokenizer import encode_targets, load_tokenizer

F = 8


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    out = encode_targets(load_tokenizer(), ["The pad thai was rich.", "My beef taco came out warm and tasty.", "Wow"],
                         max_length=16)
    ent = encode_targets(load_tokenizer(), ["The beef taco was rich.", "My pad thai came out warm and tasty.", "Wow"],
                         max_length=16)
    out.update(image_features=torch.randn(3, 2, F, generator=g), image_mask=torch.ones(3, 2, dtype=torch.bool),
               review_features=5 + torch.randn(3, 4, F, generator=g), review_mask=torch.ones(3, 4, dtype=torch.bool),
               ent_input_ids=ent["input_ids"], ent_attention_mask=ent["attention_mask"],
               ent_mask=torch.tensor([True, True, False]))
    return out


def _module(**loss) -> GeneratorModule:
    torch.manual_seed(0)
    return GeneratorModule(GeneratorConfig.tiny(feature_dim=F, n_embd=16, n_head=2, n_layer=1, max_length=16),
                           LossConfig(**loss)).eval()


def test_ce_reduction(batch):
    seq, tok = _module(ce_reduction="sequence").losses(batch), _module(ce_reduction="token").losses(batch)
    n_tokens = (batch["labels"] != -100).sum()
    torch.testing.assert_close(seq["ce"], tok["ce"])  # logged per token either way
    # the objective: Σ_tokens / B against Σ_tokens / n_tokens, the contrastive terms unchanged
    torch.testing.assert_close(seq["loss"] - 0.2 * (seq["image"] + seq["text"]), tok["ce"] * n_tokens / 3)
    torch.testing.assert_close(seq["image"], tok["image"])


@pytest.mark.parametrize("view", ["text", "conditioned"])
def test_target_view_decides_whether_h_y_sees_the_photos(batch, view, monkeypatch):
    module = _module(target_view=view)
    seen = []
    forward = module.heads.forward
    monkeypatch.setattr(module.heads, "forward",
                        lambda h_v, h_r, h_y, *a: seen.append(h_y) or forward(h_v, h_r, h_y, *a))
    module.losses(batch)
    module.losses({**batch, "image_features": batch["image_features"] + 3.0})  # other photos, same texts
    if view == "text":
        torch.testing.assert_close(seen[0], seen[1])
    else:
        assert not torch.allclose(seen[0], seen[1])


def test_pcl_weights_use_standardised_history(batch, monkeypatch):
    for features in ("standardized", "raw"):
        module = _module(history_features=features)
        enc = module.model.encoder
        reviews = batch["review_features"].reshape(-1, F)
        enc.set_feature_statistics(None, reviews)
        got = []
        monkeypatch.setattr("showcase.generation.losses.personalization_weights",
                            lambda h, a, got=got: got.append(h) or personalization_weights(h, a))
        module.losses(batch)
        feats = batch["review_features"]
        if features == "standardized":
            feats = (feats - reviews.mean(0)) / reviews.std(0)
        torch.testing.assert_close(got[0], masked_mean(feats, batch["review_mask"]))
    # raw CLIP-like features share an offset: cosines near 1, weights near 1 (PCL ≈ CL); standardised ones spread
    standardised = (batch["review_features"] - reviews.mean(0)) / reviews.std(0)
    off = ~torch.eye(3, dtype=torch.bool)
    raw_w = personalization_weights(masked_mean(batch["review_features"], batch["review_mask"]), 2.718281828)[off]
    std_w = personalization_weights(masked_mean(standardised, batch["review_mask"]), 2.718281828)[off]
    assert raw_w.max() < 1.1 and std_w.max() > 2.0
