# pytorch/examples "time_sequence_prediction" shape: two stacked nn.LSTMCell layers in double
# precision predicting the next value of sine waves, trained with LBFGS and a closure, then
# extrapolating future values from the model's own outputs.
import torch
import torch.nn as nn
import torch.optim as optim


class Sequence(nn.Module):
    def __init__(self):
        super(Sequence, self).__init__()
        self.lstm1 = nn.LSTMCell(1, 16)
        self.lstm2 = nn.LSTMCell(16, 16)
        self.linear = nn.Linear(16, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), 16, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 16, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 16, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 16, dtype=torch.double)
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


T, L, N = 8, 40, 6
x = torch.arange(L, dtype=torch.double).unsqueeze(0) + 4 * torch.arange(N, dtype=torch.double).unsqueeze(1)
data = torch.sin(x / T)
input, target = data[1:, :-1], data[1:, 1:]
test_input, test_target = data[:1, :-1], data[:1, 1:]

seq = Sequence()
seq.double()
with torch.no_grad():
    for i, p in enumerate(seq.parameters()):
        p.copy_(0.25 * torch.sin(torch.arange(p.numel(), dtype=torch.double) * 0.9 + i).view_as(p))
criterion = nn.MSELoss()
optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=10)
for i in range(3):
    def closure():
        optimizer.zero_grad()
        out = seq(input)
        loss = criterion(out, target)
        loss.backward()
        return loss
    loss = optimizer.step(closure)
    print("STEP: {} loss: {:.6f}".format(i, loss.item()))

with torch.no_grad():
    future = 10
    pred = seq(test_input, future=future)
    loss = criterion(pred[:, :-future], test_target)
    print("test loss: {:.6f}".format(loss.item()))
    y = pred.detach()
print("prediction shape:", tuple(y.shape), y.dtype)
print("extrapolated tail:", [round(v, 3) for v in y[0, -3:].tolist()])
