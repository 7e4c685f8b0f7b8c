# A two-layer graph convolutional network (Kipf & Welling, pygcn shape) on a small two-community
# graph. The normalised adjacency is a sparse COO tensor: built with torch.sparse_coo_tensor,
# compared with x.to_sparse(), and used through torch.spmm, torch.sparse.mm and adj @ h.
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

n_nodes, n_feat, n_class = 12, 6, 2
edges = []
for community in (range(0, 6), range(6, 12)):
    nodes = list(community)
    for a in nodes:
        for b in nodes:
            if a < b and (b - a) % 2 == 1:
                edges.append((a, b))
edges.append((5, 6))                                  # one bridge between the communities
src = torch.tensor([a for a, b in edges] + [b for a, b in edges] + list(range(n_nodes)))
dst = torch.tensor([b for a, b in edges] + [a for a, b in edges] + list(range(n_nodes)))
indices = torch.stack([src, dst])
values = torch.ones(indices.size(1))
adj = torch.sparse_coo_tensor(indices, values, (n_nodes, n_nodes)).coalesce()
print("edges:", len(edges), "nnz with self loops:", adj._nnz())

deg = torch.sparse.sum(adj, dim=1).to_dense()
d_inv_sqrt = deg.pow(-0.5)
norm_values = d_inv_sqrt[adj.indices()[0]] * adj.values() * d_inv_sqrt[adj.indices()[1]]
adj = torch.sparse_coo_tensor(adj.indices(), norm_values, adj.shape)
dense = adj.to_dense()
print("layout:", adj.layout, "is_sparse:", adj.is_sparse)
print("row sums:", [round(v, 3) for v in dense.sum(1).tolist()[:4]])
same = torch.allclose(dense.to_sparse().to_dense(), dense)
print("to_sparse round trip:", same)


class GraphConvolution(nn.Module):
    def __init__(self, in_features, out_features, use_spmm):
        super(GraphConvolution, self).__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.use_spmm = use_spmm
        stdv = 1.0 / math.sqrt(out_features)
        with torch.no_grad():
            k = torch.arange(in_features * out_features, dtype=torch.float32)
            self.weight.copy_(stdv * torch.sin(k * 1.1).view(in_features, out_features))
            self.bias.fill_(0.0)

    def forward(self, input, adj):
        support = torch.mm(input, self.weight)
        if self.use_spmm:
            output = torch.spmm(adj, support)
        else:
            output = torch.sparse.mm(adj, support)
        return output + self.bias


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout):
        super(GCN, self).__init__()
        self.gc1 = GraphConvolution(nfeat, nhid, use_spmm=True)
        self.gc2 = GraphConvolution(nhid, nclass, use_spmm=False)
        self.dropout = dropout

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)


features = torch.cos(torch.arange(n_nodes * n_feat, dtype=torch.float32).view(n_nodes, n_feat) * 0.7)
labels = (torch.arange(n_nodes) >= 6).long()
features[:, 0] += 0.5 * (2 * labels - 1)              # a weak community signal
idx_train = torch.tensor([0, 1, 6, 7])
idx_test = torch.tensor([2, 3, 4, 5, 8, 9, 10, 11])

h = features @ torch.ones(n_feat, 3)
print("adj @ h matches dense:", torch.allclose(adj @ h, dense @ h, atol=1e-6))

model = GCN(n_feat, 16, n_class, dropout=0.0)
optimizer = optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
for epoch in range(60):
    model.train()
    optimizer.zero_grad()
    output = model(features, adj)
    loss_train = F.nll_loss(output[idx_train], labels[idx_train])
    loss_train.backward()
    optimizer.step()
    if epoch % 20 == 0:
        print("Epoch: {:04d}".format(epoch + 1), "loss_train: {:.4f}".format(loss_train.item()))

model.eval()
output = model(features, adj)
preds = output.max(1)[1]
acc = preds[idx_test].eq(labels[idx_test]).double().sum() / len(idx_test)
print("Test set results:", "loss= {:.4f}".format(F.nll_loss(output[idx_test], labels[idx_test]).item()),
      "accuracy= {:.4f}".format(acc.item()))
