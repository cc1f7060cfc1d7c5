"""Downstream scores: fine-tune a pre-trained encoder on SEM and SYN, and probe what it learnt.

:func:`finetune` copies ``D``'s table and encoder into a :class:`~reprobook.mcbert.model.Classifier` (a linear
head on ``<s>``) and trains all of it through :func:`reprobook.train.fit` on a task's training split; the
controller or generator is discarded, as in the paper. :func:`evaluate` does this for both tasks and returns
their test accuracies (mean over ``seeds``). :func:`nearest_words` lists a word's nearest neighbours in ``D``'s
token table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from reprobook._validate import check_choice, check_float, check_int
from reprobook.mcbert.data import MCBERTData, Task
from reprobook.mcbert.model import Classifier, Pretrainer
from reprobook.nn import eval_mode
from reprobook.profiles import pick
from reprobook.train import Scores, fit, seed_everything

SPLITS = ("train", "test")
TASKS = ("SEM", "SYN")


def finetune_steps() -> int:
    """The default number of fine-tuning updates of the profile. SEM sits on a plateau at its floor early in
    fine-tuning, the training set included; at 400 updates of 32 examples one run in three had not left it, so
    the book fine-tunes 1,200 (every run of a sweep of six seeds left it, for each objective)."""
    return int(pick(smoke=20, book=1_200, full=1_200))


@dataclass(kw_only=True)
class MCBERTScores(Scores):
    """Test accuracy (%) on SEM and SYN after fine-tuning, mean over ``seeds`` runs, and each run's."""

    sem: float
    syn: float
    sem_runs: list[float]
    syn_runs: list[float]

    def row(self) -> dict[str, Any]:
        return {"method": self.label, "SEM acc (%)": self.sem, "SYN acc (%)": self.syn}


@torch.no_grad()
def accuracy(model: Classifier, task: Task) -> float:
    """Accuracy in % of ``model`` on ``task`` (eval mode)."""
    with eval_mode(model):
        predictions = torch.cat([model(task.ids[i : i + 512]).argmax(-1) for i in range(0, len(task), 512)])
    return 100.0 * float((predictions == task.labels).float().mean())


def finetune(
    pretrained: Pretrainer,
    train_task: Task,
    *,
    seed: int = 0,
    num_steps: int | None = None,
    lr: float = 1e-3,
    batch_size: int = 32,
    progress: bool = False,
) -> Classifier:
    """Fine-tune a copy of ``pretrained``'s encoder on ``train_task`` (AdamW, linear warm-up over the first 10 % of
    the ``num_steps`` updates, then linear decay; ``num_steps`` by profile if None)."""
    num_steps = finetune_steps() if num_steps is None else check_int("num_steps", num_steps, 1)
    check_float("lr", lr, 0.0, open_low=True)
    check_int("batch_size", batch_size, 1)
    generator = seed_everything(seed)
    model = Classifier(pretrained, len(train_task.labels_names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, num_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 1.0 - s / num_steps))

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            order = torch.randperm(len(train_task), generator=generator)
            for k in range(0, len(order) - batch_size + 1, batch_size):
                yield train_task.ids[order[k : k + batch_size]], train_task.labels[order[k : k + batch_size]]

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
        model.train()
        loss = F.cross_entropy(model(batch[0]), batch[1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        return {"loss": float(loss.detach())}

    fit(step, batches(), num_steps, desc=f"fine-tune {train_task.name}", progress=progress)
    return model


def evaluate(
    model: Pretrainer,
    data: MCBERTData,
    split: str = "test",
    *,
    seeds: Sequence[int] | Mapping[str, Sequence[int]] = (0,),
    num_steps: int | None = None,
    label: str | None = None,
    tasks: Sequence[str] = TASKS,
) -> MCBERTScores:
    """Fine-tune ``model``'s encoder on each of ``tasks`` (SEM, SYN) once per seed and score ``split``: accuracy
    in %; a task left out scores NaN. ``seeds`` may instead map each task to its own seeds (``{"SEM": (0, 1, 2),
    "SYN": (0,)}``); its keys are then the tasks."""
    check_choice("split", split, SPLITS)
    per_task = dict(seeds) if isinstance(seeds, Mapping) else dict.fromkeys(tasks, seeds)
    if not per_task or any(t not in TASKS for t in per_task):
        raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {tuple(per_task)!r}")
    if not all(per_task.values()):
        raise ValueError("seeds must hold at least one seed for each task")
    runs: dict[str, list[float]] = {"SEM": [], "SYN": []}
    for name, train_task, test_task in (
        ("SEM", data.sem_train, data.sem_test),
        ("SYN", data.syn_train, data.syn_test),
    ):
        scored = train_task if split == "train" else test_task
        for seed in per_task.get(name, ()):
            runs[name].append(accuracy(finetune(model, train_task, seed=seed, num_steps=num_steps), scored))
    mean = {k: sum(v) / len(v) if v else float("nan") for k, v in runs.items()}
    return MCBERTScores(
        label=label or model.objective,
        sem=mean["SEM"],
        syn=mean["SYN"],
        sem_runs=runs["SEM"],
        syn_runs=runs["SYN"],
    )


@torch.no_grad()
def nearest_words(model: Pretrainer, data: MCBERTData, word: str, k: int = 5) -> list[str]:
    """The ``k`` words whose rows of ``D``'s token table are closest in cosine to ``word``'s (specials excluded)."""
    index = data.index
    if word not in index:
        raise ValueError(f"unknown word {word!r}")
    table = F.normalize(model.embed.weight.detach(), dim=-1)
    similarity = table @ table[index[word]]
    similarity[:6] = -2.0
    similarity[index[word]] = -2.0
    return [data.vocab[i] for i in similarity.topk(k).indices.tolist()]
