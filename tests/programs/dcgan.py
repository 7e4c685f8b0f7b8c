# A tiny DCGAN (pytorch/examples "dcgan" / the DCGAN tutorial): ConvTranspose2d generator,
# Conv2d discriminator, the weights_init applied with model.apply (m.weight.data.normal_,
# m.bias.data.fill_), BCELoss with torch.full labels, two Adam optimisers. Random, so robust
# properties only.
import random

import torch
import torch.nn as nn
import torch.optim as optim

manualSeed = 999
random.seed(manualSeed)
torch.manual_seed(manualSeed)
torch.cuda.manual_seed_all(manualSeed)
torch.backends.cudnn.benchmark = True
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

nz, ngf, ndf, nc = 8, 8, 8, 1


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        m.weight.data.normal_(0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),      # 4x4
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # 8x8
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),       # 16x16
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),                    # 8x8
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),               # 4x4
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),                 # 1x1
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


netG = Generator().to(device)
netG.apply(weights_init)
netD = Discriminator().to(device)
netD.apply(weights_init)

conv_w = torch.cat([m.weight.flatten() for m in netG.modules() if isinstance(m, nn.ConvTranspose2d)])
bn = netG.main[1]
print("conv weight std ~ 0.02:", round(conv_w.std().item(), 2))
print("batchnorm weight mean ~ 1:", round(bn.weight.mean().item(), 1), "bias all zero:", bool((bn.bias == 0).all()))

criterion = nn.BCELoss()
fixed_noise = torch.randn(16, nz, 1, 1, device=device)
real_label, fake_label = 1., 0.
optimizerD = optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

# "Real" images: soft blobs at random positions.
yy, xx = torch.meshgrid(torch.arange(16.), torch.arange(16.), indexing="ij")
for i in range(20):
    centers = torch.randint(4, 12, (32, 2)).float()
    real = torch.exp(-((yy - centers[:, 0, None, None]) ** 2 + (xx - centers[:, 1, None, None]) ** 2) / 8.0)
    real_cpu = (real * 2 - 1).unsqueeze(1).to(device)
    b_size = real_cpu.size(0)

    netD.zero_grad()
    label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
    output = netD(real_cpu)
    errD_real = criterion(output, label)
    errD_real.backward()
    D_x = output.mean().item()

    noise = torch.randn(b_size, nz, 1, 1, device=device)
    fake = netG(noise)
    label.fill_(fake_label)
    output = netD(fake.detach())
    errD_fake = criterion(output, label)
    errD_fake.backward()
    errD = errD_real + errD_fake
    optimizerD.step()

    netG.zero_grad()
    label.fill_(real_label)
    output = netD(fake)
    errG = criterion(output, label)
    errG.backward()
    optimizerG.step()

print("D(x) in (0, 1):", 0.0 < D_x < 1.0, "losses finite:", bool(torch.isfinite(errD)) and bool(torch.isfinite(errG)))
with torch.no_grad():
    fake = netG(fixed_noise).detach().cpu()
print("fake batch:", list(fake.shape), fake.dtype, "in [-1, 1]:", bool(fake.abs().max() <= 1.0))
print("discriminator is ahead on real data:", D_x > 0.5)
