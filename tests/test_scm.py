"""The sCM maths, proved on models whose answers are known."""

import math

import pytest
import torch

from models.dynamics import DYNAMICS_PRESETS, DynamicsNet
from worldgen import scm
from worldgen.scm import SIGMA_D
from worldgen.train.ema import EMA


@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def point_mass_F(x0_star: torch.Tensor):
    """The exact denoiser of data that is always x0*: F(x_t / sigma_d, t) = (cos t x_t - x0*) / (sigma_d sin t).
    It is at once the ideal flow-matching teacher and the exact consistency model."""

    def F(x_scaled, t):
        x_t = x_scaled * SIGMA_D
        c, s = torch.cos(t).reshape(-1, 1, 1, 1), torch.sin(t).reshape(-1, 1, 1, 1)
        return (c * x_t - x0_star) / (SIGMA_D * s)

    return F


def tiny_net_F(seed=0):
    torch.manual_seed(seed)
    net = DynamicsNet(DYNAMICS_PRESETS["tiny"]).double()
    for p in net.parameters():  # leave the zero init: a network whose output depends on everything
        torch.nn.init.normal_(p, std=0.2)
    b = 3
    ctx = torch.randn(b, 4, 8, 16, 16)
    actions = torch.randint(0, 6, (b, 4))
    level = torch.rand(b)
    return (lambda x, t: net(x, t, ctx, actions, level)), b


def test_consistency_function_is_identity_at_t0():
    F, b = tiny_net_F()
    x = torch.randn(b, 8, 16, 16)
    assert torch.equal(scm.f_theta(F, x, torch.zeros(b)), x)


def test_point_mass_denoiser_has_zero_teacher_loss_and_samplers_recover_it():
    x0_star = torch.randn(1, 8, 16, 16) * SIGMA_D
    F = point_mass_F(x0_star)
    b = 4
    x0 = x0_star.expand(b, -1, -1, -1)
    z = torch.randn(b, 8, 16, 16) * SIGMA_D
    t = scm.sample_t(b, -0.8, 1.6)
    assert scm.flow_matching_loss(F, x0, z, t).max() < 1e-20
    for steps in (1, 4, 32):
        assert torch.allclose(scm.sample_ode(F, (b, 8, 16, 16), steps), x0, atol=1e-10)
    for steps in (1, 2):
        assert torch.allclose(scm.sample_consistency(F, (b, 8, 16, 16), steps), x0, atol=1e-10)


def test_jvp_total_derivative_matches_central_finite_difference():
    """cos(t) sin(t) dF/dt from the JVP equals a central difference of F along x_t(t) = cos t x0 + sin t z."""
    F, b = tiny_net_F()
    x0 = torch.randn(b, 8, 16, 16) * SIGMA_D
    z = torch.randn(b, 8, 16, 16) * SIGMA_D
    t = torch.tensor([0.3, 0.9, 1.4])
    cs = torch.cos(t) * torch.sin(t)
    dxdt = scm.velocity(x0, z, t)
    _, cs_dFdt = torch.func.jvp(F, (scm.noisy(x0, z, t) / SIGMA_D, t), (cs.reshape(-1, 1, 1, 1) * dxdt / SIGMA_D, cs))
    h = 1e-5
    fd = (F(scm.noisy(x0, z, t + h) / SIGMA_D, t + h) - F(scm.noisy(x0, z, t - h) / SIGMA_D, t - h)) / (2 * h)
    assert torch.allclose(cs_dFdt, cs.reshape(-1, 1, 1, 1) * fd, rtol=1e-5, atol=1e-8)


def test_tangent_equals_closed_form_for_a_linear_model():
    """F(y, t) = a y + sin(2t) u: dF/dt along the trajectory is a dx/dt / sigma_d + 2 cos(2t) u."""
    a, b = 0.7, 2
    u = torch.randn(1, 8, 16, 16)

    def F(y, t):
        return a * y + torch.sin(2 * t).reshape(-1, 1, 1, 1) * u

    x0 = torch.randn(b, 8, 16, 16) * SIGMA_D
    z = torch.randn(b, 8, 16, 16) * SIGMA_D
    t = torch.tensor([0.4, 1.2])
    x_t, dxdt = scm.noisy(x0, z, t), scm.velocity(x0, z, t)
    r = 0.6
    terms = scm.tangent(F, x_t, t, dxdt, warmup=r, norm="l2", c=0.1)
    c, s = torch.cos(t).reshape(-1, 1, 1, 1), torch.sin(t).reshape(-1, 1, 1, 1)
    dFdt = a * dxdt / SIGMA_D + 2 * torch.cos(2 * t).reshape(-1, 1, 1, 1) * u
    g = -(c**2) * (SIGMA_D * F(x_t / SIGMA_D, t) - dxdt) - r * c * s * (x_t + SIGMA_D * dFdt)
    norm = g.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    assert torch.allclose(terms.g, g / (norm + 0.1), atol=1e-12)
    assert torch.allclose(terms.g_norm, norm.flatten())
    rms = scm.tangent(F, x_t, t, dxdt, warmup=r, norm="rms", c=0.1)
    assert torch.allclose(rms.g, g / (g.flatten(1).pow(2).mean(1).sqrt().reshape(-1, 1, 1, 1) + 0.1), atol=1e-12)


def test_tangent_vanishes_for_the_exact_consistency_model():
    """With the true PF-ODE velocity (sCD with an exact teacher), f is constant along
    trajectories, so g = cos(t) df/dt = 0 at full warmup."""
    x0_star = torch.randn(1, 8, 16, 16) * SIGMA_D
    F = point_mass_F(x0_star)
    b = 3
    t = torch.tensor([0.2, 0.8, 1.5])
    x_t = scm.noisy(x0_star.expand(b, -1, -1, -1), torch.randn(b, 8, 16, 16) * SIGMA_D, t)
    dxdt = SIGMA_D * F(x_t / SIGMA_D, t)
    terms = scm.tangent(F, x_t, t, dxdt, warmup=1.0)
    assert terms.g_norm.max() < 1e-10


def test_scm_loss_is_the_adaptive_weighted_regression():
    F_theta = torch.randn(2, 8, 16, 16)
    terms = scm.TangentTerms(F_minus=torch.zeros_like(F_theta), g=torch.zeros_like(F_theta), g_norm=torch.ones(2))
    logvar = torch.tensor([0.0, 1.0])
    loss = scm.scm_loss(F_theta, terms, logvar)
    expected = F_theta.pow(2).flatten(1).mean(1) * torch.exp(-logvar) + logvar
    assert torch.allclose(loss, expected)


def test_time_proposal_and_schedules():
    g = torch.Generator().manual_seed(0)
    t = scm.sample_t(100_000, -0.8, 1.6, generator=g)
    assert 0 < t.min() and t.max() <= scm.T_MAX
    sigma = SIGMA_D * torch.tan(t)
    assert abs(torch.log(sigma).mean().item() - (-0.8)) < 0.02
    times = scm.ode_times(8)
    assert times[0] == pytest.approx(scm.T_MAX, abs=1e-6) and times[-1] == 0 and (times.diff() < 0).all()
    assert scm.consistency_times(1) == [scm.T_MAX]
    assert scm.consistency_times(2) == [scm.T_MAX, pytest.approx(scm.T_MID)]
    assert scm.consistency_times(2, 1.4) == [scm.T_MAX, pytest.approx(1.4)]
    assert scm.T_MAX == pytest.approx(math.atan(160))
    for bad in (0.0, scm.T_MAX, float("nan")):
        with pytest.raises(ValueError, match="second step's time must lie in"):
            scm.consistency_times(2, bad)


def test_the_second_step_starts_where_asked():
    seen = []

    def F(x, t):  # a stand-in denoiser: records each call's time
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    g = torch.Generator().manual_seed(0)
    for mid in (0.8, 1.4):
        scm.sample_consistency(F, (2, 4, 8, 8), 2, generator=g, mid=mid)
    assert seen == [pytest.approx(scm.T_MAX), pytest.approx(0.8), pytest.approx(scm.T_MAX), pytest.approx(1.4)]


@pytest.mark.parametrize("sampler,steps", [("ode", 8), ("consistency", 1), ("consistency", 2)])
def test_samplers_are_deterministic_under_a_seed(sampler, steps):
    F, b = tiny_net_F()
    sample = scm.sample_ode if sampler == "ode" else scm.sample_consistency
    runs = [sample(F, (b, 8, 16, 16), steps, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert torch.isfinite(runs[0]).all()


def test_ema_tracks_weights():
    net = torch.nn.Linear(2, 2)
    ema = EMA(net, decay=0.5)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.shadow["weight"], before + 0.5)


def test_adaptive_weight_starts_flat_and_learns():
    t = torch.rand(16)
    assert torch.equal(scm.AdaptiveWeight(init=-3.0)(t), torch.full((16,), -3.0))
    w = scm.AdaptiveWeight()
    assert torch.equal(w(t), torch.zeros(16))
    opt = torch.optim.Adam(w.parameters(), lr=0.05)
    sq = torch.full((16,), 4.0)  # optimum of exp(-w) sq + w is w = log(sq)
    for _ in range(300):
        loss = (torch.exp(-w(t)) * sq + w(t)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(w(t), torch.log(sq), atol=0.05)
