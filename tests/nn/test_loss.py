"""Every loss and option against PyTorch: values and input gradients, float64 (and float32
for cross-entropy); PyTorch's errors for targets of the wrong dtype or shape."""
import numpy as np
import pytest
import torch

import distml
from distml import nn


def compare(name, inputs, kwargs=None, grads=(0,), dtype=np.float64, rtol=1e-7, atol=1e-10, module_kwargs=None):
    """Run distml.nn.<name>(**module_kwargs)(*inputs) and torch's; compare the value and the
    gradients of the inputs listed in `grads`."""
    module_kwargs = module_kwargs or {}
    d_kwargs = {k: distml.tensor(v) if isinstance(v, np.ndarray) else v for k, v in module_kwargs.items()}
    t_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in module_kwargs.items()}
    d_in, t_in = [], []
    for i, x in enumerate(inputs):
        x = x.astype(dtype) if x.dtype.kind == "f" else x
        d_in.append(distml.tensor(x, requires_grad=i in grads))
        t_in.append(torch.tensor(x, requires_grad=i in grads))
    d_out = getattr(nn, name)(**d_kwargs)(*d_in)
    t_out = getattr(torch.nn, name)(**t_kwargs)(*t_in)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), rtol=rtol, atol=atol)
    if grads:
        upstream = np.random.default_rng(3).standard_normal(tuple(t_out.shape)).astype(dtype)
        d_out.backward(distml.tensor(upstream))
        t_out.backward(torch.tensor(upstream))
        for i in grads:
            np.testing.assert_allclose(d_in[i].grad.numpy(), t_in[i].grad.numpy(), rtol=rtol, atol=atol)


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,options", [("MSELoss", {}), ("L1Loss", {}), ("SmoothL1Loss", {"beta": 0.5}),
                                          ("SmoothL1Loss", {"beta": 0.0}), ("HuberLoss", {"delta": 0.7})])
def test_regression_losses(rng, name, options, reduction):
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    compare(name, [x, y], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"ignore_index": 1}, {"label_smoothing": 0.2},
                                     {"weight": "w", "ignore_index": 2, "label_smoothing": 0.1}])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4), (2, 5, 3, 2)])
def test_cross_entropy_class_indices(rng, shape, options, reduction, dtype):
    x = rng.standard_normal(shape) * 3
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    options = {k: (rng.random(shape[1]) + 0.2).astype(dtype) if v == "w" else v for k, v in options.items()}
    tol = dict(rtol=1e-7, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    compare("CrossEntropyLoss", [x, target], dtype=dtype, module_kwargs=dict(options, reduction=reduction), **tol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"label_smoothing": 0.3}])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_cross_entropy_probabilities(rng, shape, options, reduction):
    x = rng.standard_normal(shape)
    p = rng.random(shape)
    p /= p.sum(axis=1, keepdims=True)
    options = {k: rng.random(shape[1]) + 0.2 if v == "w" else v for k, v in options.items()}
    compare("CrossEntropyLoss", [x, p], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


def test_cross_entropy_unbatched_and_all_ignored(rng):
    compare("CrossEntropyLoss", [rng.standard_normal(5), np.array(3)])
    compare("CrossEntropyLoss", [rng.standard_normal(5), np.array(3)], module_kwargs={"reduction": "none"})
    x, target = rng.standard_normal((3, 4)), np.full(3, -100)
    d = nn.functional.cross_entropy(distml.tensor(x), distml.tensor(target))
    assert np.isnan(d.item()) and np.isnan(torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target)))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": "w"}, {"ignore_index": 0}])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 4)])
def test_nll_loss(rng, shape, options, reduction):
    x = np.log(rng.random(shape))
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    options = {k: rng.random(shape[1]) + 0.2 if v == "w" else v for k, v in options.items()}
    compare("NLLLoss", [x, target], module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce(rng, weighted, reduction):
    x, y = rng.random((4, 3)) * 0.98 + 0.01, rng.random((4, 3))
    options = {"weight": rng.random((4, 3))} if weighted else {}
    compare("BCELoss", [x, y], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"weight": (3,)}, {"pos_weight": (3,)}, {"weight": (4, 3), "pos_weight": (3,)}])
def test_bce_with_logits(rng, options, reduction):
    x, y = rng.standard_normal((4, 3)) * 30, rng.random((4, 3))
    options = {k: rng.random(v) + 0.5 for k, v in options.items()}
    compare("BCEWithLogitsLoss", [x, y], grads=(0, 1), module_kwargs=dict(options, reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(rng, log_target, reduction):
    x = np.log(rng.dirichlet(np.ones(5), 4))
    t = rng.dirichlet(np.ones(5), 4)
    t[0, 0] = 0.0
    t = np.log(t + 1e-3) if log_target else t
    compare("KLDivLoss", [x, t], module_kwargs={"reduction": reduction, "log_target": log_target})


def test_target_errors():
    F, TF = nn.functional, torch.nn.functional
    x = np.zeros((3, 4))
    cases = [
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0.0, 1.0, 2.0])), RuntimeError,
         "expected target dtype to be Long or Byte, but got Float"),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0, 1, 2], dtype=lib.int32)), RuntimeError,
         "expected target dtype to be Long or Byte, but got Int"),
        (lambda f, lib: f.cross_entropy(lib.zeros(2, 3, 4), lib.zeros(2, 5, dtype=lib.int64)), RuntimeError,
         r"Expected target size \[2, 4\], got \[2, 5\]"),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([[0, 1, 3]] * 3)), RuntimeError,
         "0D or 1D target tensor expected, multi-target not supported"),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0, 1, 2, 3])), ValueError,
         r"Expected input batch_size \(3\) to match target batch_size \(4\)."),
        (lambda f, lib: f.nll_loss(lib.tensor(x), lib.tensor([0, 1, 2, 3])), ValueError,
         r"Expected input batch_size \(3\) to match target batch_size \(4\)."),
        (lambda f, lib: f.cross_entropy(lib.tensor(x), lib.tensor([0, 1, 4])), IndexError,
         "Target 4 is out of bounds."),
        (lambda f, lib: f.binary_cross_entropy(lib.tensor([0.5, 0.5]), lib.tensor([[1.0, 0.0]])), ValueError,
         "Using a target size"),
        (lambda f, lib: f.binary_cross_entropy_with_logits(lib.tensor([0.5, 0.5]), lib.tensor([1.0])), ValueError,
         r"Target size \((distml|torch)\.Size\(\[1\]\)\) must be the same as input size"),
        (lambda f, lib: f.mse_loss(lib.tensor([1.0]), lib.tensor([1.0]), reduction="avg"), ValueError,
         "avg is not a valid value for reduction"),
        (lambda f, lib: f.binary_cross_entropy(lib.tensor([1.5]), lib.tensor([1.0])), RuntimeError,
         "all elements of input should be between 0 and 1"),
    ]
    for call, error, message in cases:
        for f, lib in ((F, distml), (TF, torch)):
            with pytest.raises(error, match=message):
                call(f, lib)



def signs(rng, shape):
    return rng.choice([-1.0, 1.0], shape)


TOLERANCES = {np.float64: dict(rtol=1e-7, atol=1e-10), np.float32: dict(rtol=2e-5, atol=1e-6)}

MARGIN_CASES = [
    ("MarginRankingLoss", lambda r: [r.standard_normal(6), r.standard_normal(6), signs(r, 6)], (0, 1, 2), {}),
    ("MarginRankingLoss", lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 4)), signs(r, (3, 4))], (0, 1, 2),
     {"margin": 0.5}),
    ("HingeEmbeddingLoss", lambda r: [r.standard_normal((4, 5)) * 2, signs(r, (4, 5))], (0,), {}),
    ("HingeEmbeddingLoss", lambda r: [r.standard_normal(7), signs(r, 7)], (0,), {"margin": 0.3}),
    ("SoftMarginLoss", lambda r: [r.standard_normal((4, 5)) * 3, signs(r, (4, 5))], (0,), {}),
    ("MultiLabelSoftMarginLoss", lambda r: [r.standard_normal((4, 5)) * 3, r.integers(0, 2, (4, 5)) * 1.0], (0, 1),
     {}),
    ("MultiLabelSoftMarginLoss", lambda r: [r.standard_normal((4, 5)), r.random((4, 5))], (0, 1),
     {"weight": np.linspace(0.2, 2.0, 5)}),
    ("MultiLabelSoftMarginLoss", lambda r: [r.standard_normal(5), r.integers(0, 2, 5) * 1.0], (0, 1), {}),
    ("CosineEmbeddingLoss", lambda r: [r.standard_normal((5, 4)), r.standard_normal((5, 4)), signs(r, 5)], (0, 1),
     {}),
    ("CosineEmbeddingLoss", lambda r: [r.standard_normal((6, 3)), r.standard_normal((6, 3)), signs(r, 6)], (0, 1),
     {"margin": -0.2}),
    ("CosineEmbeddingLoss", lambda r: [r.standard_normal(4), r.standard_normal(4), np.array(-1.0)], (0, 1),
     {"margin": -0.5}),
    ("MultiMarginLoss", lambda r: [r.standard_normal((5, 4)), r.integers(0, 4, 5)], (0,), {}),
    ("MultiMarginLoss", lambda r: [r.standard_normal((5, 4)), r.integers(0, 4, 5)], (0,),
     {"p": 2, "margin": 0.7, "weight": np.linspace(0.5, 2.0, 4)}),
    ("MultiMarginLoss", lambda r: [r.standard_normal(4), np.array(2)], (0,), {"margin": 2.0}),
    ("MultiMarginLoss", lambda r: [r.standard_normal(4), np.array([1])], (0,), {"p": 2}),
    ("MultiLabelMarginLoss", lambda r: [r.standard_normal((4, 5)),
                                        np.array([[3, 0, -1, 1, 4], [1, 1, 2, -1, -1], [-1, 2, 3, 4, 0],
                                                  [4, 3, 2, 1, 0]])], (0,), {}),
    ("MultiLabelMarginLoss", lambda r: [r.standard_normal(4), np.array([2, 0, -1, 3])], (0,), {}),
    ("TripletMarginLoss", lambda r: [r.standard_normal((5, 4)) for _ in range(3)], (0, 1, 2), {}),
    ("TripletMarginLoss", lambda r: [r.standard_normal((5, 4)) for _ in range(3)], (0, 1, 2),
     {"margin": 0.5, "p": 1.0, "swap": True}),
    ("TripletMarginLoss", lambda r: [r.standard_normal((6, 3)) for _ in range(3)], (0, 1, 2),
     {"margin": 3.0, "p": 3.0, "eps": 1e-3, "swap": True}),
    ("TripletMarginLoss", lambda r: [r.standard_normal(4) for _ in range(3)], (0, 1, 2), {"margin": 4.0}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,make,grads,options", MARGIN_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_margin_losses(rng, name, make, grads, options, reduction, dtype):
    inputs = make(rng)
    options = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    compare(name, inputs, grads=grads, dtype=dtype, module_kwargs=dict(options, reduction=reduction),
            **TOLERANCES[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("distance", ["default", "cosine", "l1"])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_with_distance(rng, distance, swap, reduction):
    functions = {
        "default": (None, None),
        "cosine": (lambda a, b: 1 - nn.functional.cosine_similarity(a, b),
                   lambda a, b: 1 - torch.nn.functional.cosine_similarity(a, b)),
        "l1": (nn.PairwiseDistance(p=1), torch.nn.PairwiseDistance(p=1)),
    }[distance]
    inputs = [rng.standard_normal((5, 4)) for _ in range(3)]
    d_in = [distml.tensor(x, requires_grad=True) for x in inputs]
    t_in = [torch.tensor(x, requires_grad=True) for x in inputs]
    d_out = nn.TripletMarginWithDistanceLoss(distance_function=functions[0], margin=0.8, swap=swap,
                                             reduction=reduction)(*d_in)
    t_out = torch.nn.TripletMarginWithDistanceLoss(distance_function=functions[1], margin=0.8, swap=swap,
                                                   reduction=reduction)(*t_in)
    np.testing.assert_allclose(d_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-10)
    d_out.sum().backward()
    t_out.sum().backward()
    for d, t in zip(d_in, t_in):
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-12)
    d_f = nn.functional.triplet_margin_with_distance_loss(*d_in, distance_function=functions[0], swap=swap)
    t_f = torch.nn.functional.triplet_margin_with_distance_loss(*t_in, distance_function=functions[1], swap=swap)
    np.testing.assert_allclose(d_f.item(), t_f.item(), rtol=1e-10)


def test_nll_loss2d_is_a_deprecated_nll_loss(rng):
    with pytest.warns(FutureWarning, match="`NLLLoss2d` has been deprecated"):
        loss = nn.NLLLoss2d(ignore_index=1)
    assert isinstance(loss, nn.NLLLoss)
    x, target = np.log(rng.random((2, 3, 4, 5))), rng.integers(0, 3, (2, 4, 5))
    expected = torch.nn.functional.nll_loss(torch.tensor(x), torch.tensor(target), ignore_index=1)
    np.testing.assert_allclose(loss(distml.tensor(x), distml.tensor(target)).item(), expected.item(), rtol=1e-12)


def test_margin_loss_reprs():
    cases = [("MarginRankingLoss", {"margin": 0.5}), ("HingeEmbeddingLoss", {}), ("SoftMarginLoss", {}),
             ("MultiLabelSoftMarginLoss", {}), ("CosineEmbeddingLoss", {}), ("MultiMarginLoss", {"p": 2}),
             ("MultiLabelMarginLoss", {}), ("TripletMarginLoss", {"swap": True}),
             ("TripletMarginWithDistanceLoss", {}), ("CTCLoss", {"blank": 3})]
    for name, kwargs in cases:
        assert repr(getattr(nn, name)(**kwargs)) == repr(getattr(torch.nn, name)(**kwargs))
    weighted = nn.MultiMarginLoss(weight=distml.ones(3))
    assert list(weighted.state_dict()) == list(torch.nn.MultiMarginLoss(weight=torch.ones(3)).state_dict())


def test_margin_loss_errors():
    F, TF = nn.functional, torch.nn.functional
    cases = [
        (lambda f, lib: f.margin_ranking_loss(lib.zeros(3), lib.zeros(3, 1), lib.ones(3)), RuntimeError,
         "margin_ranking_loss : All input tensors should have same dimension but got sizes: input1: "
         r"(distml|torch)\.Size\(\[3\]\), input2"),
        (lambda f, lib: f.cosine_embedding_loss(lib.zeros(3, 4), lib.zeros(3, 4), lib.ones(3, 1)), RuntimeError,
         "0D or 1D target tensor expected, multi-target not supported"),
        (lambda f, lib: f.cosine_embedding_loss(lib.zeros(3, 4), lib.zeros(4), lib.ones(3)), RuntimeError,
         r"1D target tensor expects 2D input tensors, but found inputs with sizes \[3, 4\] and \[4\]\."),
        (lambda f, lib: f.cosine_embedding_loss(lib.zeros(3, 4), lib.zeros(3, 4), lib.tensor(1.0)), RuntimeError,
         r"0D target tensor expects 1D input tensors, but found inputs with sizes \[3, 4\] and \[3, 4\]\."),
        (lambda f, lib: f.triplet_margin_loss(lib.zeros(3, 2), lib.zeros(3, 2), lib.zeros(2)), RuntimeError,
         "anchor 2D, positive 2D, and negative 1D inputs"),
        (lambda f, lib: f.triplet_margin_loss(lib.zeros(3, 2), lib.zeros(3, 2), lib.zeros(3, 2), margin=0),
         ValueError, "margin must be greater than 0, got 0"),
        (lambda f, lib: f.triplet_margin_with_distance_loss(lib.zeros(2), lib.zeros(2), lib.zeros(2), margin=-1),
         ValueError, "margin must be greater than 0, got -1"),
        (lambda f, lib: f.triplet_margin_with_distance_loss(lib.zeros(2), lib.zeros(2), lib.zeros(1, 2)),
         RuntimeError, "anchor 1D, positive 1D, and negative 2D inputs"),
        (lambda f, lib: f.triplet_margin_with_distance_loss(lib.zeros(2), lib.zeros(2), lib.zeros(2),
                                                            reduction="avg"), ValueError,
         "avg is not a valid value for reduction"),
        (lambda f, lib: f.multilabel_soft_margin_loss(lib.zeros(2), lib.zeros(2), reduction="avg"), ValueError,
         "avg is not valid"),
        (lambda f, lib: f.soft_margin_loss(lib.zeros(2), lib.zeros(2), reduction="avg"), ValueError,
         "avg is not a valid value for reduction"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(2, 3), lib.tensor([0, 1]), p=3), ValueError,
         "only p == 1 and p == 2 supported"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(2, 3), lib.tensor([0, 1]), weight=lib.ones(3, 1)), ValueError,
         "weight must be one-dimensional"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(2, 3), lib.tensor([0, 1]), weight=lib.ones(2)), RuntimeError,
         r"inconsistent weight size, expected 3 but got \[2\]"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(2, 3), lib.tensor([0, 3])), RuntimeError, "target out of range"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(3, 4), lib.tensor([0, 1])), RuntimeError,
         r"Expected target size \[3\], but got \[2\]\. Input has shape \[3, 4\]\."),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(3, 0), lib.tensor([0, 1, 2])), RuntimeError,
         r"Expected non-empty vector or matrix with optional 0-dim batch size, but got: \[3, 0\]"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(2, 3, 4), lib.tensor([0, 1])), RuntimeError,
         r"Expected non-empty vector or matrix with optional 0-dim batch size, but got: \[2, 3, 4\]"),
        (lambda f, lib: f.multi_margin_loss(lib.zeros(2, 3), lib.tensor([0.0, 1.0])), RuntimeError,
         "expected scalar type Long but found Float"),
        (lambda f, lib: f.multilabel_margin_loss(lib.zeros(2, 4), lib.tensor([0, 1])), RuntimeError,
         r"inconsistent target size: \[2\] for input of size: \[2, 4\]"),
        (lambda f, lib: f.multilabel_margin_loss(lib.zeros(2, 4), lib.tensor([[0, -1, 7, 0], [1, -1, 0, 0]])),
         RuntimeError, "argument #2 'target' is out of range"),
        (lambda f, lib: f.multilabel_margin_loss(lib.zeros(4), lib.tensor([0, -2, 1, 0])), RuntimeError,
         "argument #2 'target' is out of range"),
        (lambda f, lib: lib.nn.MultiMarginLoss(p=0), ValueError, "only p == 1 and p == 2 supported"),
        (lambda f, lib: lib.nn.MultiMarginLoss(weight=lib.ones(2, 2)), ValueError,
         "MultiMarginLoss: expected weight to be None or 1D tensor, got 2D instead"),
        (lambda f, lib: lib.nn.TripletMarginLoss(margin=0), ValueError,
         "TripletMarginLoss: expected margin to be greater than 0, got 0 instead"),
        (lambda f, lib: lib.nn.TripletMarginWithDistanceLoss(margin=-1.0), ValueError,
         "TripletMarginWithDistanceLoss: expected margin to be greater than 0, got -1.0 instead"),
    ]
    for call, error, message in cases:
        for f, lib in ((F, distml), (TF, torch)):
            with pytest.raises(error, match=message):
                call(f, lib)


def ctc_case(rng, T=9, N=4, C=6, S=4, blank=0):
    """log_probs from log_softmax, targets (N, S) without the blank (one repeated label, so the
    recursion's skip rule is exercised), lengths with a short input and an empty target."""
    logits = rng.standard_normal((T, N, C)) * 2
    labels = [c for c in range(C) if c != blank]
    targets = rng.choice(labels, (N, S))
    targets[0, 1] = targets[0, 0]
    input_lengths = np.array([T, T - 1, T - 3, 2][:N])
    target_lengths = np.array([S, S - 1, 0, 1][:N])
    return logits, targets, input_lengths, target_lengths


def ctc_both(logits, targets, input_lengths, target_lengths, dtype=np.float64, through_log_softmax=False, **kwargs):
    """distml's and torch's ctc_loss on the same inputs, with log_probs' (or the logits') gradients."""
    results = []
    for lib, F in ((distml, nn.functional), (torch, torch.nn.functional)):
        x = lib.tensor(logits.astype(dtype), requires_grad=True)
        log_probs = x.log_softmax(-1) if through_log_softmax else x
        loss = F.ctc_loss(log_probs, lib.tensor(targets), *(lib.tensor(v) if isinstance(v, np.ndarray) else v
                                                             for v in (input_lengths, target_lengths)), **kwargs)
        upstream = np.random.default_rng(5).standard_normal(tuple(loss.shape)).astype(dtype)
        loss.backward(lib.tensor(upstream))
        results.append((loss.detach().numpy(), x.grad.numpy()))
    return results


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["padded", "concatenated", "int32", "lists", "unbatched"])
def test_ctc_loss(rng, layout, reduction, dtype):
    logits, targets, input_lengths, target_lengths = ctc_case(rng)
    lp = torch.tensor(logits).log_softmax(-1).numpy()
    if layout == "concatenated":
        targets = np.concatenate([row[:n] for row, n in zip(targets, target_lengths)])
    elif layout == "int32":
        targets = targets.astype(np.int32)
    elif layout == "lists":
        input_lengths, target_lengths = tuple(input_lengths.tolist()), list(target_lengths.tolist())
    elif layout == "unbatched":
        lp, targets, input_lengths, target_lengths = lp[:, 0], targets[0], input_lengths[:1], target_lengths[:1]
    (d_loss, d_grad), (t_loss, t_grad) = ctc_both(lp, targets, input_lengths, target_lengths, dtype,
                                                  reduction=reduction)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(d_loss, t_loss, **tol)
    np.testing.assert_allclose(d_grad, t_grad, **tol)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_blank_and_impossible_alignments(rng, zero_infinity):
    logits, targets, input_lengths, target_lengths = ctc_case(rng, T=6, C=5, S=3, blank=2)
    input_lengths[0] = 2  # two steps cannot emit a target of three labels: infinite loss
    (d_loss, d_grad), (t_loss, t_grad) = ctc_both(logits, targets, input_lengths, target_lengths, blank=2,
                                                  reduction="none", zero_infinity=zero_infinity,
                                                  through_log_softmax=True)
    np.testing.assert_allclose(d_loss, t_loss, rtol=1e-9)
    assert np.isinf(d_loss[0]) != zero_infinity
    if zero_infinity:
        np.testing.assert_allclose(d_grad, t_grad, rtol=1e-9, atol=1e-12)


def test_ctc_loss_module_and_empty_input(rng):
    logits, targets, input_lengths, target_lengths = ctc_case(rng)
    input_lengths[2] = 0  # nothing to emit an empty target from: loss 0
    lp = torch.tensor(logits).log_softmax(-1).numpy()
    d = nn.CTCLoss(reduction="sum")(distml.tensor(lp), distml.tensor(targets), distml.tensor(input_lengths),
                                    distml.tensor(target_lengths))
    t = torch.nn.CTCLoss(reduction="sum")(torch.tensor(lp), torch.tensor(targets), torch.tensor(input_lengths),
                                          torch.tensor(target_lengths))
    np.testing.assert_allclose(d.item(), t.item(), rtol=1e-10)


def test_ctc_loss_errors():
    lp = np.log(np.full((6, 3, 5), 0.2))
    targets = np.ones((3, 3), dtype=np.int64)
    cases = [
        (dict(input_lengths=[6, 5, 7]), "Expected input_lengths to have value at most 6, but got value 7"),
        (dict(input_lengths=[6, 5, -1]), "Expected input_lengths to have value at least 0, but got value -1"),
        (dict(target_lengths=[3, 2, 4]), "Expected tensor to have size at least 4 at dimension 1, but got size 3 for "
                                         "argument #2 'targets'"),
        (dict(target_lengths=[3, 2, -1]), "Expected target_lengths to have value at least 0, but got value -1"),
        (dict(input_lengths=[6, 5]), "input_lengths must be of size batch_size"),
        (dict(target_lengths=[3, 2]), "target_lengths must be of size batch_size"),
        (dict(targets=targets[:2]), "Expected tensor to have size 3 at dimension 0, but got size 2"),
        (dict(targets=targets.reshape(-1)[:5]), "Expected tensor to have size 6 at dimension 0, but got size 5"),
        (dict(blank=5), "blank must be in label range"),
    ]
    for change, message in cases:
        args = dict(targets=targets, input_lengths=[6, 5, 4], target_lengths=[3, 2, 1], blank=0)
        args.update(change)
        for lib in (distml, torch):
            with pytest.raises(RuntimeError, match=message):
                lib.nn.functional.ctc_loss(lib.tensor(lp), lib.tensor(args["targets"]), args["input_lengths"],
                                           args["target_lengths"], blank=args["blank"])
    for lib in (distml, torch):
        with pytest.raises(NotImplementedError, match="\"ctc_loss_cpu\" not implemented for 'Long'"):
            lib.nn.functional.ctc_loss(lib.zeros(6, 3, 5, dtype=lib.int64), lib.tensor(targets), [6, 5, 4], [3, 2, 1])


@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ctc_kernel_matches_its_array_twin(rng, dtype, zero_infinity):
    """The `_C` kernels (CPU) and the array version (every other device) agree."""
    from distml.ops import loss as ops_loss
    logits, targets, input_lengths, target_lengths = ctc_case(rng, T=7, N=4, C=5, S=3, blank=1)
    input_lengths[0] = 2  # impossible: infinite loss
    log_probs = torch.tensor(logits.astype(dtype)).log_softmax(-1).numpy()
    args = (log_probs, targets, input_lengths, target_lengths, 1)
    grad = rng.standard_normal(4).astype(dtype)
    nll_c, alpha_c = ops_loss._ctc_forward_c(*args)
    nll_xp, saved_xp = ops_loss.ctc_forward_xp(*args)
    np.testing.assert_allclose(nll_c, nll_xp, rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert nll_c.dtype == nll_xp.dtype == dtype and np.isinf(nll_c[0])
    grad_c = ops_loss._ctc_backward_c(grad, *args, nll_c, alpha_c, zero_infinity)
    grad_xp = ops_loss.ctc_backward_xp(grad, *args, nll_xp, saved_xp, zero_infinity)
    kept = slice(None) if zero_infinity else slice(1, None)  # an infinite loss's gradient is nan unless zeroed
    np.testing.assert_allclose(grad_c[:, kept], grad_xp[:, kept], rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-6 if dtype == np.float32 else 1e-12)


def output_field(lib_nn, module):
    """A module returning module(x, target).output, through which `same` checks the gradients."""
    class Output(lib_nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, x, target):
            return self.module(x, target).output
    return Output()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("head_bias,unbatched", [(False, False), (True, False), (False, True)])
def test_adaptive_log_softmax_with_loss(same, rng, head_bias, unbatched, dtype):
    dm = nn.AdaptiveLogSoftmaxWithLoss(16, 12, [4, 8], div_value=2.0, head_bias=head_bias)
    tm = torch.nn.AdaptiveLogSoftmaxWithLoss(16, 12, [4, 8], div_value=2.0, head_bias=head_bias)
    assert repr(dm) == repr(tm) and list(dm.state_dict()) == list(tm.state_dict())
    x = rng.standard_normal(16 if unbatched else (7, 16))
    target = np.array(9) if unbatched else np.array([0, 5, 11, 3, 8, 6, 2])

    d_wrapped, t_wrapped = output_field(nn, dm), output_field(torch.nn, tm)
    same(d_wrapped, t_wrapped, [x, target], dtype)
    tol = dict(rtol=1e-9) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    d_x, t_x = distml.tensor(x.astype(dtype)), torch.tensor(x.astype(dtype))
    np.testing.assert_allclose(dm(d_x, distml.tensor(target)).loss.item(), tm(t_x, torch.tensor(target)).loss.item(),
                               **tol)
    if not unbatched:
        np.testing.assert_allclose(dm.log_prob(d_x).detach().numpy(), tm.log_prob(t_x).detach().numpy(), **tol)
        np.testing.assert_array_equal(dm.predict(d_x).numpy(), tm.predict(t_x).numpy())


def test_adaptive_log_softmax_errors():
    for lib in (distml, torch):
        with pytest.raises(ValueError, match="cutoffs should be a sequence of length larger than 0"):
            lib.nn.AdaptiveLogSoftmaxWithLoss(4, 10, [])
        with pytest.raises(ValueError, match="cutoffs should be a sequence of unique, positive integers"):
            lib.nn.AdaptiveLogSoftmaxWithLoss(4, 10, [5, 3])
        m = lib.nn.AdaptiveLogSoftmaxWithLoss(4, 10, [3])
        with pytest.raises(RuntimeError, match=r"Target values should be in \[0, 9\], but values in range \[0, 10\]"):
            m(lib.zeros(2, 4), lib.tensor([0, 10]))
        with pytest.raises(RuntimeError, match="Input and target should have the same size in the batch dimension"):
            m(lib.zeros(2, 4), lib.tensor([0, 1, 2]))
        with pytest.raises(RuntimeError, match="0D target tensor expects 1D input tensors"):
            m(lib.zeros(2, 4), lib.tensor(1))
        with pytest.raises(RuntimeError, match="0D or 1D target tensor expected, multi-target not supported"):
            m(lib.zeros(2, 4), lib.zeros(2, 1, dtype=lib.int64))
