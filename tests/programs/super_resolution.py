# pytorch/examples "super_resolution" shape: a sub-pixel convolution network (ESPCN) whose last
# convolution makes upscale_factor**2 channels that nn.PixelShuffle rearranges into a larger image,
# orthogonal-free deterministic init, trained with Adam on MSE against the high-resolution target;
# PSNR per epoch, and PixelUnshuffle inverting the shuffle exactly.
import math

import torch
import torch.nn as nn

torch.set_default_dtype(torch.float64)


class Net(nn.Module):
    def __init__(self, upscale_factor):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 16, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(16, 16, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(16, upscale_factor ** 2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.pixel_shuffle(self.conv3(x))


model = Net(upscale_factor=2)
with torch.no_grad():
    for i, (name, p) in enumerate(model.named_parameters()):
        fan_in = p[0].numel() if p.dim() > 1 else 1
        p.copy_(torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 1.1 + i).view_as(p) / math.sqrt(fan_in)
                if p.dim() > 1 else torch.zeros_like(p))
print(model.pixel_shuffle, nn.PixelUnshuffle(2))
u = torch.linspace(0, 1, 16)
high = torch.stack([torch.outer(torch.sin(5 * u + k), torch.cos(3 * u)) * 0.5 + 0.5 for k in range(4)]).unsqueeze(1)
low = nn.functional.avg_pool2d(high, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
criterion = nn.MSELoss()
for epoch in range(6):
    optimizer.zero_grad()
    loss = criterion(model(low), high)
    loss.backward()
    optimizer.step()
    print(f"epoch {epoch} loss {loss.item():.6f} PSNR {10 * math.log10(1 / loss.item()):.3f} dB")
shuffled = nn.functional.pixel_shuffle(torch.arange(32.0).view(1, 8, 2, 2), 2)
print("shuffle:", shuffled[0, 0].tolist())
print("unshuffle inverts:", torch.equal(nn.functional.pixel_unshuffle(shuffled, 2), torch.arange(32.0).view(1, 8, 2, 2)))
