# A character-level GRU language model on a fixed string (char-rnn style): one-hot-free
# embedding, teacher forcing, Adam with gradient clipping, then greedy generation.
import torch
import torch.nn as nn
import torch.nn.functional as F

text = "the cat sat on the mat. the dog sat on the log. "
chars = sorted(set(text))
char2idx = {ch: i for i, ch in enumerate(chars)}
idx2char = chars
print("vocab size:", len(chars))

data = torch.tensor([char2idx[c] for c in text], dtype=torch.long)
inputs, targets = data[:-1].unsqueeze(0), data[1:].unsqueeze(0)


class CharRNN(nn.Module):
    def __init__(self, vocab, hidden):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.rnn = nn.GRU(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x, h=None):
        out, h = self.rnn(self.embed(x), h)
        return self.head(out), h


model = CharRNN(len(chars), 48)
with torch.no_grad():
    for i, (name, p) in enumerate(model.named_parameters()):
        ramp = torch.arange(p.numel(), dtype=torch.float32)
        scale = 0.3 if "embed" in name else 0.15
        p.copy_(scale * torch.sin(ramp * 0.61 + i * 1.3).reshape(p.shape))

optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
for step in range(1, 61):
    optimizer.zero_grad()
    logits, _ = model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, len(chars)), targets.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step in (1, 10, 25):
        print(f"step {step:3d} loss {loss.item():.4f}")
print("final loss below 0.2:", loss.item() < 0.2)

model.eval()
with torch.no_grad():
    x = torch.tensor([[char2idx["t"]]])
    h = None
    generated = "t"
    for _ in range(len(text) - 1):
        logits, h = model(x, h)
        nxt = logits[0, -1].argmax()
        generated += idx2char[nxt]          # a 0-d tensor used as a list index
        x = nxt.view(1, 1)
print("generated:", repr(generated))
print("memorised:", generated == text[:len(generated)])
