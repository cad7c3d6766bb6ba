"""Whole-model properties: Table 5 sizes, causal LM loss, HF save/load, generate, lm-eval HFLM."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

torch.set_num_threads(1)


def build(**kw) -> PathMoEForCausalLM:
    base = dict(vocab_size=64, d_model=32, n_layers=4, n_heads=4, n_kv_heads=2, n_experts=8, top_k=2,
                expert_hidden=16, max_seq_len=64)
    torch.manual_seed(0)
    return PathMoEForCausalLM(PathMoEConfig(**{**base, **kw})).eval()


PAPER_09B = dict()  # the config defaults are the paper's 0.9B
PAPER_16B = dict(n_layers=28, d_model=2048, n_experts=64, top_k=6, expert_hidden=2112, n_heads=16, n_kv_heads=16,
                 vocab_size=50304)


@pytest.mark.parametrize("kw, total, active", [(PAPER_09B, 0.93e9, 0.366e9), (PAPER_16B, 16.18e9, 2.13e9)])
def test_table5_parameter_counts_on_meta_device(kw, total, active):
    with torch.device("meta"):
        model = PathMoEForCausalLM(PathMoEConfig(**kw))
    counts = model.parameter_counts()
    assert abs(counts["total"] / total - 1) < 0.05 and abs(counts["active"] / active - 1) < 0.05
    assert counts["total"] == sum(p.numel() for p in model.parameters())


def test_parameter_counts_closed_form_and_shared_router_counted_once():
    model = build(router="linear", block_size=4)
    d, v, e, k, h, n = 32, 64, 8, 2, 16, 4
    attn = d * d * 2 + 2 * d * (2 * 8)  # q, o + k, v with 2 kv heads of dim 8
    dense = 2 * v * d + n * (attn + 2 * d) + d + e * d  # embeddings, layers, final norm, ONE router
    assert model.parameter_counts() == {"total": dense + n * e * 2 * d * h, "active": dense + n * k * 2 * d * h}


def test_lm_loss_is_shifted_cross_entropy_ignoring_minus_100():
    model = build()
    tokens = torch.randint(0, 64, (2, 9))
    labels = tokens.clone()
    labels[0, 3:5] = -100
    out = model(tokens, labels=labels)
    ref = F.cross_entropy(out.logits[:, :-1].reshape(-1, 64), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(out.lm_loss, ref) and torch.allclose(out.loss, out.lm_loss + out.aux_loss)
    assert model(tokens).loss is None and model(tokens).routing is None


def test_attention_is_causal_and_padding_mask_matches_unpadded():
    model = build()
    a = torch.randint(0, 64, (1, 10))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % 64
    assert torch.allclose(model(a).logits[:, :7], model(b).logits[:, :7], atol=1e-5)
    mask = torch.ones(1, 10, dtype=torch.long)
    mask[0, 8:] = 0  # right padding does not change the real tokens' logits
    assert torch.allclose(model(a, attention_mask=mask).logits[:, :8], model(a).logits[:, :8], atol=1e-5)


@pytest.mark.parametrize("router, block", [("linear", 4), ("xmoe", 2), ("recurrent", 1), ("lowrank", 1), ("mono", 2)])
def test_save_load_round_trip_identical_logits_and_sharing(tmp_path, router, block):
    model = build(router=router, block_size=block, n_layers=8)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, PathMoEForCausalLM)
    tokens = torch.randint(0, 64, (2, 12))
    assert torch.equal(model(tokens).logits, loaded(tokens).logits)
    assert len(list(loaded.router_stack.parameters())) == len(list(model.router_stack.parameters()))
    if router == "linear":  # PathB4 on 8 layers: still exactly 2 router tensors after reload
        assert len(list(loaded.router_stack.parameters())) == 2


def test_greedy_generate_matches_argmax_loop():
    model = build()
    prompt = torch.randint(0, 64, (1, 5))
    out = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=0)
    seq = prompt
    for _ in range(4):
        nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(out, seq)


def _count_forward_tokens(model: PathMoEForCausalLM) -> tuple[list[int], object]:
    """Record the sequence length of every forward call (a KV cache feeds one token per step)."""
    seen: list[int] = []

    def hook(module, args, kwargs, out):  # noqa: ANN001, ANN202
        seen.append((kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).shape[1])

    return seen, model.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("router, block", [("linear", 4), ("recurrent", 1), ("mono", 2), ("xmoe", 2), ("lowrank", 1)])
def test_cached_and_uncached_greedy_decoding_give_identical_tokens(router, block):
    """generate() with transformers' DynamicCache decodes the same tokens as re-running the prefix,
    on a left-padded batch, and really uses the cache: after the prompt each step feeds one token."""
    from transformers import DynamicCache

    model = build(router=router, block_size=block)
    prompt = torch.randint(1, 64, (3, 7))
    mask = torch.ones_like(prompt)
    mask[0, :3] = 0  # left padding, as lm-eval's generate_until pads
    mask[1, :1] = 0
    seen, handle = _count_forward_tokens(model)
    cached = model.generate(prompt, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0,
                            return_dict_in_generate=True)
    steps_cached = list(seen)
    seen.clear()
    uncached = model.generate(prompt, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0,
                              use_cache=False)
    handle.remove()
    assert torch.equal(cached.sequences, uncached)
    assert steps_cached == [7] + [1] * 9 and seen == list(range(7, 17))
    assert isinstance(cached.past_key_values, DynamicCache) and cached.past_key_values.get_seq_length() == 16
    kv = cached.past_key_values.layers[0].keys  # K kept at n_kv_heads, not copied to all heads
    assert kv.shape == (3, 2, 16, 8)


def test_chunked_prefill_through_the_cache_matches_the_full_forward():
    """A prompt fed in two chunks through the cache (second chunk: several tokens after cached ones,
    with padding) gives the logits of one full forward."""
    model = build()
    tokens = torch.randint(1, 64, (2, 12))
    mask = torch.ones_like(tokens)
    mask[0, :4] = 0
    full = model(tokens, attention_mask=mask).logits
    first = model(tokens[:, :5], attention_mask=mask[:, :5], use_cache=True)
    second = model(tokens[:, 5:], attention_mask=mask, cache=first.cache)
    assert second.cache.get_seq_length() == 12
    real = mask.bool()
    assert torch.allclose(torch.cat([first.logits, second.logits], 1)[real], full[real], atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_enable_gqa_equals_the_repeat_interleave_fallback(masked):
    """enable_gqa=True and the explicit K/V copy (torch without enable_gqa) give the same attention."""
    from pathmoe.model.layers import grouped_query_attention, sdpa_has_gqa

    assert sdpa_has_gqa()  # torch >= 2.5 (this environment's pin): the copy-free path is the one used
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 8, 6, 16), torch.randn(2, 2, 6, 16), torch.randn(2, 2, 6, 16)
    mask = None
    if masked:
        mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
        mask[0, :, :, :2] = False
        mask[0, :, :2, :2] = torch.eye(2, dtype=torch.bool)
    native = grouped_query_attention(q, k, v, mask, use_gqa=True)
    copied = grouped_query_attention(q, k, v, mask, use_gqa=False)
    assert torch.allclose(native, copied, atol=1e-6)
    # and both are the textbook definition: head h attends with K/V head h // (H / KV)
    kk, vv = k.repeat_interleave(4, 1), v.repeat_interleave(4, 1)
    allowed = mask if masked else torch.ones(6, 6, dtype=torch.bool).tril()
    scores = (q @ kk.transpose(-1, -2) / 4.0).masked_fill(~allowed, float("-inf"))
    assert torch.allclose(native, scores.softmax(-1) @ vv, atol=1e-5)


def test_activation_checkpointing_gives_identical_gradients():
    model = build(router="recurrent").train()
    tokens = torch.randint(0, 64, (2, 8))
    model(tokens, labels=tokens).loss.backward()
    ref = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_activation_checkpointing(True)
    model(tokens, labels=tokens).loss.backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(ref, model.parameters()))


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<eos>", "<unk>", "the", "cat", "sat", "on", "mat", "dog", "ran", "a"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", pad_token="<eos>")


def test_lm_eval_hflm_loglikelihood_matches_model():
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model = build(vocab_size=16)
    tok = _tiny_tokenizer()
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=2)
    pairs = [("the cat sat on", " the mat"), ("a dog", " ran"), ("the dog sat", " on a mat")]
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    results = lm.loglikelihood(reqs)
    for (ctx, cont), (ll, _greedy) in zip(pairs, results):
        c, t = tok(ctx)["input_ids"], tok(cont)["input_ids"]
        ids = torch.tensor([c + t])
        logp = model(ids).logits.log_softmax(-1)[0]
        expect = sum(logp[len(c) - 1 + j, t[j]].item() for j in range(len(t)))
        assert math.isclose(ll, expect, rel_tol=1e-4, abs_tol=1e-4)


def test_deepspeed_checkpoint_loads_as_dropless_with_identical_weights(tmp_path):
    model = build(dispatch="deepspeed")
    if not torch.distributed.is_initialized():  # (test_dispatch may have initialised it in this process)
        with pytest.raises(RuntimeError, match="dispatch='dropless'"):
            model(torch.randint(0, 64, (1, 4)))  # one clear line, not a DeepSpeed traceback
    model.save_pretrained(tmp_path)  # the dropless layout: every expert of a layer in one tensor
    assert json.loads((tmp_path / "config.json").read_text())["dispatch"] == "dropless"
    loaded = PathMoEForCausalLM.from_pretrained(tmp_path)
    assert loaded.config.dispatch == "dropless"
    from pathmoe.model.deepspeed_moe import dropless_state_dict

    ref = dropless_state_dict(model)
    assert loaded.state_dict().keys() == ref.keys()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())


def test_light_model_rules_match_the_config_class():
    """PathMoEConfig inherits model_rules.ModelFields: no transformers field shadows a model default."""
    from pathmoe.model import PathMoEConfig
    from pathmoe.model_rules import MODEL_DEFAULTS

    cfg = PathMoEConfig()
    assert {k: getattr(cfg, k) for k in MODEL_DEFAULTS} == MODEL_DEFAULTS
