# Full-batch logistic regression with L2 penalty fitted by L-BFGS with the strong-Wolfe line search,
# as scientific code does (optim.LBFGS(..., line_search_fn="strong_wolfe") and a closure), then
# the fitted weights, the gradient norm at the optimum and the training accuracy.
import torch
import torch.nn.functional as F

n, d = 60, 3
idx = torch.arange(n, dtype=torch.float64)
X = torch.stack([torch.sin(idx * 0.37), torch.cos(idx * 0.91), (idx % 7) / 7.0 - 0.5], dim=1)
true_w = torch.tensor([1.5, -2.0, 0.75], dtype=torch.float64)
y = ((X @ true_w + 0.3 * torch.sin(idx * 2.3)) > 0).double()

w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
optimizer = torch.optim.LBFGS([w, b], lr=1, max_iter=50, history_size=10, tolerance_grad=1e-9,
                              tolerance_change=1e-12, line_search_fn="strong_wolfe")
calls = 0


def closure():
    global calls
    calls += 1
    optimizer.zero_grad()
    loss = F.binary_cross_entropy_with_logits(X @ w + b, y) + 1e-2 * w.pow(2).sum()
    loss.backward()
    return loss


for epoch in range(3):
    loss = optimizer.step(closure)
    print(f"epoch {epoch} loss {loss.item():.8f}")
print("function evaluations:", calls)
print("weights:", [round(v, 4) for v in w.detach().tolist()], "bias:", round(b.item(), 4))
grad_norm = torch.cat([w.grad, b.grad]).norm().item()
print("gradient norm below 1e-6:", grad_norm < 1e-6)
accuracy = ((X @ w + b > 0).double() == y).double().mean().item()
print(f"train accuracy {accuracy:.3f}")
state = optimizer.state[optimizer.param_groups[0]["params"][0]]
print("state keys:", sorted(state.keys()))
