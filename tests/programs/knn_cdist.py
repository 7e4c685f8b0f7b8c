# k-nearest-neighbour classification and k-means clustering with torch.cdist: pairwise
# distances, topk(largest=False), a majority vote with torch.bincount, and centroid updates
# with index_add_.
import torch

n_per, n_classes = 10, 3
angles = torch.arange(n_per * n_classes, dtype=torch.float32) * 2.39996
centers = torch.tensor([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
labels = torch.arange(n_per * n_classes) // n_per
points = centers[labels] + 0.8 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
queries = torch.tensor([[0.2, 0.1], [3.5, 0.5], [2.1, 2.9], [2.0, 1.2]])

dist = torch.cdist(queries, points)
print("distance matrix:", tuple(dist.shape), "min: {:.4f}".format(dist.min().item()))
print("cdist == manual:", torch.allclose(dist, ((queries[:, None] - points[None]) ** 2).sum(-1).sqrt(), atol=1e-5))
knn = dist.topk(5, dim=1, largest=False)
print("nearest distances:", knn.values[:, 0])
for q, idx in zip(queries.tolist(), knn.indices):
    votes = torch.bincount(labels[idx], minlength=n_classes)
    print(f"query {q}: votes {votes.tolist()} -> class {votes.argmax().item()}")
print("manhattan:", torch.cdist(queries[:1], points[:3], p=1))

# k-means with fixed initial centroids
k = 3
centroids = points[[0, 10, 20]] + 0.5
for it in range(5):
    assign = torch.cdist(points, centroids).argmin(dim=1)
    sums = torch.zeros(k, 2).index_add_(0, assign, points)
    counts = torch.bincount(assign, minlength=k).clamp(min=1).unsqueeze(1)
    centroids = sums / counts
inertia = (points - centroids[assign]).pow(2).sum()
print("cluster sizes:", torch.bincount(assign, minlength=k).tolist())
print("centroids:", centroids)
print(f"inertia: {inertia:.4f}")
print("agreement with labels:", (assign == labels).float().mean().item())
batched = torch.cdist(points.view(3, 10, 2), centroids.expand(3, k, 2))
print("batched cdist:", tuple(batched.shape), "argmin rows:", batched.argmin(-1)[0].tolist())
