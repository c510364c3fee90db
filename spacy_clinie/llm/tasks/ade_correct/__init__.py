from .registry import make_ade_correct_task
from .task import ADECorrectTask

__all__ = ["ADECorrectTask", "make_ade_correct_task"]
