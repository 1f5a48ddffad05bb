import os
import tempfile

# One persistent compilation cache for every process of a test run: the pytest-xdist workers, the
# CLI subprocesses and the notebook kernels of the docs build (JAX reads the variable at import).
# A certified search compiles for seconds, and each process would otherwise compile the same
# programs again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.environ.get("JAXLMG_TEST_JAX_CACHE",
                                     os.path.join(tempfile.gettempdir(), "jaxlmg-test-jax-cache")))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
