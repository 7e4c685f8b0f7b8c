# pytorch/examples "vae" shape on synthetic 8x8 binary-ish images: encoder -> (mu, logvar),
# reparameterisation through torch.distributions.Normal(...).rsample(), BCE + KL loss; the
# closed-form KL is checked against distributions.kl_divergence on fixed values.
import torch
from torch import nn, optim
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc21 = nn.Linear(32, 4)
        self.fc22 = nn.Linear(32, 4)
        self.fc3 = nn.Linear(4, 32)
        self.fc4 = nn.Linear(32, 64)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return Normal(mu, std).rsample()

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


# The analytic KL term agrees with torch.distributions on fixed values.
mu = torch.linspace(-1.0, 1.0, 6).view(2, 3)
logvar = torch.linspace(-0.5, 0.5, 6).view(2, 3)
closed_form = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
q = Normal(mu, torch.exp(0.5 * logvar))
p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
print(f"closed-form KL {closed_form.item():.5f}")
print(f"distributions KL {kl_divergence(q, p).sum().item():.5f}")
print("log_prob at the mean:", round(q.log_prob(mu).sum().item(), 4))

torch.manual_seed(0)
idx = torch.arange(512 * 64, dtype=torch.float32).view(512, 64)
images = (torch.sin(idx * 0.05) * torch.cos(idx * 0.013) > 0).float()
train_loader = DataLoader(TensorDataset(images), batch_size=64, shuffle=True)

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = VAE().to(device)
optimizer = optim.Adam(model.parameters(), lr=1e-2)

epoch_losses = []
for epoch in range(1, 6):
    model.train()
    train_loss = 0
    for batch_idx, (data,) in enumerate(train_loader):
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    epoch_losses.append(train_loss / len(train_loader.dataset))
print("loss decreased:", epoch_losses[-1] < 0.8 * epoch_losses[0])

with torch.no_grad():
    z = torch.randn(16, 4).to(device)
    sample = model.decode(z)
    print("sample:", tuple(sample.shape), sample.dtype, bool(((sample >= 0) & (sample <= 1)).all()))

mu_leaf = torch.zeros(3, requires_grad=True)
Normal(mu_leaf, torch.ones(3)).rsample().sum().backward()
print("rsample is differentiable:", mu_leaf.grad.tolist())
