# A small Transformer encoder classifier in the style of the "language modeling with
# nn.Transformer" tutorial: an Embedding, the sinusoidal PositionalEncoding buffer,
# nn.TransformerEncoderLayer / nn.TransformerEncoder (batch_first), a causal mask from
# nn.Transformer.generate_square_subsequent_mask and a key padding mask.
import math

import torch
import torch.nn as nn


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=64):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):                   # x: [batch, seq, d_model]
        x = x + self.pe[:x.size(1)].transpose(0, 1)
        return self.dropout(x)


class TransformerClassifier(nn.Module):
    def __init__(self, ntoken, d_model, nhead, d_hid, nlayers, nclass, dropout=0.1):
        super().__init__()
        self.embedding = nn.Embedding(ntoken, d_model)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, nclass)
        self.d_model = d_model

    def forward(self, src, src_mask=None, padding_mask=None):
        x = self.pos_encoder(self.embedding(src) * math.sqrt(self.d_model))
        x = self.transformer_encoder(x, mask=src_mask, src_key_padding_mask=padding_mask)
        return self.head(self.norm(x[:, 0]))


model = TransformerClassifier(ntoken=20, d_model=16, nhead=4, d_hid=32, nlayers=2, nclass=3)
print("buffers:", [name for name, _ in model.named_buffers()])
print("parameters:", sum(p.numel() for p in model.parameters() if p.requires_grad))
with torch.no_grad():
    for i, (name, p) in enumerate(model.named_parameters()):
        base = torch.sin(torch.arange(p.numel(), dtype=torch.float32) * 0.71 + i)
        if name.endswith("bias"):
            p.copy_(0.01 * base.view_as(p))
        elif "norm" in name:
            p.copy_(1.0 + 0.05 * base.view_as(p))
        else:
            p.copy_(base.view_as(p) / math.sqrt(p.shape[-1]))

src = (torch.arange(2 * 6).view(2, 6) * 7) % 20
mask = nn.Transformer.generate_square_subsequent_mask(6)
print("causal mask row 1:", mask[1].tolist())
padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])

model.eval()
with torch.no_grad():
    logits = model(src)
    causal = model(src, src_mask=mask)
    padded = model(src, padding_mask=padding)
print("logits:", logits)
print("causal:", causal)
print("padded:", padded)
print("mask matters:", not torch.allclose(logits, causal))

model.train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
target = torch.tensor([0, 2])
losses = []
for step in range(10):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(src), target)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
print("training with dropout lowers the loss:", losses[-1] < losses[0])
