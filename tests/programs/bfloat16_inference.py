# Reduced-precision inference: casting a model and its inputs to bfloat16 with
# x.to(torch.bfloat16) / module.bfloat16(), the rounding bfloat16 applies, and CPU autocast.
import torch
import torch.nn as nn

x = torch.tensor([1.0, 1.00390625, 3.14159265, 1000.5, -0.1, 65504.0, 1e-3])
xb = x.to(torch.bfloat16)
print("dtype:", xb.dtype, "itemsize:", xb.element_size(), "is_floating_point:", xb.is_floating_point())
print("bfloat16 values:", xb.float().tolist())
print("repr:", xb[:3])
print("x.bfloat16() same as to():", torch.equal(x.bfloat16(), xb))
print("finfo eps:", torch.finfo(torch.bfloat16).eps, "max: {:.4e}".format(torch.finfo(torch.bfloat16).max))

model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4))
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.sin(torch.arange(p.numel(), dtype=torch.float32) * 0.3 + i).view_as(p) * 0.5)
inp = torch.cos(torch.arange(24, dtype=torch.float32).view(3, 8) * 0.4)
with torch.no_grad():
    ref = model(inp)
    model_bf16 = model.bfloat16()
    print("parameter dtypes:", {p.dtype for p in model_bf16.parameters()})
    out = model_bf16(inp.to(torch.bfloat16))
print("output dtype:", out.dtype)
err = (out.float() - ref).abs().max().item()
print("bfloat16 output close to float32:", err < 0.1)
print("float32 reference:", ref)

a = torch.arange(16, dtype=torch.float32).view(4, 4) / 7
b = a.to(torch.bfloat16) @ a.to(torch.bfloat16).T
print("bf16 matmul dtype:", b.dtype, "close:", torch.allclose(b.float(), a @ a.T, rtol=2e-2))
print("sum in float32:", round(a.bfloat16().float().sum().item(), 3))
print("mixed add promotes:", (torch.ones(2, dtype=torch.bfloat16) + torch.ones(2)).dtype)

model.float()
with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
    y = model[0](inp)
print("autocast linear output:", y.dtype)
print("back to float:", y.float().dtype, model[0].weight.dtype)
