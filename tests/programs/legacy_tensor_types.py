# Old-style (0.3-era) code that still runs today: torch.FloatTensor / LongTensor / ByteTensor
# constructors, torch.Tensor(rows, cols), x.type(torch.FloatTensor) and x.type(), in the
# setting of a DQN replay-batch update.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

w = torch.Tensor(3, 4)                       # uninitialised storage: only the shape is stable
print("torch.Tensor(3, 4):", w.size(), w.type(), w.dtype)
w.fill_(0.25)
print("filled sum:", w.sum().item())

states = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, -0.5, 0.5, 1.0], [1.0, 0.0, 0.0, -1.0]], dtype=np.float64)
state = torch.FloatTensor(states)
action = torch.LongTensor([1, 0, 1])
reward = torch.FloatTensor([1.0, 0.0, -1.0])
done = torch.FloatTensor([0, 0, 1])
next_state = torch.FloatTensor(states[::-1].copy())
print("state:", state.type(), state.dtype, tuple(state.shape))
print("action:", action.type(), action)
print("isinstance FloatTensor:", isinstance(state, torch.FloatTensor), isinstance(action, torch.FloatTensor))
print("type() strings:", state.type() == "torch.FloatTensor", action.type() == "torch.LongTensor")

mask = torch.ByteTensor([1, 0, 1])
print("mask:", mask.type(), mask.dtype)
as_float = action.type(torch.FloatTensor)
print("cast:", as_float.type(), as_float)
print("cast by name:", reward.type("torch.DoubleTensor").dtype, reward.type(torch.LongTensor))
print("empty FloatTensor:", torch.FloatTensor().shape, torch.FloatTensor(2, 3).zero_())

q_net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
target_net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
for net, phase in ((q_net, 0.0), (target_net, 0.5)):
    for p in net.parameters():
        p.data = torch.FloatTensor(np.sin(np.arange(p.numel()) * 0.77 + phase).reshape(tuple(p.shape)) * 0.4)

gamma = 0.99
q_values = q_net(state).gather(1, action.unsqueeze(1)).squeeze(1)
next_q = target_net(next_state).max(1)[0].detach()
expected_q = reward + gamma * next_q * (1 - done)
loss = F.smooth_l1_loss(q_values, expected_q)
loss.backward()
print("q:", q_values.data)
print("target:", expected_q)
print("loss: %.5f" % loss.data.item())
print("grad norm: %.5f" % sum(p.grad.data.norm() ** 2 for p in q_net.parameters()).sqrt())
