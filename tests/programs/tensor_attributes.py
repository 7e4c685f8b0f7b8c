# Tensor attributes and transposes in a small self-attention / covariance computation:
# x.mT and x.T, torch.diag, and the device checks code does before moving data
# (t.is_cuda, t.is_xpu, t.device.type, str(t.device)).
import math

import torch

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe(name, t):
    where = "gpu" if t.is_cuda else ("xpu" if t.is_xpu else t.device.type)
    print(f"{name}: shape={tuple(t.shape)} dtype={t.dtype} device={t.device} ({where}) "
          f"ndim={t.ndim} numel={t.numel()} contiguous={t.is_contiguous()}")


batch, seq, dim = 2, 4, 3
q = torch.sin(torch.arange(batch * seq * dim, dtype=torch.float32).view(batch, seq, dim)).to(device)
k = torch.cos(torch.arange(batch * seq * dim, dtype=torch.float32).view(batch, seq, dim)).to(device)
describe("q", q)
describe("k.mT", k.mT)
scores = q @ k.mT / math.sqrt(dim)
attn = scores.softmax(dim=-1)
describe("attn", attn)
print("attention rows sum to 1:", torch.allclose(attn.sum(-1), torch.ones(batch, seq)))
print("attn[0]:", attn[0])
print("mT equals transpose(-2, -1):", torch.equal(k.mT, k.transpose(-2, -1)))

X = q[0]                                    # seq x dim
Xc = X - X.mean(dim=0)
cov = Xc.T @ Xc / (X.shape[0] - 1)
print("covariance:", cov)
variances = torch.diag(cov)
print("diag(cov):", variances)
print("matches var:", torch.allclose(variances, X.var(dim=0)))
corr = cov / torch.sqrt(variances[:, None] * variances[None, :])
print("diag(corr):", torch.diag(corr))
print("diag of a vector:", torch.diag(torch.tensor([1.0, 2.0, 3.0])))
print("off-diagonal:", torch.diag(cov, diagonal=1), torch.diag(torch.tensor([4.0, 5.0]), 1))
print("T of a matrix is t():", torch.equal(X.T, X.t()), "contiguous after T:", X.T.is_contiguous())
y = X.T.contiguous()
print("after .contiguous():", y.is_contiguous(), y.stride())
print("element_size:", X.element_size(), "dim():", X.dim(), "size(1):", X.size(1), "size():", X.size())
print("is_floating_point:", X.is_floating_point(), torch.arange(3).is_floating_point())
print("device equality:", X.device == torch.device("cpu"), str(X.device), X.get_device() if X.is_cuda else -1)
print("requires_grad / is_leaf:", X.requires_grad, X.is_leaf, torch.ones(2, requires_grad=True).is_leaf)
