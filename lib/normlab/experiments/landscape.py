r"""The smoothness view of BN (Santurkar et al., 2018, §3): how far can we trust a gradient?

At points along the training trajectory, with parameters :math:`\theta`, the current
mini-batch's loss :math:`L` and its gradient :math:`g = \nabla L(\theta)`, we step along
the gradient with a range of step sizes :math:`\eta` and record, on the same batch and
in training mode (BN with batch statistics, the same dropout/noise draw for every step),

* the **loss landscape**: :math:`L(\theta - \eta g)` for every :math:`\eta`; its spread
  (max - min over :math:`\eta`) is small when the loss changes predictably;
* the **gradient predictiveness**: :math:`\lVert \nabla L(\theta - \eta g) - g \rVert_2`,
  how much the gradient changes as we move;
* the **effective β-smoothness**: :math:`\max_\eta \lVert \nabla L(\theta - \eta g) - g
  \rVert_2 / \lVert \eta g \rVert_2`, the largest change of gradient per distance moved
  (a local Lipschitz constant of the gradient).

Santurkar et al. find all three smaller with BN (VGG on CIFAR-10). The probes run on a
copy of the network, so they change neither its weights nor its running statistics.
Training here is plain mini-batch SGD (Nesterov momentum, fixed learning rate, no
early stopping) for a few epochs: the point is the trajectory, not the final accuracy.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from normlab.experiments.conditions import BASE_CONFIG, NOISE
from normlab.experiments.runner import (
    _splits, batches, build_model, config_key, one_thread, write_json_atomic,
)
from normlab.train import set_seed

__all__ = ["smoothness", "SmoothnessResult", "SMOOTHNESS_ARMS", "DEFAULT_STEP_SIZES"]

SMOOTHNESS_ARMS = {"BN": {"norm": "batch"}, "vanilla": {"norm": "none"},
                   "noisy BN": {"norm": "batch", "noise": NOISE}}
#: From half the training learning rate (0.01) to 40 times it.
DEFAULT_STEP_SIZES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


@dataclass
class SmoothnessResult:
    """Arrays indexed ``[arm, seed, point, step size]``:

    ``loss`` (A, S, P, E): :math:`L(\\theta - \\eta g)`; ``loss0`` (A, S, P): :math:`L(\\theta)`;
    ``grad_change`` (A, S, P, E): :math:`\\lVert\\nabla L(\\theta - \\eta g) - g\\rVert`;
    ``grad_norm`` (A, S, P): :math:`\\lVert g\\rVert`; ``train_loss`` (A, S, T): the loss of
    every training step. ``steps`` (P,) are the training steps probed (before that
    step's update), ``step_sizes`` (E,) the :math:`\\eta`.
    """

    arms: tuple
    seeds: int
    steps: np.ndarray
    step_sizes: np.ndarray
    loss: np.ndarray
    loss0: np.ndarray
    grad_change: np.ndarray
    grad_norm: np.ndarray
    train_loss: np.ndarray
    config: dict = field(default_factory=dict)

    def loss_range(self) -> np.ndarray:
        """(A, S, P): max - min of the loss over the step sizes."""
        return self.loss.max(axis=-1) - self.loss.min(axis=-1)

    def max_grad_change(self) -> np.ndarray:
        """(A, S, P): the largest gradient change over the step sizes."""
        return self.grad_change.max(axis=-1)

    def beta(self) -> np.ndarray:
        """(A, S, P): effective β-smoothness, max over η of grad change / (η ‖g‖)."""
        distance = self.step_sizes[None, None, None, :] * self.grad_norm[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nanmax(self.grad_change / distance, axis=-1)

    def summary(self) -> list[dict]:
        """Per arm: each quantity averaged over seeds and points (with the sd over seeds
        of the per-seed averages)."""
        rows = []
        quantities = {"loss_range": self.loss_range(), "max_grad_change": self.max_grad_change(),
                      "beta": self.beta(), "final_train_loss": self.train_loss[..., -10:]}
        for i, arm in enumerate(self.arms):
            row = {"arm": arm}
            for name, values in quantities.items():
                per_seed = np.nanmean(values[i], axis=-1)
                row[name] = float(np.mean(per_seed))
                row[name + "_sd"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan
            rows.append(row)
        return rows

    def table(self) -> str:
        lines = [f"{'arm':10s} {'loss range':>18s} {'max grad change':>18s} {'beta-smoothness':>18s}"]
        for r in self.summary():
            cells = [f"{r[k]:.3g} ± {r[k + '_sd']:.2g}" for k in ("loss_range", "max_grad_change", "beta")]
            lines.append(f"{r['arm']:10s} " + " ".join(f"{c:>18s}" for c in cells))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"arms": list(self.arms), "seeds": self.seeds, "steps": self.steps.tolist(),
                "step_sizes": self.step_sizes.tolist(), "loss": _list(self.loss), "loss0": _list(self.loss0),
                "grad_change": _list(self.grad_change), "grad_norm": _list(self.grad_norm),
                "train_loss": _list(self.train_loss), "config": self.config, "summary": self.summary()}


def _list(array):
    return np.where(np.isfinite(array), array, np.nan).tolist()


def smoothness(*, arms=("BN", "vanilla"), seeds=3, epochs=10, points=12, step_sizes=DEFAULT_STEP_SIZES,
               dataset="digits", model="mlp", overrides=None, out=None, progress=True,
               data_root=None) -> SmoothnessResult:
    """Train each arm (names of `SMOOTHNESS_ARMS`) for ``epochs`` with each seed and
    probe the loss and gradient along the gradient at ``points`` evenly spaced training
    steps (the first and the last included). ``overrides`` change the run settings
    (`conditions.BASE_CONFIG`: lr, batch_size, hidden, train_limit, ...). With ``out``
    each (arm, seed) is cached in ``out/smoothness/<key>.json`` and reused.
    """
    unknown = [a for a in arms if a not in SMOOTHNESS_ARMS]
    if unknown:
        raise ValueError(f"unknown smoothness arm(s) {unknown}; choose from {list(SMOOTHNESS_ARMS)}")
    if not (isinstance(points, int) and points >= 2):
        raise ValueError(f"points must be an int >= 2, got {points!r}")
    if not (isinstance(seeds, int) and seeds >= 1):
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    step_sizes = tuple(float(s) for s in step_sizes)
    if not step_sizes or min(step_sizes) <= 0:
        raise ValueError(f"step_sizes must be positive numbers, got {step_sizes!r}")
    results = {}
    bar = tqdm(total=len(arms) * seeds, desc="smoothness", unit="run", disable=not progress)
    with one_thread():
        for arm in arms:
            for seed in range(seeds):
                config = {**BASE_CONFIG, "dataset": dataset, "model": model, **(overrides or {}),
                          **SMOOTHNESS_ARMS[arm], "epochs": epochs, "seed": seed, "probe_points": points,
                          "probe_step_sizes": list(step_sizes), "experiment": "smoothness"}
                config = _plain(config)
                path = Path(out) / "smoothness" / f"{config_key(config)}.json" if out is not None else None
                if path is not None and path.exists():
                    results[(arm, seed)] = json.loads(path.read_text())
                else:
                    results[(arm, seed)] = _probe_run(config, data_root)
                    if path is not None:
                        write_json_atomic(path, results[(arm, seed)])
                bar.update()
    bar.close()
    first = results[(arms[0], 0)]

    def stack(name):
        return np.array([[results[(a, s)][name] for s in range(seeds)] for a in arms], dtype=float)

    return SmoothnessResult(
        arms=tuple(arms), seeds=seeds, steps=np.array(first["steps"]), step_sizes=np.array(step_sizes),
        loss=stack("loss"), loss0=stack("loss0"), grad_change=stack("grad_change"), grad_norm=stack("grad_norm"),
        train_loss=stack("train_loss"),
        config={k: v for k, v in first["config"].items() if k not in ("seed", "norm", "noise")},
    )


def _plain(config):
    return json.loads(json.dumps(config))


def _probe_run(config, data_root) -> dict:
    splits, x_train, y_train = _splits(config, data_root)
    seed = config["seed"]
    set_seed(seed)
    model = build_model(config, splits.input_shape, splits.num_classes)
    loader = batches(x_train, y_train, config["batch_size"], shuffle=True, seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                                nesterov=config["nesterov"], weight_decay=config["weight_decay"])
    total = config["epochs"] * len(loader)
    if config["probe_points"] > total:
        raise ValueError(f"points={config['probe_points']} is more than the {total} training steps "
                         f"({config['epochs']} epochs of {len(loader)} batches): probe fewer points or train longer")
    probe_steps = np.linspace(0, total - 1, config["probe_points"]).round().astype(int).tolist()
    step_sizes = config["probe_step_sizes"]
    out = {"steps": probe_steps, "loss": [], "loss0": [], "grad_change": [], "grad_norm": [], "train_loss": []}
    step = 0
    for _ in range(config["epochs"]):
        for x, y in loader:
            model.train()
            if step in probe_steps:
                loss0, grad_norm, losses, changes = _probe(model, x, y, step_sizes, probe_seed=seed * 100003 + step)
                out["loss0"].append(loss0)
                out["grad_norm"].append(grad_norm)
                out["loss"].append(losses)
                out["grad_change"].append(changes)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            out["train_loss"].append(_finite(loss.item()))
            step += 1
    out["config"] = config
    return out


def _probe(model, x, y, step_sizes, probe_seed):
    """Loss and gradient change along -g on the batch (x, y), on a copy of ``model``."""
    probe = copy.deepcopy(model)
    probe.train()
    params = [p for p in probe.parameters() if p.requires_grad]
    theta = [p.detach().clone() for p in params]
    loss0, grads = _loss_and_grad(probe, params, x, y, probe_seed)
    g = torch.cat([t.reshape(-1) for t in grads])
    losses, changes = [], []
    for eta in step_sizes:
        with torch.no_grad():
            for p, t, d in zip(params, theta, grads):
                p.copy_(t - eta * d)
        loss, moved = _loss_and_grad(probe, params, x, y, probe_seed)
        losses.append(_finite(loss))
        changes.append(_finite(torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in moved]) - g).item()))
    return _finite(loss0), _finite(torch.linalg.vector_norm(g).item()), losses, changes


def probe_losses_and_grad_changes(model, x, y, step_sizes, probe_seed=0):
    """The losses L(theta - eta g) and gradient changes |grad(theta - eta g) - g| for
    each eta in ``step_sizes``, as two arrays (a copy of ``model`` in training mode is
    probed; ``model`` is untouched). ps4's hidden tests check students against it."""
    _, _, losses, changes = _probe(model, x, y, step_sizes, probe_seed)
    return np.array(losses), np.array(changes)


def _loss_and_grad(model, params, x, y, seed):
    """Loss and gradient with torch's generator reset to ``seed`` (same dropout/noise
    draw for every probe) and restored afterwards (training's random stream untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    return loss.item(), grads


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.nan
