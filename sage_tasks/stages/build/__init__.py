"""Build a recipe's wheel from source: ``plan`` decides everything up front (pure), ``source``
prepares the tree, ``compile`` runs the compiler, ``repack`` labels the wheel and writes its
manifest. The names other stages use are re-exported here."""

from .compile import BuildResult, execute
from .plan import BuildPlan, Parallelism, build_environment, plan_build, size_jobs, variant_label
from .repack import latest_built
from .source import export_source, source_suffix, sync_tree

__all__ = [
    "BuildPlan", "BuildResult", "Parallelism", "build_environment", "execute", "export_source",
    "latest_built", "plan_build", "size_jobs", "source_suffix", "sync_tree", "variant_label",
]  # fmt: skip
