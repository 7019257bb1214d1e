"""Parameter declarations shared by several attacks, defined once (one name per parameter
across every attack: eps, alpha, steps, …)."""

from engine.attacks.base import Param

EPS = Param("eps", float, 0.03, 0.0, 1.0, "L∞ budget ε in [0, 1] pixel units (8/255 ≈ 0.031)")
ALPHA = Param("alpha", float, None, 0.0, 1.0, "step size per iteration; empty means ε / steps", low_open=True)
# From a random start, α = ε/K cannot reach the far side of the ball; Madry et al. use 2.5·ε/K.
ALPHA_PGD = Param("alpha", float, None, 0.0, 1.0, "step size per iteration; empty means 2.5·ε / steps", low_open=True)
PGD_ALPHA_FACTOR = 2.5
STEPS = Param("steps", int, 10, 1, 1000, "number of iterations K")
RANDOM_START = Param("random_start", bool, True, help="start from a uniform random point of the ε-ball")
DECAY = Param("decay", float, 1.0, 0.0, 10.0, "momentum decay μ (1.0 in the MI-FGSM paper)")
