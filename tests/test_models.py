import pytest
import torch

from vsr.metrics import psnr, rgb_to_studio_y, ssim, studio_y
from vsr.models.flownet_sd import CheckpointError, FlowNetSD, load_checkpoint
from vsr.models.vsrnet import VSRNet, degrade, rgb_to_y, sr_step
from vsr.models.warp import warp
from vsr.train.optim import param_groups


def sr_parameters(model):
    """The SR net's parameters: the optimiser's groups other than FlowNet's."""
    return [p for g in param_groups(model, 0.0) if not g["flow"] for p in g["params"]]


@pytest.mark.parametrize("frames", [3, 5])
def test_shapes_and_parameter_counts(frames):
    m = VSRNet(frames, flow_mode="none")
    n = sum(p.numel() for p in sr_parameters(m))
    assert n == 81 * 64 + 64 + 25 * 64 * frames * 32 + 32 + 801  # 159,681 for F = 3
    assert m(torch.rand(1, frames, 3, 64, 128)).shape == (1, 1, 64, 128)
    seed = VSRNet(frames, flow_mode="none", head="sigmoid", batch_norm=True)  # the seed's net
    assert sum(p.numel() for p in sr_parameters(seed)) == 81 * 64 + 128 + 25 * 64 * frames * 32 + 64 + 801
    assert sum(p.numel() for p in FlowNetSD().parameters()) == 45_371_666


def test_warp_identity_and_known_shift():
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")
    f = lambda x, y: torch.sin(x / 7.0) + torch.cos(y / 9.0)  # noqa: E731  smooth image
    img = f(xx, yy)[None, None]
    assert torch.allclose(warp(img, torch.zeros(1, 2, 96, 128)), img, atol=1e-5)
    # the next frame moved by (+2.5, -1.25) px: backward warping it with that flow gives img
    moved = f(xx - 2.5, yy + 1.25)[None, None]
    flow = torch.tensor([2.5, -1.25])[None, :, None, None].expand(1, 2, 96, 128)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (warp(moved, flow) - img)[inner].abs().max() < 0.01
    assert (moved - img)[inner].abs().mean() > 0.1
    # the example's scaling (/16 instead of x20 on flow/20) would move ~1/320 of that
    assert (warp(moved, flow / 320) - img)[inner].abs().mean() > 0.1


def test_target_kept_and_differs_from_input():
    hr = torch.rand(2, 3, 3, 64, 64)
    before = hr.clone()
    m = VSRNet(3, features=(8, 4), flow_mode="finetune", flownet_width=0.125)
    pred, target, inp = sr_step(m, hr)
    assert torch.equal(hr, before)
    assert torch.allclose(target, rgb_to_y(hr[:, 1]))
    assert (target - inp).abs().mean() > 0.05
    pred.mean().backward()
    for name, p in m.named_parameters():  # every layer learns from the first step
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_residual_head_starts_at_the_bilinear_input():
    hr = torch.rand(2, 3, 3, 64, 64)
    m = VSRNet(3, features=(8, 4), flow_mode="none")
    pred, _, inp = sr_step(m, hr)
    assert (pred - inp).abs().max() < 0.05 and (pred - inp).abs().max() > 0


def test_dis_flow_mode_aligns_shifted_frames():
    """flownet.mode dis: OpenCV DIS on the bilinear LR frames warps neighbours onto the centre."""
    from skimage import data

    img = torch.from_numpy(data.astronaut()[128:384, 128:384].copy()).permute(2, 0, 1).float() / 255
    hr = torch.stack([torch.roll(img, (0, 8 * (1 - f)), (1, 2)) for f in range(3)])[None]  # 2 LR px/frame
    lr_up = degrade(hr)
    m = VSRNet(3, features=(8, 4), flow_mode="dis")
    assert m.flownet is None and not [g for g in param_groups(m, 0.0) if g["flow"]]
    aligned = m.align(lr_up)
    y = rgb_to_y(lr_up)
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    for f in (0, 2):
        before = (y[:, f] - y[:, 1])[inner].abs().mean()
        after = (aligned[:, f] - y[:, 1])[inner].abs().mean()
        assert after < 0.25 * before, (f, before, after)
    assert m(lr_up).shape == (1, 1, 256, 256)


def test_flownet_checkpoint_roundtrip_and_errors(tmp_path):
    net = FlowNetSD(0.125)
    p = tmp_path / "ck.pth.tar"
    torch.save({"epoch": 0, "state_dict": net.state_dict(), "best_EPE": 1e10}, p)
    other = FlowNetSD(0.125)
    load_checkpoint(other, p)
    assert torch.equal(other.conv0[0].weight, net.conv0[0].weight)
    sd = net.state_dict()
    sd["predict_flow2.weight"] = torch.zeros(2, 3, 3, 3)
    del sd["conv1.0.bias"]
    torch.save({"state_dict": sd}, p)
    with pytest.raises(CheckpointError, match=r"missing keys: conv1.0.bias; shapes: predict_flow2.weight"):
        load_checkpoint(other, p)
    p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a PyTorch FlowNet2-SD checkpoint"):
        load_checkpoint(other, p)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_autocast_close_to_fp32(dtype):
    torch.manual_seed(0)
    m = VSRNet(3, features=(8, 4), flow_mode="finetune", flownet_width=0.125).eval()
    x = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        ref = m(degrade(x))
        with torch.autocast("cpu", dtype=dtype):
            low = m(degrade(x))
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).abs().max() < 0.05


def test_metrics_match_scikit_image():
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    torch.manual_seed(1)
    a = torch.rand(2, 3, 48, 64)
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    ya, yb = rgb_to_studio_y(a), rgb_to_studio_y(b)
    for i in range(2):
        ra = rgb2ycbcr((a[i].permute(1, 2, 0).numpy() * 255).round().astype("uint8"))[..., 0]
        rb = rgb2ycbcr((b[i].permute(1, 2, 0).numpy() * 255).round().astype("uint8"))[..., 0]
        assert abs(ra - ya[i, 0].numpy()).max() < 1e-3
        c = (slice(4, -4), slice(4, -4))
        want = peak_signal_noise_ratio(ra[c], rb[c], data_range=255)
        assert abs(psnr(yb, ya, 4)[i].item() - want) < 1e-6
        want = structural_similarity(
            ra[c], rb[c], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert abs(ssim(yb, ya, 4)[i].item() - want) < 1e-4
    assert torch.allclose(studio_y(rgb_to_y(a), quantise=False), rgb_to_studio_y(a), atol=0.6)


@pytest.mark.parametrize("frames", [1, 3, 5])
def test_dense_conv1_is_the_shared_per_frame_conv(frames):
    """conv1 as one block-diagonal conv (no reshape copy) computes what the per-frame conv does,
    forward and weight gradient, with the same parameters."""
    torch.manual_seed(0)
    m = VSRNet(frames, features=(16, 8), flow_mode="none")
    x = torch.rand(2, frames, 3, 32, 48)
    grads = []
    for dense in (True, False):
        m.dense_conv1 = dense
        m.zero_grad()
        out = m(x)
        out.square().sum().backward()
        grads.append((out.detach(), m.conv1[0].weight.grad.clone(), m.conv1[0].bias.grad.clone()))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
    assert grads[0][1].abs().sum() > 0


def test_step_flop_counts_useful_convolution_flops():
    """Per HR pixel, no flow, VSRNet 64/32: forward convs 3*81*64*2 + 25*192*32*2 + 25*32*2,
    backward = their weight gradients + the input gradients of conv2 and conv3 (not conv1's:
    its input needs none), whatever form conv1 runs in."""
    from vsr.train.config import merged
    from vsr.train.step import step_flop

    cfg = merged({"model": {"features": [64, 32]}, "flownet": {"mode": "none"}})
    fwd = 3 * 81 * 64 * 2 + 25 * 192 * 32 * 2 + 25 * 32 * 2
    assert step_flop(cfg, "cpu", 2, (256, 512)) == 2 * 256 * 512 * (2 * fwd + 25 * 192 * 32 * 2 + 25 * 32 * 2)


def test_construction_reads_no_file_and_accepts_a_frozen_flownet(tmp_path, monkeypatch):
    """Building is pure (a missing flownet.checkpoint is not touched); loading is its own call."""
    from vsr.errors import ConfigError
    from vsr.models.vsrnet import build_vsrnet, load_flownet_weights

    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("construction read a file"))
    cfg = {
        "frames": 3,
        "model": {"features": [4, 2]},
        "flownet": {"mode": "frozen", "checkpoint": str(tmp_path / "absent.pth.tar"), "width": 0.0625},
    }
    m = build_vsrnet(cfg, dense_conv1=False)
    assert m.flow_mode == "frozen" and m.dense_conv1 is False
    assert not any(p.requires_grad for p in m.flownet.parameters())
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="absent.pth.tar: FlowNet2-SD checkpoint not found"):
        load_flownet_weights(m, cfg)
    net = FlowNetSD(0.0625)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "ok.pth.tar")
    load_flownet_weights(m, {**cfg, "flownet": {**cfg["flownet"], "checkpoint": tmp_path / "ok.pth.tar"}})
    assert torch.equal(m.flownet.conv0[0].weight, net.conv0[0].weight)
    with pytest.raises(ConfigError, match="frozen needs flownet.checkpoint"):
        load_flownet_weights(m, {**cfg, "flownet": {**cfg["flownet"], "checkpoint": None}})


def test_bicubic_baseline_on_the_cpu_is_torchs_bicubic():
    from vsr.metrics import bicubic_upscale

    torch.manual_seed(0)
    lr = torch.rand(2, 3, 17, 23)
    for size in ((68, 92), (50, 70)):
        ref = torch.nn.functional.interpolate(lr, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        assert (bicubic_upscale(lr, size) - ref).abs().max() < 1e-5
