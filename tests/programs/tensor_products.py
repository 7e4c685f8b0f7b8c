# Products and grids that show up in model code: a coordinate grid from torch.meshgrid(...,
# indexing="ij"), tensordot for a bilinear form, kron for a block-structured weight, cross
# products for mesh normals, addmm for a hand-written linear layer, baddbmm for attention
# with an additive bias.
import torch

H, W = 3, 4
ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
print("meshgrid ij:", tuple(ys.shape), ys[:, 0].tolist(), xs[0].tolist())
grid = torch.stack([xs, ys], dim=-1).float()
norm_grid = grid / torch.tensor([W - 1, H - 1]) * 2 - 1
print("normalised grid corners:", norm_grid[0, 0].tolist(), norm_grid[-1, -1].tolist())
gx, gy = torch.meshgrid(torch.linspace(-1, 1, 3), torch.linspace(0, 1, 2), indexing="xy")
print("meshgrid xy:", tuple(gx.shape), gx)

A = torch.arange(24.).view(2, 3, 4)
B = torch.arange(12.).view(4, 3)
print("tensordot dims=1:", tuple(torch.tensordot(A, B, dims=1).shape))
print("tensordot dims=([1,2],[1,0]):", torch.tensordot(A, B, dims=([1, 2], [1, 0])))
u, v = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0])
M = torch.eye(3) * 2 + 1
print("bilinear u^T M v:", torch.tensordot(u, torch.tensordot(M, v, dims=1), dims=1))

block = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
print("kron:", torch.kron(torch.eye(2), block))
print("kron shapes:", tuple(torch.kron(torch.ones(2, 3), torch.ones(4, 5)).shape))

verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
faces = torch.tensor([[0, 1, 2], [0, 1, 3], [1, 2, 3]])
e1 = verts[faces[:, 1]] - verts[faces[:, 0]]
e2 = verts[faces[:, 2]] - verts[faces[:, 0]]
normals = torch.cross(e1, e2, dim=1)
print("face normals:", normals)
print("unit normals:", torch.nn.functional.normalize(normals, dim=1))
print("linalg.cross agrees:", torch.equal(torch.linalg.cross(e1, e2), normals))

x = torch.linspace(-1, 1, 6).view(2, 3)
weight = torch.arange(12.).view(4, 3) / 10
bias = torch.tensor([0.1, 0.2, 0.3, 0.4])
out = torch.addmm(bias, x, weight.t())
print("addmm:", out)
print("addmm == F.linear:", torch.allclose(out, torch.nn.functional.linear(x, weight, bias)))
print("addmm beta/alpha:", torch.addmm(torch.ones(2, 2), torch.eye(2), torch.eye(2), beta=0.5, alpha=2.0))

q = torch.sin(torch.arange(2 * 3 * 4.)).view(2, 3, 4)
k = torch.cos(torch.arange(2 * 3 * 4.)).view(2, 3, 4)
rel_bias = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, -1.0], [-2.0, -1.0, 0.0]]).expand(2, 3, 3)
scores = torch.baddbmm(rel_bias, q, k.transpose(1, 2), beta=1.0, alpha=0.5)
print("baddbmm:", scores[0])
print("bmm + bias agrees:", torch.allclose(scores, rel_bias + 0.5 * torch.bmm(q, k.transpose(1, 2))))
print("einsum outer:", torch.einsum("i,j->ij", u, v)[1], "outer:", torch.outer(u, v)[2])
