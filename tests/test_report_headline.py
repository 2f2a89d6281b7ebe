"""The quickstart's newcomer lines (`llm_irl.report.headline`): each arm's headline verdicts in words, on known
frontier records, with the length and EOS share of the right temperature."""

from __future__ import annotations

from llm_irl.report import headline


def fig(value, lo=None, hi=None):
    return {"value": value, "lo": lo, "hi": hi, "n": 3}


def shape(length, ended):
    return {"mean_length": fig(length), "terminated": fig(ended)}


def frontier(arm, gap_of, quality, diversity, verdict, gap):
    return {"arm": arm, "baseline": "sft", "gap_of": gap_of, "quality": quality, "diversity": diversity,
            "verdict": verdict, "locally": None, "mean_gap": gap, "text": ""}


def results():
    temps = lambda length, ended: {"0": shape(1.0, 0.0), "0.7": shape(5.0, 0.5), "1.0": shape(length, ended),
                                   "1.3": shape(20.0, 0.1)}
    return {
        "summary": {"sft": {"metrics": {}, "temperatures": temps(8.2, 0.99)},
                    "iq": {"metrics": {}, "temperatures": temps(8.5, 0.98)},
                    "gail": {"metrics": {}, "temperatures": temps(6.0, 0.97)}},
        "expert": {"metrics": {}, "temperatures": {"expert": shape(8.7, 1.0)}},
        "frontier": [
            frontier("iq", "quality", "expert_loglik", "self_bleu_per_input", "overlapping", fig(-0.005, -0.027, 0.018)),
            frontier("iq", "quality", "expert_loglik", "distinct_2_across", "below", fig(-0.5, -0.7, -0.3)),
            frontier("iq", "coverage", "expert_loglik", "forward_kl_at_t", "below", fig(-0.2, -0.3, -0.1)),
            frontier("iq", "coverage", "expert_loglik_std", "forward_kl_at_t", "above", fig(0.010, 0.004, 0.017)),
            frontier("gail", "quality", "expert_loglik", "self_bleu_per_input", "below", fig(-0.3, -0.4, -0.2)),
            frontier("gail", "coverage", "expert_loglik_std", "forward_kl_at_t", "no overlap", None),
        ],
    }


def test_each_arm_reads_its_own_headline_verdicts_in_words():
    lines = headline(results())
    iq = next(line for line in lines if line.strip().startswith("iq "))
    gail = next(line for line in lines if line.strip().startswith("gail "))
    # Self-BLEU quality verdict and the standardised coverage verdict; not distinct-2's, not raw coverage's
    assert "quality at matched diversity: level -0.005 [-0.027, +0.018]" in iq
    assert "coverage at matched quality: above +0.010 [+0.004, +0.017]" in iq
    assert "below" not in iq
    assert "quality at matched diversity: below -0.300 [-0.400, -0.200]" in gail
    assert "coverage at matched quality: no common range" in gail


def test_lengths_come_from_the_temperature_nearest_one_with_the_baseline_and_the_expert():
    lines = headline(results())
    assert "length at T=1.0" in lines[0]
    assert "8.5 tokens, 98% end with EOS" in next(line for line in lines if line.strip().startswith("iq "))
    sft = next(line for line in lines if line.strip().startswith("sft "))
    assert "8.2 tokens, 99% end with EOS" in sft and "expert: 8.7 tokens, 100% end with EOS" in sft


def test_one_arm_has_nothing_to_compare():
    one = results()
    one["summary"] = {"sft": one["summary"]["sft"]}
    one["frontier"] = []
    assert "one arm" in " ".join(headline(one)).lower()
