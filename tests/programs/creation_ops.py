# The tensor-creation overloads that real code leans on (size= keywords, randint's two
# signatures, full / arange / linspace dtype inference, where with Python scalars, clamp with
# only min, maximum), used to build a padded batch with a mask and a ReLU-clamped target.
import torch

batch, max_len = 3, 5
buf = torch.empty(size=(batch, max_len))
print("empty(size=...):", buf.shape, buf.dtype)
padded = torch.zeros(size=(batch, max_len), dtype=torch.long)
print("zeros(size=...):", padded.dtype, padded.sum().item())

tok = torch.randint(10, size=(8,))
print("randint(high, size=):", tok.shape, tok.dtype, bool(((tok >= 0) & (tok < 10)).all()))
tok2 = torch.randint(3, 7, (4, 2))
print("randint(low, high, shape):", tuple(tok2.shape), bool(((tok2 >= 3) & (tok2 < 7)).all()))
print("randint float dtype:", torch.randint(0, 2, (3,), dtype=torch.float32).dtype)

fill = torch.full((2, 3), 7.)
print("full:", fill, fill.dtype)
print("full int:", torch.full((2,), 4).dtype, "full bool:", torch.full((1,), True).dtype)
print("arange int:", torch.arange(5), torch.arange(5).dtype)
print("arange float:", torch.arange(0, 1, 0.25), torch.arange(1, 4, dtype=torch.float64).dtype)
print("arange(2.0, 5):", torch.arange(2.0, 5))
print("linspace:", torch.linspace(0, 1, steps=5))
print("linspace step 1:", torch.linspace(-1, 1, 1))

lengths = torch.tensor([5, 2, 3])
positions = torch.arange(max_len).unsqueeze(0).expand(batch, max_len)
mask = torch.where(positions < lengths.unsqueeze(1), 1, 0)
print("mask:", mask, mask.dtype)
values = (torch.arange(batch * max_len, dtype=torch.float32).view(batch, max_len) - 7) / 4
masked = torch.where(mask.bool(), values, 0.)
print("masked:", masked)
print("masked mean:", masked.sum() / mask.sum())
print("where float/int scalars:", torch.where(values > 0, 1.0, -1).dtype)

relu = torch.clamp(values, min=0)
print("clamp(min=0):", relu[0])
print("clamp(max=0.5):", torch.clamp(values, max=0.5)[2])
print("clamp_ both:", values.clone().clamp_(-1, 1)[1])
a = torch.tensor([1.0, 5.0, -3.0])
b = torch.tensor([2.0, 4.0, -4.0])
print("maximum:", torch.maximum(a, b), "minimum:", torch.minimum(a, b))
print("ones_like / zeros_like:", torch.ones_like(a).tolist(), torch.zeros_like(tok).dtype)
print("eye:", torch.eye(2, 3))
print("tensor from nested lists:", torch.tensor([[1, 2], [3, 4]]).dtype, torch.tensor([1.5, 2]).dtype)
print("empty_like:", torch.empty_like(values).shape, "new_full:", values.new_full((2,), 3.0))
