"""Attention and the Transformer: scaled_dot_product_attention, MultiheadAttention, TransformerEncoderLayer,
TransformerEncoder, TransformerDecoderLayer, TransformerDecoder and Transformer, composed from matmul,
softmax, masked_fill, linear, layer_norm and dropout (no new gradients).

Parameter names and initialisation are PyTorch's (in_proj_weight, in_proj_bias, out_proj.*, linear1,
linear2, norm1, norm2, norm3, self_attn, multihead_attn, layers.N.*, encoder.*, decoder.*), so weights
load through state_dict.
"""
import copy
import math
import warnings


from distml import dtypes, ops
from distml.amp.autocast_mode import autocast_op
from distml.autograd.grad_mode import is_grad_enabled
from distml.creation import arange, empty, full, ones, zeros
from distml.nn import functional as F
from distml.nn import init
from distml.nn.module import Module
from distml.nn.modules.container import ModuleList
from distml.nn.modules.dropout import Dropout
from distml.nn.modules.linear import Linear, NonDynamicallyQuantizableLinear
from distml.nn.modules.normalization import LayerNorm
from distml.nn.parameter import Parameter


@autocast_op(cpu="lower", cuda="lower")
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(query @ key^T * scale + mask) @ value over the last two dims (..., L, E) x (..., S, E).

    `attn_mask`: bool (True = may attend) or float (added to the scores), broadcast to (..., L, S);
    `is_causal`: position i attends to positions <= i. Dropout applies whenever dropout_p > 0.
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    """
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    scores = ops.matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        attn_mask = ones(query.size(-2), key.size(-2), dtype=dtypes.bool, device=query.device).tril()
    if attn_mask is not None:
        if attn_mask.dtype.name == "bool":
            scores = scores.masked_fill(attn_mask.logical_not(), float("-inf"))
        else:
            scores = scores + attn_mask
    weights = ops.softmax(scores, -1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return ops.matmul(weights, value)


def _additive_mask(mask, name, dtype):
    """A mask as scores to add: bool (True = masked out) becomes -inf/0, float passes through."""
    if mask is None:
        return None
    if mask.dtype.name == "bool":
        return zeros(*mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    if not mask.is_floating_point():
        raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask


class MultiheadAttention(Module):
    """Attention over `num_heads` heads of size embed_dim / num_heads with input and output projections:
    `attn = nn.MultiheadAttention(256, 8, batch_first=True)`; `out, weights = attn(x, x, x)`.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        if embed_dim % num_heads != 0:
            raise AssertionError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, device=device, dtype=dtype))
        self.in_proj_bias = Parameter(empty(3 * embed_dim, device=device, dtype=dtype)) if bias else None
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self._reset_parameters()

    def _reset_parameters(self):
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """(L, N, E) inputs (N first with batch_first; or unbatched (L, E)) -> (output, weights or None).

        `key_padding_mask` (N, S) and `attn_mask` (L, S) or (N * num_heads, L, S): bool (True = masked
        out) or float (added). `is_causal` is a hint that attn_mask is causal; the mask is still required.
        """
        if query.dim() not in (2, 3):
            raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.dim()}-D "
                                 "query tensor")
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                               "method `generate_square_subsequent_mask` to create this mask.")
        batched = query.dim() == 3
        self_attention = query is key and key is value
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        length, batch, embed = query.shape
        source = key.size(0)
        heads, head_dim = self.num_heads, self.head_dim
        if embed != self.embed_dim:
            raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, but got {embed}")

        if self_attention:
            q, k, v = ops.chunk(F.linear(query, self.in_proj_weight, self.in_proj_bias), 3, -1)
        else:
            weights = ops.chunk(self.in_proj_weight, 3)
            biases = ops.chunk(self.in_proj_bias, 3) if self.in_proj_bias is not None else (None,) * 3
            q, k, v = (F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))
        # (L, N, E) -> (N * heads, L, head_dim): each head is a batch entry of the products below.
        q = q.reshape(length, batch * heads, head_dim).transpose(0, 1)
        k = k.reshape(source, batch * heads, head_dim).transpose(0, 1)
        v = v.reshape(source, batch * heads, head_dim).transpose(0, 1)

        mask = self._mask(attn_mask, key_padding_mask, batch, length, source, q.dtype)
        scores = ops.matmul(q * (1.0 / math.sqrt(head_dim)), k.transpose(-2, -1))
        if mask is not None:
            scores = scores + mask
        attention = ops.softmax(scores, -1)
        if self.training and self.dropout > 0.0:
            attention = F.dropout(attention, self.dropout, training=True)
        output = ops.matmul(attention, v).transpose(0, 1).reshape(length * batch, embed)
        output = self.out_proj(output).reshape(length, batch, embed)

        if batched and self.batch_first:
            output = output.transpose(0, 1)
        elif not batched:
            output = output.squeeze(1)
        if not need_weights:
            return output, None
        attention = attention.reshape(batch, heads, length, source)
        if average_attn_weights:
            attention = attention.mean(1)
        return output, attention if batched else attention.squeeze(0)

    def _mask(self, attn_mask, key_padding_mask, batch, length, source, dtype):
        """attn_mask and key_padding_mask merged into one additive mask for the (N * heads, L, S) scores."""
        mask = _additive_mask(attn_mask, "attn_mask", dtype)
        if mask is not None:
            if mask.dim() == 2 and tuple(mask.shape) != (length, source):
                raise RuntimeError(f"The shape of the 2D attn_mask is {mask.shape}, but should be "
                                   f"{(length, source)}.")
            if mask.dim() == 3 and tuple(mask.shape) != (batch * self.num_heads, length, source):
                raise RuntimeError(f"The shape of the 3D attn_mask is {mask.shape}, but should be "
                                   f"{(batch * self.num_heads, length, source)}.")
            if mask.dim() not in (2, 3):
                raise RuntimeError(f"attn_mask's dimension {mask.dim()} is not supported")
        padding = _additive_mask(key_padding_mask, "key_padding_mask", dtype)
        if padding is not None:
            if tuple(padding.shape) != (batch, source):
                raise AssertionError(f"expecting key_padding_mask shape of {(batch, source)}, but got "
                                     f"{tuple(padding.shape)}")
            padding = padding.reshape(batch, 1, 1, source).expand(batch, self.num_heads, 1, source)
            padding = padding.reshape(batch * self.num_heads, 1, source)
            mask = padding if mask is None else mask + padding
        return mask


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with dropout, a residual connection and LayerNorm
    (after the block, or before it with norm_first=True):
    `layer = nn.TransformerEncoderLayer(d_model=256, nhead=8, dim_feedforward=1024, batch_first=True)`.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        activation = _activation(activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation_relu_or_gelu = _relu_or_gelu(activation)
        self.activation = activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._attention_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._feed_forward_block(self.norm2(x))
        x = self.norm1(x + self._attention_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._feed_forward_block(x))

    def _attention_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _feed_forward_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _activation(activation):
    """A feed-forward activation given by name ("relu", "gelu") or as a callable."""
    if not isinstance(activation, str):
        return activation
    if activation not in ("relu", "gelu"):
        raise RuntimeError(f"activation should be relu/gelu, not {activation}")
    return F.relu if activation == "relu" else F.gelu


def _relu_or_gelu(activation):
    """1 for relu, 2 for gelu, 0 otherwise: PyTorch's TransformerEncoderLayer.activation_relu_or_gelu."""
    from distml.nn.modules.activation import GELU, ReLU  # activation imports functional, which imports this module
    if activation is F.relu or isinstance(activation, ReLU):
        return 1
    return 2 if activation is F.gelu or isinstance(activation, GELU) else 0


def _clones(module, n):
    return ModuleList([copy.deepcopy(module) for _ in range(n)])


def _seq_len(src, batch_first):
    return src.size(0) if src.dim() == 2 else src.size(1 if batch_first else 0)


def _detect_is_causal_mask(mask, is_causal, size):
    """The is_causal hint, or when it is None, whether `mask` equals the causal mask of `size` (PyTorch's rule)."""
    if is_causal is not None or mask is None:
        return is_causal is True
    causal = Transformer.generate_square_subsequent_mask(size, device=mask.device, dtype=mask.dtype)
    return tuple(mask.shape) == tuple(causal.shape) and bool((mask == causal).all())


def _why_no_nested_tensor(layer):
    """Why PyTorch would not take its nested-tensor path for `layer` ("" when it would)."""
    name = "encoder_layer"
    if not isinstance(layer, TransformerEncoderLayer):
        return f"{name} was not TransformerEncoderLayer"
    if layer.norm_first:
        return f"{name}.norm_first was True"
    if not layer.self_attn.batch_first:
        return f"{name}.self_attn.batch_first was not True(use batch_first for better inference performance)"
    if layer.self_attn.in_proj_bias is None:
        return f"{name}.self_attn was passed bias=False"
    if not layer.activation_relu_or_gelu:
        return f"{name}.activation_relu_or_gelu was not True"
    if layer.norm1.eps != layer.norm2.eps:
        return f"{name}.norm1.eps was not equal to {name}.norm2.eps"
    if layer.self_attn.num_heads % 2 == 1:
        return f"{name}.self_attn.num_heads is odd"
    return ""


class TransformerEncoder(Module):
    """`num_layers` copies of `encoder_layer` applied in turn, then `norm` (if given):
    `encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 8, batch_first=True), num_layers=6)`;
    `out = encoder(src, mask=causal, src_key_padding_mask=padding)`.

    `enable_nested_tensor` is PyTorch's speed path for padded batches, and it is observable: when it
    is on and PyTorch would take it (eval mode, no gradient needed, a batch_first post-norm layer with
    biases, relu/gelu, an even head count, a `src_key_padding_mask` and no `mask`), the padded
    positions come out as zeros (before `norm`) instead of computed values; the other positions are
    the same either way. With `mask_check` the padding must be at the end of each sequence for this;
    without it, PyTorch keeps each sequence's first (number of unpadded) positions, and so does distml.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm
        self.enable_nested_tensor = self.use_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check
        why_not = _why_no_nested_tensor(encoder_layer)
        if enable_nested_tensor and why_not:
            warnings.warn(f"enable_nested_tensor is True, but self.use_nested_tensor is False because {why_not}",
                          stacklevel=2)
            self.use_nested_tensor = False

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """`mask` (S, S) or (N * nhead, S, S) and `src_key_padding_mask` (N, S): bool (True = masked
        out) or float (added). `is_causal=None` detects whether `mask` is the causal mask."""
        padding = _additive_mask(src_key_padding_mask, "src_key_padding_mask", src.dtype)
        mask = _additive_mask(mask, "mask", src.dtype)
        kept = self._nested_positions(src, padding, mask)
        if kept is not None:  # the layers see only the kept positions, as PyTorch's nested tensor does
            padding = _additive_mask(kept.logical_not(), "src_key_padding_mask", src.dtype)
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, self.layers[0].self_attn.batch_first))
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, is_causal=is_causal, src_key_padding_mask=padding)
        if kept is not None:
            output = output.masked_fill(kept.logical_not().unsqueeze(-1), 0.0)
        return output if self.norm is None else self.norm(output)

    def _nested_positions(self, src, padding, mask):
        """(N, S) bool, True at the positions PyTorch's nested-tensor path keeps, or None when it is not taken."""
        first = self.layers[0]
        if not self.use_nested_tensor or first.training or src.dim() != 3 or padding is None or mask is not None:
            return None
        attn, norms, linears = first.self_attn, (first.norm1, first.norm2), (first.linear1, first.linear2)
        tensors = [src, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight, attn.out_proj.bias]
        tensors += [t for m in norms + linears for t in (m.weight, m.bias)]
        if is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
            return None
        unpadded = padding == 0
        lengths = unpadded.sum(1, keepdim=True)
        left_aligned = arange(src.size(1), device=src.device).unsqueeze(0) < lengths
        if getattr(self, "mask_check", True) and not bool((unpadded == left_aligned).all()):
            return None
        return left_aligned


class TransformerDecoderLayer(Module):
    """Self-attention over the target, attention to the encoder's output (memory), then a feed-forward
    block, each with dropout, a residual connection and LayerNorm (after, or before with norm_first):
    `layer = nn.TransformerDecoderLayer(d_model=256, nhead=8, batch_first=True)`; `out = layer(tgt, memory)`.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias,
                                            **factory)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias,
                                                 **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._self_attention_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._memory_attention_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask,
                                                 memory_is_causal)
            return x + self._feed_forward_block(self.norm3(x))
        x = self.norm1(x + self._self_attention_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._memory_attention_block(x, memory, memory_mask, memory_key_padding_mask,
                                                        memory_is_causal))
        return self.norm3(x + self._feed_forward_block(x))

    def _self_attention_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _memory_attention_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)

    def _feed_forward_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoder(Module):
    """`num_layers` copies of `decoder_layer` applied in turn, then `norm` (if given):
    `decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(256, 8), num_layers=6)`;
    `out = decoder(tgt, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(len(tgt)))`.
    """

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        """`tgt_is_causal=None` detects whether `tgt_mask` is the causal mask."""
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal,
                                               _seq_len(tgt, self.layers[0].self_attn.batch_first))
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """Encoder-decoder Transformer (each stack ends in a LayerNorm; matrices xavier-uniform):
    `model = nn.Transformer(d_model=256, nhead=8, num_encoder_layers=3, num_decoder_layers=3)`;
    `out = model(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(tgt.size(0)))`.
    """

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                      bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(*layer_args, **factory), num_encoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(*layer_args, **factory), num_decoder_layers,
                                              LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        """src (S, N, E) and tgt (T, N, E) (N first with batch_first; or unbatched) -> (T, N, E)."""
        if src.dim() == 3 and src.size(0 if self.batch_first else 1) != tgt.size(0 if self.batch_first else 1):
            raise RuntimeError("the batch number of src and tgt must be equal")
        if src.size(-1) != self.d_model or tgt.size(-1) != self.d_model:
            raise RuntimeError("the feature number of src and tgt must be equal to d_model")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """(sz, sz) causal mask: -inf above the diagonal (True for a bool dtype), 0 elsewhere."""
        return full((sz, sz), float("-inf"), dtype=dtype, device=device).triu(diagonal=1)
