# The "sequence-to-sequence with nn.Transformer" tutorial shape: token embeddings scaled by
# sqrt(d_model) plus sinusoidal positions, nn.Transformer with a causal target mask from
# generate_square_subsequent_mask and key padding masks for padded sources, trained with SGD (momentum)
# on a reverse-the-sequence task, then greedy decoding one token at a time. In double precision:
# this small task trains chaotically, so float32 rounding differences would grow into different
# decodings after a few dozen steps.
import math

import torch
import torch.nn as nn

PAD, BOS, EOS, VOCAB = 0, 1, 2, 10


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=32):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        return x + self.pe[:x.size(0)]


class Seq2Seq(nn.Module):
    def __init__(self, d_model=16):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=PAD)
        self.pos = PositionalEncoding(d_model)
        self.transformer = nn.Transformer(d_model, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=32, dropout=0.0)
        self.out = nn.Linear(d_model, VOCAB)

    def forward(self, src, tgt):
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt.size(0))
        src_pad = (src == PAD).transpose(0, 1)
        s = self.pos(self.embed(src) * math.sqrt(self.d_model))
        t = self.pos(self.embed(tgt) * math.sqrt(self.d_model))
        h = self.transformer(s, t, tgt_mask=tgt_mask, src_key_padding_mask=src_pad,
                             memory_key_padding_mask=src_pad)
        return self.out(h)


def batch():
    seqs = [[3, 4, 5, 6], [7, 8, 9], [5, 3], [9, 4, 6, 8]]
    width = max(len(s) for s in seqs) + 1
    src = torch.tensor([s + [EOS] + [PAD] * (width - len(s) - 1) for s in seqs]).t()
    tgt = torch.tensor([[BOS] + s[::-1] + [EOS] + [PAD] * (width - len(s) - 1) for s in seqs]).t()
    return src, tgt


torch.set_default_dtype(torch.float64)
model = Seq2Seq()
with torch.no_grad():  # a deterministic stand-in for xavier_uniform_ (so both runs start equal)
    for i, (name, p) in enumerate(model.named_parameters()):
        if p.dim() > 1:
            bound = math.sqrt(6.0 / (p.size(0) + p.size(1)))
            p.copy_(bound * torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.7 + i).view_as(p))
        else:
            p.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
src, tgt = batch()
print("mask:", nn.Transformer.generate_square_subsequent_mask(3).tolist())
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
criterion = nn.CrossEntropyLoss(ignore_index=PAD)
for step in range(60):
    optimizer.zero_grad()
    logits = model(src, tgt[:-1])
    loss = criterion(logits.reshape(-1, VOCAB), tgt[1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step % 20 == 0 or step == 59:
        print(f"step {step:2d} loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    ys = torch.full((1, src.size(1)), BOS, dtype=torch.long)
    for _ in range(src.size(0)):
        next_token = model(src, ys)[-1].argmax(-1)
        ys = torch.cat([ys, next_token.unsqueeze(0)], dim=0)
print("decoded:", ys.t().tolist())
