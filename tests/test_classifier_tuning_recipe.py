"""Issue 16 items 2 and 3: He et al.'s classifier tuning (CVMI-Lab/SyntheticData ``finetune_zsl`` /
``finetune_fsl``): the soft-target cross-entropy with the temperature on the teacher only, the soft
loss on synthetic images only, a real batch's mean added to a synthetic batch's, and the study's
few-shot CLIP arms batching 512 synthetic + 32 real images per step."""

import math

import pytest
import torch

from synthclone.training.engine import Batch
from synthclone.training.regimes import per_part_means, soft_kl, soft_target_ce, tuning_loss


def test_soft_target_ce_by_hand():
    student, teacher = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[1.0, 3.0, 0.0]])
    t = 2.0
    q = [math.exp(v / t) for v in (1.0, 3.0, 0.0)]
    q = [v / sum(q) for v in q]  # the teacher at temperature t
    z = math.log(sum(math.exp(v) for v in (2.0, 0.0, -1.0)))
    logp = [v - z for v in (2.0, 0.0, -1.0)]  # the student at temperature 1
    want = -sum(a * b for a, b in zip(q, logp))
    assert soft_target_ce(student, teacher, t).item() == pytest.approx(want, rel=1e-6)
    # a different optimum than the KL form: the soft CE is minimised by the student's softmax equal to the
    # teacher's tempered one, the KL by the student's *tempered* softmax equal to it
    target = torch.log(torch.tensor(q))[None]  # student logits whose softmax is q
    assert soft_target_ce(target, teacher, t).item() == pytest.approx(-sum(v * math.log(v) for v in q), rel=1e-5)
    assert soft_kl(target * t, teacher, t).item() == pytest.approx(0.0, abs=1e-5)


def test_the_soft_loss_is_on_synthetic_images_only():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.0], [1.0, 1.0]])
    teacher = torch.tensor([[0.0, 4.0], [4.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    syn = torch.tensor([True, False, True])
    per = tuning_loss(logits, teacher, y, syn, t=2.0, soft_weight=0.5)
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    soft = soft_target_ce(logits, teacher, 2.0)
    assert per[1].item() == pytest.approx(ce[1].item())  # a real image: cross-entropy alone
    assert per[[0, 2]].tolist() == pytest.approx((0.5 * soft + 0.5 * ce)[[0, 2]].tolist())


def test_per_part_means_add_a_real_batch_mean_to_a_synthetic_batch_mean():
    per = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0])  # 3 synthetic (part 0), 2 real (part 1)
    source = torch.tensor([0, 0, 0, 1, 1])
    b = Batch(torch.zeros(5, 1, 2, 2), torch.zeros(5, dtype=torch.long), torch.arange(5), source, torch.ones(5),
              torch.Generator(), 5, [3, 2])
    total = per_part_means(per, b).sum() / b.global_size  # what the engine computes
    assert total.item() == pytest.approx(2.0 + 15.0)  # mean of part 0 + mean of part 1
    b.part_sizes = None
    assert torch.equal(per_part_means(per, b), per)


def test_the_few_shot_clip_arms_batch_512_synthetic_and_32_real_images():
    from synthclone.config import load_config
    from synthclone.data.mixing import ShardedBatchSampler, from_sets
    from synthclone.data import load_dataset
    from synthclone.study import FEW_SHOT_STAGE, _train_data, plan_models

    cfg = load_config("quickstart")
    arms = {m.arm: m for m in plan_models(cfg) if m.seed == 0}
    guided, real = arms["few-shot-clip-guided"], arms["few-shot-clip"]
    assert guided.regime == real.regime == "classifier-tuning" and guided.lr == real.lr == 1e-3
    assert guided.batch_size == 544 and real.batch_size == 32 and guided.weight_decay == 0.1 and guided.epochs == 30
    assert arms["classifier-tuning"].batch_size == 512 and arms["classifier-tuning"].lr is None  # the regime's 2e-3
    spec = _train_data(cfg, guided, {FEW_SHOT_STAGE: {"store": "STORE"}})
    assert spec.startswith("STORE+real:k=8,seed=0@")  # an epoch is a pass over the synthetic store
    shares = [float(v) for v in spec.split("@")[1].split(",")]
    pool = load_dataset("fashion-mnist", "train").per_class(60, seed=0)
    sampler = ShardedBatchSampler(from_sets([pool, pool.per_class(8, seed=0)], shares), guided.batch_size)
    assert sampler.counts == [512, 32]
