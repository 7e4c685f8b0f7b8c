# Text-generation decoding utilities: top-k / nucleus (top-p) filtering of logits with sort,
# cumsum, masked_fill and scatter, repetition penalty with gather / scatter_, one-hot labels
# and label smoothing with scatter_, a greedy beam of width 2, and boolean-mask indexing.
import torch
import torch.nn.functional as F


def top_k_top_p_filtering(logits, top_k=0, top_p=1.0, filter_value=-float("inf")):
    if top_k > 0:
        kth = torch.topk(logits, top_k)[0][..., -1, None]
        logits = logits.masked_fill(logits < kth, filter_value)
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cumulative_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        sorted_indices_to_remove = cumulative_probs > top_p
        sorted_indices_to_remove[..., 1:] = sorted_indices_to_remove[..., :-1].clone()
        sorted_indices_to_remove[..., 0] = False
        indices_to_remove = sorted_indices_to_remove.scatter(-1, sorted_indices, sorted_indices_to_remove)
        logits = logits.masked_fill(indices_to_remove, filter_value)
    return logits


logits = torch.tensor([[2.0, 0.5, 1.0, -1.0, 3.0, 0.0],
                       [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
print("top-k=2:", top_k_top_p_filtering(logits, top_k=2))
print("top-p=0.8:", top_k_top_p_filtering(logits, top_p=0.8))
probs = F.softmax(top_k_top_p_filtering(logits, top_k=3, top_p=0.9), dim=-1)
print("filtered probs:", probs)
print("support sizes:", (probs > 0).sum(dim=-1).tolist())
torch.manual_seed(0)
samples = torch.multinomial(probs, num_samples=50, replacement=True)
print("samples stay in the support:", bool(torch.gather(probs, 1, samples).gt(0).all()))

generated = torch.tensor([[4, 0, 4], [5, 5, 1]])
penalty = 1.5
score = torch.gather(logits, 1, generated)
score = torch.where(score < 0, score * penalty, score / penalty)
penalised = logits.clone().scatter_(1, generated, score)
print("repetition penalty:", penalised)

labels = torch.tensor([2, 0, 5])
one_hot = torch.zeros(3, 6).scatter_(1, labels.unsqueeze(1), 1.0)
print("one-hot via scatter_:", one_hot)
print("matches F.one_hot:", torch.equal(one_hot, F.one_hot(labels, 6).float()))
smoothing = 0.1
smooth = torch.full((3, 6), smoothing / 5).scatter_(1, labels.unsqueeze(1), 1 - smoothing)
log_probs = F.log_softmax(torch.cat([logits, logits[:1]]), dim=-1)
manual = -(smooth * log_probs).sum(dim=-1).mean()
builtin = F.cross_entropy(torch.cat([logits, logits[:1]]), labels, label_smoothing=0.12)
print(f"label-smoothed loss {manual.item():.4f}, builtin with 0.12: {builtin.item():.4f}")

beam_scores = torch.zeros(2)
step_log_probs = F.log_softmax(logits, dim=-1)
candidates = (beam_scores[:, None] + step_log_probs).view(-1)
top_scores, flat_idx = candidates.topk(2)
print("beam picks (beam, token):", [(int(i) // 6, int(i) % 6) for i in flat_idx], top_scores)

x = torch.arange(12.).view(3, 4)
mask = x % 3 == 0
print("masked select:", x[mask], "nonzero:", mask.nonzero().tolist())
x[mask] = -1
print("masked assign:", x)
print("index_select:", torch.index_select(x, 1, torch.tensor([3, 0])))
print("argwhere:", torch.argwhere(x < 0).T)
print("fancy indexing:", x[[0, 2], [1, 3]], x[torch.tensor([True, False, True])].shape)
print("chunk:", [c.shape[1] for c in x.chunk(3, dim=1)], "split:", [s.shape[1] for s in x.split([1, 3], dim=1)])
print("sort stable:", torch.sort(torch.tensor([2, 1, 2, 1]), stable=True).indices.tolist())
