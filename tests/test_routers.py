"""Each router's defining property, the routing order, the aux losses and config validation."""

from __future__ import annotations

import pytest
import torch

from pathmoe.model import (PathMoEConfig, PathMoEForCausalLM, RoutingHook, balance_stats, load_balancing_loss,
                           reduce_load_balancing)

torch.set_num_threads(1)


def tiny(**kw) -> PathMoEConfig:
    base = dict(vocab_size=64, d_model=32, n_layers=8, n_heads=4, n_kv_heads=2, n_experts=8, top_k=2,
                expert_hidden=16, max_seq_len=64)
    return PathMoEConfig(**{**base, **kw})


def build(**kw) -> PathMoEForCausalLM:
    torch.manual_seed(0)
    return PathMoEForCausalLM(tiny(**kw))


def router_params(model: PathMoEForCausalLM) -> list[torch.nn.Parameter]:
    return list(model.router_stack.parameters())


TOKENS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))


def test_pathb4_has_two_shared_router_tensors_fed_by_all_four_layers():
    model = build(router="linear", block_size=4, lbl_coef=0.0)
    params = router_params(model)
    assert len(params) == 2 and all(p.shape == (8, 32) for p in params)
    calls = []

    def record(module, inp, out):
        out.retain_grad()
        calls.append((inp[0].detach(), out))

    model.router_stack.routers[0].register_forward_hook(record)
    model(TOKENS, labels=TOKENS).loss.backward()
    assert len(calls) == 4  # layers 0..3 all call the one block-0 router
    direct = [logits.grad.T @ x for x, logits in calls]  # each layer's own contribution dL/dW
    assert all(d.abs().sum() > 0 for d in direct)
    assert torch.allclose(sum(direct), params[0].grad, atol=1e-6)  # the shared grad is exactly their sum


def test_independent_has_one_distinct_router_per_layer():
    model = build(router="linear", block_size=1)
    params = router_params(model)
    assert len(params) == 8 and len({p.data_ptr() for p in params}) == 8


def test_pathmoe_full_sharing_is_one_tensor_and_b4x_is_two_xmoe_routers():
    assert len(router_params(build(router="linear", block_size=8))) == 1
    model = build(router="xmoe", block_size=4)
    assert len(model.router_stack.routers) == 2  # proj, expert_emb, log_temperature each once per block
    assert len(router_params(model)) == 6


def test_mono_layers_in_a_block_pick_identical_experts_and_hook_runs_once_per_block():
    calls = []

    class Spy(RoutingHook):
        def select(self, layer, probs, k):
            calls.append(layer)
            return None

    model = build(router="mono", block_size=4)
    out = model(TOKENS, output_routing=True, routing_hook=Spy())
    ids = [r[0] for r in out.routing]
    for block in (ids[:4], ids[4:]):
        assert all(torch.equal(block[0], other) for other in block[1:])
    assert not torch.equal(ids[0], ids[4])
    assert calls == [0, 4]
    assert len(router_params(model)) == 2


def test_random_router_is_frozen_and_unchanged_by_an_optimizer_step():
    model = build(router="random")
    params = router_params(model)
    assert len(params) == 8 and not any(p.requires_grad for p in params)
    before = [p.clone() for p in params]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    model(TOKENS, labels=TOKENS).loss.backward()
    opt.step()
    assert all(p.grad is None for p in params)
    assert all(torch.equal(a, b) for a, b in zip(before, params))
    assert model.embed.weight.grad is not None  # the rest of the model did train


def test_lowrank_parameter_count_and_per_layer_weights():
    cfg = tiny(router="lowrank", lowrank_rank=3)
    model = build(router="lowrank", lowrank_rank=3)
    e, d, r, n = cfg.n_experts, cfg.d_model, cfg.lowrank_rank, cfg.n_layers
    assert sum(p.numel() for p in router_params(model)) == e * d + n * r * (e + d)
    lr = model.router_stack.lowrank
    assert torch.equal(lr.weight(0), lr.weight(5))  # A_l = 0 at init: all layers start at the base
    with torch.no_grad():
        lr.a.normal_()
    x = torch.randn(5, d)
    assert torch.allclose(lr(2, x), x @ lr.weight(2).T, atol=1e-5)
    assert not torch.allclose(lr.weight(0), lr.weight(5))


def test_recurrent_router_is_one_gru_cell_whose_state_changes_layer_to_layer():
    model = build(router="recurrent", recurrent_hidden=24)
    grus = [m for m in model.modules() if isinstance(m, torch.nn.GRUCell)]
    assert len(grus) == 1
    seen = []
    grus[0].register_forward_hook(lambda mod, inp, out: seen.append((inp[1].clone(), out.clone())))
    model(TOKENS)
    assert len(seen) == 8
    assert torch.count_nonzero(seen[0][0]) == 0  # s_0 = 0
    for (_, prev_out), (next_in, _) in zip(seen, seen[1:]):
        assert torch.equal(prev_out, next_in)  # state carried to the next layer
    assert all(not torch.allclose(a[1], b[1]) for a, b in zip(seen, seen[1:]))
    stack = model.router_stack.recurrent
    assert len(stack.w1) == len(stack.w2) == 8 and stack.w2[0].weight.shape == (8, 24)


def test_xmoe_logits_bounded_by_inverse_temperature():
    model = build(router="xmoe", xmoe_dim=4)
    router = model.router_stack.routers[0]
    with torch.no_grad():
        router.log_temperature.fill_(torch.tensor(0.25).log())
    x = torch.randn(200, 32) * 1e3
    logits, _ = model.router_stack.logits(0, x)
    assert logits.abs().max() <= 4.0 + 1e-4
    # a token whose projection points exactly at expert 3 reaches the bound
    with torch.no_grad():
        router.proj.weight.zero_()
        router.proj.weight[:, 0] = router.expert_emb[3]
    x1 = torch.zeros(1, 32)
    x1[0, 0] = 1.0
    assert torch.allclose(model.router_stack.logits(0, x1)[0][0, 3], torch.tensor(4.0), atol=1e-4)
    assert router.log_temperature.requires_grad
    assert all(p.dim() >= 1 for p in model.parameters())  # DeepSpeed's broadcast cannot view 0-dim params


def test_routing_order_softmax_topk_renormalised_and_sorted():
    model = build(router="linear")
    out = model(TOKENS, output_routing=True)
    for ids, w, probs in out.routing:
        assert probs.dtype == w.dtype == torch.float32 and ids.dtype == torch.long
        assert torch.allclose(probs.sum(-1), torch.ones(len(probs)))
        top = probs.topk(2, dim=-1)
        assert torch.equal(ids, top.indices)
        assert torch.allclose(w, top.values / top.values.sum(-1, keepdim=True))
        assert bool((w[:, 0] >= w[:, 1]).all())


def test_load_balancing_loss_closed_forms_and_sum_over_deciding_layers():
    uniform = torch.full((16, 4), 0.25)
    balanced_ids = torch.arange(16).remainder(4)[:, None]
    assert torch.isclose(load_balancing_loss(uniform, balanced_ids), torch.tensor(1.0))
    collapsed = torch.zeros(16, 4)
    collapsed[:, 0] = 1.0
    assert torch.isclose(load_balancing_loss(collapsed, torch.zeros(16, 1, dtype=torch.long)), torch.tensor(4.0))
    for router, block, deciding in (("linear", 1, 8), ("mono", 4, 2)):
        model = build(router=router, block_size=block, lbl_coef=0.5, lbl_reduction="sum")
        out = model(TOKENS, labels=TOKENS, output_routing=True)
        layers = [out.routing[i] for i in range(0, 8, 8 // deciding)]
        expect = 0.5 * sum(load_balancing_loss(p, i) for i, _, p in layers)
        assert torch.allclose(out.aux_loss, expect) and torch.allclose(out.loss, out.lm_loss + out.aux_loss)
    assert build(router="linear", lbl_coef=0.0)(TOKENS).aux_loss == 0


def qiu_load_balancing_loss(gate_logits: tuple[torch.Tensor, ...], num_experts: int, top_k: int) -> torch.Tensor:
    """The balance loss as Qiu et al. (2024)'s code computes it (HF Mixtral's function of that time):
    the layers' router logits concatenated, a [k, E] slot mask averaged over tokens, times E."""
    routing_weights = torch.cat(gate_logits, dim=0).softmax(-1)
    _, selected = routing_weights.topk(top_k, dim=-1)
    tokens_per_expert = torch.nn.functional.one_hot(selected, num_experts).float().mean(0)  # [k, E]
    return torch.sum(tokens_per_expert * routing_weights.mean(0).unsqueeze(0)) * num_experts


def test_lbl_reduction_mean_is_qiu_et_al_form_and_the_default():
    assert tiny().lbl_reduction == "mean"
    model = build(router="linear", lbl_coef=0.5)  # default reduction
    logits = []
    orig = model.router_stack.logits
    model.router_stack.logits = lambda *a: (logits.append(orig(*a)[0]) or (logits[-1], None))
    out = model(TOKENS)
    assert torch.allclose(out.aux_loss, 0.5 * qiu_load_balancing_loss(tuple(logits), 8, 2))
    # scale: perfectly balanced layers give k under `mean` and L under `sum` (L/k = 4x here)
    probs = torch.full((16, 8), 1 / 8)
    ids = torch.stack([torch.arange(16).remainder(8), (torch.arange(16) + 1).remainder(8)], -1)
    stats = [balance_stats(probs, ids)] * 8
    assert torch.isclose(reduce_load_balancing(stats, "mean", 2), torch.tensor(2.0))
    assert torch.isclose(reduce_load_balancing(stats, "sum", 2), torch.tensor(8.0))


def test_z_loss_adds_mean_squared_logsumexp():
    model = build(router="linear", lbl_coef=0.0, z_loss_coef=0.1)
    captured = []
    stack = model.router_stack
    orig = stack.logits
    stack.logits = lambda *a: (captured.append(orig(*a)[0]) or (captured[-1], None))
    out = model(TOKENS)
    expect = 0.1 * sum(torch.logsumexp(l, -1).pow(2).mean() for l in captured)
    assert torch.allclose(out.aux_loss, expect)


def test_routing_hook_select_and_remap_are_honoured():
    class Force(RoutingHook):
        def begin(self, num_tokens):
            self.n = num_tokens

        def select(self, layer, probs, k):
            ids = torch.tensor([[5, 1]]).expand(len(probs), 2)
            w = probs.gather(1, ids)
            return ids, w / w.sum(-1, keepdim=True)

        def remap(self, layer, ids, w):
            return (ids + layer) % 8, w

    model = build(router="linear")
    hook = Force()
    out = model(TOKENS, output_routing=True, routing_hook=hook)
    assert hook.n == TOKENS.numel()
    for layer, (ids, w, probs) in enumerate(out.routing):
        pair = torch.stack([probs[:, 5], probs[:, 1]], -1)
        pair = pair / pair.sum(-1, keepdim=True)
        swap = pair[:, 1] > pair[:, 0]  # columns re-sorted by weight
        first = torch.where(swap, 1, 5)
        assert torch.equal(ids[:, 0], (first + layer) % 8)
        assert torch.allclose(w[:, 0], pair.max(-1).values)
        assert w.requires_grad


@pytest.mark.parametrize("kw, key", [
    (dict(top_k=9), "top_k"),
    (dict(n_heads=5), "n_heads"),
    (dict(n_kv_heads=3), "n_kv_heads"),
    (dict(router="switch"), "router"),
    (dict(block_size=0), "block_size"),
    (dict(block_size=9), "block_size"),
    (dict(router="random", block_size=2), "block_size"),
    (dict(router="recurrent", block_size=2), "block_size"),
    (dict(router="lowrank", block_size=2), "block_size"),
    (dict(d_model=0), "d_model"),
    (dict(expert_hidden=-1), "expert_hidden"),
    (dict(dispatch="megablocks"), "dispatch"),
    (dict(expert_activation="relu"), "expert_activation"),
    (dict(lbl_coef=-1.0), "lbl_coef"),
    (dict(lbl_reduction="max"), "lbl_reduction"),
])
def test_bad_configs_fail_with_one_line_naming_the_key(kw, key):
    with pytest.raises(ValueError) as err:
        tiny(**kw)
    msg = str(err.value)
    assert "\n" not in msg and f"{key}=" in msg and "allowed" in msg
