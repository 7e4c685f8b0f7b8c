"""distml.onnx.export: the written file passes onnx.checker and, under onnxruntime, gives distml's
outputs (rtol 1e-4) for an MLP, LeNet, resnet18 and a TransformerEncoder, also at other batch sizes
when the batch axis is declared dynamic."""
import io
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import distml  # noqa: E402
import distml.nn.functional as F  # noqa: E402
from distml import nn  # noqa: E402
from distml.onnx.errors import OnnxExporterError, UnsupportedOperatorError  # noqa: E402
from distml.vision.models import resnet18  # noqa: E402


def export(model, args, tmp_path, **options):
    """Export to a file, check it, and return (onnx model, onnxruntime session)."""
    path = tmp_path / "model.onnx"
    distml.onnx.export(model, args, str(path), **options)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    return proto, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def assert_runs_like(session, model, *inputs, **kw_inputs):
    names = [i.name for i in session.get_inputs()]
    arrays = [t.numpy() for t in inputs] + [t.numpy() for t in kw_inputs.values()]
    got = session.run(None, dict(zip(names, arrays)))
    with distml.no_grad():
        expected = model(*inputs, **kw_inputs)
    expected = list(_flat(expected))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-4, atol=1e-5)


def _flat(out):
    if isinstance(out, (tuple, list)):
        for x in out:
            yield from _flat(x)
    else:
        yield out


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(x.size(0), -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def test_mlp_names_initializers_and_dynamic_batch(tmp_path):
    distml.manual_seed(0)
    model = MLP()
    proto, session = export(model, (distml.randn(4, 10),), tmp_path, input_names=["features"],
                            output_names=["logits"], dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}})
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert {i.name for i in proto.graph.initializer} == set(model.state_dict())
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 10
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (4, 1, 7):
        assert_runs_like(session, model, distml.randn(batch, 10))


def test_static_batch_is_fixed(tmp_path):
    model = MLP()
    proto, session = export(model, (distml.randn(4, 10),), tmp_path)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [4, 10]
    assert proto.graph.input[0].name == "x" and proto.graph.output[0].name == "output"
    assert_runs_like(session, model, distml.randn(4, 10))


def test_lenet_dynamic_batch(tmp_path):
    distml.manual_seed(0)
    model = LeNet()
    proto, session = export(model, (distml.randn(2, 1, 28, 28),), tmp_path, input_names=["image"],
                            dynamic_axes={"image": [0]})
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "Relu", "MaxPool", "Reshape", "Gemm"} <= ops
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "image_dynamic_axes_1"
    for batch in (2, 5):
        assert_runs_like(session, model, distml.randn(batch, 1, 28, 28))


def test_resnet18_eval(tmp_path):
    distml.manual_seed(0)
    model = resnet18(num_classes=10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # running statistics that matter
            m.running_mean.copy_(distml.randn(m.num_features) * 0.1)
            m.running_var.copy_(distml.rand(m.num_features) + 0.5)
    model.train()
    proto, session = export(model, (distml.randn(1, 3, 32, 32),), tmp_path, input_names=["x"])
    assert model.training and model.layer1[0].bn1.training  # export ran in eval mode and restored the mode
    model.eval()
    assert "conv1.weight" in {i.name for i in proto.graph.initializer}
    assert {"Conv", "MaxPool", "GlobalAveragePool", "Add", "Gemm"} <= {n.op_type for n in proto.graph.node}
    assert_runs_like(session, model, distml.randn(1, 3, 32, 32))


@pytest.mark.parametrize("batch_first, activation, opset", [(True, "relu", 20), (False, "gelu", 17),
                                                             (False, "gelu", 13), (True, "gelu", 20)])
def test_transformer_encoder_with_mask(tmp_path, batch_first, activation, opset):
    distml.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1, activation=activation,
                                       batch_first=batch_first)
    model = nn.TransformerEncoder(layer, num_layers=2, norm=nn.LayerNorm(32), enable_nested_tensor=False).eval()
    axis = 0 if batch_first else 1
    shape = (2, 7, 32) if batch_first else (7, 2, 32)
    mask = nn.Transformer.generate_square_subsequent_mask(7)
    proto, session = export(model, (distml.randn(*shape), mask), tmp_path, input_names=["src", "mask"],
                            dynamic_axes={"src": {axis: "batch"}}, opset_version=opset)
    assert proto.opset_import[0].version == opset
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Softmax", "Transpose", "Reshape"} <= ops
    assert ("LayerNormalization" in ops) == (opset >= 17)
    other = list(shape)
    other[axis] = 5
    assert_runs_like(session, model, distml.randn(*other), mask)


def test_transformer_key_padding_mask_is_an_input(tmp_path):
    distml.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    padding = distml.zeros(2, 6, dtype=distml.bool)
    padding[0, 4:] = True
    _, session = export(model, (distml.randn(2, 6, 32),), tmp_path, kwargs={"src_key_padding_mask": padding},
                        input_names=["src", "padding"], dynamic_axes={"src": {0: "batch"}, "padding": {0: "batch"}})
    other = distml.zeros(3, 6, dtype=distml.bool)
    other[1, 2:] = True
    other[2, 5:] = True
    assert_runs_like(session, model, distml.randn(3, 6, 32), src_key_padding_mask=other)


class TwoAxes(nn.Module):
    """Reshape and expand targets that follow two dynamic axes (computed from Shape at run time)."""

    def forward(self, x, m):  # x (N, S, 8), m (N, 1)
        n, s = x.shape[0], x.shape[1]
        y = x.reshape(n * s, 2, 4).reshape(n, s * 2, 4)
        return y * m.expand(n, s * 2).unsqueeze(-1)


def test_two_dynamic_axes(tmp_path):
    model = TwoAxes()
    proto, session = export(model, (distml.randn(2, 3, 8), distml.randn(2, 1)), tmp_path,
                            dynamic_axes={"x": {0: "n", 1: "s"}, "m": {0: "n"}})
    assert [d.dim_param for d in proto.graph.output[0].type.tensor_type.shape.dim][:1] == ["n"]
    assert "Shape" in {n.op_type for n in proto.graph.node}
    for n, s in ((2, 3), (4, 1), (1, 6)):
        assert_runs_like(session, model, distml.randn(n, s, 8), distml.randn(n, 1))


class Mixed(nn.Module):
    """Embedding (Gather), concat, slicing and indexing, and elementwise math."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 8)

    def forward(self, tokens, x):
        e = self.embed(tokens)  # (N, S, 8)
        h = distml.cat([e, self.proj(e)], dim=-1)[:, 1:, ::2]  # (N, S - 1, 8)
        h = h + x[:, None, :] * 0.5 - x.unsqueeze(1).exp() / 3
        h = h.sigmoid() * h.tanh() + h.abs().sqrt() + distml.clamp(h, -0.5, 0.5) ** 2
        h = F.gelu(h) + F.silu(h) + F.leaky_relu(h, 0.1) + F.elu(h)
        h = distml.maximum(h, distml.zeros(8)) + h.transpose(1, 2).permute(0, 2, 1)
        first, second = h.chunk(2, dim=-1)
        h = h + F.gelu(h, approximate="tanh") + F.softplus(h) + F.hardtanh(h) + (h * h).log1p() / (h.abs() + 1)
        out = distml.stack([first, second], dim=1).sum(1) + h[..., 0:1].log_softmax(-1)
        out = out + h.softmax(-1)[:, :, 2:6].mean(-1, keepdim=True) + F.layer_norm(h, (8,))[..., :4]
        return out.flatten(1), h[:, -1].amax(-1)


@pytest.mark.parametrize("opset", [13, 20])
def test_embedding_concat_slicing_and_elementwise_math(tmp_path, opset):
    distml.manual_seed(0)
    model = Mixed().eval()
    tokens = distml.randint(0, 20, (3, 5))
    proto, session = export(model, (tokens, distml.randn(3, 8)), tmp_path, input_names=["tokens", "x"],
                            output_names=["features", "peak"], opset_version=opset,
                            dynamic_axes={"tokens": {0: "n"}, "x": {0: "n"}})
    assert [o.name for o in proto.graph.output] == ["features", "peak"]
    assert {"Gather", "Concat", "Slice", "Unsqueeze"} <= {n.op_type for n in proto.graph.node}
    assert_runs_like(session, model, tokens, distml.randn(3, 8))
    assert_runs_like(session, model, distml.randint(0, 20, (6, 5)), distml.randn(6, 8))


class Padded(nn.Module):
    """Constant padding (a write into a filled tensor: IndexPut), reflection, and math.py's binary functions."""

    def forward(self, x, y):
        h = F.pad(x, (1, 2), value=3.0) + F.pad(y, (1, 2), mode="reflect")
        return h, F.pad(x, (0, 1, 2, 0)), distml.atan2(x, y) + distml.fmax(x, y) + distml.fmin(x, y) + distml.logaddexp(x, y) \
            + distml.logaddexp2(x, y) + distml.hypot(x, y) + distml.xlogy(x.abs(), y.abs() + 1) + distml.fmod(x, 0.7)


def test_padding_and_binary_math(tmp_path):
    x = distml.tensor([[1., -1, 0, 0, -2, 2, 3, 0.5], [0.25, -4, 1, 5, -0.5, 0, 2, -3]])
    y = distml.tensor([[0., 0, 1, -1, -2, -3, 0.5, 4], [1, 2, -1, 0, 3, -2, -0.5, 0.1]])
    _, session = export(Padded(), (x, y), tmp_path)
    assert_runs_like(session, Padded(), x, y)


def test_lstm_unrolled(tmp_path):
    distml.manual_seed(0)
    model = nn.LSTM(8, 6, num_layers=2, batch_first=True).eval()
    x = distml.randn(2, 5, 8)
    _, session = export(model, (x,), tmp_path, input_names=["x"], output_names=["out", "h", "c"],
                        dynamic_axes={"x": {0: "batch"}})
    assert_runs_like(session, model, distml.randn(3, 5, 8))


class Windows(nn.Module):
    """Convolutions and pools with strides, asymmetric ('same', even kernel) padding, ceil mode, and
    adaptive and transposed forms."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.same = nn.Conv2d(4, 4, 4, padding="same", bias=False)
        self.up = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.groups = nn.GroupNorm(2, 4)

    def forward(self, x):
        h = self.groups(self.same(self.down(x)))
        pooled = F.max_pool2d(h, 3, 2, ceil_mode=True) + F.avg_pool2d(h, 3, 2, padding=1)[..., :4, :4]
        return self.up(h), F.adaptive_avg_pool2d(pooled, (2, 2)), F.avg_pool2d(h, 2)


def test_conv_and_pool_geometry(tmp_path):
    distml.manual_seed(0)
    model = Windows().eval()
    x = distml.randn(2, 3, 15, 15)
    proto, session = export(model, (x,), tmp_path)
    assert {"Conv", "ConvTranspose", "MaxPool", "AveragePool"} <= {n.op_type for n in proto.graph.node}
    assert_runs_like(session, model, x)


def test_export_params_false_and_no_constant_folding(tmp_path):
    distml.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 2)).eval()
    x = distml.randn(2, 3, 6, 6)
    proto, session = export(model, (x,), tmp_path, export_params=False, do_constant_folding=False)
    names = [i.name for i in proto.graph.input]
    assert names[0] == "input" and set(names[1:]) <= set(model.state_dict())
    assert "0.weight" in names and not {i.name for i in proto.graph.initializer} & set(model.state_dict())
    state = model.state_dict()
    feeds = {"input": x.numpy(), **{n: state[n].numpy() for n in names[1:]}}
    with distml.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(session.run(None, feeds)[0], expected, rtol=1e-4, atol=1e-5)


def test_unsupported_op_names_op_and_module():
    class Distances(nn.Module):
        def forward(self, x):
            return distml.cdist(x, x)

    model = nn.Sequential(nn.Linear(4, 4), Distances())
    with pytest.raises(UnsupportedOperatorError, match=r"'Cdist' \(in module '1'\) to ONNX opset version 20"):
        distml.onnx.export(model, (distml.randn(3, 4),), io.BytesIO())


def test_unavailable_outputs_and_untraced_writes_raise():
    class Indices(nn.Module):
        def forward(self, x):
            return F.max_pool2d(x, 2, return_indices=True)[1].float()

    class Overwrite(nn.Module):
        def forward(self, x):
            y = x * 2
            y[0] = 0  # without autograd this writes the array directly: no op records it
            return y + 1

    with pytest.raises(UnsupportedOperatorError, match="indices of max_pool2d"):
        distml.onnx.export(Indices(), (distml.randn(1, 1, 4, 4),), io.BytesIO())
    with pytest.raises(OnnxExporterError, match="written in place outside distml's traced ops"):
        distml.onnx.export(Overwrite(), (distml.randn(2, 3),), io.BytesIO())


def test_values_the_trace_cannot_follow_raise():
    class Positive(nn.Module):
        def forward(self, x):  # a comparison is not a traced primitive: its result would be a constant
            return distml.where(x > 0, x, x * 2)

    class Centre(nn.Module):
        def forward(self, x):  # the mean divides by the batch size, which a dynamic batch changes
            return x - x.mean(0)

    class Winner(nn.Module):
        def forward(self, x):  # argmax is not a traced primitive either
            return x.argmax(1)

    with pytest.raises(OnnxExporterError, match="Where depends on the input values"):
        distml.onnx.export(Positive(), (distml.randn(3, 4),), io.BytesIO())
    with pytest.raises(OnnxExporterError, match="an output of the model depends on the input values"):
        distml.onnx.export(Winner(), (distml.arange(12.0).reshape(3, 4),), io.BytesIO())
    distml.onnx.export(Centre(), (distml.randn(3, 4),), io.BytesIO())
    with pytest.raises(OnnxExporterError, match="Scale depends on the input values or the size of dynamic axis .b."):
        distml.onnx.export(Centre(), (distml.randn(3, 4),), io.BytesIO(), dynamic_axes={"x": {0: "b"}})


def test_file_object_and_atomic_path(tmp_path):
    model = MLP()
    x = distml.randn(2, 10)
    buffer = io.BytesIO()
    distml.onnx.export(model, (x,), buffer)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    distml.onnx.export(model, x, path)
    assert path.read_bytes() == buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))

    class Broken(nn.Module):
        def forward(self, x):
            return distml.cdist(x, x)

    with pytest.raises(UnsupportedOperatorError):
        distml.onnx.export(Broken(), (x,), path)
    assert path.read_bytes() == buffer.getvalue()  # a failed export leaves the old file
    assert os.listdir(tmp_path) == ["m.onnx"]  # and no temporary file


def test_is_in_onnx_export_and_options():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(distml.onnx.is_in_onnx_export())
            return x * 2

    assert not distml.onnx.is_in_onnx_export()
    distml.onnx.export(Probe(), (distml.randn(2),), io.BytesIO())
    assert seen and all(seen) and not distml.onnx.is_in_onnx_export()
    with pytest.raises(ValueError, match="Unsupported ONNX opset version: 9"):
        distml.onnx.export(Probe(), (distml.randn(2),), io.BytesIO(), opset_version=9)
    with pytest.raises(NotImplementedError, match="dynamo=True"):
        distml.onnx.export(Probe(), (distml.randn(2),), io.BytesIO(), dynamo=True)
    with pytest.raises(ValueError, match="input_names has 2 names"):
        distml.onnx.export(Probe(), (distml.randn(2),), io.BytesIO(), input_names=["a", "b"])


@pytest.mark.parametrize("make", [
    lambda: nn.GRU(8, 6, num_layers=2, bidirectional=True),
    lambda: nn.RNN(8, 6, nonlinearity="relu", batch_first=True),
    lambda: nn.LSTM(8, 6, bias=False, bidirectional=True, batch_first=True),
], ids=["gru-bidirectional", "rnn-relu", "lstm-no-bias-bidirectional"])
def test_recurrent_layers_export_as_onnx_recurrent_ops(tmp_path, make):
    distml.manual_seed(0)
    model = make().eval()
    x = distml.randn(2, 5, 8)
    proto, session = export(model, (x,), tmp_path, input_names=["x"], dynamic_axes={"x": {0: "a", 1: "b"}})
    ops = {node.op_type for node in proto.graph.node}
    assert ops & {"GRU", "RNN", "LSTM"}
    assert_runs_like(session, model, distml.randn(3, 4, 8))


@pytest.mark.parametrize("activation", [nn.SELU(), nn.CELU(0.7), nn.ELU(0.5)], ids=["selu", "celu", "elu"])
def test_elu_family(tmp_path, activation):
    model = nn.Sequential(nn.Linear(4, 4), activation).eval()
    _, session = export(model, (distml.randn(3, 4),), tmp_path, input_names=["x"])
    assert_runs_like(session, model, distml.randn(3, 4))


class Pools(nn.Module):
    """Pools in 1 and 3 dims, unbatched input, adaptive max, as ONNX pools."""

    def forward(self, x1, x3, unbatched):
        return (F.max_pool1d(x1, 3, 2, padding=1, dilation=2), F.avg_pool1d(x1, 2, ceil_mode=True),
                F.avg_pool3d(x3, 2), F.max_pool3d(x3, 2, stride=1), F.adaptive_max_pool2d(unbatched, 2),
                F.adaptive_avg_pool3d(x3, 1), F.max_pool2d(unbatched, 2))


def test_pools_in_one_to_three_dims(tmp_path):
    args = (distml.randn(2, 3, 9), distml.randn(2, 2, 4, 4, 6), distml.randn(3, 6, 8))
    _, session = export(Pools(), args, tmp_path)
    assert_runs_like(session, Pools(), *args)


class Convolutions(nn.Module):
    """Convolutions in 1 and 3 dims and their transposes, depthwise and 1x1 ones."""

    def __init__(self):
        super().__init__()
        self.conv1d = nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2)
        self.up1d = nn.ConvTranspose1d(4, 2, 3, stride=2, output_padding=1)
        self.conv3d = nn.Conv3d(2, 4, (2, 3, 3), padding=(0, 1, 1))
        self.up3d = nn.ConvTranspose3d(4, 2, 2, stride=2, groups=2)
        self.depthwise = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.pointwise = nn.Conv2d(8, 3, 1, stride=2, bias=False)

    def forward(self, x1, x3, x2):
        return self.up1d(self.conv1d(x1)), self.up3d(self.conv3d(x3)), self.pointwise(self.depthwise(x2))


def test_convolutions_in_one_to_three_dims(tmp_path):
    distml.manual_seed(0)
    model = Convolutions().eval()
    args = (distml.randn(2, 3, 11), distml.randn(2, 2, 3, 5, 6), distml.randn(2, 4, 7, 7))
    _, session = export(model, args, tmp_path)
    assert_runs_like(session, model, *args)
