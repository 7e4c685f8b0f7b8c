# Classical numerical linear algebra with torch.linalg on a small regression / PCA problem:
# norm, solve, inv, det, qr, svd, eigh, cholesky. Sign-ambiguous factors are printed through
# sign-free quantities.
import torch

torch.set_printoptions(precision=4)
n, d = 20, 3
t = torch.linspace(0, 1, n, dtype=torch.float64)
X = torch.stack([torch.ones_like(t), t, torch.sin(3 * t)], dim=1)
true_w = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
y = X @ true_w + 0.01 * torch.cos(17 * t)

A = X.T @ X
b = X.T @ y
w_solve = torch.linalg.solve(A, b)
w_inv = torch.linalg.inv(A) @ b
print("solve:", w_solve)
print("inv agrees:", torch.allclose(w_solve, w_inv))
print("det(A): {:.6f}".format(torch.linalg.det(A).item()))
print("residual norm: {:.6f}".format(torch.linalg.norm(X @ w_solve - y).item()))

Q, R = torch.linalg.qr(X)
print("Q:", tuple(Q.shape), "R:", tuple(R.shape), "orthonormal:", torch.allclose(Q.T @ Q, torch.eye(d, dtype=torch.float64)))
w_qr = torch.linalg.solve_triangular(R, (Q.T @ y).unsqueeze(1), upper=True).squeeze(1)
print("qr agrees:", torch.allclose(w_qr, w_solve), "|diag R|:", R.diagonal().abs())

U, S, Vh = torch.linalg.svd(X, full_matrices=False)
print("singular values:", S)
print("reconstruction ok:", torch.allclose(U @ torch.diag(S) @ Vh, X))
print("condition number: {:.4f}".format((S[0] / S[-1]).item()))
print("2-norm is the top singular value:", torch.isclose(torch.linalg.norm(X, ord=2), S[0]).item())
print("fro norm: {:.5f}".format(torch.linalg.norm(X).item()), "nuclear: {:.5f}".format(torch.linalg.norm(X, ord="nuc").item()))

centered = X[:, 1:] - X[:, 1:].mean(dim=0)
cov = centered.T @ centered / (n - 1)
evals, evecs = torch.linalg.eigh(cov)
print("eigenvalues:", evals)
print("explained variance ratio:", evals.flip(0) / evals.sum())
print("eigvec check:", torch.allclose(cov @ evecs, evecs * evals))

L = torch.linalg.cholesky(A)
print("cholesky lower:", torch.equal(L, L.tril()), "LL^T = A:", torch.allclose(L @ L.mT, A))
z = torch.cholesky_solve(b.unsqueeze(1), L).squeeze(1)
print("cholesky_solve agrees:", torch.allclose(z, w_solve))
print("vector norms:", torch.linalg.norm(X, dim=1)[:3], "{:.4f}".format(torch.linalg.vector_norm(y, ord=1).item()))
M = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
print("float32 inv:", torch.linalg.inv(M), "det:", torch.det(M))
print("batched solve:", torch.linalg.solve(torch.stack([M, 2 * M]), torch.ones(2, 2)))
