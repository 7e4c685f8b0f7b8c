"""Attention: scaled_dot_product_attention, MultiheadAttention and TransformerEncoderLayer, composed
from matmul, softmax, masked_fill, linear, layer_norm and dropout (no new gradients).

Parameter names and initialisation are PyTorch's (in_proj_weight, in_proj_bias, out_proj.*, linear1,
linear2, norm1, norm2, self_attn), so weights load through state_dict.
"""
import math


from distml import dtypes, ops
from distml.creation import empty, ones, zeros
from distml.nn import functional as F
from distml.nn import init
from distml.nn.module import Module
from distml.nn.modules.dropout import Dropout
from distml.nn.modules.linear import Linear
from distml.nn.modules.normalization import LayerNorm
from distml.nn.parameter import Parameter


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
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
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
        if isinstance(activation, str):
            if activation not in ("relu", "gelu"):
                raise RuntimeError(f"activation should be relu/gelu, not {activation}")
            activation = F.relu if activation == "relu" else F.gelu
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
