# pytorch/examples "fast_neural_style" transformer network shape: reflection-padded convolutions,
# InstanceNorm2d(affine=True), residual blocks, and upsampling by nn.functional.interpolate
# (mode="nearest") before a convolution instead of a transposed convolution; trained for a few
# steps with Adam on a content (MSE) plus total-variation loss, in double precision.
import torch
import torch.nn as nn

torch.set_default_dtype(torch.float64)


class ConvLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class UpsampleConvLayer(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        if self.upsample:
            x = nn.functional.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 8, 5, 1)
        self.in1 = nn.InstanceNorm2d(8, affine=True)
        self.conv2 = ConvLayer(8, 16, 3, 2)
        self.in2 = nn.InstanceNorm2d(16, affine=True)
        self.res1 = ResidualBlock(16)
        self.deconv1 = UpsampleConvLayer(16, 8, 3, 1, upsample=2)
        self.in3 = nn.InstanceNorm2d(8, affine=True)
        self.deconv2 = UpsampleConvLayer(8, 3, 5, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.res1(y)
        y = self.relu(self.in3(self.deconv1(y)))
        return self.deconv2(y)


model = TransformerNet()
with torch.no_grad():
    for i, (name, p) in enumerate(model.named_parameters()):
        if p.dim() > 1:
            p.copy_(0.2 * torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.77 + i).view_as(p))
        else:
            is_norm_weight = (name.startswith("in") or ".in" in name) and name.endswith("weight")
            p.fill_(1.0 if is_norm_weight else 0.0)
print(model.res1.in1)
print("parameters:", sum(p.numel() for p in model.parameters()))
u = torch.linspace(0, 1, 16)
content = torch.stack([torch.outer(torch.sin(6 * u), torch.cos(4 * u)), torch.outer(u, u), torch.outer(1 - u, u)])
content = content.unsqueeze(0).repeat(2, 1, 1, 1)
content[1] = content[1].flip(-1)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
mse = nn.MSELoss()
for step in range(8):
    optimizer.zero_grad()
    y = model(content)
    tv = (y[:, :, 1:, :] - y[:, :, :-1, :]).abs().mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean()
    loss = mse(y, content) + 0.1 * tv
    loss.backward()
    optimizer.step()
    print(f"step {step} content {mse(y, content).item():.5f} tv {tv.item():.5f}")
print("output:", tuple(model(content).shape))
