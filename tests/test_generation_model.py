"""Generator architecture: the decoder is plain GPT-2 plus cross-attention, the encoder respects its masks, beam search
is batched and cached correctly, and a saved folder reloads alone."""
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from showcase.errors import UserError
from showcase.generation.model import ExplanationGenerator, GeneratorConfig
from showcase.generation.tokenizer import encode_targets, load_tokenizer

F = 16


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def generator(tokenizer):
    torch.manual_seed(0)
    return ExplanationGenerator(GeneratorConfig.tiny(feature_dim=F, n_embd=32, n_head=2), tokenizer).eval()


def _inputs(b=3, n=4, k=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    img, rev = torch.randn(b, n, F, generator=g), torch.randn(b, k, F, generator=g)
    img_mask = torch.ones(b, n, dtype=torch.bool)
    img_mask[1, 2:] = False
    rev_mask = torch.ones(b, k, dtype=torch.bool)
    rev_mask[b - 1, :] = False  # a user without history
    return img, img_mask, rev, rev_mask


def test_tokenizer_is_gpt2s_with_explicit_padding(tokenizer):
    assert len(tokenizer) == 50257
    assert tokenizer.encode("The miso ramen was rich.") == [464, 2984, 78, 15770, 268, 373, 5527, 13]
    assert tokenizer.pad_token_id == tokenizer.eos_token_id == tokenizer.bos_token_id == 50256
    batch = encode_targets(tokenizer, ["The miso ramen was rich.", "Hi"], max_length=6)
    # [BOS] + 4 tokens kept + [EOS]; the EOS label survives although EOS is also the pad id
    assert batch["labels"][0].tolist() == [464, 2984, 78, 15770, 50256]
    assert batch["input_ids"][0].tolist() == [50256, 464, 2984, 78, 15770]
    assert batch["labels"][1].tolist() == [17250, 50256, -100, -100, -100]
    assert batch["attention_mask"][1].tolist() == [1, 1, 0, 0, 0]


def test_zero_encoder_cross_attention_leaves_gpt2_unchanged():
    """Cross-attention to an all-zero encoder adds `c_proj(b_v) + b_proj` (value and output biases) to the residual
    stream: it is a no-op exactly when those biases are zero. With them zeroed (and every other weight random,
    biases included), the decoder's logits must equal plain GPT-2's with the same weights."""
    torch.manual_seed(0)
    cfg = dict(vocab_size=300, n_positions=32, n_embd=32, n_layer=3, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
               attn_pdrop=0.0)
    plain = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    with torch.no_grad():
        for p in plain.parameters():  # random everything, so that no zero-initialised bias hides a difference
            p.add_(0.1 * torch.randn_like(p))
    gen = ExplanationGenerator(GeneratorConfig(feature_dim=F, decoder=None, n_embd=32, n_head=4, n_layer=3,
                                               n_positions=32, vocab_size=300, dropout=0.0, max_length=16)).eval()
    dec = gen.decoder
    missing, unexpected = dec.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all("crossattention" in k or "ln_cross_attn" in k for k in missing)
    with torch.no_grad():
        for block in dec.transformer.h:
            for p in block.crossattention.parameters():
                p.copy_(torch.randn_like(p))
            block.crossattention.c_attn.bias[32:].zero_()  # value half of the key/value bias
            block.crossattention.c_proj.bias.zero_()
    ids = torch.randint(0, 300, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    zeros = torch.zeros(2, 5, 32)
    _, logits = gen.decode(ids, mask, zeros, torch.ones(2, 5, dtype=torch.bool))
    torch.testing.assert_close(logits, plain(input_ids=ids, attention_mask=mask).logits, rtol=1e-5, atol=1e-5)
    # the check can fail: a non-zero encoder (or a value bias) changes the logits
    _, other = gen.decode(ids, mask, torch.randn(2, 5, 32), torch.ones(2, 5, dtype=torch.bool))
    assert not torch.allclose(other, logits, atol=1e-3)
    with torch.no_grad():
        dec.transformer.h[0].crossattention.c_attn.bias[32:].normal_()
    _, biased = gen.decode(ids, mask, zeros, torch.ones(2, 5, dtype=torch.bool))
    assert not torch.allclose(biased, logits, atol=1e-3)


def test_decoder_loads_pretrained_gpt2_folder(tmp_path):
    torch.manual_seed(0)
    plain = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=4))
    plain.save_pretrained(tmp_path / "gpt2-mini")
    gen = ExplanationGenerator(GeneratorConfig(feature_dim=F, decoder=str(tmp_path / "gpt2-mini"), max_length=16))
    assert gen.width == 32 and gen.decoder.config.add_cross_attention
    ours = gen.decoder.state_dict()
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(ours[k], v)


def test_encoder_padding_is_masked(generator):
    img, img_mask, rev, rev_mask = _inputs()
    states, mask, pos = generator.encode(img, img_mask, rev, rev_mask)
    assert states.shape == (3, 1 + 4 + 3, 32) and mask.shape == (3, 8)
    assert pos["image"][1].tolist() == [False, True, True, False, False, False, False, False]
    assert not pos["review"][2].any()
    img2, rev2 = img.clone(), rev.clone()
    img2[1, 2:] = 99.0  # padded photos
    rev2[2] = -99.0  # padded history
    states2, _, _ = generator.encode(img2, img_mask, rev2, rev_mask)
    torch.testing.assert_close(states2[mask], states[mask])
    # single modality inputs (Table 2's "img" and "text" models)
    assert generator.encode(img, img_mask, None, None)[0].shape == (3, 5, 32)
    assert generator.encode(None, None, rev, rev_mask)[0].shape == (3, 4, 32)


def test_beam_search_is_batched_and_cached_correctly(generator):
    img, img_mask, rev, rev_mask = _inputs()
    for beams in (1, 2, 3):
        batched = generator.generate_ids(img, img_mask, rev, rev_mask, num_beams=beams, max_new_tokens=12)
        no_cache = generator.generate_ids(img, img_mask, rev, rev_mask, num_beams=beams, max_new_tokens=12,
                                          use_cache=False)
        assert torch.equal(batched, no_cache)
        for i in range(3):  # each row alone, its padding cut off, gives the same tokens
            n, k = int(img_mask[i].sum()), int(rev_mask[i].sum())
            alone = generator.generate_ids(img[i:i + 1, :n], None, rev[i:i + 1, :k] if k else None, None,
                                           num_beams=beams, max_new_tokens=12)
            w = alone.shape[1]
            assert batched[i, :w].tolist() == alone[0].tolist()


def test_greedy_equals_argmax_loop(generator):
    img, img_mask, rev, rev_mask = _inputs(b=2)
    got = generator.generate_ids(img, img_mask, rev, rev_mask, num_beams=1, max_new_tokens=8)
    states, mask, _ = generator.encode(img, img_mask, rev, rev_mask)
    ids = torch.full((2, 1), 50256)
    with torch.no_grad():
        for _ in range(8):
            _, logits = generator.decode(ids, torch.ones_like(ids), states, mask)
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    eos = 50256
    for row, ref in zip(got.tolist(), ids[:, 1:].tolist()):
        stop = ref.index(eos) + 1 if eos in ref else len(ref)
        assert row[:stop] == ref[:stop]


def test_save_and_load_folder_alone(generator, tmp_path):
    img, img_mask, rev, rev_mask = _inputs()
    folder = generator.save_pretrained(tmp_path / "gen")
    assert (folder / "config.json").exists() and (folder / "tokenizer" / "tokenizer.json").exists()
    loaded = ExplanationGenerator.from_pretrained(folder)
    for a, b in zip(generator.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)
    texts = generator.generate(img, img_mask, rev, rev_mask, num_beams=2, max_new_tokens=10)
    assert loaded.generate(img, img_mask, rev, rev_mask, num_beams=2, max_new_tokens=10) == texts
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    with pytest.raises(UserError, match="not a saved model folder"):
        ExplanationGenerator.from_pretrained(tmp_path / "nothing")


def test_config_errors():
    with pytest.raises(ValueError, match="n_positions"):
        ExplanationGenerator(GeneratorConfig.tiny(feature_dim=F, max_length=500))
