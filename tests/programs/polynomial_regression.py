# Fit a degree-4 polynomial with a single nn.Linear, pytorch/examples "regression" style:
# features [x, x^2, x^3, x^4], smooth L1 loss, and the hand-written SGD step on p.data.
import torch
import torch.nn.functional as F

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print("cuda available:", torch.cuda.is_available())

POLY_DEGREE = 4
W_target = torch.tensor([[0.5], [-1.2], [0.8], [0.3]])
b_target = torch.tensor([0.25])


def make_features(x):
    """Columns x, x^2, ..., x^POLY_DEGREE."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    result = "y = "
    for i, w in enumerate(W):
        result += "{:+.2f} x^{} ".format(w, i + 1)
    result += "{:+.2f}".format(b[0])
    return result


xs = torch.linspace(-1.0, 1.0, 64)
batch_x = make_features(xs).to(device)
batch_y = f(batch_x).to(device)

fc = torch.nn.Linear(W_target.size(0), 1).to(device)
with torch.no_grad():
    fc.weight.zero_()
    fc.bias.zero_()

lr = 0.5
for batch_idx in range(1, 801):
    fc.zero_grad()
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    output.backward()
    for param in fc.parameters():
        param.data.add_(param.grad, alpha=-lr)
    if batch_idx % 200 == 0:
        print(f"step {batch_idx:4d}  loss {output:.6f}")

print("Loss: {:.6f} after {} batches".format(loss, batch_idx))
print("==> Learned function:\t" + poly_desc(fc.weight.view(-1), fc.bias))
print("==> Actual function:\t" + poly_desc(W_target.view(-1), b_target))
print("max weight error:", round((fc.weight.view(-1) - W_target.view(-1)).abs().max().item(), 2))
