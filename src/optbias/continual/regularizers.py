"""Reference regularizers: Avalanche 0.6's EWC and SI plugins, called from our own training loop.

An optimizer entry that carries ``regularizer: ewc | si`` and ``regularizer_strength: <lambda>``
(checked torch-free by ``optbias.optim.checks.regularizer``) trains exactly as its base optimizer
does (same tasks, initial weights, batches, budget and loop), plus a penalty on the loss. These are
reference rows from a well-kept library: regularizers, not optimizers. Avalanche's code is not
copied; its plugins are called through ``_Strategy``, a small object with only the attributes they
read, in the order Avalanche's own training loop calls them (``SupervisedTemplate``: its clock
plugin runs last, so the others see the task index before it is incremented):

    per task t:   start_task  (before_training_exp)
      per step:   before_step (before_training_iteration), CE loss, penalize (before_backward),
                  backward, optimizer.step(), after_step (after_training_iteration)
    after task t: end_task    (after_training_exp)

The conventions are Avalanche 0.6's, checked against hand computations in tests/test_regularizers.py:

* EWC (Kirkpatrick et al. 2017, PNAS, eq. 3; ``EWCPlugin``, mode "separate", no decay): after
  task e, the importance F_e (same shape as each parameter) is the mean, over the task's training
  split in unshuffled batches of the benchmark's batch size, of the squared batch-mean gradient of
  the cross-entropy (model in eval mode); theta*_e is the parameters then. Within task t the loss
  gains lambda * sum_{e<t} sum F_e (theta - theta*_e)^2: no factor 1/2, unlike the paper's
  lambda/2. F is the batch empirical Fisher, so it depends on the batch size.
* SI (Zenke, Poole & Ganguli 2017, ICML, eqs. 4-5; ``SynapticIntelligencePlugin``, eps 1e-7,
  c = 1): per step, the path integral gains g * (theta_after - theta_before), g the gradient of the
  penalized loss; after a task, cum += path / ((theta_end - theta_start)^2 + eps) and
  Omega = min(-cum, 1e-3) (clamped from above only), theta* = theta_end. Within a task the loss
  gains (lambda/2) * sum Omega (theta - theta*)^2. The clamp at 1e-3 is hard-coded in Avalanche,
  which is why SI needs a large lambda; Omega has no lower clamp and can be negative. The path
  restarts at each task; cum and Omega run over all tasks so far.

Avalanche 0.6's SI is wrong on the CPU: its ``extract_weights`` stores
``param.detach().cpu().flatten()``, a view of the live parameter when it already is on the CPU, so
theta_before, theta_after and theta* follow the weights: the path integral and the penalty are
identically 0. ``patch_si`` replaces that one static method by one that copies (see there).

Costs: EWC, one extra forward and backward pass over the task's training split after each task;
SI, per step, three copies of every parameter to the CPU (weights before and after, gradient) and
two back to the device (Omega, theta*, for the penalty).
Avalanche is imported inside the functions that need it (a heavy import), never with this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils.data import TensorDataset

from ..optim.checks import REGULARIZERS

SI_EPS = 1e-7  # SynapticIntelligencePlugin's default damping of (theta_end - theta_start)^2


def _copy_weights(model: torch.nn.Module, target: dict[str, Any], excluded_parameters: set[str]) -> None:
    """Store a flat copy of each of ``model``'s SI parameters in ``target[name].data`` (CPU, float as the model).

    Our replacement of ``SynapticIntelligencePlugin.extract_weights``: ``.to("cpu", copy=True)``
    copies on every device, where ``.cpu()`` returns the parameter itself on the CPU, so that the
    stored "old" and "new" weights and theta* were views of the live weights (``patch_si``)."""
    from avalanche.training.plugins import SynapticIntelligencePlugin

    with torch.no_grad():
        for name, param in SynapticIntelligencePlugin.allowed_parameters(model, excluded_parameters):
            target[name].data = param.detach().flatten().to("cpu", copy=True)


def patch_si() -> None:
    """Make Avalanche 0.6's SI store copies of the weights, not views (module docstring). Idempotent.

    A subclass cannot do it: the plugin's static methods call ``SynapticIntelligencePlugin.extract_weights``
    by class name, so the class attribute itself is replaced, for the whole process."""
    from avalanche.training.plugins import SynapticIntelligencePlugin

    SynapticIntelligencePlugin.extract_weights = staticmethod(_copy_weights)


def _ewc(strength: float) -> Any:
    from avalanche.training.plugins import EWCPlugin

    return EWCPlugin(ewc_lambda=strength, mode="separate", decay_factor=None)


def _si(strength: float) -> Any:
    from avalanche.training.plugins import SynapticIntelligencePlugin

    patch_si()
    return SynapticIntelligencePlugin(si_lambda=strength, eps=SI_EPS)


def _param_data(name: str, tensor: torch.Tensor) -> Any:
    """An Avalanche ``ParamData`` holding ``tensor`` itself (where the plugins keep their tensors)."""
    from avalanche.training.utils import ParamData

    return ParamData(name, device=tensor.device, init_tensor=tensor)


def _ewc_state(plugin: Any) -> dict[str, torch.Tensor]:
    return {f"{field}/{task}/{name}": data.data for field in ("importances", "saved_params")
            for task, params in getattr(plugin, field).items() for name, data in params.items()}


def _ewc_load(plugin: Any, state: dict[str, torch.Tensor], device: torch.device) -> None:
    plugin.importances.clear()
    plugin.saved_params.clear()
    for key, tensor in state.items():
        field, task, name = key.split("/", 2)
        getattr(plugin, field)[int(task)][name] = _param_data(name, tensor.to(device))


def _si_state(plugin: Any) -> dict[str, torch.Tensor]:
    theta, omega = plugin.ewc_data
    return {**{f"ewc_data/0/{name}": d.data for name, d in theta.items()},
            **{f"ewc_data/1/{name}": d.data for name, d in omega.items()},
            **{f"syn_data/{field}/{name}": d.data for field, params in plugin.syn_data.items()
               for name, d in params.items()}}


def _si_load(plugin: Any, state: dict[str, torch.Tensor], device: torch.device) -> None:
    for params in (*plugin.ewc_data, *plugin.syn_data.values()):
        params.clear()
    for key, tensor in state.items():
        field, which, name = key.split("/", 2)
        target = plugin.ewc_data[int(which)] if field == "ewc_data" else plugin.syn_data[which]
        target[name] = _param_data(name, tensor.to("cpu"))  # SI keeps its buffers on the CPU


@dataclass(frozen=True)
class Kind:
    """How to build one regularizer's plugin from its strength, and to save and restore its state."""

    build: Callable[[float], Any]
    state: Callable[[Any], dict[str, torch.Tensor]]
    load: Callable[[Any, dict[str, torch.Tensor], torch.device], None]


KINDS: dict[str, Kind] = {"ewc": Kind(_ewc, _ewc_state, _ewc_load), "si": Kind(_si, _si_state, _si_load)}
assert set(KINDS) == set(REGULARIZERS)  # the config check's names are the ones built here


class _Strategy:
    """What the plugins read of an Avalanche strategy, and nothing else.

    ``model``, ``optimizer``, ``device``; ``_criterion`` (EWC's Fisher pass: mean cross-entropy);
    ``train_mb_size`` (the Fisher pass's batch size); ``clock.train_exp_counter`` (the task index,
    0-based); ``experience.dataset`` (the task's training split, for the Fisher pass); ``loss``
    (the loss of the current step, which ``before_backward`` adds the penalty to)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch_size: int,
                 device: torch.device) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self._criterion = torch.nn.CrossEntropyLoss()
        self.train_mb_size = batch_size
        self.clock = SimpleNamespace(train_exp_counter=0)
        self.experience: SimpleNamespace | None = None
        self.loss: torch.Tensor | None = None


class Regularizer:
    """One run's EWC or SI penalty: an Avalanche plugin and the strategy it reads (module docstring).

    ``kind``: ``ewc`` or ``si``; ``strength``: its lambda (> 0); ``model``: the run's model, whose
    ``named_parameters`` are regularized; ``optimizer``: the run's (EWC's Fisher pass zeroes its
    gradients; ``use_optimizer`` replaces it); ``batch_size``: the benchmark's (EWC's Fisher pass);
    ``device``: the model's. Raises ``ValueError`` for an unknown kind (the config check names the fix).
    """

    def __init__(self, kind: str, strength: float, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 batch_size: int, device: torch.device) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown regularizer {kind!r}; known: {', '.join(KINDS)}")
        self.kind, self.device = kind, device
        self.plugin = KINDS[kind].build(float(strength))
        self.strategy = _Strategy(model, optimizer, int(batch_size), device)

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """The run's optimizer was rebuilt (``train.reset_optimizer``): the plugins use the new one."""
        self.strategy.optimizer = optimizer

    def start_task(self, t: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Task ``t`` (0-based) starts, with training split ``x`` (N, features), ``y`` (N,) on the device."""
        self.strategy.clock.train_exp_counter = t
        self.strategy.experience = SimpleNamespace(dataset=TensorDataset(x, y))
        self.plugin.before_training_exp(self.strategy)

    def before_step(self) -> None:
        """Before a step's forward pass (SI records the weights)."""
        self.plugin.before_training_iteration(self.strategy)

    def penalize(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` (0-d, the step's cross-entropy) plus the penalty, as a new tensor: ``loss`` itself is
        left as it is (the plugins add in place, so they get a copy)."""
        self.strategy.loss = loss.clone()
        self.plugin.before_backward(self.strategy)
        penalized, self.strategy.loss = self.strategy.loss, None
        return penalized

    def after_step(self) -> None:
        """After ``optimizer.step()``, with the step's gradients still in ``.grad`` (SI reads them)."""
        self.plugin.after_training_iteration(self.strategy)

    def end_task(self) -> None:
        """The current task's training is over: EWC's Fisher pass (it leaves the last batch's
        gradients in ``.grad`` and the model in train mode), SI's Omega.

        The Fisher pass runs forward and backward passes that are not training steps. An optimizer
        that hooks the model (``attach``: OWM's and Memory Shampoo's input memory, Shampoo's
        gradient factors) would record them and fold them into its next step, so it is attached
        again afterwards, which drops what its hooks recorded and keeps its state."""
        self.plugin.after_training_exp(self.strategy)
        self.strategy.experience = None  # the task's data is not kept
        attach = getattr(self.strategy.optimizer, "attach", None)
        if callable(attach):
            attach(self.strategy.model)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The plugin's state between tasks, flat: ``"field/index/parameter name" -> tensor`` (EWC: each
        past task's importances and saved parameters; SI: theta*, Omega and its running sums), for a
        resume state that ``torch.load(weights_only=True)`` reads."""
        return KINDS[self.kind].state(self.plugin)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_dict`` returned, in place of the plugin's current state."""
        KINDS[self.kind].load(self.plugin, state, self.device)


def from_entry(entry: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch_size: int,
               device: torch.device) -> Regularizer | None:
    """The ``Regularizer`` an optimizer entry asks for (``regularizer``, ``regularizer_strength``), or
    None when it has no ``regularizer`` key."""
    if "regularizer" not in entry:
        return None
    return Regularizer(entry["regularizer"], entry["regularizer_strength"], model, optimizer, batch_size, device)
