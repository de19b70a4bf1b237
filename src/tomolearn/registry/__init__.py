"""The bottom layer's contracts and their registries: tasks (:mod:`.tasks`: the task
protocol, task kinds and their measurement shifts) and reconstruction methods
(:mod:`.methods`).  They import nothing of tomolearn but the operator protocol, so
every layer above can register into them and look things up by name."""

from .methods import (CAPABILITIES, MethodInfo, build_method, method, methods,  # noqa: F401
                      register_method)
from .tasks import (LIKELIHOODS, Task, register_shift, register_task, shifted, shifts,  # noqa: F401
                    task, tasks)
