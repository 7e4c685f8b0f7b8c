# Data-preparation statistics: a label histogram with torch.unique(return_counts=True) and
# bincount turned into class weights for CrossEntropyLoss, feature quantisation with
# torch.bucketize and searchsorted, and a value histogram with torch.histc.
import torch
import torch.nn as nn

labels = torch.tensor([0, 2, 2, 1, 0, 2, 2, 3, 2, 1, 2, 0])
classes, counts = torch.unique(labels, return_counts=True)
print("classes:", classes.tolist(), "counts:", counts.tolist())
print("bincount:", torch.bincount(labels), "minlength 6:", torch.bincount(labels, minlength=6).tolist())
class_weights = counts.sum() / (len(classes) * counts.float())
print("class weights:", class_weights)
logits = torch.stack([torch.linspace(-1, 1, 4) * (i % 3 - 1) for i in range(12)])
weighted = nn.CrossEntropyLoss(weight=class_weights)(logits, labels)
plain = nn.CrossEntropyLoss()(logits, labels)
print(f"weighted loss {weighted.item():.4f} vs plain {plain.item():.4f}")
print("weighted bincount:", torch.bincount(labels, weights=torch.linspace(0, 1, 12)))

words = torch.tensor([5, 3, 5, 9, 3, 5, 1])
uniq, inverse = torch.unique(words, return_inverse=True)
print("unique sorted:", uniq.tolist(), "inverse:", inverse.tolist())
u2, inv2, c2 = torch.unique(words, sorted=True, return_inverse=True, return_counts=True)
print("all three:", u2.tolist(), inv2.tolist(), c2.tolist())
print("unique rows:", torch.unique(torch.tensor([[1, 2], [3, 4], [1, 2]]), dim=0))
print("unique_consecutive:", torch.unique_consecutive(torch.tensor([1, 1, 2, 2, 2, 1, 3])))

ages = torch.tensor([3.0, 17.0, 18.0, 25.0, 42.0, 64.0, 65.0, 90.0])
boundaries = torch.tensor([18.0, 30.0, 65.0])
print("bucketize:", torch.bucketize(ages, boundaries).tolist())
print("bucketize right=True:", torch.bucketize(ages, boundaries, right=True).tolist())
sorted_seq = torch.tensor([1.0, 3.0, 5.0, 7.0, 9.0])
print("searchsorted:", torch.searchsorted(sorted_seq, torch.tensor([0.0, 3.0, 6.0, 10.0])).tolist())
print("searchsorted right:", torch.searchsorted(sorted_seq, torch.tensor([3.0, 9.0]), right=True).tolist())
print("searchsorted side='right':", torch.searchsorted(sorted_seq, torch.tensor([[1.0, 7.0]]), side="right"))
cdf = torch.cumsum(torch.tensor([0.1, 0.2, 0.3, 0.4]), dim=0)
print("inverse-CDF sampling of fixed uniforms:", torch.searchsorted(cdf, torch.tensor([0.05, 0.25, 0.65, 0.95])).tolist())

values = torch.sin(torch.arange(200, dtype=torch.float32) * 0.1)
hist = torch.histc(values, bins=5, min=-1, max=1)
print("histc:", hist, hist.dtype, "total:", int(hist.sum()))
print("histc default range:", torch.histc(torch.tensor([1.0, 2.0, 1.0, 4.0]), bins=4))
h, edges = torch.histogram(values, bins=4)
print("histogram:", h.tolist(), "edges:", [round(e, 3) for e in edges.tolist()])
