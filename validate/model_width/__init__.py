"""Your own model at any width: statistical width-independence checks for any PyTorch model.

    from validate import width_study
    study = width_study(lambda n: MyNet(n), widths=(64, 128, 256, 512), data=(x, y),
                        optimizer=lambda model, n: torch.optim.SGD(model.parameters(), lr=0.1 * n),
                        loss="mse", steps=20, seeds=8)
    study.verdict           # pass / fail / inconclusive (validate.Verdict)
    study.verdicts          # the project's verdict table, one row per (module, statistic, step)
    study.curves            # tidy: width, seed, step, module, statistic, value
    study.plot(); study.report("reports/runs")

Modules:
    config      the arguments, checked into a frozen StudyConfig (errors name the argument)
    hooks       forward hooks on the chosen modules; rms / delta_rms / output / loss per step
    runs        per-run seeds, data stream, the step loop, the per-seed loop path
    batched     all seeds at once: stack_module_state + functional_call + vmap, the user's optimizer mirrored
    statistics  width exponents with seed-based intervals, loss relative differences, verdict rows
    result      WidthStudy: tables, verdict, plot and report (the figure: validate.report.coordinate)
    study       the front door width_study()
    claim       model = "python" claims: PythonModelSpec (module:callable references) and its check

The subpackage is not named after its front door on purpose: ``validate`` exports the function
``width_study`` and imports lazily, so a subpackage of the same name would replace the function
as soon as it was imported.
"""

from .batched import ELEMENTWISE
from .claim import ModelWidthStudy, PythonModelSpec, build_claim_check
from .config import NETWORK, STATISTICS, StudyConfig
from .result import WidthStudy
from .statistics import Exponent, width_exponent
from .study import width_study

__all__ = ["ELEMENTWISE", "Exponent", "ModelWidthStudy", "NETWORK", "PythonModelSpec", "STATISTICS", "StudyConfig",
           "WidthStudy", "build_claim_check", "width_exponent", "width_study"]
