# A WaveNet / TCN-style stack of dilated causal Conv1d blocks, using
# torch.nn.functional.pad through the plain `import torch` name to left-pad, with residual
# connections, gated activations and weight norm clipping via torch.linalg.norm; plus
# the reflect / replicate / constant padding modes on images.
import torch
import torch.nn as nn


class CausalConv1d(nn.Conv1d):
    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_pad = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(torch.nn.functional.pad(x, (self.left_pad, 0)))


class ResidualBlock(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.filter = CausalConv1d(channels, channels, 2, dilation)
        self.gate = CausalConv1d(channels, channels, 2, dilation)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        h = torch.tanh(self.filter(x)) * torch.sigmoid(self.gate(x))
        return x + self.proj(h)


class TCN(nn.Module):
    def __init__(self, channels=4, levels=3):
        super().__init__()
        self.inp = nn.Conv1d(1, channels, 1)
        self.blocks = nn.Sequential(*[ResidualBlock(channels, 2 ** i) for i in range(levels)])
        self.out = nn.Conv1d(channels, 1, 1)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x)))


model = TCN()
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(0.4 * torch.sin(torch.arange(p.numel(), dtype=torch.float32) * 1.7 + 0.3 * i).view_as(p))
print("receptive field:", 1 + sum(b.filter.left_pad for b in model.blocks))

signal = torch.sin(torch.arange(32, dtype=torch.float32) * 0.4).view(1, 1, 32)
out = model(signal)
print("output shape:", tuple(out.shape))
print("first outputs:", out[0, 0, :5].detach())
perturbed = signal.clone()
perturbed[..., 20] += 1.0
diff = (model(perturbed) - out).abs()[0, 0]
print("causal (no change before t=20):", bool((diff[:20] < 1e-6).all()), "changed at t=20:", bool(diff[20] > 0))

target = torch.roll(signal, -1, dims=-1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for step in range(20):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(signal)[..., :-1], target[..., :-1])
    loss.backward()
    total_norm = torch.linalg.norm(torch.stack([torch.linalg.norm(p.grad) for p in model.parameters()]))
    if total_norm > 1.0:
        for p in model.parameters():
            p.grad.mul_(1.0 / total_norm)
    optimizer.step()
    if step % 5 == 0:
        print(f"step {step:2d} loss {loss.item():.5f} grad norm {total_norm.item():.4f}")

img = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
print("reflect:", torch.nn.functional.pad(img, (1, 1, 0, 0), mode="reflect")[0, 0])
print("replicate:", torch.nn.functional.pad(img, (0, 2, 1, 0), mode="replicate")[0, 0])
print("constant value:", torch.nn.functional.pad(torch.ones(2, 2), (1, 0, 0, 1), value=-1.0))
print("circular:", torch.nn.functional.pad(torch.arange(4.).view(1, 1, 4), (2, 1), mode="circular"))
print("negative pad crops:", torch.nn.functional.pad(torch.arange(6.).view(2, 3), (-1, 0)))
