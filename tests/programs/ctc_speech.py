# The speech-recognition shape (DeepSpeech-style tutorials): a bidirectional GRU over feature
# frames, a Linear to characters plus blank, log_softmax over classes, nn.CTCLoss with padded
# targets and per-utterance lengths, Adam, then greedy CTC decoding (collapse repeats, drop blanks).
import torch
import torch.nn as nn

torch.set_default_dtype(torch.float64)
BLANK, CHARS = 0, " abcdefgh"


class SpeechModel(nn.Module):
    def __init__(self, features=6, hidden=12, classes=len(CHARS) + 1):
        super().__init__()
        self.rnn = nn.GRU(features, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out).log_softmax(-1)


def utterance(text, frames_per_char=3):
    """Synthetic features: each character becomes a few frames of its own sinusoid pattern."""
    rows = []
    for k, ch in enumerate(text):
        code = CHARS.index(ch) + 1
        for f in range(frames_per_char):
            rows.append([torch.sin(torch.tensor(code * (j + 1) * 0.5 + f * 0.1)).item() for j in range(6)])
    return torch.tensor(rows)


texts = ["bad", "cab", "fed", "head"]
inputs = [utterance(t) for t in texts]
input_lengths = torch.tensor([len(x) for x in inputs])
x = nn.utils.rnn.pad_sequence(inputs, batch_first=True)
targets = nn.utils.rnn.pad_sequence([torch.tensor([CHARS.index(c) + 1 for c in t]) for t in texts], batch_first=True)
target_lengths = torch.tensor([len(t) for t in texts])

model = SpeechModel()
with torch.no_grad():
    for i, (name, p) in enumerate(model.named_parameters()):
        p.copy_(0.3 * torch.sin(torch.arange(p.numel(), dtype=torch.float64) * 0.61 + i).view_as(p))
ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
print(ctc)
optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
for step in range(40):
    optimizer.zero_grad()
    log_probs = model(x).transpose(0, 1)  # (T, N, C) as CTCLoss wants
    loss = ctc(log_probs, targets, input_lengths, target_lengths)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    if step % 10 == 0 or step == 39:
        print(f"step {step:2d} ctc loss {loss.item():.4f}")

with torch.no_grad():
    best = model(x).argmax(-1)
for row, n in zip(best.tolist(), input_lengths.tolist()):
    collapsed = [c for i, c in enumerate(row[:n]) if c != BLANK and (i == 0 or c != row[i - 1])]
    print("decoded:", repr("".join(CHARS[c - 1] for c in collapsed)))
print("sum reduction:", round(nn.CTCLoss(reduction="sum")(model(x).transpose(0, 1), targets, input_lengths,
                                                           target_lengths).item(), 4))
