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


# ---- TransformerEncoder, TransformerDecoderLayer, TransformerDecoder, Transformer ----

def causal(lib, size, dtype=None):
    return lib.nn.Transformer.generate_square_subsequent_mask(size, dtype=dtype)


def padding_mask(lengths, size):
    return np.arange(size)[None, :] >= np.array(lengths)[:, None]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", ["none", "causal-float", "bool-and-padding", "float-padding"])
def test_transformer_encoder_matches_torch(rng, batch_first, masks):
    shape = (3, 5, 8) if batch_first else (5, 3, 8)
    mask_arrays = {"none": [None, None], "causal-float": [np.triu(np.full((5, 5), -np.inf), 1), None],
                   "bool-and-padding": [~bool_mask(rng, (5, 5)), padding_mask([5, 3, 4], 5)],
                   "float-padding": [None, np.where(padding_mask([5, 2, 4], 5), -np.inf, 0.0)]}[masks]

    def call(module, src, mask, padding):
        return module(src, mask=mask, src_key_padding_mask=padding)

    for lib_norm in (None, "norm"):
        def make(lib):
            layer = lib.nn.TransformerEncoderLayer(8, 2, 16, batch_first=batch_first)
            return lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(8) if lib_norm else None,
                                             enable_nested_tensor=False)
        compare(call, [rng.standard_normal(shape)], mask_arrays, make(distml), make(torch))


def test_transformer_encoder_is_causal_hint(rng):
    def call(module, src):
        return module(src, mask=causal(distml if module.__module__.startswith("distml") else torch, 4, src.dtype),
                      is_causal=True)
    make = lambda lib: lib.nn.TransformerEncoder(lib.nn.TransformerEncoderLayer(8, 2, 16), 2)  # noqa: E731
    with pytest.warns(UserWarning):
        pair = make(distml), make(torch)
    compare(call, [rng.standard_normal((4, 2, 8))], [], *pair)


def eval_without_grad(make, src, padding):
    """distml's and torch's outputs in eval mode under no_grad (torch's fast and nested-tensor paths)."""
    outputs = []
    tm = make(torch).double().eval()
    dm = make(distml).double().eval()
    dm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    for lib, module in ((distml, dm), (torch, tm)):
        with lib.no_grad():
            outputs.append(module(lib.tensor(src), src_key_padding_mask=lib.tensor(padding)).numpy())
    return outputs


@pytest.mark.parametrize("nested", [True, False])
@pytest.mark.parametrize("mask_check, padding", [(True, [[False] * 5, [False] * 3 + [True] * 2]),
                                                 (True, [[False] * 5, [True, False, False, True, False]]),
                                                 (False, [[False] * 5, [True, False, False, True, False]])],
                         ids=["left-aligned", "not-left-aligned", "not-left-aligned-unchecked"])
def test_transformer_encoder_nested_tensor_path_like_torch(rng, nested, mask_check, padding):
    """With enable_nested_tensor, eval and no grad, PyTorch zeroes the padded positions (before norm)."""
    def make(lib):
        layer = lib.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
        return lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(8), enable_nested_tensor=nested,
                                         mask_check=mask_check)
    src = rng.standard_normal((2, 5, 8))
    ours, theirs = eval_without_grad(make, src, np.array(padding))
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9)


def test_transformer_encoder_structure_and_warnings():
    with pytest.warns(UserWarning) as ours:
        d = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 3)
    with pytest.warns(UserWarning) as theirs:
        t = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 3)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert list(d.state_dict()) == list(t.state_dict()) and d.use_nested_tensor is t.use_nested_tensor is False
    assert d.layers[0].self_attn.in_proj_weight is not d.layers[1].self_attn.in_proj_weight
    for case in (dict(norm_first=True), dict(activation=torch.tanh), dict(bias=False)):
        with pytest.warns(UserWarning) as theirs:
            torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, **case), 1)
        case = {k: (distml.tanh if v is torch.tanh else v) for k, v in case.items()}
        with pytest.warns(UserWarning) as ours:
            nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, **case), 1)
        assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    layer = nn.TransformerEncoderLayer(8, 4, 16, batch_first=True, activation=nn.GELU())
    assert layer.activation_relu_or_gelu == 2 and nn.TransformerEncoder(layer, 1).use_nested_tensor
    with pytest.raises(AssertionError, match="only bool and floating types of src_key_padding_mask are supported"):
        d(distml.zeros(5, 3, 8), src_key_padding_mask=distml.zeros(3, 5, dtype=distml.int64))


DECODER_CASES = {
    "post-norm": dict(),
    "pre-norm-gelu-batch_first": dict(norm_first=True, activation="gelu", batch_first=True),
    "masks": dict(masks=True),
    "pre-norm-masks-no-bias-batch_first": dict(norm_first=True, masks=True, bias=False, batch_first=True),
}


def decoder_inputs(rng, case):
    case = dict(case)
    masks = case.pop("masks", False)
    tgt, memory = ((3, 4, 8), (3, 6, 8)) if case.get("batch_first") else ((4, 3, 8), (6, 3, 8))
    mask_arrays = [None] * 4
    if masks:
        mask_arrays = [np.triu(np.full((4, 4), -np.inf), 1), ~bool_mask(rng, (4, 6)), padding_mask([4, 2, 3], 4),
                       padding_mask([6, 5, 2], 6)]
    return case, [rng.standard_normal(tgt), rng.standard_normal(memory)], mask_arrays


def decoder_call(module, tgt, memory, tgt_mask, memory_mask, tgt_padding, memory_padding):
    return module(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_padding,
                  memory_key_padding_mask=memory_padding)


@pytest.mark.parametrize("case", DECODER_CASES.values(), ids=DECODER_CASES.keys())
def test_transformer_decoder_layer_and_decoder_match_torch(rng, case):
    config, arrays, masks = decoder_inputs(rng, case)
    compare(decoder_call, arrays, masks, nn.TransformerDecoderLayer(8, 2, 16, **config),
            torch.nn.TransformerDecoderLayer(8, 2, 16, **config))

    def make(lib):
        return lib.nn.TransformerDecoder(lib.nn.TransformerDecoderLayer(8, 2, 16, **config), 2, lib.nn.LayerNorm(8))
    compare(decoder_call, arrays, masks, make(distml), make(torch))


def test_transformer_decoder_unbatched_and_structure(rng):
    arrays = [rng.standard_normal((4, 8)), rng.standard_normal((6, 8))]
    masks = [np.triu(np.ones((4, 4), bool), 1), None, None, padding_mask([5], 6)[0]]
    compare(decoder_call, arrays, masks, nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2),
            torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16), 2))
    ours, theirs = nn.TransformerDecoderLayer(8, 2, 16), torch.nn.TransformerDecoderLayer(8, 2, 16)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerDecoderLayer(8, 2, activation="tanh")


TRANSFORMER_CASES = {"default": dict(), "batch_first-norm_first-gelu": dict(batch_first=True, norm_first=True,
                                                                             activation="gelu")}


@pytest.mark.parametrize("case", TRANSFORMER_CASES.values(), ids=TRANSFORMER_CASES.keys())
def test_transformer_matches_torch(rng, case):
    src, tgt = ((3, 6, 8), (3, 4, 8)) if case.get("batch_first") else ((6, 3, 8), (4, 3, 8))
    arrays = [rng.standard_normal(src), rng.standard_normal(tgt)]
    masks = [None, np.triu(np.full((4, 4), -np.inf), 1), None, padding_mask([6, 4, 5], 6), None,
             padding_mask([6, 4, 5], 6)]

    def call(module, src, tgt, src_mask, tgt_mask, memory_mask, src_padding, tgt_padding, memory_padding):
        return module(src, tgt, src_mask=src_mask, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      src_key_padding_mask=src_padding, tgt_key_padding_mask=tgt_padding,
                      memory_key_padding_mask=memory_padding)

    def make(lib):
        return lib.nn.Transformer(8, 2, 2, 1, 16, **case)
    with pytest.warns(UserWarning, match="enable_nested_tensor is True"):
        pair = make(distml), make(torch)
    compare(call, arrays, masks, *pair)


def test_transformer_structure_init_mask_and_errors():
    with pytest.warns(UserWarning):
        ours, theirs = nn.Transformer(8, 2, 2, 2, 16), torch.nn.Transformer(8, 2, 2, 2, 16)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    bound = np.sqrt(6 / (16 + 8))  # xavier_uniform_ of linear1.weight (16, 8)
    weight = ours.encoder.layers[0].linear1.weight.detach().numpy()
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.8 * bound
    for dtype in (None, "float64", "bool"):
        d = causal(distml, 4, None if dtype is None else getattr(distml, dtype))
        t = causal(torch, 4, None if dtype is None else getattr(torch, dtype))
        assert d.dtype.name == str(t.dtype).replace("torch.", "")
        np.testing.assert_array_equal(d.numpy(), t.numpy())
    for lib, model in ((distml, ours), (torch, theirs)):
        for src, tgt, message in ((lib.zeros(5, 2, 8), lib.zeros(4, 3, 8), "the batch number of src and tgt"),
                                  (lib.zeros(5, 2, 8), lib.zeros(4, 2, 6), "the feature number of src and tgt")):
            with pytest.raises(RuntimeError, match=message):
                model(src, tgt)
    custom = nn.Transformer(8, 2, custom_encoder=nn.Identity(), custom_decoder=nn.Identity())
    assert isinstance(custom.encoder, nn.Identity) and list(custom.state_dict()) == []
