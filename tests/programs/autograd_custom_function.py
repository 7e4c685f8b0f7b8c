# Autograd as the tutorials teach it: requires_grad leaves, backward on a scalar, grad_fn,
# a custom torch.autograd.Function with ctx.save_for_backward, torch.autograd.grad with
# create_graph for a second derivative, tensor hooks, retain_graph, detach and no_grad.
import torch


class SmoothStep(torch.autograd.Function):
    """f(x) = 3x^2 - 2x^3 on [0, 1]; clamps outside."""

    @staticmethod
    def forward(ctx, input):
        x = input.clamp(0, 1)
        ctx.save_for_backward(input)
        return 3 * x ** 2 - 2 * x ** 3

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        inside = (input > 0) & (input < 1)
        return grad_output * torch.where(inside, 6 * input - 6 * input ** 2, torch.zeros_like(input))


x = torch.linspace(-0.5, 1.5, 5, requires_grad=True)
y = SmoothStep.apply(x)
y.sum().backward()
print("smoothstep:", y.detach())
print("custom grad:", x.grad)
print("output requires grad:", y.requires_grad, "leaf:", x.is_leaf, y.is_leaf)

xd = torch.linspace(0.1, 0.9, 4, dtype=torch.float64, requires_grad=True)
print("gradcheck:", torch.autograd.gradcheck(SmoothStep.apply, (xd,), eps=1e-6, atol=1e-4))

w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
b = torch.tensor(0.3, requires_grad=True)
inp = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
z = inp @ w + b
loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor([1.0, 0.0]))
print("grad_fn is set:", loss.grad_fn is not None, "leaf has none:", w.grad_fn is None)
loss.backward(retain_graph=True)
print("dloss/dw:", w.grad, "dloss/db: {:.5f}".format(b.grad.item()))
loss.backward()
print("gradients accumulate:", w.grad)
w.grad.zero_()
b.grad = None

t = torch.tensor(2.0, requires_grad=True)
f = t ** 3 + 2 * t
(df,) = torch.autograd.grad(f, t, create_graph=True)
(d2f,) = torch.autograd.grad(df, t)
print("f'(2) =", df.item(), "f''(2) =", d2f.item())

seen = []
h = torch.ones(3, requires_grad=True)
handle = h.register_hook(lambda g: seen.append(g.clone()) or g * 2)
(h * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
handle.remove()
print("hook saw:", seen[0].tolist(), "hook doubled grad:", h.grad.tolist())

a = torch.ones(2, requires_grad=True)
with torch.no_grad():
    c = a * 2
print("under no_grad:", c.requires_grad, "detach:", (a * 2).detach().requires_grad)
with torch.enable_grad():
    print("enable_grad:", (a * 2).requires_grad)
torch.set_grad_enabled(False)
print("set_grad_enabled(False):", (a * 2).requires_grad, torch.is_grad_enabled())
torch.set_grad_enabled(True)
v = torch.tensor([1.0, 2.0], requires_grad=True)
out = v * v
out.backward(gradient=torch.tensor([1.0, 0.5]))
print("vector-Jacobian product:", v.grad)
jac = torch.autograd.functional.jacobian(lambda u: u ** 2 + u.sum(), torch.tensor([1.0, 2.0]))
print("jacobian:", jac)
