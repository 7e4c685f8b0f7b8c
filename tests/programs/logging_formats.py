# The many ways training scripts print their numbers: str.format and f-strings on 0-d tensors,
# %-formatting, .item(), .tolist(), int()/float()/bool(), a 0-d int tensor as a list index,
# and plain print(tensor) reprs, around a small softmax-regression loop.
import torch
import torch.nn as nn

classes = ["cat", "dog", "bird"]
y = torch.arange(12) % 3
wobble = torch.stack([torch.cos(torch.arange(12.) * 0.5 + k) for k in range(4)], dim=1)
x = nn.functional.one_hot(y, 4).float() + 0.4 * wobble
model = nn.Linear(4, 3)
with torch.no_grad():
    model.weight.copy_(torch.arange(12.).view(3, 4) / 24 - 0.25)
    model.bias.zero_()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

for epoch in range(1, 31):
    optimizer.zero_grad()
    out = model(x)
    loss = criterion(out, y)
    loss.backward()
    optimizer.step()
    if epoch % 10 == 0:
        acc = (out.argmax(dim=1) == y).float().mean()
        print("Epoch [{}/{}], Loss: {:.4f}".format(epoch, 30, loss.item()))
        print(f"  loss={loss:.4f} acc={acc:.2%} signed={'{:+.2f}'.format(loss)}")
        print("  %% style: %.3f, %5.1f%%" % (loss, 100 * acc))

with torch.no_grad():
    scores = model(x[:4])
pred = scores.argmax(dim=1)
print("predicted:", [classes[p] for p in pred])            # 0-d tensors as list indices
best = scores[0].argmax()
print("first sample:", classes[best], "index", int(best), "score", float(scores[0, best].round(decimals=3)))
print("tolist:", scores.round(decimals=3).tolist())
print("ints:", pred.tolist(), type(pred.tolist()[0]).__name__, type(loss.item()).__name__)
print("bool of comparison:", bool(loss < 10), "truthy 0-d:", "yes" if torch.tensor(3) > 2 else "no")
print("0-d repr:", loss.detach(), torch.tensor(3), torch.tensor(True), torch.tensor(2.5, dtype=torch.float64))
print("vector repr:", torch.tensor([0.1, 123.456, -7.0]))
print("int repr:", torch.tensor([[1, -20], [300, 4]]))
print("small numbers:", torch.tensor([1e-5, 2e-6]), torch.tensor([1e10, 1.0]))
print("bool repr:", torch.tensor([True, False]), "half:", torch.tensor([1.5, 2.25]).half())
print("requires_grad repr:", torch.tensor([1.0, 2.0], requires_grad=True))
print("round:", round(loss.item(), 2), "sum of list:", sum(t.item() for t in torch.arange(4)))
names = {int(k): v for k, v in zip(torch.arange(3), classes)}
print("dict from tensor keys:", names)
print("range(int(t)):", list(range(int(torch.tensor(3)))), "list index:", classes[torch.tensor(1)])
print("shape formatting: {}".format(scores.shape), str(scores.dtype), repr(scores.shape[0]))
