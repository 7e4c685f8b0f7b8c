# The custom-initialisation idiom: an init_weights function applied with model.apply that
# uses nn.init.xavier_uniform_ and m.bias.data.fill_(0.01), then a BatchNorm / Dropout MLP
# trained on a three-class toy problem. Random init, so properties are printed.
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
torch.backends.cudnn.benchmark = True
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def init_weights(m):
    if isinstance(m, nn.Linear):
        torch.nn.init.xavier_uniform_(m.weight)
        m.bias.data.fill_(0.01)


class MLP(nn.Module):
    def __init__(self, n_in, n_hidden, n_out, p_drop=0.2):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_in, n_hidden), nn.BatchNorm1d(n_hidden), nn.ReLU(), nn.Dropout(p_drop),
            nn.Linear(n_hidden, n_hidden), nn.BatchNorm1d(n_hidden), nn.ReLU(), nn.Dropout(p_drop),
            nn.Linear(n_hidden, n_out),
        )

    def forward(self, x):
        return self.layers(x)


model = MLP(4, 32, 3).to(device)
model.apply(init_weights)
linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
print("linear layers:", len(linears))
print("biases are 0.01:", all(bool(torch.all(m.bias == 0.01)) for m in linears))
bounds_ok = all(bool(m.weight.abs().max() <= math.sqrt(6.0 / sum(m.weight.shape))) for m in linears)
print("weights inside the xavier bound:", bounds_ok)
print("batchnorm starts at identity:", bool((model.layers[1].weight == 1).all()), bool((model.layers[1].bias == 0).all()))

n = 300
angle = torch.rand(n) * 2 * math.pi
label = torch.randint(0, 3, (n,))
radius = 1.0 + label.float()
x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle),
                 torch.randn(n) * 0.1, torch.randn(n) * 0.1], dim=1)
loader = DataLoader(TensorDataset(x, label), batch_size=32, shuffle=True)
optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-2)

for epoch in range(30):
    model.train()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()

model.eval()
with torch.no_grad():
    acc = (model(x.to(device)).argmax(1) == label.to(device)).float().mean().item()
print("train accuracy above 90%:", acc > 0.9)
print("running stats were tracked:", int(model.layers[1].num_batches_tracked) == 30 * len(loader))
print("eval is deterministic:", torch.equal(model(x[:5]), model(x[:5])))
