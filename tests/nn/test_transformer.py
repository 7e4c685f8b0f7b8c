"""scaled_dot_product_attention, MultiheadAttention and TransformerEncoderLayer against torch with the
same weights (through state_dict): outputs, attention weights and all gradients, in eval mode."""
import numpy as np
import pytest
import torch

import distml
from distml import nn
from distml.nn import functional as F


def as_list(outputs):
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return [o for o in outputs if o is not None]


def compare(call, arrays, masks=(), dm=None, tm=None, dtype=np.float64, rtol=1e-9, atol=1e-11):
    """Run `call(module_or_None, *inputs, *masks)` in distml and torch (torch's weights loaded into dm),
    backprop random upstream gradients through every output, compare outputs and all gradients."""
    if tm is not None:
        tm = tm.to(torch.float64 if dtype == np.float64 else torch.float32).eval()
        dm.to(distml.float64 if dtype == np.float64 else distml.float32).eval()
        dm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ours = [distml.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    d_masks = [None if m is None else distml.tensor(m.astype(dtype) if m.dtype.kind == "f" else m) for m in masks]
    t_masks = [None if m is None else torch.tensor(m.astype(dtype) if m.dtype.kind == "f" else m) for m in masks]
    d_out, t_out = as_list(call(dm, *ours, *d_masks)), as_list(call(tm, *theirs, *t_masks))
    assert len(d_out) == len(t_out)
    rng = np.random.default_rng(1)
    upstream = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in t_out]
    sum((d * distml.tensor(u)).sum() for d, u in zip(d_out, upstream)).backward()
    sum((t * torch.from_numpy(u)).sum() for t, u in zip(t_out, upstream)).backward()
    for d, t in zip(d_out, t_out):
        assert tuple(d.shape) == tuple(t.shape)
        np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
    for d, t in zip(ours, theirs):
        if t.grad is None:
            assert d.grad is None or not np.any(d.grad.numpy())
        else:
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol)
    if tm is not None:
        t_params = dict(tm.named_parameters())
        assert [n for n, _ in dm.named_parameters()] == list(t_params)
        for name, p in dm.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=name)


def bool_mask(rng, shape):
    """A random mask that leaves at least one True (attended) key per query row."""
    mask = rng.random(shape) < 0.6
    mask[..., 0] = True
    return mask


# ---- scaled_dot_product_attention ----

@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal", "scale"])
def test_sdpa_matches_torch(rng, mask_kind):
    q, k, v = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 6, 4))
    masks, options = [None], {}
    if mask_kind == "bool":
        masks = [bool_mask(rng, (5, 6))]
    elif mask_kind == "float":
        masks = [rng.standard_normal((2, 3, 5, 6))]
    elif mask_kind == "causal":
        k, v = k[:, :, :5], v[:, :, :5]
        options = dict(is_causal=True)
    elif mask_kind == "scale":
        options = dict(scale=0.3)

    def call(_, q, k, v, mask):
        module = F if isinstance(q, distml.Tensor) else torch.nn.functional
        return module.scaled_dot_product_attention(q, k, v, attn_mask=mask, **options)

    compare(call, [q, k, v], masks)


def test_sdpa_dropout_and_errors(rng):
    q = distml.tensor(rng.standard_normal((2, 5, 4)))
    distml.manual_seed(0)
    dropped = F.scaled_dot_product_attention(q, q, q, dropout_p=0.5)
    assert not np.allclose(dropped.array, F.scaled_dot_product_attention(q, q, q).array)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=distml.zeros(5, 5, dtype=distml.float64), is_causal=True)


# ---- MultiheadAttention ----

MHA_CASES = {
    "self": dict(),
    "self-batch_first": dict(batch_first=True),
    "cross": dict(cross=True),
    "cross-batch_first-no-bias": dict(cross=True, batch_first=True, bias=False),
    "bool-attn_mask": dict(attn_mask="bool2d"),
    "float-3d-attn_mask": dict(attn_mask="float3d", cross=True),
    "key_padding_mask": dict(key_padding_mask="bool", batch_first=True),
    "both-masks-float": dict(attn_mask="float2d", key_padding_mask="float"),
    "per-head-weights": dict(average=False, attn_mask="bool2d"),
    "no-weights": dict(need_weights=False, key_padding_mask="bool"),
    "causal-hint": dict(attn_mask="causal", is_causal=True, need_weights=False),
}


@pytest.mark.parametrize("case", MHA_CASES.values(), ids=MHA_CASES.keys())
def test_multihead_attention_matches_torch(rng, case):
    embed, heads, length, batch = 8, 2, 5, 3
    source = 7 if case.get("cross") else length
    first = (batch, length) if case.get("batch_first") else (length, batch)
    arrays = [rng.standard_normal(first + (embed,))]
    if case.get("cross"):
        other = (batch, source) if case.get("batch_first") else (source, batch)
        arrays += [rng.standard_normal(other + (embed,)), rng.standard_normal(other + (embed,))]
    attn_mask = {None: None, "bool2d": bool_mask(rng, (length, source)),
                 "float2d": rng.standard_normal((length, source)),
                 "float3d": rng.standard_normal((batch * heads, length, source)),
                 "causal": np.triu(np.full((length, source), -np.inf), 1)}[case.get("attn_mask")]
    if case.get("attn_mask") == "bool2d":
        attn_mask = ~attn_mask  # MultiheadAttention's bool masks mark the positions to ignore
    padding = {None: None, "bool": np.arange(source)[None, :] >= np.array([[source], [source - 2], [3]]),
               "float": rng.standard_normal((batch, source))}[case.get("key_padding_mask")]
    options = dict(need_weights=case.get("need_weights", True), average_attn_weights=case.get("average", True),
                   is_causal=case.get("is_causal", False))

    def call(module, *inputs):
        x = inputs[:len(arrays)]
        query, key, value = x if len(x) == 3 else (x[0], x[0], x[0])
        return module(query, key, value, key_padding_mask=inputs[-1], attn_mask=inputs[-2], **options)

    settings = dict(dropout=0.1, bias=case.get("bias", True), batch_first=case.get("batch_first", False))
    compare(call, arrays, [attn_mask, padding], nn.MultiheadAttention(embed, heads, **settings),
            torch.nn.MultiheadAttention(embed, heads, **settings))


def test_multihead_attention_unbatched_and_float32(rng):
    x = rng.standard_normal((5, 8))

    def call(module, x):
        return module(x, x, x)

    compare(call, [x], [], nn.MultiheadAttention(8, 4), torch.nn.MultiheadAttention(8, 4))
    compare(call, [x], [], nn.MultiheadAttention(8, 4), torch.nn.MultiheadAttention(8, 4), dtype=np.float32,
            rtol=1e-4, atol=1e-5)


def test_multihead_attention_parameters_and_errors():
    ours, theirs = nn.MultiheadAttention(8, 2), torch.nn.MultiheadAttention(8, 2)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert not np.any(ours.in_proj_bias.array) and not np.any(ours.out_proj.bias.array)
    x = distml.zeros(3, 2, 8)
    cases = [
        (lambda: nn.MultiheadAttention(6, 4), AssertionError, "embed_dim must be divisible by num_heads"),
        (lambda: ours(x, x, x, attn_mask=distml.zeros(2, 2)), RuntimeError,
         "The shape of the 2D attn_mask is distml.Size([2, 2]), but should be (3, 3)."),
        (lambda: ours(x, x, x, is_causal=True), RuntimeError, "Need attn_mask if specifying the is_causal hint."),
        (lambda: ours(distml.zeros(3, 2, 8, 1), x, x), AssertionError,
         "query should be unbatched 2D or batched 3D tensor but received 4-D query tensor"),
    ]
    for make, error, message in cases:
        with pytest.raises(error) as raised:
            make()
        assert str(raised.value).startswith(message)


# ---- TransformerEncoderLayer ----

ENCODER_CASES = {
    "post-norm-relu": dict(),
    "pre-norm-gelu-batch_first": dict(norm_first=True, activation="gelu", batch_first=True),
    "masks": dict(masks=True),
    "pre-norm-masks-no-bias": dict(norm_first=True, masks=True, bias=False),
}


@pytest.mark.parametrize("case", ENCODER_CASES.values(), ids=ENCODER_CASES.keys())
def test_transformer_encoder_layer_matches_torch(rng, case):
    case = dict(case)
    masks = case.pop("masks", False)
    shape = (3, 5, 8) if case.get("batch_first") else (5, 3, 8)
    mask_arrays = [None, None]
    if masks:
        mask_arrays = [~bool_mask(rng, (5, 5)), np.arange(5)[None, :] >= np.array([[5], [3], [4]])]

    def call(module, src, src_mask, padding):
        return module(src, src_mask=src_mask, src_key_padding_mask=padding)

    compare(call, [rng.standard_normal(shape)], mask_arrays, nn.TransformerEncoderLayer(8, 2, 16, **case),
            torch.nn.TransformerEncoderLayer(8, 2, 16, **case))


def test_transformer_encoder_layer_structure_and_training_dropout(rng):
    ours, theirs = nn.TransformerEncoderLayer(8, 2, 16), torch.nn.TransformerEncoderLayer(8, 2, 16)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    x = distml.tensor(rng.standard_normal((5, 3, 8)).astype(np.float32))
    ours.eval()
    evaluated = ours(x)
    ours.train()
    assert not np.allclose(ours(x).array, evaluated.array)
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
