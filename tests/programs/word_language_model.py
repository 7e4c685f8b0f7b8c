# pytorch/examples "word_language_model" shape: a Dictionary/Corpus, batchify + get_batch with
# bptt, an Embedding -> LSTM -> Linear model with tied weights, hidden-state repackaging,
# clip_grad_norm_ and the hand-written SGD update p.data.add_(p.grad, alpha=-lr).
import math

import torch
import torch.nn as nn


class Dictionary(object):
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


subjects = ["the cat", "a dog", "my friend", "the teacher"]
verbs = ["sees", "likes", "follows"]
objects = ["the ball", "a bird", "the river", "our house", "a tree"]
lines = [f"{subjects[i % 4]} {verbs[i % 3]} {objects[i % 5]} <eos>" for i in range(60)]

dictionary = Dictionary()
ids = []
for line in lines:
    for word in line.split():
        ids.append(dictionary.add_word(word))
corpus = torch.tensor(ids, dtype=torch.long)
print("tokens:", corpus.numel(), "vocab:", len(dictionary))


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


bptt = 8


def get_batch(source, i):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].view(-1)
    return data, target


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=True):
        super(RNNModel, self).__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.nhid, self.nlayers = nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.decoder.out_features)
        return nn.functional.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


train_data = batchify(corpus[:320], 4)
val_data = batchify(corpus[320:], 2)
ntokens = len(dictionary)
model = RNNModel(ntokens, 24, 24, 2, dropout=0.2)
with torch.no_grad():
    for k, p in enumerate(model.parameters()):
        p.copy_(0.2 * torch.sin(torch.arange(p.numel(), dtype=torch.float32) * 0.83 + k).view_as(p))
print("parameters:", sum(p.numel() for p in model.parameters()))
criterion = nn.NLLLoss()


def evaluate(data_source, bsz):
    model.eval()
    total_loss = 0.
    hidden = model.init_hidden(bsz)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


start = evaluate(val_data, 2)
print(f"untrained val loss {start:5.3f} | ppl {math.exp(start):8.2f}")

lr = 5.0
for epoch in range(1, 4):
    model.train()
    hidden = model.init_hidden(4)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
val_loss = evaluate(val_data, 2)
print("val loss improved:", val_loss < start - 0.5)
print("tied weights shared:", model.decoder.weight is model.encoder.weight)
