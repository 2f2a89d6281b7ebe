"""The chunked (memory-lean) IQ loss on FSDP2 shards: two gloo processes, each with half the batch and
`fully_shard`ed weights, give the loss and gradients of one unsharded process on the whole batch."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

TESTS = os.path.dirname(os.path.abspath(__file__))

# Each rank: the same initial model, fully_shard per decoder layer and at the root, its own half of
# 8 demonstrations; the chunked IQ loss through lm_head_hidden; the gradients gathered from the shards.
# Gradients are averaged over ranks (FSDP2's reduction), so the unsharded reference is the mean of
# the two halves' losses.
SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from tiny_models import demos, tiny_lm, tokenizer
    from llm_irl.batching import DemoCollator
    from llm_irl.chunked import chunked_mdp_and_entropy
    from llm_irl.data import load_demonstrations
    from llm_irl.lm_head import lm_head_hidden
    from llm_irl.losses import iq_objective

    out, tied, reshard = sys.argv[1], sys.argv[2] == "tied", sys.argv[3] == "reshard"
    torch.set_num_threads(1)
    tok = tokenizer()
    rows = load_demonstrations(demos(8, seed=3), tok, max_length=24)
    batch = DemoCollator(tok.pad_token_id)([rows[i] for i in range(len(rows))])

    def model():
        m = tiny_lm("llama")
        if tied:
            m.config.tie_word_embeddings = True
            m.lm_head.weight = m.model.embed_tokens.weight
        return m

    def loss_of(m, ids, mask, labels):
        head = lm_head_hidden(m, ids, mask)
        assert head is not None, "the chunked path was refused"
        mdp, _ = chunked_mdp_and_entropy(head.hidden, head.weight, labels, lm_head_bias=head.bias, chunk_size=5,
                                         eos_token_id=[tok.eos_token_id], log_entropy=False)
        return iq_objective(mdp, gamma=0.99, td_weight=0.5, terminal_td="include")[0]

    def halves():
        return [{{k: v[4 * r: 4 * r + 4] for k, v in batch.items()}} for r in range(2)]

    if "RANK" not in os.environ:  # the unsharded reference: mean of the two halves' losses, one process
        m = model()
        loss = sum(loss_of(m, h["input_ids"], h["attention_mask"], h["labels"]) for h in halves()) / 2
        loss.backward()
        grads = {{n: p.grad for n, p in m.named_parameters()}}
    else:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
        m = model()
        for layer in m.model.layers:
            fully_shard(layer)
        # accelerate's FSDP2 config (recipes/accelerate/fsdp.yaml) reshards the root too: W is a shard
        # again when the loss reads it. Left to itself FSDP2 keeps the root's W gathered until backward.
        fully_shard(m, reshard_after_forward=True if reshard else None)
        h = halves()[rank]
        m(input_ids=h["input_ids"][:, :2])  # a forward, after which the head is what the loss will see
        assert (type(m.lm_head.weight).__name__ == "DTensor") == reshard
        loss = loss_of(m, h["input_ids"], h["attention_mask"], h["labels"])
        loss.backward()
        dist.all_reduce(loss.detach(), op=dist.ReduceOp.AVG)
        grads = {{n: p.grad.full_tensor() for n, p in m.named_parameters()}}
        if rank != 0:
            sys.exit(0)
    torch.save({{"loss": loss.detach(), "grads": grads}}, out)
""").format(tests=TESTS)


def _run(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(("embeddings", "root"), [("untied", "reshard"), ("tied", "reshard"), ("untied", "auto")])
def test_chunked_iq_loss_on_fsdp2_shards_equals_one_unsharded_process(embeddings, root, tmp_path):
    script = tmp_path / "fsdp2.py"
    script.write_text(SCRIPT)
    one, two = str(tmp_path / "one.pt"), str(tmp_path / "two.pt")
    _run([sys.executable, str(script), one, embeddings, root], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
          str(script), two, embeddings, root], tmp_path)
    a, b = torch.load(one), torch.load(two)
    assert torch.allclose(a["loss"], b["loss"], atol=1e-6), (a["loss"], b["loss"])
    assert a["grads"].keys() == b["grads"].keys()
    for name in a["grads"]:
        assert torch.allclose(a["grads"][name], b["grads"][name], atol=1e-6, rtol=1e-5), name
    head = "lm_head.weight" if embeddings == "untied" else "model.embed_tokens.weight"  # tied: listed once
    assert a["grads"][head].abs().sum() > 0
