"""DPP kernel, likelihood and greedy MAP: against naive references on many random kernels."""
import itertools

import pytest
import torch

from showcase.selection import build_kernel, dpp_log_likelihood, greedy_map
from showcase.selection.dpp import greedy_map_naive


def random_kernel(n: int, gen: torch.Generator, dim: int | None = None) -> torch.Tensor:
    """A random full-rank PSD kernel of the model's form diag(q) S diag(q) + jitter."""
    feats = torch.randn(n, dim or n + 2, generator=gen, dtype=torch.float64)
    q = torch.rand(n, generator=gen, dtype=torch.float64) * 2 + 0.1
    return build_kernel(q, feats, jitter=1e-3)


def test_greedy_matches_naive_unbatched_on_hundreds_of_kernels():
    gen = torch.Generator().manual_seed(0)
    for trial in range(300):
        n = int(torch.randint(1, 13, (1,), generator=gen))
        k = int(torch.randint(1, n + 3, (1,), generator=gen))
        kernel = (random_kernel(n, gen) if trial % 2
                  else (lambda a: a @ a.T)(torch.randn(n, n + 1, generator=gen, dtype=torch.float64)))
        fast, slow = greedy_map(kernel, k), greedy_map_naive(kernel, k)
        assert fast.shape == (k,)
        assert torch.equal(fast, slow), (trial, n, k, fast, slow)
        assert (fast[n:] == -1).all() and (fast[: min(n, k)] >= 0).all()


def test_greedy_matches_naive_batched_with_masks():
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        B, N, k = 16, 10, 4
        kernels = torch.stack([random_kernel(N, gen) for _ in range(B)])
        sizes = torch.randint(0, N + 1, (B,), generator=gen)
        mask = torch.arange(N).unsqueeze(0) < sizes.unsqueeze(1)
        mask = mask[:, torch.randperm(N, generator=gen)]  # padding anywhere, not only at the end
        kernels = kernels.masked_fill(~(mask.unsqueeze(1) & mask.unsqueeze(2)), 7.0)  # garbage in padding
        fast = greedy_map(kernels, k, mask=mask)
        assert torch.equal(fast, greedy_map_naive(kernels, k, mask=mask))
        for b in range(B):
            picked = fast[b][fast[b] >= 0]
            assert len(picked) == min(k, int(sizes[b])) and mask[b, picked].all()
            assert len(set(picked.tolist())) == len(picked)


def test_greedy_float32_and_min_gain():
    gen = torch.Generator().manual_seed(2)
    kernel = random_kernel(8, gen)
    assert torch.equal(greedy_map(kernel.float(), 5), greedy_map_naive(kernel, 5))
    # with an impossible gain threshold nothing is selected; a tiny one changes nothing
    assert (greedy_map(kernel, 3, min_gain=1e9) == -1).all()
    assert torch.equal(greedy_map(kernel, 3, min_gain=1e-12), greedy_map(kernel, 3))


def test_greedy_duplicates_never_nan_and_prefers_diversity():
    feats = torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    q = torch.tensor([3.0, 3.0, 3.0, 1.0, 1.0])
    # no jitter: L is rank 3, the duplicates are exhausted after one is chosen
    sel = greedy_map(build_kernel(q, feats, jitter=0.0), 5)
    assert not torch.isnan(sel.float()).any()
    assert sorted(sel.tolist()) == [0, 1, 2, 3, 4]
    assert sel[0] in (0, 1, 2) and set(sel[1:3].tolist()) == {3, 4}  # diverse items before the copies
    # all copies of one photo: still k distinct indices, no NaN
    sel = greedy_map(build_kernel(torch.ones(4), torch.ones(4, 3), jitter=0.0), 3)
    assert len(set(sel.tolist())) == 3 and (sel >= 0).all()
    # relevance-only kernel (S = I) reduces to top-K by q
    q = torch.rand(20)
    assert torch.equal(greedy_map(torch.diag(q * q), 5), q.topk(5).indices)


def test_greedy_edge_cases():
    assert greedy_map(torch.eye(3), 0).shape == (0,)
    assert greedy_map(torch.eye(3).expand(2, 3, 3), 2, mask=torch.zeros(2, 3, dtype=torch.bool)).eq(-1).all()
    with pytest.raises(ValueError, match="kernel must be"):
        greedy_map(torch.ones(3, 4), 2)
    with pytest.raises(ValueError, match="mask must have shape"):
        greedy_map(torch.eye(3), 2, mask=torch.ones(4, dtype=torch.bool))


def naive_loglik(kernel, target, mask):
    out = []
    for b in range(kernel.shape[0]):
        real = mask[b].nonzero().squeeze(1)
        ys = target[b].nonzero().squeeze(1)
        lr = kernel[b][real][:, real]
        num = torch.logdet(kernel[b][ys][:, ys]) if len(ys) else kernel.new_zeros(())
        out.append(num - torch.logdet(lr + torch.eye(len(real), dtype=kernel.dtype)))
    return torch.stack(out)


def test_likelihood_matches_logdet_and_normalises():
    gen = torch.Generator().manual_seed(3)
    B, N = 12, 7
    kernels = torch.stack([random_kernel(N, gen) for _ in range(B)])
    mask = torch.rand(B, N, generator=gen) < 0.8
    mask[:, 0] = True
    target = mask & (torch.rand(B, N, generator=gen) < 0.4)
    got = dpp_log_likelihood(kernels, target, mask)
    torch.testing.assert_close(got, naive_loglik(kernels, target, mask))
    torch.testing.assert_close(dpp_log_likelihood(kernels[0], target[0], mask[0]), got[0])
    # probabilities of all subsets of a pool sum to one
    kernel = kernels[1]
    total = sum(
        dpp_log_likelihood(kernel, torch.tensor([i in s for i in range(N)])).exp()
        for r in range(N + 1) for s in itertools.combinations(range(N), r)
    )
    assert abs(float(total) - 1.0) < 1e-9
    with pytest.raises(ValueError, match="padded candidate"):
        dpp_log_likelihood(kernels, target | ~mask, mask)


def test_likelihood_gradient_finite_differences():
    gen = torch.Generator().manual_seed(4)
    B, N, D = 3, 6, 5
    q = (torch.rand(B, N, generator=gen, dtype=torch.float64) + 0.2).requires_grad_()
    feats = torch.randn(B, N, D, generator=gen, dtype=torch.float64).requires_grad_()
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 4:] = False
    target = torch.zeros(B, N, dtype=torch.bool)
    target[0, :2] = target[1, [1, 3, 5]] = target[2, 2] = True

    def f(q, feats):
        return dpp_log_likelihood(build_kernel(q, feats, mask, jitter=1e-3), target, mask)

    assert torch.autograd.gradcheck(f, (q, feats), eps=1e-6, atol=1e-5)
    # and the analytic gradient equals autograd through torch.logdet of the gathered submatrices
    g1 = torch.autograd.grad(f(q, feats).sum(), (q, feats))
    g2 = torch.autograd.grad(naive_loglik(build_kernel(q, feats, mask, jitter=1e-3), target, mask).sum(), (q, feats))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
