"""Encoder–decoders (T5, BART, Marian) on the decoder's token MDP: rows, losses against a state-by-state brute
force, the chunked path, every parameter group training, rollouts, saving, resuming and LoRA."""

from __future__ import annotations

import math
import os

import pytest
import torch
from test_losses import EOS_WEIGHT, chi2_mean
from tiny_models import SEQ2SEQ_CONFIGS, demos, tiny_seq2seq, tokenizer

from llm_irl import IQConfig, IQTrainer, SFTConfig, SFTTrainer
from llm_irl.batching import model_inputs, pad_batch
from llm_irl.data import encode_rows, read_rows
from llm_irl.errors import DataError
from llm_irl.seq2seq import decoder_prefix

pytestmark = pytest.mark.usefixtures("one_thread")
TOK = tokenizer()
EOS, PAD, BOS = TOK.eos_token_id, TOK.pad_token_id, TOK.bos_token_id
ARCHS = sorted(SEQ2SEQ_CONFIGS)


def _rows(model, rows, **kw):
    return encode_rows(read_rows(rows), TOK, max_length=kw.pop("max_length", 32), decoder_prefix=decoder_prefix(model),
                       **kw)


# ------------------------------------------------------------------ rows


def test_prompt_goes_to_the_encoder_and_completion_to_the_decoder_labels():
    row = {"prompt": "topic5 loba", "completion": "kapi karu kata"}
    prompt, completion = TOK("topic5 loba")["input_ids"], TOK("kapi karu kata")["input_ids"]
    t5 = _rows(tiny_seq2seq("t5"), [row])[0]
    assert t5 == {"input_ids": prompt, "decoder_input_ids": [PAD, *completion, EOS],
                  "labels": [-100, *completion, EOS]}
    # BART's decoder starts with EOS then a forced BOS: both are context, the state generate starts from
    bart = _rows(tiny_seq2seq("bart"), [row])[0]
    assert bart["decoder_input_ids"] == [EOS, BOS, *completion, EOS]
    assert bart["labels"] == [-100, -100, *completion, EOS]


def test_truncation_bounds_encoder_and_decoder_tokens_together_and_cuts_the_eos():
    row = {"prompt": "topic5 loba", "completion": "kapi karu kata"}
    cut = _rows(tiny_seq2seq("t5"), [row], max_length=4)[0]
    assert len(cut["input_ids"]) + len(cut["labels"]) - 1 == 4  # the decoder's start token is no row token
    assert EOS not in cut["labels"]  # truncated, not terminal


def test_rows_an_encoder_decoder_cannot_use_are_refused_with_their_place():
    model = tiny_seq2seq("t5")
    with pytest.raises(DataError, match="row 0: the row has no prompt for the encoder"):
        _rows(model, [{"text": "kapi karu"}])
    chat = [{"messages": [{"role": "user", "content": "topic5"}, {"role": "assistant", "content": "kapi"}]}]
    with pytest.raises(DataError, match="row 0: .*no chat template"):
        _rows(model, chat)


# ------------------------------------------------------------------ losses against a state-by-state brute force


# prompts of 2 to 6 words, so the encoder's padding is masked or not (the Markov expert's prompts are all 2 words)
VARIED = [{"prompt": d["prompt"] + " kapi" * i, "completion": d["completion"]} for i, d in enumerate(demos(5))]


def _trainer(arch, tmp_path, cls=IQTrainer, config=IQConfig, n=16, rows=None, **kw):
    args = config(**{"output_dir": str(tmp_path), "max_steps": 4, "per_device_train_batch_size": 8,
                     "learning_rate": 1e-2, "logging_steps": 1, "save_strategy": "no", "max_length": 24,
                     "disable_tqdm": True, "report_to": [], **kw})
    return cls(model=tiny_seq2seq(arch), args=args, train_dataset=rows or demos(n),
               processing_class=tokenizer())


def _state_logits(model, prompt, decoder_ids):
    """Q(s, ·) of one state, (encoder input, decoder prefix), from a forward pass on that state alone."""
    out = model(input_ids=torch.tensor([prompt]), decoder_input_ids=torch.tensor([decoder_ids]))
    return out.logits[0, -1].double()


def brute_force_iq(model, demos_, gamma, td_weight, terminal_td, centre):
    """The IQ objective one action at a time, from the demonstrations' text: the encoder reads the prompt, the
    decoder starts as generate starts it (start token, then a forced BOS) and each action is the next completion
    token, EOS last; each state's logits from its own forward pass, V by an explicit sum."""
    gen = model.generation_config
    start = [gen.decoder_start_token_id] + ([gen.forced_bos_token_id] if gen.forced_bos_token_id is not None else [])

    def v_of(logits):
        return math.log(sum(math.exp(float(x)) for x in logits))

    nlls, tds = [], []
    for demo in demos_:
        prompt = TOK(demo["prompt"])["input_ids"]
        actions = TOK(demo["completion"])["input_ids"] + [EOS]
        for t, a in enumerate(actions):
            q_s = _state_logits(model, prompt, start + actions[:t])
            v = v_of(q_s)
            v_next = 0.0 if a == EOS else v_of(_state_logits(model, prompt, start + actions[: t + 1]))
            nlls.append(v - float(q_s[a]))
            tds.append((EOS_WEIGHT[terminal_td](gamma) if a == EOS else 1.0, float(q_s[a]) - gamma * v_next, a == EOS))
    return sum(nlls) / len(nlls) + td_weight * chi2_mean(tds, terminal_td, centre)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("chunk", [None, 7])
@pytest.mark.parametrize("terminal_td", ["include", "centred"])
def test_iq_loss_on_the_decoder_mdp_equals_brute_force(arch, chunk, terminal_td, tmp_path):
    """The padded batch's loss, full logits or chunked, equals the definition evaluated state by state."""
    trainer = _trainer(arch, tmp_path, rows=VARIED, loss_chunk_size=chunk, terminal_td=terminal_td, gamma=0.9,
                       td_weight=0.5, value_param="logits")
    model = trainer.model.eval()
    trainer.reward_centre.value = -3.0  # centred: the χ² term's centre, the previous step's mean reward
    with torch.no_grad():
        got = trainer.compute_loss(model, pad_batch([trainer.train_dataset[i] for i in range(5)], PAD))
        want = brute_force_iq(model, VARIED, 0.9, 0.5, terminal_td, -3.0)
    assert float(got) == pytest.approx(want, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("arch", ["t5", "bart"])
@pytest.mark.parametrize("kind,extra", [("sft", {}), ("gem", {"loss_type": "gem"}), ("iq", {"value_param": "head"}),
                                        ("iq", {"value_param": "offset"})])
def test_chunked_equals_full_logits_in_loss_and_gradients(arch, kind, extra, tmp_path):
    cls, config = (IQTrainer, IQConfig) if kind == "iq" else (SFTTrainer, SFTConfig)
    results = []
    for chunk in (None, 5):
        trainer = _trainer(arch, tmp_path, cls, config, loss_chunk_size=chunk, **extra)
        model = trainer.model.eval()
        batch = pad_batch([trainer.train_dataset[i] for i in range(6)], PAD)
        if kind == "iq":  # a non-zero state head, so its path through the loss is exercised
            torch.nn.init.normal_(model.state_head.weight, std=0.1)
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (full, full_grads), (chunked, chunked_grads) = results
    assert torch.allclose(full, chunked, atol=1e-5)
    assert full_grads.keys() == chunked_grads.keys()
    for name, grad in full_grads.items():
        assert torch.allclose(grad, chunked_grads[name], atol=1e-5), name


def test_chunked_path_takes_the_decoder_head_without_full_logits(tmp_path):
    """The chunked path really is taken (not a silent fall-back): the head's input is the decoder's, cut to one position."""
    from llm_irl.lm_head import lm_head_hidden

    for arch in ARCHS:
        model = tiny_seq2seq(arch).eval()
        batch = pad_batch(_rows(model, demos(3)), PAD)
        head = lm_head_hidden(model, **model_inputs(batch))
        assert head is not None, arch
        assert head.hidden.shape[:2] == batch["decoder_input_ids"].shape
        logits = model(**model_inputs(batch)).logits
        assert torch.allclose(torch.nn.functional.linear(head.hidden, head.weight, head.bias), logits, atol=1e-5)


# ------------------------------------------------------------------ training


def _groups(model):
    """Parameter names by group: the encoder, the decoder, and the output layer (tied or not)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {"encoder": [n for n in names if ".encoder." in n or n.startswith("encoder.")],
            "decoder": [n for n in names if ".decoder." in n or n.startswith("decoder.")],
            "head": [n for n in names if "shared" in n or "lm_head" in n or "embed_tokens" in n]}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["sft", "iq"])
def test_every_parameter_group_moves(arch, kind, tmp_path):
    cls, config = (IQTrainer, IQConfig) if kind == "iq" else (SFTTrainer, SFTConfig)
    trainer = _trainer(arch, tmp_path, cls, config, n=32)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    for group, names in _groups(trainer.model).items():
        assert names and set(names) <= moved, (group, sorted(set(names) - moved))
    assert {n for n, p in trainer.model.named_parameters() if p.requires_grad} <= moved


# ------------------------------------------------------------------ sampling and online IQ


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_rollout_logprobs_are_the_teacher_forced_sampling_distribution(arch):
    """Prompts of several lengths go to the encoder (right-padded), the decoder generates from its prefix, and
    each sampled token's log-prob is that of softmax(logits/T) in a teacher-forced pass over the training batch."""
    from llm_irl.rollout import generate_rollouts

    model = tiny_seq2seq(arch)
    prompts = [TOK(row["prompt"])["input_ids"] for row in VARIED]
    r = generate_rollouts(model, TOK, prompts, max_new_tokens=6, num_samples=2, temperature=1.3, seed=0)
    assert r.prompt_ids[::2] == prompts and r.decoder_prefix == decoder_prefix(model)
    assert all(len(c) <= 6 and (c[-1] == EOS) == ended for c, ended in zip(r.completion_ids, r.terminated))
    batch = r.to_batch(PAD)
    with torch.no_grad():
        logits = model.eval()(**model_inputs(batch)).logits[:, :-1] / 1.3
    taken = batch["labels"][:, 1:]
    want = torch.log_softmax(logits, -1).gather(-1, taken.clamp_min(0)[..., None]).squeeze(-1) * (taken != -100)
    assert torch.allclose(batch["old_logprobs"][:, 1:], want, atol=1e-4)


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_online_iq_trains_on_its_own_samples(arch, tmp_path):
    trainer = _trainer(arch, tmp_path, n=32, policy_mix=0.5, max_new_tokens=6)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert all(not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters())
    assert any("sample_len" in h for h in trainer.state.log_history)


# ------------------------------------------------------------------ saving, resuming, LoRA


def test_save_load_and_resume_an_iq_t5_with_a_value_head(tmp_path):
    """`load_model` picks the seq2seq class from the saved config and gives the value head back; a run resumed
    from its checkpoint ends where the uninterrupted one does."""
    from llm_irl.modeling import load_model

    kw = dict(value_param="head", save_strategy="steps", save_steps=2, seed=3)
    whole = _trainer("t5", tmp_path / "whole", n=32, **kw)
    whole.train()
    whole.save_model()
    loaded = load_model(str(tmp_path / "whole"))
    assert type(loaded).__name__ == "T5ForConditionalGeneration" and hasattr(loaded, "state_head")
    want = dict(whole.model.named_parameters())
    assert all(torch.equal(p, want[n]) for n, p in loaded.named_parameters())

    resumed = _trainer("t5", tmp_path / "resumed", n=32, **kw)
    resumed.train(resume_from_checkpoint=str(tmp_path / "whole" / "checkpoint-2"))
    assert all(torch.allclose(p, want[n], atol=1e-6) for n, p in resumed.model.named_parameters())


@pytest.mark.parametrize("arch,targets", [("t5", {"q", "v"}), ("bart", {"q_proj", "v_proj"})])
def test_lora_adapts_peft_default_modules_and_reloads(arch, targets, tmp_path):
    from peft import LoraConfig

    from llm_irl.modeling import load_model

    args = SFTConfig(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-2,
                     save_strategy="no", max_length=24, disable_tqdm=True, report_to=[])
    model = tiny_seq2seq(arch)
    model.save_pretrained(tmp_path / "base")  # the adapters' base, as from_pretrained finds it
    trainer = SFTTrainer(model=load_model(str(tmp_path / "base")), args=args, train_dataset=demos(32),
                         processing_class=TOK, peft_config=LoraConfig(r=4, lora_alpha=8))
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert type(trainer.model).__name__ == "PeftModelForSeq2SeqLM"  # PEFT's encoder–decoder wrapper, not the causal one
    assert moved and all("lora_" in n for n in moved)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in moved} == targets
    trainer.save_model()
    reloaded = load_model(str(tmp_path))
    batch = pad_batch(_rows(model, VARIED), PAD)
    with torch.no_grad():
        assert torch.allclose(trainer.model.eval()(**model_inputs(batch)).logits,
                              reloaded.eval()(**model_inputs(batch)).logits, atol=1e-5)


# ------------------------------------------------------------------ the CLI, generation, evaluation, rewards


def _model_dir(arch, path):
    tiny_seq2seq(arch).save_pretrained(path)
    TOK.save_pretrained(path)
    return str(path)


def _recipe(path, **keys):
    import yaml

    path.write_text(yaml.safe_dump({"dataset": "builtin:markov:64", "max_steps": 3, "per_device_train_batch_size": 8,
                                    "max_length": 24, "save_strategy": "no", "report_to": "none", **keys}))
    return str(path)


@pytest.mark.parametrize("arch,trainer", [("t5", "iq"), ("bart", "sft")])
def test_cli_train_then_generate_evaluate_and_rewards(arch, trainer, tmp_path, capsys):
    """`llm-irl train` on a checkpoint directory, then generate and evaluate the saved model, and its implied rewards."""
    import json

    from llm_irl import cli
    from llm_irl.modeling import load_model
    from llm_irl.rewards import implied_rewards
    from llm_irl.losses import value_head_mdp
    from llm_irl.soft_q import token_mdp
    from llm_irl.state_head import absorbing_value_of, state_values

    out = tmp_path / "out"
    recipe = _recipe(tmp_path / "r.yaml", trainer=trainer, model_name_or_path=_model_dir(arch, tmp_path / "base"),
                     output_dir=str(out))
    assert cli.main(["train", recipe]) == 0
    assert "AutoModelForSeq2SeqLM.from_pretrained" in (out / "README.md").read_text()
    capsys.readouterr()
    assert cli.main(["generate", str(out), "--prompt", "topic1 kalo", "--num_samples", "2", "--max_new_tokens", "5"]) == 0
    assert [json.loads(line)["prompt"] for line in capsys.readouterr().out.splitlines()] == ["topic1 kalo"] * 2
    assert cli.main(["evaluate", str(out), "--eval_dataset", "builtin:markov", "--num_prompts", "3", "--k", "2",
                     "--temperatures", "1.0", "--max_new_tokens", "6", "--num_heldout", "10", "--n_boot", "50",
                     "--output", str(tmp_path / "eval.json")]) == 0
    figures = json.loads((tmp_path / "eval.json").read_text())
    assert figures["metrics"] and figures["temperatures"]

    # the implied reward of a completion is the trained objective's: r = Q(s, a) − γ·V(s') on the decoder
    model = load_model(str(out)).eval()
    prompt, completion = TOK("topic1 kalo")["input_ids"], TOK("kapi karu")["input_ids"] + [EOS]
    got = implied_rewards(model, TOK, [prompt], [completion], gamma=0.9).rewards[0]
    batch = pad_batch(_rows(model, [{"prompt": "topic1 kalo", "completion": "kapi karu"}]), PAD)
    with torch.no_grad():
        out = model(**model_inputs(batch), output_hidden_states=True)
        mdp = token_mdp(out.logits, batch["labels"], eos_token_id=EOS)
        want = mdp.reward(0.9)
        if trainer == "iq":  # IQ's default V is a value head on the decoder's states: r = α·log π + V_ψ(s) − γ·V_ψ(s'),
            # and the value after EOS v_A it learned (terminal_td centred_absorbing) is what the stop reward is read against
            mdp = value_head_mdp(mdp, state_values(model))
            want = mdp.reward(0.9) - 0.9 * absorbing_value_of(model) * mdp.terminal
    assert got == pytest.approx(want[mdp.mask].tolist(), abs=1e-5)


def test_console_script_trains_and_compare_reports_on_a_t5(tmp_path):
    """The installed `llm-irl` (its own process) trains a T5 directory; `llm-irl compare` runs SFT against IQ on it."""
    import subprocess
    import sys

    from llm_irl import cli

    base = _model_dir("t5", tmp_path / "base")
    recipe = _recipe(tmp_path / "r.yaml", trainer="iq", model_name_or_path=base, output_dir=str(tmp_path / "out"))
    cli_path = os.path.join(os.path.dirname(sys.executable), "llm-irl")
    proc = subprocess.run([cli_path, "train", recipe], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    compare = _recipe(tmp_path / "c.yaml", model_name_or_path=base, eval_dataset="builtin:markov", seeds=1, k=2,
                      num_prompts=3, temperatures=[1.0], max_new_tokens=6, num_heldout=10, n_boot=50,
                      other_trainers=False, output_dir=str(tmp_path / "cmp"),
                      arms={"sft": {"trainer": "sft"}, "iq": {"trainer": "iq"}})
    assert cli.main(["compare", compare]) == 0
    assert (tmp_path / "cmp" / "report.md").exists()


def test_an_architecture_neither_causal_nor_seq2seq_is_one_line(tmp_path, capsys):
    from transformers import DistilBertConfig, DistilBertModel

    from llm_irl import cli

    path = tmp_path / "distilbert"  # an encoder only: transformers has no causal or seq2seq LM head for it
    DistilBertModel(DistilBertConfig(vocab_size=len(TOK), dim=32, n_layers=1, n_heads=4,
                                     hidden_dim=64)).save_pretrained(path)
    TOK.save_pretrained(path)
    capsys.readouterr()  # save_pretrained's progress bar
    assert cli.main(["generate", str(path), "--prompt", "topic1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'distilbert' model is neither a causal LM nor an encoder–decoder" in err[0]


# ------------------------------------------------------------------ the adversarial trainer


def _gail(arch, tmp_path, **kw):
    from llm_irl import GAILConfig, GAILTrainer

    args = GAILConfig(**{"output_dir": str(tmp_path), "max_steps": 3, "per_device_train_batch_size": 8,
                         "learning_rate": 1e-2, "disc_learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no",
                         "max_length": 24, "max_new_tokens": 8, "disable_tqdm": True, "kl_coef": 0.1,
                         "report_to": "none", **kw})
    return GAILTrainer(model=tiny_seq2seq(arch), args=args, train_dataset=demos(32), processing_class=tokenizer())


@pytest.mark.parametrize("arch,kw", [("t5", {}), ("bart", {"disc_loss": "airl", "disc_level": "token",
                                                           "disc_grad_penalty": 0.1, "sft_steps": 1})])
def test_gail_trains_every_policy_parameter_and_its_discriminator_scores_pairs(arch, kw, tmp_path):
    """The discriminator, a copy of the encoder–decoder (policy_ratio), scores (prompt, completion) pairs: its ℓ is
    log q_φ(y|x) − log π(y|x) with both read teacher-forced on the decoder, 0 at the start."""
    from llm_irl.adversarial.discriminator import Discriminator

    trainer = _gail(arch, tmp_path, **kw)
    batch = trainer._disc_inputs(trainer.rollout(trainer.model, pad_batch(_rows(trainer.model, VARIED), PAD), seed=0))
    assert "decoder_input_ids" in batch and batch["input_ids"].shape[0] == len(VARIED)
    with torch.no_grad():
        assert torch.allclose(trainer.discriminator.eval().logits(batch), torch.zeros(()), atol=1e-5)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    disc_before = {n: p.detach().clone() for n, p in trainer.discriminator.named_parameters()}
    trainer.train()
    assert all(not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters())
    assert all(not torch.equal(p.detach(), disc_before[n]) for n, p in trainer.discriminator.named_parameters())
    assert any("disc_heldout_bal_acc" in h for h in trainer.state.log_history)

    trainer.save_model()
    reloaded = Discriminator.load(str(tmp_path / "discriminator"))
    with torch.no_grad():
        want = trainer.discriminator.eval().logits(batch)
        assert torch.allclose(reloaded.eval().logits(batch), want, atol=1e-5)
        assert not torch.allclose(want, torch.zeros(()), atol=1e-4)  # it learned something to tell them apart


def test_a_score_head_discriminator_on_an_encoder_decoder_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="disc_param=classifier needs a causal backbone"):
        _gail("t5", tmp_path, disc_param="classifier")


# ------------------------------------------------------------------ SPIN


@pytest.mark.parametrize("arch,chunk", [("t5", None), ("bart", 5)])
def test_spin_self_plays_on_the_decoder(arch, chunk, tmp_path):
    """Each iteration starts at its reference (loss log 2); the rejected side is π_t's completion of the demo's own
    prompt, read by the encoder; demos that share a prompt keep their own pair; every parameter trains."""
    from llm_irl import SPINConfig, SPINTrainer
    from llm_irl.trainers.spin import _key

    same_prompt = [{"prompt": "topic1 kalo", "completion": c} for c in ("kapi", "karu kata", "miru")]
    args = SPINConfig(output_dir=str(tmp_path), max_steps=6, spin_iterations=2, per_device_train_batch_size=4,
                      learning_rate=1e-2, max_new_tokens=6, max_length=24, logging_steps=1, save_strategy="no",
                      disable_tqdm=True, report_to=[], seed=3, loss_chunk_size=chunk)
    trainer = SPINTrainer(model=tiny_seq2seq(arch), args=args, train_dataset=same_prompt + demos(13),
                          processing_class=TOK)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    assert all(not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters())
    logs = [log for log in trainer.state.log_history if "spin_loss" in log]
    assert logs[0]["spin_loss"] == pytest.approx(math.log(2.0), abs=1e-5)
    rows = [trainer.train_dataset[i] for i in range(3)]
    assert len({tuple(_key(r)) for r in rows}) == 3  # one prompt, three demonstrations, three pairs
    sampled = [r for r in trainer.train_dataset if _key(r) in trainer.samples]  # this iteration's demos
    assert len(sampled) == len(trainer.samples) > 0 and all(trainer.samples[_key(r)].completion for r in sampled)
