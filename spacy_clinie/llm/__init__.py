"""LLM parts built on spacy-llm: the ADE correction task (seed 001's SALA
prompts), local GGUF and OpenAI-compatible backends, the demonstration pool
and the SALA adaptation loop. Importing this package registers the task and
the models; the entry points in setup.cfg do it for ``spacy.load``."""
import spacy_llm.registry  # noqa: F401  (creates the llm_* registries)

from .models.llamacpp import make_llamacpp  # noqa: F401
from .models.openai_compat import make_openai_compatible  # noqa: F401
from .models.simulated import make_simulated_annotator  # noqa: F401
from .tasks.ade_correct import make_ade_correct_task  # noqa: F401
from .tasks.meddra_taco import make_meddra_taco_task  # noqa: F401
