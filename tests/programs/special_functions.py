# torch.special in a logistic-regression / count-model setting: expit and logit, erf for the
# exact GELU, gammaln for a Poisson log-likelihood; nan_to_num on log(0); an exponential moving
# average of weights with lerp_ (the "model EMA" idiom).
import math

import torch
import torch.nn.functional as F

z = torch.linspace(-4, 4, 9)
p = torch.special.expit(z)
print("expit:", p)
print("expit == sigmoid:", torch.allclose(p, torch.sigmoid(z)))
print("logit(expit(z)) == z:", torch.allclose(torch.special.logit(p), z, atol=1e-4))
print("logit with eps:", torch.special.logit(torch.tensor([0.0, 0.5, 1.0]), eps=1e-6))

x = torch.linspace(-3, 3, 7)
gelu_exact = 0.5 * x * (1 + torch.special.erf(x / math.sqrt(2)))
print("gelu via erf:", gelu_exact)
print("matches F.gelu:", torch.allclose(gelu_exact, F.gelu(x), atol=1e-6))
print("erfc + erf = 1:", torch.allclose(torch.special.erfc(x) + torch.special.erf(x), torch.ones(7)))

counts = torch.tensor([0.0, 1.0, 3.0, 7.0])
rate = torch.tensor([0.5, 1.0, 2.5, 6.0])
log_lik = counts * torch.log(rate) - rate - torch.special.gammaln(counts + 1)
print("poisson log-likelihood:", log_lik)
nll = F.poisson_nll_loss(torch.log(rate), counts, log_input=True, full=False, reduction="none")
print("F.poisson_nll_loss (no Stirling term):", nll)
print("gammaln(5) = log(24):", round(torch.special.gammaln(torch.tensor(5.0)).item(), 5), round(math.log(24), 5))
print("lgamma alias:", torch.lgamma(torch.tensor([0.5, 10.0])))

probs = torch.tensor([0.0, 0.25, 1.0])
entropy_terms = -probs * torch.log(probs)
print("raw entropy terms:", entropy_terms)
print("nan_to_num:", torch.nan_to_num(entropy_terms))
print("nan_to_num with values:", torch.nan_to_num(torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0]),
                                                  nan=0.0, posinf=1e4, neginf=-1e4))
print("xlogy:", torch.special.xlogy(probs, probs))

weights = torch.zeros(4)
ema = torch.zeros(4)
decay = 0.9
for step in range(1, 6):
    weights = torch.full((4,), float(step)) * torch.tensor([1.0, -1.0, 0.5, 2.0])
    ema.lerp_(weights, 1 - decay)
print("EMA of weights:", ema)
print("lerp with tensor weight:", torch.lerp(torch.zeros(3), torch.ones(3) * 10, torch.tensor([0.0, 0.5, 1.0])))
print("log_softmax / softmax:", torch.special.log_softmax(torch.tensor([1.0, 2.0, 3.0]), dim=0))
print("i0, ndtr:", torch.special.i0(torch.tensor([0.0, 1.0])), torch.special.ndtr(torch.tensor([0.0, 1.0])))
