"""Train a character-level Transformer language model on a bundled text.

    python examples/char_transformer.py                       # examples/data/public_domain.txt, quick settings
    python examples/char_transformer.py --text my.txt --epochs 50 --context 128 --d-model 128 --layers 4
    distmlrun -n 2 examples/char_transformer.py               # data-parallel, the same script

The model is a decoder-only Transformer (as GPT): character and position embeddings, --layers
pre-norm nn.TransformerEncoderLayer blocks under a causal mask (each position sees only the
characters before it), a final LayerNorm and a linear layer to next-character logits. The text's
first 90 % trains it, cut into windows of --context characters; the last 10 % measures held-out
loss. At the end rank 0 prints a sample continuing --prompt.

The bundled text (Lincoln's Gettysburg Address and three of Shakespeare's sonnets) is in the public
domain. Under a launcher (distmlrun, mpiexec, srun) a DistributedSampler shards the windows and
DistributedDataParallel averages the gradients; only rank 0 prints.
"""
import argparse
import math
import os
import time

import numpy as np

import distml
import distml.distributed as dist
import distml.nn as nn
import distml.nn.functional as F
from distml.distributed.launch_rank import rank_environment
from distml.nn.parallel import DistributedDataParallel
from distml.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler
from distml.utils.progress import progress_bar

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "public_domain.txt")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--text", default=TEXT, help="a UTF-8 text file (default: the bundled public-domain text)")
    p.add_argument("--context", type=int, default=32, help="characters per training window")
    p.add_argument("--stride", type=int, default=None, help="characters between window starts (default: context/4)")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16, help="per rank")
    p.add_argument("--lr", type=float, default=3e-3,
                   help="for one rank; multiplied by the number of ranks (the linear scaling rule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="Shall I ", help="the start of the sample printed at the end")
    p.add_argument("--sample-length", type=int, default=120, help="characters to sample (0: no sample)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars, only the epoch summaries")
    args = p.parse_args(argv)
    if args.stride is None:
        args.stride = max(args.context // 4, 1)
    return args


# ---- data ----

class Vocabulary:
    """The text's distinct characters, each an index."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text):
        return np.array([self.index[c] for c in text if c in self.index], np.int64)

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def __len__(self):
        return len(self.chars)


class Windows(Dataset):
    """(input, target) pairs of `context` characters, the target shifted by one, every `stride`."""

    def __init__(self, ids, context, stride):
        self.ids, self.context = distml.tensor(ids), context
        self.starts = range(0, len(ids) - context - 1, stride)

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        start = self.starts[i]
        return self.ids[start:start + self.context], self.ids[start + 1:start + self.context + 1]


# ---- model ----

class CharTransformer(nn.Module):
    """Next-character logits (N, L, vocabulary) for characters (N, L), each position attending to
    itself and the positions before it."""

    def __init__(self, vocab_size, context, d_model=64, heads=4, layers=2, dropout=0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        block = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids):
        length = ids.shape[1]
        x = self.embed(ids) + self.position(distml.arange(length))
        mask = nn.Transformer.generate_square_subsequent_mask(length)
        return self.head(self.norm(self.blocks(x, mask=mask, is_causal=True)))


def sequence_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@distml.no_grad()
def sample(model, vocab, prompt, length, context, generator):
    """`prompt` continued by `length` characters, each drawn from the model's next-character distribution."""
    model.eval()
    ids = list(vocab.encode(prompt)) or [0]
    for _ in range(length):
        window = distml.tensor([ids[-context:]])
        probs = F.softmax(model(window)[0, -1], dim=-1)
        ids.append(int(distml.multinomial(probs, 1, generator=generator).item()))
    return vocab.decode(ids)


# ---- training ----

def train_epoch(model, optimizer, loader, epoch, args):
    model.train()
    total_loss, seen, start = 0.0, 0, time.perf_counter()
    bar = progress_bar(loader, desc=f"epoch {epoch}/{args.epochs}", leave=False, disable=args.no_progress)
    for inputs, targets in bar:
        optimizer.zero_grad()
        loss = sequence_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(inputs)
        seen += len(inputs)
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return total_loss / seen, seen * args.context / (time.perf_counter() - start)


def evaluate(model, loader):
    """Mean next-character loss over the held-out windows."""
    model.eval()
    total_loss, seen = 0.0, 0
    with distml.no_grad():
        for inputs, targets in loader:
            total_loss += sequence_loss(model(inputs), targets).item() * len(inputs)
            seen += len(inputs)
    return total_loss / seen


def main(argv=None):
    """Train; returns (model, [(train loss, held-out loss) per epoch], sample or None)."""
    args = parse_args(argv)
    if rank_environment()[2] > 1:
        dist.init_process_group("mpi")
    lead = dist.get_rank() == 0
    distml.manual_seed(args.seed)
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    vocab = Vocabulary(text)
    ids = vocab.encode(text)
    cut = int(0.9 * len(ids))
    train_set = Windows(ids[:cut], args.context, args.stride)
    held_out = Windows(ids[cut:], args.context, args.context)
    if len(train_set) == 0 or len(held_out) == 0:
        raise ValueError(f"{args.text}: {len(ids)} characters are too few for windows of {args.context}")
    sampler = DistributedSampler(train_set, seed=args.seed) if dist.is_initialized() else RandomSampler(train_set)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    held_out_loader = DataLoader(held_out, batch_size=64)
    net = CharTransformer(len(vocab), args.context, args.d_model, args.heads, args.layers, args.dropout)
    optimizer = distml.optim.AdamW(net.parameters(), lr=args.lr * dist.get_world_size(), weight_decay=0.01)
    model = DistributedDataParallel(net) if dist.is_initialized() else net
    if lead:
        print(f"{os.path.basename(args.text)}: {len(ids)} characters, {len(vocab)} distinct; {len(train_set)} "
              f"training windows of {args.context}; {sum(p.numel() for p in net.parameters())} parameters"
              + (f", {dist.get_world_size()} ranks" if dist.is_initialized() else "")
              + f"; a uniform guess scores {math.log(len(vocab)):.4f}", flush=True)
    history = []
    for epoch in range(1, args.epochs + 1):
        if dist.is_initialized():
            sampler.set_epoch(epoch)
        began = time.perf_counter()
        train_loss, throughput = train_epoch(model, optimizer, train_loader, epoch, args)
        held_out_loss = evaluate(net, held_out_loader)
        history.append((train_loss, held_out_loss))
        if lead:
            print(f"epoch {epoch}/{args.epochs}: train loss {train_loss:.4f}, held-out loss {held_out_loss:.4f}, "
                  f"{throughput:.0f} characters/s per rank, {time.perf_counter() - began:.1f} s", flush=True)
    text_sample = None
    if lead and args.sample_length > 0:
        generator = distml.Generator().manual_seed(args.seed)
        text_sample = sample(net, vocab, args.prompt, args.sample_length, args.context, generator)
        print(f"sample: {text_sample!r}", flush=True)
    return net, history, text_sample


if __name__ == "__main__":
    main()
