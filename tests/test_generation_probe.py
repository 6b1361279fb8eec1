"""The image loss of PC²L must read the text (Section 4.3): a tiny generator trained with image CL on data whose
answer is known (each photo shows one dish, each target names it) is probed by decoding every target on another
example's encoder states. With H^Y read from the text alone, an image picks its own text; it cannot pick "the text
decoded on its own images", which is what an H^Y that attended to the images allows."""
import pytest
import torch

from showcase.generation.losses import LossConfig
from showcase.generation.model import GeneratorConfig
from showcase.generation.module import GeneratorModule
from showcase.generation.probe import image_text_probe
from showcase.generation.tokenizer import encode_targets, load_tokenizer

DISHES = ["miso ramen", "margherita pizza", "bacon cheeseburger", "caesar salad", "pad thai", "salmon sushi",
          "beef taco", "chocolate cake"]
F, B = 16, 8  # one example per dish in a batch: "its own text" is the only right answer


def _batch(tokenizer, g: torch.Generator, prototypes: torch.Tensor) -> dict:
    dish = torch.randperm(len(DISHES), generator=g)
    images = prototypes[dish].unsqueeze(1) + 0.3 * torch.randn(B, 2, F, generator=g)  # two photos of the dish
    batch = encode_targets(tokenizer, [f"The {DISHES[d]} was good." for d in dish.tolist()], max_length=12)
    batch.update(image_features=images, image_mask=torch.ones(B, 2, dtype=torch.bool),
                 review_features=torch.randn(B, 3, F, generator=g), review_mask=torch.ones(B, 3, dtype=torch.bool))
    return batch


def _train(view: str, steps: int = 150) -> tuple[GeneratorModule, dict]:
    torch.manual_seed(0)
    tokenizer = load_tokenizer()
    module = GeneratorModule(GeneratorConfig.tiny(feature_dim=F, n_embd=32, n_head=2, n_layer=2, max_length=12),
                             LossConfig(image_loss="cl", text_loss="none", target_view=view, lambda1=1.0,
                                        projection_dim=32))
    g = torch.Generator().manual_seed(1)
    prototypes = 2 * torch.randn(len(DISHES), F, generator=g)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = module.losses(_batch(tokenizer, g, prototypes))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe = {k: 0.0 for k in ("own_text", "own_images", "chance")}
    for seed in range(5):
        for k, v in image_text_probe(module, _batch(tokenizer, g, prototypes), seed=seed).items():
            probe[k] += v / 5
    return module, probe


@pytest.mark.usefixtures("one_thread")
def test_image_loss_reads_the_text():
    _, probe = _train("text")
    print(f"\ntext-only H^Y: image picks its own text {probe['own_text']:.0%}, the text decoded on its images "
          f"{probe['own_images']:.0%} (chance {probe['chance']:.0%})")
    assert probe["own_text"] >= 0.8
    assert probe["own_images"] <= 2 * probe["chance"]
