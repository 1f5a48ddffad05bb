import os
import tempfile

import jax

jax.config.update("jax_enable_x64", True)
# One persistent compilation cache for every test process of a run (pytest-xdist workers and the
# CLI subprocesses): a certified search compiles for seconds, and each worker would otherwise
# compile the same programs again.
jax.config.update("jax_compilation_cache_dir",
                  os.environ.get("JAXLMG_TEST_JAX_CACHE",
                                 os.path.join(tempfile.gettempdir(), "jaxlmg-test-jax-cache")))
