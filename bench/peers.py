"""Our attacks against every peer library that has them: one run, one machine, same inputs.

For each attack × model × peer: median seconds (min–max) of interleaved repetitions, the
ratio ours/peer taken within each repetition (median and min–max), and the success of each.
Every library attacks the same model object, batch, labels and parameters; "ours" is
`attacks.run(..., score=False)`, which like the peers returns only the adversarial images.
A ratio is claimed only where the success agrees (`agreement`): the same images fooled for the
deterministic sign attacks, success rates within a stated tolerance for the others (their
implementations differ, and Square is random); a disagreement is printed as such.

    bash bench/install_peers.sh                 # once: the peers into .peers/, never the app's environment
    python bench/peers.py --repeats 5           # Fashion-MNIST LeNet, batch 256, and EfficientNet-Lite0, batch 8
    python bench/peers.py --quick --json        # CI smoke mode: tiny batches and budgets, one repetition
    python bench/peers.py --device cuda         # the same on a GPU
    python bench/peers.py --models efficientnet-lite0 --attacks pgd deepfool --peers Foolbox adv-lib   # a part
    python bench/peers.py --peer-network as-given   # the peers on the network as a user hands it to them

Which network the peers get (`--peer-network`): `same` (default) is our model object itself, with the
engine's inference rewrites (engine/models/inference.py: batch norms folded, channels-last), so the ratio
compares the attack loops alone. `as-given` builds the same model without the rewrites for the peers: the
same function, as a user of that library would run it.

Peers: torchattacks (in the test environment), Foolbox, ART, adv-lib and advertorch (in .peers/,
pinned in bench/requirements-peers.txt). A library that is not installed or does not import is
left out and named. The slowest loops (`SLICES`: torchattacks' per-image DeepFool and JSMA,
advertorch's JSMA, ART's C&W, ART's DeepFool on photos) are timed in the full run on the first
images only, their time scaled to the batch; success is then compared on those images.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import statistics
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_common import ROOT, cell, fooled, ratio, spread, timed  # noqa: E402
from bench_common import parser as bench_parser

from engine import attacks, images, models, targets  # noqa: E402
from engine.attacks.base import resolve_params  # noqa: E402
from engine.datasets import fashion_mnist  # noqa: E402
from engine.models import inference  # noqa: E402

PEERS_DIR = ROOT / ".peers"
# Import name → how the library calls itself.
MODELS = ("fmnist-lenet-0", "efficientnet-lite0")  # batch 256 and batch 8
LIBRARIES = {
    "torchattacks": "torchattacks",
    "foolbox": "Foolbox",
    "art": "ART",
    "adv_lib": "adv-lib",
    "advertorch": "advertorch",
}
# (library, attack, model) → images it attacks in the full run, the slowest loops only (its time is scaled
# to the batch, and success compared on those images).
SLICES = {
    ("torchattacks", "deepfool", "fmnist-lenet-0"): 32,
    ("torchattacks", "jsma", "fmnist-lenet-0"): 32,
    ("advertorch", "jsma", "fmnist-lenet-0"): 32,
    ("art", "cw", "fmnist-lenet-0"): 64,
    ("art", "deepfool", "efficientnet-lite0"): 2,
    ("art", "ead", "fmnist-lenet-0"): 64,
    ("art", "hopskipjump", "fmnist-lenet-0"): 16,
    ("art", "boundary", "fmnist-lenet-0"): 16,
}
TARGETS = {"deepfool": 0.1, "jsma": 0.1}  # ours/peer at most this: ≥ 10× faster; 1.0 for every other attack
# Pairs whose success differs because the algorithms differ (read in their source), not because of the mapping.
DIFFERENT = {
    ("torchattacks", "deepfool"): "its overshoot scales each step, not the total: it closes in on the boundary "
    "geometrically and may never cross it",
    ("art", "cw"): "its C&W is gradient descent with a line search over the rate (up to 2⁵ × lr), not Adam",
    ("art", "universal"): "it sets v to clip(x + v + r) − x for each image x, dropping what the [0, 1] box cuts "
    "off that image (on a black background, every negative value of v), where the paper adds r to v",
    ("art", "jsma"): "its JSMA changes the two most salient single features per step, no search over pairs",
    ("art", "ead"): "its EAD zeroes the whole gradient (the L2 term's too) wherever the margin is met, and its "
    "FISTA momentum is k/(k+3) where the authors' code has (k+1)/(k+4)",
    ("art", "cw-linf"): "its Adam stops as soon as the loss is below 0.001: with κ = 0 the image then sits on the "
    "boundary, where the true class often still wins the argmax, and counts as not fooled",
    ("foolbox", "ead"): "its EAD sets the upper bound of c to the last successful c, not the smallest, and its FISTA "
    "momentum is k/(k+3)",
}


def _zero_gradients(x):
    """torch < 1.9's helper, still imported (for its FAB attack, which we do not run) by advertorch 0.2.3."""
    if isinstance(x, torch.Tensor):
        if x.grad is not None:
            x.grad.detach_()
            x.grad.zero_()
    else:
        for item in x:
            _zero_gradients(item)


def import_peers() -> tuple[dict[str, str], dict[str, str]]:
    """({library: version} of the peers that import here, {library: why not} of the rest).

    .peers/ goes at the end of sys.path, so a peer's copy of a package never shadows the app's.
    """
    if PEERS_DIR.is_dir() and str(PEERS_DIR) not in sys.path:
        sys.path.append(str(PEERS_DIR))
    gradcheck = importlib.import_module("torch.autograd.gradcheck")  # the module: the attribute is a function
    if not hasattr(gradcheck, "zero_gradients"):
        gradcheck.zero_gradients = _zero_gradients
    # adv-lib imports visdom for optional live plots only. The stub has no spec: find_spec would raise on a
    # second call, so look in sys.modules first.
    if "visdom" not in sys.modules and importlib.util.find_spec("visdom") is None:
        sys.modules["visdom"] = types.ModuleType("visdom")
    found, missing = {}, {}
    for name in LIBRARIES:
        try:
            module = importlib.import_module(name)
            if name == "art":
                importlib.import_module("art.attacks.evasion")
                importlib.import_module("art.estimators.classification")
            if name == "adv_lib":
                importlib.import_module("adv_lib.attacks")
            found[name] = getattr(module, "__version__", "?")
        except Exception as exc:  # any import failure means: leave this peer out, say why
            missing[name] = f"{type(exc).__name__}: {exc}"
    return found, missing


# --- the peers' attacks, with our parameters mapped onto theirs ----------------------------------------------------
# Each maker returns run(x, labels) -> adversarial images (a tensor on x's device), or None where the
# library has no such attack in this setting. `p` holds our parameter names (engine/attacks).


def _torchattacks(name, model, p):
    import torchattacks as ta

    def targeted(atk):
        atk.set_mode_targeted_by_label(quiet=True)
        return atk

    make = {
        "fgsm": lambda: ta.FGSM(model, eps=p["eps"]),
        "bim": lambda: ta.BIM(model, eps=p["eps"], alpha=p["alpha"], steps=p["steps"]),
        "pgd": lambda: ta.PGD(model, eps=p["eps"], alpha=p["alpha"], steps=p["steps"], random_start=p["random_start"]),
        "mifgsm": lambda: ta.MIFGSM(model, eps=p["eps"], alpha=p["alpha"], steps=p["steps"], decay=p["decay"]),
        # No search over c in torchattacks' C&W.
        "cw": lambda: (
            ta.CW(model, c=p["c"], kappa=p["kappa"], steps=p["steps"], lr=p["lr"])
            if p["binary_search_steps"] == 1
            else None
        ),
        # Its DeepFool takes every class's gradient: comparable where the top-k candidates are all classes.
        "deepfool": lambda: (
            ta.DeepFool(model, steps=p["steps"], overshoot=p["overshoot"])
            if p["num_classes"] >= model.num_classes
            else None
        ),
        # Its n_queries counts iterations after the initial stripes; ours counts every query.
        "square": lambda: ta.Square(
            model,
            norm="Linf",
            eps=p["eps"],
            n_queries=p["n_queries"] - 1,
            n_restarts=1,
            p_init=p["p_init"],
            loss="margin",
            resc_schedule=True,
            seed=0,
        ),
        "jsma": lambda: targeted(ta.JSMA(model, theta=float(p["theta"]), gamma=p["max_distortion"])),
        "apgd": lambda: ta.APGD(
            model, eps=p["eps"], steps=p["steps"], loss=p["loss"], n_restarts=p["restarts"], rho=p["rho"], seed=0
        ),
        # EAD's two decision rules are two classes there: EADEN (elastic-net) and EADL1.
        "ead": lambda: (ta.EADEN if p["decision_rule"] == "en" else ta.EADL1)(
            model,
            kappa=p["kappa"],
            lr=p["lr"],
            binary_search_steps=p["binary_search_steps"],
            max_iterations=p["steps"],
            abort_early=False,
            initial_const=p["c"],
            beta=p["beta"],
        ),
        # Its untargeted FAB takes every class's gradient (ours the top 10): comparable up to 10 classes.
        "fab": lambda: (
            ta.FAB(
                model,
                norm="Linf",
                eps=p["eps"],
                steps=p["steps"],
                n_restarts=p["restarts"],
                alpha_max=p["alpha_max"],
                eta=p["eta"],
                beta=p["beta"],
                n_classes=model.num_classes,
            )
            if model.num_classes <= 10
            else None
        ),
        # Its AutoAttack class fixes the budgets: the same four attacks composed as it composes them.
        "autoattack": lambda: ta.MultiAttack(
            [
                ta.APGD(model, eps=p["eps"], steps=p["steps"], n_restarts=1, loss="ce", seed=0),
                ta.APGDT(model, eps=p["eps"], steps=p["steps"], n_restarts=1, n_classes=p["n_target_classes"] + 1),
                ta.FAB(
                    model,
                    eps=p["eps"],
                    steps=p["steps"],
                    n_restarts=1,
                    multi_targeted=True,
                    n_classes=p["n_target_classes"] + 1,
                ),
                ta.Square(model, eps=p["eps"], n_queries=p["n_queries"] - 1, n_restarts=1, p_init=0.8, seed=0),
            ]
        ),
    }.get(name)
    return make and make()


def _decision_steps(name, model, p) -> int:
    """The iterations our label-only attack plans for its query budget, after a start of one noise draw and a
    bisection: what a peer without a query budget is given as its steps."""
    import math

    from engine.attacks import boundary, decision, hopskipjump

    d = math.prod(model.input_size)
    if name == "boundary":
        return max(1, boundary._planned_steps(p["n_queries"] - 1 - decision.bisection_steps(d**-1.5)))
    theta = p["gamma"] / (d * math.sqrt(d) if p["norm"] == "l2" else d * d)
    steps = decision.bisection_steps(theta)
    return max(1, hopskipjump._plan(p["n_queries"] - 1 - steps, p["grad_queries"], steps))


def _foolbox(name, model, p):
    import foolbox as fb

    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=model.device)
    # `run` is each attack's own entry point: like score=False it returns the images without judging them.
    fixed = {
        "fgsm": lambda: fb.attacks.FGSM(),
        "pgd": lambda: fb.attacks.LinfPGD(abs_stepsize=p["alpha"], steps=p["steps"], random_start=p["random_start"]),
        # Foolbox's L∞ MI-FGSM accumulates sign(∇), not ∇/‖∇‖₁ (Dong et al.): the success check tells.
        "mifgsm": lambda: fb.attacks.MIFGSM(momentum=p["decay"], abs_stepsize=p["alpha"], steps=p["steps"]),
    }
    minimal = {
        "cw": lambda: fb.attacks.L2CarliniWagnerAttack(
            binary_search_steps=p["binary_search_steps"],
            steps=p["steps"],
            stepsize=p["lr"],
            confidence=p["kappa"],
            initial_const=p["c"],
            abort_early=True,
        ),
        "deepfool": lambda: fb.attacks.L2DeepFoolAttack(
            steps=p["steps"], candidates=p["num_classes"], overshoot=p["overshoot"], loss="logits"
        ),
        "ead": lambda: fb.attacks.EADAttack(
            binary_search_steps=p["binary_search_steps"],
            steps=p["steps"],
            initial_stepsize=p["lr"],
            confidence=p["kappa"],
            initial_const=p["c"],
            regularization=p["beta"],
            decision_rule=p["decision_rule"].upper(),
            abort_early=False,
        ),
        # No query budget in Foolbox: its iterations are the ones our budget plans (see _decision_steps).
        "hopskipjump": lambda: fb.attacks.HopSkipJumpAttack(
            steps=_decision_steps(name, model, p),
            initial_gradient_eval_steps=p["grad_queries"],
            gamma=p["gamma"],
            constraint=p["norm"],
        ),
        "boundary": lambda: fb.attacks.BoundaryAttack(
            steps=_decision_steps(name, model, p),
            spherical_step=p["spherical_step"],
            source_step=p["source_step"],
            step_adaptation=p["step_adaptation"],
        ),
    }
    if name in fixed:
        attack = fixed[name]()
        return lambda x, labels: attack.run(fmodel, x, fb.criteria.Misclassification(labels), epsilon=p["eps"])
    if name not in minimal:
        return None
    attack = minimal[name]()

    def run(x, labels):
        adv = attack.run(fmodel, x, fb.criteria.Misclassification(labels))
        if name not in ("cw", "ead"):
            return adv
        # Its C&W (and EAD) returns an all-black image where it found nothing: put the clean image back, so a black
        # image the model happens to misclassify does not count as a success. (Its own images come from
        # tanh and are never exactly 0 everywhere.)
        missed = adv.flatten(1).abs().amax(1) == 0
        return torch.where(missed.view(-1, *[1] * (x.dim() - 1)), x, adv)

    return run


def _art(name, model, p):
    import random

    import numpy as np
    from art.attacks import evasion as ev
    from art.estimators.classification import PyTorchClassifier

    class Float32(torch.nn.Module):
        """ART's label-only attacks blend images in float64, which they hand the model as they are."""

        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            return self.net(x.float())

    clf = PyTorchClassifier(
        Float32() if name in ("hopskipjump", "boundary") else model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(model.input_size),
        nb_classes=model.num_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if model.device.type == "cuda" else "cpu",
    )
    quiet = {"verbose": False}
    n = 1 << 16  # ART's batch_size: larger than any batch here, so each batch is one of ART's batches
    make = {
        "fgsm": lambda: ev.FastGradientMethod(clf, norm=np.inf, eps=p["eps"], batch_size=n),
        "pgd": lambda: ev.ProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=p["eps"],
            eps_step=p["alpha"],
            max_iter=p["steps"],
            num_random_init=int(p["random_start"]),
            batch_size=n,
            **quiet,
        ),
        "mifgsm": lambda: ev.MomentumIterativeMethod(
            clf,
            norm=np.inf,
            eps=p["eps"],
            eps_step=p["alpha"],
            decay=p["decay"],
            max_iter=p["steps"],
            batch_size=n,
            **quiet,
        ),
        # ART's C&W is its own: gradient descent with a line search (halving/doubling the rate), not Adam.
        "cw": lambda: ev.CarliniL2Method(
            clf,
            confidence=p["kappa"],
            learning_rate=p["lr"],
            binary_search_steps=p["binary_search_steps"],
            max_iter=p["steps"],
            initial_const=p["c"],
            batch_size=n,
            **quiet,
        ),
        "deepfool": lambda: ev.DeepFool(
            clf, max_iter=p["steps"], epsilon=p["overshoot"], nb_grads=p["num_classes"], batch_size=n, **quiet
        ),
        "ead": lambda: ev.ElasticNet(
            clf,
            confidence=p["kappa"],
            learning_rate=p["lr"],
            binary_search_steps=p["binary_search_steps"],
            max_iter=p["steps"],
            beta=p["beta"],
            initial_const=p["c"],
            decision_rule=p["decision_rule"].upper(),
            batch_size=n,
            **quiet,
        ),
        # max_iter counts iterations after the initial stripes; ours counts every query.
        "square": lambda: ev.SquareAttack(
            clf,
            norm=np.inf,
            max_iter=p["n_queries"] - 1,
            eps=p["eps"],
            p_init=p["p_init"],
            nb_restarts=1,
            batch_size=n,
            **quiet,
        ),
        # ART's JSMA takes the two most salient single features per step (no search over pairs).
        "jsma": lambda: ev.SaliencyMapMethod(
            clf, theta=float(p["theta"]), gamma=p["max_distortion"], batch_size=n, **quiet
        ),
        "apgd": lambda: ev.AutoProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=p["eps"],
            eps_step=2 * p["eps"],  # the authors' first step, 2ε, as ours takes
            max_iter=p["steps"],
            nb_random_init=p["restarts"],
            batch_size=n,
            loss_type={"ce": "cross_entropy", "dlr": "difference_logits_ratio"}[p["loss"]],
            **quiet,
        ),
        "cw-linf": lambda: ev.CarliniLInfMethod(
            clf,
            confidence=p["kappa"],
            learning_rate=p["lr"],
            max_iter=p["steps"],
            decrease_factor=p["tau_factor"],
            initial_const=p["c"],
            largest_const=p["c_max"],
            const_factor=p["c_factor"],
            batch_size=n,
            **quiet,
        ),
        # No query budget in ART either: its iterations are the ones our budget plans (see _decision_steps), its
        # gradient estimates grow from init_eval as Foolbox's do (no gamma: its θ is fixed).
        "hopskipjump": lambda: ev.HopSkipJump(
            clf,
            norm=2 if p["norm"] == "l2" else np.inf,
            max_iter=_decision_steps(name, model, p),
            init_eval=p["grad_queries"],
            init_size=100,
            batch_size=n,
            **quiet,
        ),
        # One orthogonal trial and one step towards the image per iteration (num_trial = sample_size = 1): about
        # the queries of one of our steps; ART divides its steps by step_adapt < 1 where we multiply by > 1.
        "boundary": lambda: ev.BoundaryAttack(
            clf,
            targeted=False,
            delta=p["spherical_step"],
            epsilon=p["source_step"],
            step_adapt=1.0 / p["step_adaptation"],
            max_iter=_decision_steps(name, model, p),
            num_trial=1,
            sample_size=1,
            init_size=100,
            batch_size=n,
            **quiet,
        ),
        # No "autoattack": ART's AutoAttack has no FAB-T stage, so it is not the standard suite compared here.
        # Its sequential loop (our batch = 1) with its DeepFool; delta is 1 − our target rate.
        "universal": lambda: ev.UniversalPerturbation(
            clf,
            attacker="deepfool",
            attacker_params={"max_iter": p["steps"], "epsilon": p["overshoot"], "nb_grads": p["num_classes"], **quiet},
            delta=1.0 - p["target_rate"],
            max_iter=p["max_iter"],
            eps=p["eps"],
            norm=np.inf if p["norm"] == "linf" else 2,
            **quiet,
        ),
    }.get(name)
    if make is None:
        return None
    attack = make()

    def run(x, labels):  # ART works on NumPy arrays: the round trip is part of its cost
        np.random.seed(0)  # its Square draws from NumPy's global generator: every repetition alike
        random.seed(0)  # its UniversalPerturbation shuffles the images with Python's
        adv = attack.generate(x.detach().cpu().numpy(), labels.cpu().numpy())
        return torch.from_numpy(adv).to(x.device)

    return run


def _adv_lib(name, model, p):
    from adv_lib import attacks as al

    make = {
        # adv-lib's PGD returns the best iterate it has judged: those before each step, not the final one.
        "pgd": lambda x, y: al.pgd_linf(
            model,
            x,
            y,
            ε=p["eps"],
            steps=p["steps"],
            random_init=p["random_start"],
            restarts=1,
            absolute_step_size=p["alpha"],
        ),
        "cw": lambda x, y: al.carlini_wagner_l2(
            model,
            x,
            y,
            confidence=p["kappa"],
            learning_rate=p["lr"],
            initial_const=p["c"],
            binary_search_steps=p["binary_search_steps"],
            max_iterations=p["steps"],
            abort_early=True,
        ),
        "deepfool": lambda x, y: al.df(model, x, y, steps=p["steps"], overshoot=p["overshoot"]),
        "cw-linf": lambda x, y: al.carlini_wagner_linf(
            model,
            x,
            y,
            learning_rate=p["lr"],
            max_iterations=p["steps"],
            initial_const=p["c"],
            largest_const=p["c_max"],
            const_factor=p["c_factor"],
            decrease_factor=p["tau_factor"],
        ),
        "apgd": lambda x, y: al.apgd(
            model,
            x,
            y,
            eps=p["eps"],
            norm=float("inf"),
            n_iter=p["steps"],
            n_restarts=p["restarts"],
            loss_function=p["loss"],
            rho=p["rho"],
        ),
        "fab": lambda x, y: _within(
            al.fab(model, x, y, norm=float("inf"), n_iter=p["steps"], α_max=p["alpha_max"], β=p["beta"], η=p["eta"]),
            x,
            p["eps"],
        ),
    }
    if name == "deepfool" and p["num_classes"] < model.num_classes:
        return None  # adv-lib's DeepFool takes every class's gradient, no top-k
    if name == "cw-linf" and p["kappa"] != 0:
        return None  # no confidence κ in adv-lib's C&W L∞ (nor in Carlini's)
    if name == "fab" and (model.num_classes > 10 or p["restarts"] > 1):
        return None  # every class's gradient; and its restarts re-attack every image, ours only the unfooled
    return make.get(name)


def _within(adv, x, eps):
    """adv-lib's FAB minimises the norm without a budget: an image beyond ε goes back to the clean one, as FAB's
    ε counts it (torchattacks and ours)."""
    far = (adv - x).flatten(1).abs().amax(1) > eps
    return torch.where(far.view(-1, *[1] * (x.dim() - 1)), x, adv)


def _advertorch(name, model, p):
    from advertorch import attacks as at

    box = {"clip_min": 0.0, "clip_max": 1.0}
    make = {
        "fgsm": lambda: at.GradientSignAttack(model, eps=p["eps"], **box),
        "pgd": lambda: at.LinfPGDAttack(
            model, eps=p["eps"], nb_iter=p["steps"], eps_iter=p["alpha"], rand_init=p["random_start"], **box
        ),
        "mifgsm": lambda: at.MomentumIterativeAttack(
            model, eps=p["eps"], nb_iter=p["steps"], decay_factor=p["decay"], eps_iter=p["alpha"], **box
        ),
        "cw": lambda: at.CarliniWagnerL2Attack(
            model,
            model.num_classes,
            confidence=p["kappa"],
            learning_rate=p["lr"],
            binary_search_steps=p["binary_search_steps"],
            max_iterations=p["steps"],
            abort_early=True,
            initial_const=p["c"],
            **box,
        ),
        "jsma": lambda: at.JacobianSaliencyMapAttack(
            model, model.num_classes, theta=float(p["theta"]), gamma=p["max_distortion"], **box
        ),
        "ead": lambda: at.ElasticNetL1Attack(
            model,
            model.num_classes,
            confidence=p["kappa"],
            learning_rate=p["lr"],
            binary_search_steps=p["binary_search_steps"],
            max_iterations=p["steps"],
            initial_const=p["c"],
            beta=p["beta"],
            decision_rule=p["decision_rule"].upper(),
            **box,
        ),
    }.get(name)
    if make is None:
        return None
    attack = make()
    return lambda x, labels: attack.perturb(x, labels)


MAKERS = {
    "torchattacks": _torchattacks,
    "foolbox": _foolbox,
    "art": _art,
    "adv_lib": _adv_lib,
    "advertorch": _advertorch,
}


def make(library: str, name: str, model, params: dict):
    """run(x, labels) of `library`'s attack `name` with our `params`, or None where it has none."""
    return MAKERS[library](name, model, params)


# --- what is compared ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    attack: str
    params: dict
    # "same": the same images fooled (deterministic sign attacks); "rate": success rates within the tolerance.
    rule: str = "rate"
    norm: str | None = None  # "l2"/"l0": also report the median size of the successful perturbations
    targeted: bool = False


def cases(eps: float, quick: bool, digits: bool) -> list[Case]:
    """The compared settings for one model (`digits`: the small grey domain, where JSMA runs too).

    `eps` is the app's default budget of the domain. Square gets it; the sign attacks get a quarter of
    it, so that some images resist and "the same images fooled" is a real check (at the full ε nearly
    every image falls).
    """
    steps = 3 if quick else 10
    small = eps / 4
    sign = {"eps": small, "steps": steps}
    cw = {"c": 1.0, "kappa": 0.0, "lr": 0.01, "steps": 10 if quick else 20}
    searches = 2 if quick else 5
    decision = {"n_queries": 100 if quick else 1000 if digits else 300}
    # The search over c, where every peer but torchattacks has one (cheap on the small model only).
    search = (
        [Case(f"cw, {searches} search steps", "cw", {**cw, "c": 0.1, "binary_search_steps": searches}, norm="l2")]
        if digits
        else []
    )
    jsma = [Case("jsma", "jsma", {"theta": 1, "max_distortion": 0.1}, norm="l0", targeted=True)] if digits else []
    # The minimal-norm attacks with a search (rounds over τ and c, binary search over c): the small model only.
    cw_linf = {"c": 0.1, "c_max": 20.0, "c_factor": 2.0, "tau_factor": 0.7, "kappa": 0.0, "lr": 0.05}
    ead = {"c": 0.1, "beta": 0.01, "kappa": 0.0, "lr": 0.01, "decision_rule": "en"}
    ead |= {"steps": 10 if quick else 20, "binary_search_steps": 2 if quick else 3}
    minimal = (
        [
            Case("cw-linf", "cw-linf", {**cw_linf, "steps": 5 if quick else 10}, norm="linf"),
            Case("ead", "ead", ead, norm="l1"),
        ]
        if digits
        else []
    )
    # One δ for the batch: ART's sequential loop (batch 1) and our minibatch variant, both 2 passes.
    uap = {"eps": eps, "norm": "linf", "inner": "deepfool", "max_iter": 2, "target_rate": 0.8, "steps": 20}
    uap |= {"overshoot": 0.02, "num_classes": 10}
    universal = [Case(f"universal, batch {b}", "universal", {**uap, "batch": b}) for b in (1, 32)] if digits else []
    return [
        Case("fgsm", "fgsm", {"eps": small}, rule="same"),
        # No random start: random draws cannot be seeded alike across libraries (PGD is then BIM with α = 2.5ε/K).
        Case("pgd", "pgd", {**sign, "alpha": 2.5 * small / steps, "random_start": False}, rule="same"),
        Case("mifgsm", "mifgsm", {**sign, "alpha": small / steps, "decay": 1.0}, rule="same"),
        Case("cw", "cw", {**cw, "binary_search_steps": 1}, norm="l2"),
        *search,
        # On photos a DeepFool step is 9 backward passes of Lite0 and Square's query a forward: smaller budgets.
        Case("deepfool", "deepfool", {"steps": 50 if digits else 20, "overshoot": 0.02, "num_classes": 10}, norm="l2"),
        Case("square", "square", {"eps": eps, "n_queries": 300 if digits and not quick else 100, "p_init": 0.05}),
        # Label-only: the size of the perturbation at a query budget is the result (median L2 reported).
        Case("hopskipjump", "hopskipjump", {**decision, "norm": "l2", "gamma": 1.0, "grad_queries": 100}, norm="l2"),
        Case(
            "boundary",
            "boundary",
            {**decision, "spherical_step": 0.01, "source_step": 0.01, "step_adaptation": 1.5},
            norm="l2",
        ),
        *jsma,
        *universal,
        *minimal,
        # Random starts differ between libraries: success rates compared, not images.
        Case("apgd", "apgd", {**sign, "loss": "ce", "restarts": 1, "rho": 0.75}),
        Case("apgd, dlr", "apgd", {**sign, "loss": "dlr", "restarts": 1, "rho": 0.75}),
        Case("fab", "fab", {**sign, "restarts": 1, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}),
        Case("autoattack", "autoattack", {**sign, "n_target_classes": 3, "n_queries": 100}),
    ]


def agreement(case: Case, ours: torch.Tensor, theirs: torch.Tensor) -> tuple[bool, str]:
    """Whether two libraries' success agrees on the same images, and how far apart it is."""
    n = ours.numel()
    if case.rule == "same":
        differ = int((ours != theirs).sum())
        allowed = max(1, int(0.02 * n))  # ties at a boundary: gradients that are ±0 up to rounding
        return differ <= allowed, f"{differ} of {n} images differ (≤ {allowed} allowed)"
    gap = abs(float(ours.float().mean()) - float(theirs.float().mean()))
    allowed = max(0.05, 1.0 / n)
    return gap <= allowed + 1e-9, f"rates {gap:.0%} apart (≤ {allowed:.0%} allowed)"


def size(x, adv, hit, norm):
    """Median perturbation size over the fooled images (L2, L∞, L1, or L0 as the share of changed features)."""
    if norm is None or not bool(hit.any()):
        return None
    delta = (adv - x)[hit].flatten(1)
    if norm in ("l2", "linf", "l1"):
        values = delta.norm(p={"l2": 2, "linf": float("inf"), "l1": 1}[norm], dim=1)
    else:
        values = (delta.abs() > 1e-6).float().mean(1)
    return float(values.median())


def _ours(case: Case, model, y):
    """run(x, labels) like a peer's: `labels` are the targets of a targeted attack; `y` the predictions."""

    def run(x, labels):
        extra = {"target": labels} if case.targeted else {}
        return attacks.run(case.attack, model, x, y=y[: x.shape[0]], score=False, **extra, **case.params).x_adv

    return run


def measure(model, x, case_list, libraries, repeats, slices, warm_up=True, peer_model=None, on_row=None) -> list[dict]:
    """After one untimed run each (`warm_up`), interleaved repetitions of ours and every peer that has
    the attack, the order rotated and reversed every other repetition (whoever ran first runs last next).
    The peers attack `peer_model` (default: `model` itself); success is judged on `model` for all.
    `on_row(row)` is called as each row is measured."""
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)  # every library attacks the model's own predictions
    target = targets.runner_up(model, x)
    n = x.shape[0]
    rows = []
    for case in case_list:
        labels = target if case.targeted else y
        runners = {"ours": _ours(case, model, y)}
        for lib in libraries:
            run = make(lib, case.attack, model if peer_model is None else peer_model, case.params)
            if run is not None:
                runners[lib] = run
        names = list(runners)
        times = {k: [] for k in names}
        adv = {}
        sliced = {name: min(n, slices.get((name, case.attack, model.name), n)) for name in names}
        if warm_up:  # first calls pay for lazy imports, allocator growth, a library's own checks
            for name in names:
                runners[name](x[: sliced[name]], labels[: sliced[name]])
        for rep in range(repeats):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order if rep % 2 == 0 else order[::-1]:
                k = sliced[name]
                seconds, adv[name] = timed(lambda: runners[name](x[:k], labels[:k]))
                times[name].append(seconds * n / k)
        hit = {name: fooled(model, a, labels[: a.shape[0]], case.targeted) for name, a in adv.items()}
        for lib in names[1:]:
            k = hit[lib].numel()
            agrees, how = agreement(case, hit["ours"][:k], hit[lib])
            per_rep = [o / t for o, t in zip(times["ours"], times[lib])]
            rows.append(
                {
                    "attack": case.label,
                    "method": case.attack,
                    "model": model.name,
                    "peer": LIBRARIES[lib],
                    "batch": n,
                    "images_for_success": k,
                    "params": case.params,
                    "ours": spread(times["ours"]),
                    "theirs": spread(times[lib]),
                    "ours_success": float(hit["ours"][:k].float().mean()),
                    "theirs_success": float(hit[lib].float().mean()),
                    "ours_size": size(x[:k], adv["ours"][:k], hit["ours"][:k], case.norm),
                    "theirs_size": size(x[:k], adv[lib], hit[lib], case.norm),
                    "norm": case.norm,
                    "agree": agrees,
                    "agreement": how,
                    "known_difference": DIFFERENT.get((lib, case.attack)),
                    # No ratio is claimed where the two do not fool alike.
                    "ratio": {"median": statistics.median(per_rep), "min": min(per_rep), "max": max(per_rep)}
                    if agrees
                    else None,
                }
            )
            if on_row is not None:
                on_row(rows[-1])
    return rows


def verdicts(rows: list[dict]) -> dict:
    """Per (attack, model): ours against the fastest peer whose success agrees, and the target."""
    out = {}
    for key in dict.fromkeys((r["attack"], r["model"]) for r in rows):
        pairs = [r for r in rows if (r["attack"], r["model"]) == key]
        fastest = min(pairs, key=lambda r: r["theirs"]["median_s"])
        agreeing = [r for r in pairs if r["agree"]]
        goal = TARGETS.get(key[0], 1.0)
        if not agreeing:
            out[key] = {"peer": None, "target": goal, "met": None, "note": "no peer's success agrees: no claim"}
            continue
        best = min(agreeing, key=lambda r: r["theirs"]["median_s"])
        note = "" if best is fastest else f"{fastest['peer']} is faster but its success disagrees"
        out[key] = {
            "peer": best["peer"],
            "ratio": best["ratio"]["median"],
            "target": goal,
            "met": best["ratio"]["median"] <= goal,
            "note": note,
        }
    return out


def _target_cell(row, verdict) -> str:
    if verdict["peer"] != row["peer"]:
        return ""
    goal = "≤ 1.0" if verdict["target"] == 1.0 else f"≥ {1 / verdict['target']:.0f}× faster"
    text = f"{goal} vs the fastest peer: {'met' if verdict['met'] else 'not met'}"
    return text + (f" ({verdict['note']})" if verdict["note"] else "")


def _success(row) -> str:
    text = f"{row['ours_success']:.0%} / {row['theirs_success']:.0%}"
    if row["images_for_success"] != row["batch"]:
        text += f" (first {row['images_for_success']})"
    if row["norm"] and row["ours_size"] is not None and row["theirs_size"] is not None:
        unit = {"l2": "‖δ‖₂", "linf": "‖δ‖∞", "l1": "‖δ‖₁"}.get(row["norm"], "L0 share")
        text += f"; median {unit} {row['ours_size']:.3g} / {row['theirs_size']:.3g}"
    return text


def table(rows: list[dict]) -> str:
    """The README's table: attack × model × peer → ratio, success ours/peer, target met? Then the reasons
    known for the disagreements it shows."""
    judged = verdicts(rows)
    lines = [
        "| attack | model | peer | ours (s) | peer (s) | ours / peer (min–max) | success ours / peer "
        "| agree | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    reasons = {}
    for r in rows:
        q = r["ratio"]
        shown = "— (no claim)" if q is None else f"{ratio(q['median'])} ({q['min']:.2f}–{q['max']:.2f})"
        agree = "yes" if r["agree"] else f"**no**: {r['agreement']}"
        if not r["agree"] and r["known_difference"]:
            reasons.setdefault(f"{r['peer']} {r['method']}", r["known_difference"])
        lines.append(
            f"| {r['attack']} | {r['model']} | {r['peer']} | {cell(r['ours'])} | {cell(r['theirs'])} | "
            f"{shown} | {_success(r)} | {agree} | {_target_cell(r, judged[(r['attack'], r['model'])])} |"
        )
    if reasons:
        lines.append("\nWhy the success disagrees (read in the peers' source):")
        lines += [f"- {who}: {why}." for who, why in reasons.items()]
    for (attack, model), v in judged.items():
        if v["peer"] is None:
            lines.append(f"- {attack} on {model}: no peer's success agrees with ours, no ratio claimed.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = bench_parser(__doc__, repeats=5)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="default: both")
    parser.add_argument("--attacks", nargs="+", default=None, help="attack names (default: every one)")
    parser.add_argument("--peers", nargs="+", choices=list(LIBRARIES.values()), default=None, help="default: all")
    parser.add_argument(
        "--peer-network",
        choices=("same", "as-given"),
        default="same",
        help="same: our model object; as-given: the same model without the engine's inference rewrites",
    )
    parser.add_argument(
        "--stream", action="store_true", help="print each table row as it is measured (the full table still ends)"
    )
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    # Quick mode checks rather than times: on a shared CPU one thread is many times faster than two.
    torch.set_num_threads(1 if args.quick else 2)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> int:
    found, missing = import_peers()
    if args.peers is not None:
        found = {k: v for k, v in found.items() if LIBRARIES[k] in args.peers}
    repeats = 1 if args.quick else args.repeats
    slices = {} if args.quick else SLICES

    def chosen(case_list):
        return [c for c in case_list if args.attacks is None or c.attack in args.attacks]

    rows = []
    on_row = None
    if args.stream:  # a long GPU run shows its rows as they come, and a killed one keeps them
        print("\n".join(table([]).splitlines()[:2]), flush=True)

        def on_row(row):  # the target column needs every peer's row: the final table has it
            print(table([row]).splitlines()[2].rsplit("|", 2)[0] + "|  |", flush=True)

    for name in args.models:
        model = models.load(name, device=args.device)
        peer_model = None
        if args.peer_network == "as-given":
            with inference.as_given():
                peer_model = models.load(name, device=args.device)
        digits = name == "fmnist-lenet-0"  # the small grey domain: a big batch, and JSMA
        if digits:
            x = fashion_mnist.test_split()[0][: 8 if args.quick else 256]
        else:
            x = torch.cat([images.load(p, model) for p in list(images.gallery().values())[: 2 if args.quick else 8]])
        eps = resolve_params(attacks.get("fgsm"), model.attack_defaults, {})["eps"]
        case_list = chosen(cases(eps, args.quick, digits=digits))
        if args.quick and not digits:  # the photo path of each peer's adapters (3 channels, 1,000 classes)
            case_list = [c for c in case_list if c.attack == "fgsm"]
        rows += measure(
            model,
            x.to(model.device),
            case_list,
            found,
            repeats,
            slices,
            warm_up=not args.quick,
            peer_model=peer_model,
            on_row=on_row,
        )
    report = {
        "device": str(args.device),
        "repeats": repeats,
        "peer_network": args.peer_network,
        "peers": {LIBRARIES[k]: v for k, v in found.items()},
        "missing": {LIBRARIES[k]: v for k, v in missing.items()},
        "rows": rows,
        "verdicts": [{"attack": a, "model": m, **v} for (a, m), v in verdicts(rows).items()],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print(report)
    return 0


def _print(report: dict) -> None:
    rows, repeats = report["rows"], report["repeats"]
    print(
        f"Peers on {report['device']}, torch {torch.__version__} ({torch.get_num_threads()} threads): "
        + ", ".join(f"{k} {v}" for k, v in report["peers"].items())
        + f"; peers attack {'our model object' if report['peer_network'] == 'same' else 'the network as given'}"
    )
    for lib, why in report["missing"].items():
        print(f"left out: {lib} ({why})")
    print(f"times: median (min–max) of {repeats}; ours / peer: per-repetition ratios, median (min–max)\n")
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
