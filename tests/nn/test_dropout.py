"""The dropout family. Random masks cannot match PyTorch's bit for bit, so these check what
PyTorch guarantees: the keep rate, whole channels dropped together, the scaling, eval = identity,
the gradient = mask * scale, the input-rank rules, warnings and errors (the latter against torch)."""
import math
import warnings

import numpy as np
import pytest
import torch

import distml
from distml import nn

F = nn.functional
ALPHA = 1.6732632423543772848170429916717 * 1.0507009873554804934193349852946  # -selu(-inf)


def channel_masks(out, channel_dims):
    """out (all-ones input through a channel dropout) as one value per channel, checking each
    channel holds a single value."""
    flat = out.reshape(*out.shape[:channel_dims], -1)
    assert np.all(flat == flat[..., :1]), "a channel was partly dropped"
    return flat[..., 0]


@pytest.mark.parametrize("name,shape,channel_dims", [
    ("dropout1d", (40, 50, 3), 2), ("dropout1d", (400, 5), 1), ("dropout2d", (40, 50, 2, 3), 2),
    ("dropout2d", (40, 50, 3), 2), ("dropout3d", (40, 50, 2, 2, 2), 2), ("dropout3d", (400, 2, 3, 2), 1),
])
@pytest.mark.parametrize("dtype", [distml.float64, distml.float32])
def test_channel_dropout_drops_whole_channels_scaled(name, shape, channel_dims, dtype):
    distml.manual_seed(0)
    x = distml.ones(*shape, dtype=dtype, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = getattr(F, name)(x, 0.3)
    values = channel_masks(out.detach().numpy(), channel_dims)
    kept = values != 0
    assert abs(kept.mean() - 0.7) < 0.04
    np.testing.assert_allclose(values[kept], 1 / 0.7, rtol=1e-6)
    assert out.dtype == dtype
    upstream = np.random.default_rng(0).standard_normal(shape)
    out.backward(distml.tensor(upstream, dtype=dtype))
    np.testing.assert_allclose(x.grad.numpy(), upstream * (out.detach().numpy()), rtol=1e-6)  # mask * scale


@pytest.mark.parametrize("module", ["Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"])
def test_eval_and_p_zero_are_the_identity(module):
    x = distml.randn(4, 3, 2) if module == "Dropout1d" else distml.randn(4, 3, 2, 2, 2)
    layer = getattr(nn, module)(0.5)
    layer.eval()
    assert layer(x) is x
    assert getattr(nn, module)(0.0)(x) is x
    assert repr(layer) == repr(getattr(torch.nn, module)(0.5))
    assert repr(getattr(nn, module)(0.2, True)) == repr(getattr(torch.nn, module)(0.2, True))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got -0.1"):
        getattr(nn, module)(-0.1)


def test_p_one_zeroes_everything():
    x = distml.randn(3, 4, 5, requires_grad=True)
    for f in (F.dropout1d, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = f(x, 1.0, True)
        assert not out.detach().numpy().any()


def test_alpha_dropout_keeps_mean_and_variance_and_its_gradient_is_the_scaled_mask():
    distml.manual_seed(0)
    p = 0.2
    x = distml.randn(200000, dtype=distml.float64, requires_grad=True)
    out = F.alpha_dropout(x, p, training=True)
    y = out.detach().numpy()
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1) < 0.01
    a = 1 / math.sqrt((ALPHA ** 2 * p + 1) * (1 - p))
    dropped = np.isclose(y, a * (-ALPHA) + ALPHA * a * p, rtol=0, atol=1e-12)  # every dropped element takes this value
    assert abs(dropped.mean() - p) < 0.005
    np.testing.assert_allclose(y[~dropped], a * x.detach().numpy()[~dropped] + ALPHA * a * p, rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.where(dropped, 0.0, a), rtol=1e-12)
    assert F.alpha_dropout(x, p) is x  # training defaults to False, as PyTorch's


def test_feature_alpha_dropout_drops_whole_channels():
    distml.manual_seed(1)
    p = 0.3
    out = F.feature_alpha_dropout(distml.ones(50, 40, 3, 2), p, training=True).numpy()
    values = channel_masks(out, 2)
    a = 1 / math.sqrt((ALPHA ** 2 * p + 1) * (1 - p))
    kept = np.isclose(values, a + ALPHA * a * p)
    np.testing.assert_allclose(values[~kept], -ALPHA * a + ALPHA * a * p)
    assert abs(kept.mean() - 0.7) < 0.04


def test_inplace_channel_dropout_writes_the_input_and_backprops_the_mask():
    distml.manual_seed(2)
    w = distml.ones(20, 30, 4, requires_grad=True)
    hidden = w * 2
    out = nn.Dropout1d(0.5, inplace=True)(hidden)
    assert out is hidden
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), out.detach().numpy(), rtol=1e-6)  # d(2w * m)/dw = 2m = out
    values = channel_masks(out.detach().numpy(), 2)
    assert set(np.unique(values)) == {0.0, 4.0}


def test_dropout_matches_torch_warnings_and_errors():
    for lib in (distml, torch):
        f = lib.nn.functional
        with pytest.raises(RuntimeError, match=r"dropout1d: Expected 2D or 3D input, but received a 4D input"):
            f.dropout1d(lib.ones(2, 3, 4, 5))
        with pytest.warns(UserWarning, match="dropout2d: Received a 2-D input to dropout2d, which is deprecated"):
            f.dropout2d(lib.ones(2, 3))
        with pytest.warns(UserWarning, match="dropout2d: Received a 3D input to dropout2d and assuming that "
                                             "channel-wise 1D dropout behavior is desired"):
            f.dropout2d(lib.ones(2, 3, 4))
        with pytest.warns(UserWarning, match="dropout3d: Received a 3-D input to dropout3d, which is deprecated"):
            f.dropout3d(lib.ones(2, 3, 4))
        with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions in the input"):
            f.feature_alpha_dropout(lib.ones(3), 0.5, True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions in the input"):
                f.dropout2d(lib.ones(3), 0.5)
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
            f.alpha_dropout(lib.ones(3), 1.5)
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 2"):
            f.dropout3d(lib.ones(3, 2, 2, 2), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.dropout1d(distml.ones(2, 3)), F.dropout2d(distml.ones(1, 2, 3, 4)), F.dropout3d(distml.ones(2, 1, 2, 3))
