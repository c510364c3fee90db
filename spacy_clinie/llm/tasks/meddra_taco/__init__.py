from .task import MeddraTacoTask, make_meddra_taco_task, parse_taco

__all__ = ["MeddraTacoTask", "make_meddra_taco_task", "parse_taco"]
