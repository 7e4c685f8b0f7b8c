# A character-level LSTM language model in the pytorch/examples style: Embedding -> 2-layer LSTM
# with dropout between layers -> Linear decoder; truncated BPTT with detached hidden state, Adam and
# gradient clipping; the model saved with torch.save(model.state_dict()), loaded into a fresh model
# (load_state_dict, eval) and used to generate text greedily, carrying (h, c) from step to step.
import os
import tempfile

import torch
import torch.nn as nn

torch.set_default_dtype(torch.float64)
text = "the cat sat on the mat. the dog sat on the log. " * 3
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text])


class CharLM(nn.Module):
    def __init__(self, vocab, emb=8, hidden=24, layers=2):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, dropout=0.0)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


def deterministic_init(model):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(0.25 * torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.83 + i).view_as(p))


model = CharLM(len(chars))
deterministic_init(model)
optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
criterion = nn.CrossEntropyLoss()
bptt, batch = 12, 4
columns = data[: len(data) // batch * batch].view(batch, -1).t().contiguous()  # (steps, batch)
for epoch in range(12):
    hidden, total, count = None, 0.0, 0
    for i in range(0, columns.size(0) - 1, bptt):
        seq = min(bptt, columns.size(0) - 1 - i)
        x, y = columns[i:i + seq], columns[i + 1:i + 1 + seq]
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden)
        optimizer.zero_grad()
        logits, hidden = model(x, hidden)
        loss = criterion(logits.view(-1, len(chars)), y.reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        total, count = total + loss.item() * seq, count + seq
    if epoch % 3 == 2:
        print(f"epoch {epoch} loss {total / count:.4f}")

with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, "char_lm.pt")
    torch.save(model.state_dict(), path)
    restored = CharLM(len(chars))
    print(restored.load_state_dict(torch.load(path, weights_only=True)))
restored.eval()
print("same weights:", all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                             restored.state_dict().values())))
with torch.no_grad():
    token, hidden, generated = torch.tensor([[stoi["t"]]]), None, "t"
    for _ in range(30):
        logits, hidden = restored(token, hidden)
        token = logits[-1].argmax(-1, keepdim=True)
        generated += chars[token.item()]
print("generated:", repr(generated))
