# REINFORCE (pytorch/examples "reinforcement_learning/reinforce" shape) on a toy two-state,
# three-action environment: Categorical(logits=...).sample() + log_prob, discounted returns
# normalised with eps, policy-gradient loss. Sampling is random, so the learned policy is
# checked, not the numbers; log_prob / entropy on fixed logits are printed exactly.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.distributions import Categorical

torch.manual_seed(543)
gamma = 0.9
eps = np.finfo(np.float32).eps.item()

logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
dist = Categorical(logits=logits)
print("probs:", [round(p, 4) for p in dist.probs[0].tolist()])
print("log_prob:", dist.log_prob(torch.tensor([0, 2])))
print("entropy:", dist.entropy())

BEST = {0: 2, 1: 0}          # the rewarding action in each state


def env_step(state, action):
    reward = 1.0 if action == BEST[state] else -0.2
    return 1 - state, reward


class Policy(nn.Module):
    def __init__(self):
        super(Policy, self).__init__()
        self.affine1 = nn.Linear(2, 32)
        self.affine2 = nn.Linear(32, 3)
        self.saved_log_probs = []
        self.rewards = []

    def forward(self, x):
        x = F.relu(self.affine1(x))
        return self.affine2(x)


policy = Policy()
optimizer = optim.Adam(policy.parameters(), lr=2e-2)


def select_action(state):
    state_t = F.one_hot(torch.tensor(state), 2).float().unsqueeze(0)
    m = Categorical(logits=policy(state_t))
    action = m.sample()
    policy.saved_log_probs.append(m.log_prob(action))
    return action.item()


def finish_episode():
    R = 0
    policy_loss = []
    returns = []
    for r in policy.rewards[::-1]:
        R = r + gamma * R
        returns.insert(0, R)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + eps)
    for log_prob, R in zip(policy.saved_log_probs, returns):
        policy_loss.append(-log_prob * R)
    optimizer.zero_grad()
    policy_loss = torch.cat(policy_loss).sum()
    policy_loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]


running_reward = 0.0
for i_episode in range(100):
    state, ep_reward = i_episode % 2, 0.0
    for t in range(10):
        action = select_action(state)
        state, reward = env_step(state, action)
        policy.rewards.append(reward)
        ep_reward += reward
    running_reward = 0.05 * ep_reward + (1 - 0.05) * running_reward
    finish_episode()

with torch.no_grad():
    greedy = policy(torch.eye(2)).argmax(dim=1).tolist()
print("greedy actions:", greedy, "optimal:", greedy == [BEST[0], BEST[1]])
print("running reward above 6:", running_reward > 6.0)
