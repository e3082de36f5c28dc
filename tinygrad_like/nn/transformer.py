"""MultiheadAttention, TransformerEncoderLayer and TransformerEncoder, as in PyTorch.

Parameter names (`in_proj_weight`, `out_proj.weight`, `linear1`, `norm1`, ...)
and mask conventions match torch.nn, so weights copied from PyTorch give the
same outputs. Attention itself is `F.scaled_dot_product_attention`, which each
device may serve with its own kernel.
"""

from __future__ import annotations

import copy

from tinygrad_like import creation, dtypes
from tinygrad_like.nn import functional as F
from tinygrad_like.nn import init
from tinygrad_like.nn.layers import Dropout, LayerNorm, Linear
from tinygrad_like.nn.containers import ModuleList
from tinygrad_like.nn.module import Module, Parameter
from tinygrad_like.ops.comparison import logical_not
from tinygrad_like.ops.selection import where
from tinygrad_like.tensor import Tensor


def _allowed_or_additive(attn_mask, key_padding_mask, batch: int, heads: int):
    """Merge PyTorch's MHA masks (True = masked out) into what SDPA takes.

    Returns a bool mask (True = may attend) when both masks are bool, else an additive
    float mask; either broadcasts against (N, H, L, S) scores.
    """
    pieces = []
    if attn_mask is not None:
        if attn_mask.ndim == 3:  # (N * H, L, S) -> (N, H, L, S)
            attn_mask = attn_mask.reshape(batch, heads, *attn_mask.shape[1:])
        pieces.append(attn_mask)
    if key_padding_mask is not None:
        pieces.append(key_padding_mask.reshape(batch, 1, 1, key_padding_mask.shape[-1]))
    if not pieces:
        return None
    if all(p.dtype is dtypes.bool_ for p in pieces):
        blocked = pieces[0] if len(pieces) == 1 else pieces[0] | pieces[1]
        return logical_not(blocked)
    additive = 0.0
    for piece in pieces:
        additive = additive + (where(piece, float("-inf"), 0.0) if piece.dtype is dtypes.bool_
                               else piece)
    return additive


class MultiheadAttention(Module):
    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False, device="cpu", dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by "
                             f"num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim, self.batch_first = embed_dim // num_heads, batch_first
        self.in_proj_weight = Parameter(creation.empty(3 * embed_dim, embed_dim, device=device,
                                                       dtype=dtype))
        self.register_parameter("in_proj_bias", Parameter(creation.zeros(
            3 * embed_dim, device=device, dtype=dtype)) if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        init.xavier_uniform_(self.in_proj_weight)
        if bias:
            init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        # Tokens stay in the caller's layout, (N, L, E) or (L, N, E): the projections act on
        # each token alone, and transposing a batch-first input first made each of them copy
        # its strided input forward and backward (docs/performance.md, "MultiheadAttention
        # keeps the caller's layout")
        batch_first = self.batch_first and not unbatched
        self._check_inputs(query, key, value, key_padding_mask, attn_mask, batch_first)
        batch, length = query.shape[:2] if batch_first else query.shape[1::-1]
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.chunk(3)

        def heads(x, w, b):  # (N, T, E) or (T, N, E) -> (N, H, T, D)
            split = F.linear(x, w, b).reshape(*x.shape[:2], self.num_heads, self.head_dim)
            return split.permute(0, 2, 1, 3) if batch_first else split.permute(1, 2, 0, 3)

        q, k, v = heads(query, w_q, b_q), heads(key, w_k, b_k), heads(value, w_v, b_v)
        mask = _allowed_or_additive(attn_mask, key_padding_mask, batch, self.num_heads)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            scores = (q @ k.mT) * (self.head_dim ** -0.5)
            if is_causal and mask is None:
                mask = creation.ones(length, k.shape[2], dtype="bool", device=q.device)
                mask = Tensor._wrap(q.backend.xp.tril(mask._array), q.backend)
            if mask is not None and mask.dtype is dtypes.bool_:
                scores = where(mask, scores, float("-inf"))
            elif mask is not None:
                scores = scores + mask
            weights = F.softmax(scores, -1)
            out = F.dropout(weights, dropout_p) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, mask, dropout_p,
                                                 is_causal=is_causal and mask is None)
            weights = None
        if batch_first:  # (N, H, T, D) -> (N, T, E)
            out = out.permute(0, 2, 1, 3).reshape(batch, length, self.embed_dim)
        else:  # -> (T, N, E)
            out = out.permute(2, 0, 1, 3).reshape(length, batch, self.embed_dim)
        out = self.out_proj(out)
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if unbatched:
            out = out.squeeze(1)
            weights = None if weights is None else weights.squeeze(0)
        return out, weights


    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask,
                      attn_mask, batch_first: bool) -> None:
        """query (L, N, E), key and value (S, N, E) (batch first: (N, L, E), (N, S, E)), with
        the masks PyTorch takes: key_padding_mask (N, S), attn_mask (L, S) or (N * H, L, S)."""
        name = "MultiheadAttention"
        shapes = f"query {query.shape}, key {key.shape} and value {value.shape}"
        if not query.ndim == key.ndim == value.ndim == 3:
            raise ValueError(f"{name}: expected 3-D (or unbatched 2-D) {shapes}")
        if any(t.shape[-1] != self.embed_dim for t in (query, key, value)):
            raise ValueError(f"{name}: {shapes} must each have embed_dim={self.embed_dim} "
                             "features")
        (batch, length), source = ((query.shape[:2], key.shape[1]) if batch_first
                                   else (query.shape[1::-1], key.shape[0]))
        if key.shape != value.shape or key.shape[0 if batch_first else 1] != batch:
            raise ValueError(f"{name}: {shapes} need one batch size, and key and value one "
                             "sequence length")
        if key_padding_mask is not None and key_padding_mask.shape != (batch, source):
            raise ValueError(f"{name}: key_padding_mask of shape {key_padding_mask.shape} must "
                             f"be (N, S) = {(batch, source)} for {shapes}")
        allowed = ((length, source), (batch * self.num_heads, length, source))
        if attn_mask is not None and attn_mask.shape not in allowed:
            raise ValueError(f"{name}: attn_mask of shape {attn_mask.shape} must be (L, S) = "
                             f"{allowed[0]} or (N * num_heads, L, S) = {allowed[1]} for {shapes}")


def activation_function(layer: str, activation):
    """The feed-forward activation a Transformer layer takes: "relu", "gelu" or a callable."""
    if callable(activation):
        return activation
    if activation not in ("relu", "gelu"):
        raise RuntimeError(f"{layer}: activation should be relu/gelu or a callable, not "
                           f"{activation!r}")
    return F.relu if activation == "relu" else F.gelu


class TransformerEncoderLayer(Module):
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device="cpu", dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, bias, batch_first, device,
                                            dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias, device, dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias, device, dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        self.activation = activation_function("TransformerEncoderLayer", activation)

    def forward(self, src: Tensor, src_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._feed_forward(self.norm2(x))
        x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._feed_forward(x))

    def _self_attention(self, x, mask, key_padding_mask, is_causal):
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False,
                                attn_mask=mask, is_causal=is_causal)
        return self.dropout1(out)

    def _feed_forward(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """`num_layers` independent copies of `encoder_layer`, then an optional final norm."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Module | None = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True):
        """enable_nested_tensor and mask_check choose PyTorch's nested-tensor inference path;
        they are accepted, and every call takes the one ordinary path. The results agree but
        at padded positions (src_key_padding_mask), which that path fills with zeros in eval
        mode and which hold computed values here."""
        super().__init__()
        self.layers = ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None,
                is_causal: bool | None = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, bool(is_causal))
        return x if self.norm is None else self.norm(x)
