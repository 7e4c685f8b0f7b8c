# Variable-length sequence classification: a custom Dataset, a collate_fn that pads with
# nn.utils.rnn.pad_sequence, pack_padded_sequence into a bidirectional GRU, random_split with a
# seeded Generator, Subset / ConcatDataset, and the DataLoader's drop_last.
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, random_split


class ToySequences(Dataset):
    def __init__(self, n, offset=0):
        self.items = []
        for i in range(n):
            length = 2 + (i * 3 + offset) % 5
            seq = (torch.arange(length) * (i + 1) + offset) % 9 + 1
            label = int(seq.sum()) % 2
            self.items.append((seq, label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, idx):
        return self.items[idx]


def collate_batch(batch):
    seqs, labels = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = pad_sequence(seqs, batch_first=True, padding_value=0)
    return padded, lengths, torch.tensor(labels)


class GRUClassifier(nn.Module):
    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.gru = nn.GRU(emb, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, 2)

    def forward(self, padded, lengths):
        packed = pack_padded_sequence(self.embedding(padded), lengths, batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.gru(packed)
        out, out_lengths = pad_packed_sequence(packed_out, batch_first=True)
        features = torch.cat([h_n[-2], h_n[-1]], dim=1)
        return self.fc(features), out, out_lengths


data = ToySequences(20)
print("dataset size:", len(data), "first item:", data[0])
train_set, val_set = random_split(data, [16, 4], generator=torch.Generator().manual_seed(42))
print("split sizes:", len(train_set), len(val_set), "disjoint:", not set(train_set.indices) & set(val_set.indices))
both = ConcatDataset([Subset(data, [0, 1, 2]), ToySequences(2, offset=3)])
print("concat size:", len(both), "last label:", both[4][1])

loader = DataLoader(data, batch_size=6, shuffle=False, collate_fn=collate_batch, drop_last=True)
print("batches with drop_last:", len(loader))
padded, lengths, labels = next(iter(loader))
print("padded batch:", padded)
print("lengths:", lengths.tolist(), "labels:", labels.tolist())

model = GRUClassifier(vocab=10, emb=6, hidden=5)
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(0.3 * torch.cos(torch.arange(p.numel(), dtype=torch.float32) * 1.3 + i).view_as(p))
    model.embedding.weight[0].zero_()
logits, out, out_lengths = model(padded, lengths)
print("logits:", logits.detach())
print("unpacked:", tuple(out.shape), "lengths:", out_lengths.tolist())
print("padding positions are zero:", bool((out[1, lengths[1]:] == 0).all()))

optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for epoch in range(15):
    for padded, lengths, labels in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(padded, lengths)[0], labels)
        loss.backward()
        optimizer.step()
print(f"final batch loss {loss.item():.4f}")
