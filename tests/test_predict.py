"""vsr.infer.predict computes what VSRNet.forward computes on the upsampled window (exactly
without flow; within a tolerance with DIS at LR size), on sizes that cut bands unevenly."""

import pytest
import torch
from skimage import data

from vsr.infer import predict
from vsr.infer.predict import predict_y, upsample
from vsr.models.vsrnet import VSRNet


def _model(flow, batch_norm=False, head="residual"):
    torch.manual_seed(0)
    m = VSRNet(3, (8, 4), flow, head=head, batch_norm=batch_norm).eval()
    with torch.no_grad():
        m.conv3.weight.normal_(0, 0.1)  # a correction that matters
        for bn in (x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)):
            (
                bn.running_mean.uniform_(-0.1, 0.1),
                bn.running_var.uniform_(0.5, 2.0),
                bn.weight.uniform_(0.5, 1.5),
            )
    return m


@pytest.mark.parametrize("batch_norm,head", [(False, "residual"), (True, "sigmoid")])
def test_banded_prediction_equals_the_model_without_flow(batch_norm, head, monkeypatch):
    monkeypatch.setattr(predict, "BAND", 24)  # 148 rows: bands of 24 and a last one of 4
    m = _model("none", batch_norm, head)
    lr = torch.rand(3, 3, 37, 53)
    with torch.no_grad():
        ref = m(upsample(lr)[None])[0].clamp(0, 1)
    got = predict_y(m, lr)
    assert got.shape == (1, 148, 212) and (got - ref).abs().max() < 1e-5


def test_dis_flow_at_lr_size_stays_close_to_flow_at_hr_size():
    """Real photo content moving by sub-pixel and pixel steps: the output with DIS at LR size
    (vectors x4) is within 45 dB of the model's own (DIS at HR size), and aligns as well."""
    img = torch.from_numpy(data.astronaut()[64:448, 64:448].copy()).permute(2, 0, 1).float() / 255
    hr = torch.stack([torch.roll(img, (f, 3 * f), (1, 2)) for f in (-1, 0, 1)])
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    m = _model("dis")
    with torch.no_grad():
        ref = m(upsample(lr)[None])[0].clamp(0, 1)
    got = predict_y(m, lr)
    inner = (slice(None), slice(16, -16), slice(16, -16))
    mse = (got - ref)[inner].pow(2).mean()
    assert 10 * torch.log10(1 / mse) > 45
