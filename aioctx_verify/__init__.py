"""aioctx-verify: a verification suite for QEMU's AioContext/IOThread threading model.

One import package, laid out as the repository's top-level folders (setuptools
``package-dir``):

* :mod:`aioctx_verify.impl` (folder ``impl/``): the event loop, over one concurrency seam;
  :mod:`aioctx_verify.impl.qemu` keeps QEMU's C names;
* :mod:`aioctx_verify.model` (``model/``): the state machine of the protocol and its search;
* :mod:`aioctx_verify.properties` (``properties/``): P1, P2, P3 and liveness, each in its forms;
* :mod:`aioctx_verify.stress` (``stress/``): controlled exploration, mutants, stateful
  searches, real-thread stress and benchmarks, one room (subpackage) each;
* :mod:`aioctx_verify.reports` (``reports/``): JSON, JUnit XML, HTML and history;
* this folder: the ``aioctx-verify`` command (:mod:`aioctx_verify.cli`) and the leaf modules
  every layer may import (:mod:`aioctx_verify.vocab`, the shared trace vocabulary, property
  names and root error; :mod:`aioctx_verify.files`); ``tests/test_layers.py`` holds the
  import rules.

Importing this package imports nothing else (``os`` is always loaded already).

Run from a source checkout (the checkout's root on ``sys.path``, as ``python -m`` from the
root and pytest-xdist's workers put it), this folder is found before any installed copy; its
``__path__`` then also holds the root, so ``aioctx_verify.impl`` is the checkout's ``impl/``,
the same file the wheel maps it to, and a process never mixes two copies.
"""

import os as _os

__all__: list[str] = []

_here = _os.path.dirname(_os.path.abspath(__file__))
_root = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "impl")) and _os.path.isfile(
    _os.path.join(_root, "impl", "__init__.py")
):
    __path__.append(_root)
del _here, _root
